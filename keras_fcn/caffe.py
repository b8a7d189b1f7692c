"""Reads the authors' `.caffemodel` files without Caffe and loads them into Keras models.

A `.caffemodel` is a serialized `caffe.NetParameter` protocol buffer
(BVLC/caffe `src/caffe/proto/caffe.proto`). Only the parts that hold weights
are needed, so this module decodes the protobuf wire format itself instead of
compiling `caffe.proto`: packed float arrays become numpy views of the file's
bytes, which keeps a 540 MB VGG16 FCN fast to read. Both layouts are read:

- `NetParameter.layer` (field 100, `LayerParameter`: name 1, type 2 as a
  string, blobs 7), written by Caffe since 2015;
- `NetParameter.layers` (field 2, `V1LayerParameter`: name 4, type 5 as an
  enum, blobs 6), the older layout.

A `BlobProto` has its shape in `shape` (field 7, `BlobShape.dim` 1) or, in old
files, in `num`, `channels`, `height`, `width` (fields 1-4), and its values in
`data` (field 5, float) or `double_data` (field 8).

`write_caffemodel` writes the same format (used to make test files), and
`load_caffemodel_weights` copies a net's blobs into the Keras layers of the
same names, transposing kernels to Keras' layout and checking every shape.
"""

import dataclasses

import keras
import numpy as np

from keras_fcn.errors import InvalidDataError

# V1LayerParameter.LayerType values of the layers that hold blobs in FCNs.
V1_LAYER_TYPES = {4: "Convolution", 39: "Deconvolution", 14: "InnerProduct"}
_V1_TYPE_NUMBERS = {name: number for number, name in V1_LAYER_TYPES.items()}

# Wire types of the protobuf encoding.
_VARINT, _FIXED64, _LENGTH, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5

# (field number of name, type, blobs) in LayerParameter and V1LayerParameter.
_LAYER_FIELDS = {100: (1, 2, 7), 2: (4, 5, 6)}
# NetParameter.layers[i].layer: the V0 layout, older still, which is not read.
_V0_LAYER_FIELD = 1


class CaffeModelError(InvalidDataError):
    """A `.caffemodel` that cannot be read, or whose blobs do not fit the Keras model."""


@dataclasses.dataclass
class CaffeLayer:
    """One layer of a Caffe net and its parameter blobs.

    Attributes:
        name: str, the layer's name (e.g. `"conv1_1"`).
        type: str, its type (`"Convolution"`, `"Deconvolution"`, ...). For the
            old layout, the V1 enum's name, or `"V1:<number>"` for a type
            that holds no weights in FCNs.
        blobs: list of float32 numpy arrays in Caffe's layout: a convolution
            holds `(out, in, kh, kw)` and `(out,)`, a deconvolution
            `(in, out, kh, kw)`.
    """

    name: str
    type: str
    blobs: list


def _read_varint(data, position):
    result = shift = 0
    while True:
        if position >= len(data):
            raise CaffeModelError("Truncated caffemodel: a varint runs past the end of the data.")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data, start=0, end=None):
    """Yields `(field_number, wire_type, value)`; length-delimited values are `(start, end)` offsets."""
    end = len(data) if end is None else end
    position = start
    while position < end:
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, position = _read_varint(data, position)
        elif wire_type == _FIXED64:
            value, position = (position, position + 8), position + 8
        elif wire_type == _LENGTH:
            length, position = _read_varint(data, position)
            value, position = (position, position + length), position + length
        elif wire_type == _FIXED32:
            value, position = (position, position + 4), position + 4
        else:
            raise CaffeModelError(
                f"Unsupported protobuf wire type {wire_type} (field {number}) at byte {position}: "
                "caffemodels use varint, fixed32, fixed64 and length-delimited fields only."
            )
        if position > end:
            raise CaffeModelError(
                f"Truncated caffemodel: field {number} ends at byte {position}, past the end "
                f"of its message at byte {end}."
            )
        yield number, wire_type, value


def _repeated(data, wire_type, value, dtype, packed_type):
    """Decodes one occurrence of a repeated numeric field, packed or not."""
    if wire_type == _LENGTH:
        start, end = value
        if packed_type == _VARINT:
            values, position = [], start
            while position < end:
                item, position = _read_varint(data, position)
                values.append(item)
            return np.asarray(values, dtype=dtype)
        return np.frombuffer(data, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=start)
    if wire_type != packed_type:
        raise CaffeModelError(f"Unexpected wire type {wire_type} for a repeated {np.dtype(dtype)} field.")
    if wire_type == _VARINT:
        return np.asarray([value], dtype=dtype)
    start, end = value
    return np.frombuffer(data, dtype=dtype, count=1, offset=start)


def _read_blob(data, start, end):
    legacy = {}
    shape = None
    chunks = {5: [], 8: []}
    for number, wire_type, value in _fields(data, start, end):
        if number in (1, 2, 3, 4) and wire_type == _VARINT:
            legacy[number] = value
        elif number == 7 and wire_type == _LENGTH:
            dims = [
                _repeated(data, dim_wire, dim_value, np.int64, _VARINT)
                for dim_number, dim_wire, dim_value in _fields(data, *value)
                if dim_number == 1
            ]
            shape = tuple(int(d) for d in np.concatenate(dims)) if dims else ()
        elif number == 5:
            chunks[5].append(_repeated(data, wire_type, value, "<f4", _FIXED32))
        elif number == 8:
            chunks[8].append(_repeated(data, wire_type, value, "<f8", _FIXED64))
    values = np.concatenate(chunks[5] or chunks[8] or [np.zeros(0, np.float32)]).astype(np.float32)
    if shape is None:
        shape = tuple(legacy.get(number, 0) for number in (1, 2, 3, 4))
    if int(np.prod(shape)) != values.size:
        raise CaffeModelError(
            f"A blob of shape {shape} holds {values.size} values instead of {int(np.prod(shape))}: "
            "the caffemodel is truncated or corrupt."
        )
    return values.reshape(shape)


def _read_layer(data, start, end, field):
    name_field, type_field, blobs_field = _LAYER_FIELDS[field]
    name, layer_type, blobs = None, None, []
    for number, wire_type, value in _fields(data, start, end):
        if number == name_field and wire_type == _LENGTH:
            name = bytes(data[value[0] : value[1]]).decode("utf-8")
        elif number == type_field:
            if wire_type == _LENGTH:
                layer_type = bytes(data[value[0] : value[1]]).decode("utf-8")
            else:
                layer_type = V1_LAYER_TYPES.get(value, f"V1:{value}")
        elif number == blobs_field and wire_type == _LENGTH:
            blobs.append(_read_blob(data, *value))
        elif field == 2 and number == _V0_LAYER_FIELD and wire_type == _LENGTH:
            raise CaffeModelError(
                "This caffemodel uses the V0 layer layout (before 2014), which is not supported. "
                "Upgrade it with Caffe's `upgrade_net_proto_binary` tool first."
            )
    if name is None:
        raise CaffeModelError(f"A layer in field {field} of the NetParameter has no name.")
    return CaffeLayer(name, layer_type, blobs)


def parse_caffemodel(data):
    """Decodes the layers of a serialized `caffe.NetParameter`.

    Args:
        data: `bytes` (or another buffer) holding a `.caffemodel` file.

    Returns:
        A list of `CaffeLayer`, in file order, from the `layer` and the old
        `layers` fields alike. Arrays are float32 (double blobs are cast).

    Raises:
        CaffeModelError: when the data is not a well-formed caffemodel
            (truncated, a blob whose size disagrees with its shape, the V0
            layout).
    """
    layers = []
    for number, wire_type, value in _fields(data):
        if number in _LAYER_FIELDS and wire_type == _LENGTH:
            layers.append(_read_layer(data, *value, number))
    return layers


def read_caffemodel(path):
    """Reads the layers of a `.caffemodel` file; see `parse_caffemodel`."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        return parse_caffemodel(data)
    except CaffeModelError as error:
        raise CaffeModelError(f"Cannot read caffemodel '{path}': {error}") from None


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number, wire_type):
    return _varint(number << 3 | wire_type)


def _length_delimited(number, payload):
    return _key(number, _LENGTH) + _varint(len(payload)) + payload


def _encode_blob(array, legacy):
    array = np.asarray(array, dtype="<f4")
    if legacy:
        shape = (1,) * (4 - array.ndim) + array.shape
        header = b"".join(_key(n, _VARINT) + _varint(d) for n, d in zip((1, 2, 3, 4), shape))
    else:
        dims = b"".join(_varint(d) for d in array.shape)
        header = _length_delimited(7, _length_delimited(1, dims))
    return _length_delimited(5, array.tobytes()) + header


def encode_caffemodel(layers, *, legacy=False, name="net"):
    """Serializes layers as a `caffe.NetParameter` (the inverse of `parse_caffemodel`).

    Args:
        layers: iterable of `CaffeLayer` (or `(name, type, blobs)` tuples)
            with blobs in Caffe's layout.
        legacy: bool; `False` writes the `layer` field with `BlobShape`
            shapes, `True` the old `layers` field (`V1LayerParameter`, type
            as an enum) with 4-d `num/channels/height/width` shapes, as Caffe
            wrote them before 2015.
        name: str, the net's name (`NetParameter.name`).

    Returns:
        `bytes`.
    """
    out = [_length_delimited(1, name.encode("utf-8"))]
    for layer_name, layer_type, blobs in (
        dataclasses.astuple(layer) if isinstance(layer, CaffeLayer) else layer for layer in layers
    ):
        if legacy:
            if layer_type not in _V1_TYPE_NUMBERS:
                raise ValueError(
                    f"The old `layers` layout has no type {layer_type!r} holding weights; "
                    f"expected one of {sorted(_V1_TYPE_NUMBERS)}."
                )
            fields = [
                _length_delimited(4, layer_name.encode("utf-8")),
                _key(5, _VARINT) + _varint(_V1_TYPE_NUMBERS[layer_type]),
            ]
            fields += [_length_delimited(6, _encode_blob(blob, True)) for blob in blobs]
            out.append(_length_delimited(2, b"".join(fields)))
        else:
            fields = [
                _length_delimited(1, layer_name.encode("utf-8")),
                _length_delimited(2, layer_type.encode("utf-8")),
            ]
            fields += [_length_delimited(7, _encode_blob(blob, False)) for blob in blobs]
            out.append(_length_delimited(100, b"".join(fields)))
    return b"".join(out)


def write_caffemodel(path, layers, *, legacy=False, name="net"):
    """Writes layers to a `.caffemodel` file; see `encode_caffemodel`."""
    with open(path, "wb") as file:
        file.write(encode_caffemodel(layers, legacy=legacy, name=name))


# Keras layer classes that take Caffe blobs, with the Caffe type they come from.
_CAFFE_TYPES = {keras.layers.Conv2D: "Convolution", keras.layers.Conv2DTranspose: "Deconvolution"}


def _caffe_type(layer):
    for keras_type, caffe_type in _CAFFE_TYPES.items():
        if type(layer) is keras_type:
            return caffe_type
    return None


def _expected_blob_shapes(layer):
    """Caffe blob shapes for a Keras layer: both kernels are stored (out or in, in or out, kh, kw)."""
    kh, kw, a, b = layer.kernel.shape
    shapes = [(b, a, kh, kw)]
    if layer.use_bias:
        shapes.append((layer.bias.shape[0],))
    return shapes


def _fits(blob, shape):
    """Whether a blob has `shape`, allowing the leading 1s of the old 4-d layout."""
    return blob.shape == shape or blob.shape == (1,) * (blob.ndim - len(shape)) + shape


def _check_scale(layer, caffe_layer):
    """A fixed Keras `Rescaling` stands for a Caffe `Scale` layer whose blob must hold that scale."""
    values = np.concatenate([blob.ravel() for blob in caffe_layer.blobs])
    if caffe_layer.type != "Scale" or not np.all(values == np.float32(layer.scale)) or layer.offset:
        raise CaffeModelError(
            f"Layer '{layer.name}' scales by the fixed {layer.scale}, but the caffemodel's "
            f"'{caffe_layer.name}' ({caffe_layer.type}) holds values {np.unique(values)[:5]}."
        )


def load_caffemodel_weights(model, caffemodel):
    """Copies a Caffe net's blobs into the Keras layers of the same names.

    Every Keras `Conv2D` or `Conv2DTranspose` with weights takes the blobs of
    the Caffe layer of its name: kernels go from Caffe's `(out, in, kh, kw)`
    (convolution) or `(in, out, kh, kw)` (deconvolution) to Keras'
    `(kh, kw, in, out)` or `(kh, kw, out, in)` (both the transpose
    `(2, 3, 1, 0)`); biases are copied. A Caffe `Scale` layer maps onto the
    Keras `Rescaling` layer of its name, whose fixed scale its blob must
    equal (the at-once FCN-8s). Layers without weights on both sides (ReLU,
    pooling, crop, ...) need no counterpart.

    Args:
        model: a `keras.Model` whose layers carry the Caffe layer names (the
            `"vgg16_reference"` FCNs).
        caffemodel: path to a `.caffemodel` file, or a list of `CaffeLayer`.

    Returns:
        The names of the Keras layers that received weights.

    Raises:
        CaffeModelError: naming every Caffe layer with blobs that has no
            Keras layer, every Keras layer with weights that the caffemodel
            lacks, and any blob whose type or shape does not fit, before any
            weight is changed.
    """
    layers = caffemodel if isinstance(caffemodel, (list, tuple)) else read_caffemodel(caffemodel)
    source = {layer.name: layer for layer in layers if layer.blobs}
    targets = {layer.name: layer for layer in model.layers if layer.weights or layer.name in source}
    problems = []
    unknown = sorted(set(source) - set(targets))
    if unknown:
        problems.append(f"the caffemodel has blobs for layers the model lacks: {unknown}")
    missing = sorted(name for name, layer in targets.items() if layer.weights and name not in source)
    if missing:
        problems.append(f"the caffemodel has no blobs for the model's layers {missing}")
    assignments = {}
    for name in sorted(set(source) & set(targets)):
        layer, caffe_layer = targets[name], source[name]
        if isinstance(layer, keras.layers.Rescaling) and not layer.weights:
            try:
                _check_scale(layer, caffe_layer)
            except CaffeModelError as error:
                problems.append(str(error))
            continue
        caffe_type = _caffe_type(layer)
        if caffe_type is None:
            problems.append(f"layer '{name}' is a {type(layer).__name__}, which takes no Caffe blobs")
            continue
        expected = _expected_blob_shapes(layer)
        received = [blob.shape for blob in caffe_layer.blobs]
        if caffe_layer.type != caffe_type:
            problems.append(
                f"layer '{name}' needs a Caffe {caffe_type} layer; the caffemodel's is a {caffe_layer.type}"
            )
        elif len(received) != len(expected) or not all(map(_fits, caffe_layer.blobs, expected)):
            problems.append(f"layer '{name}' needs blobs of shapes {expected}; the caffemodel has {received}")
        else:
            kernel, *bias = (blob.reshape(shape) for blob, shape in zip(caffe_layer.blobs, expected))
            assignments[name] = [kernel.transpose(2, 3, 1, 0), *bias]
    if problems:
        raise CaffeModelError(
            f"Cannot load the caffemodel into model '{model.name}': " + "; ".join(problems) + "."
        )
    for name, weights in assignments.items():
        targets[name].set_weights(weights)
    return sorted(assignments)
