"""Receptive-field geometry of a functional network, derived from its layer graph.

For every layer of a functional Keras model this module gives, along each
spatial axis, the layer's total stride, the receptive field of its cell 0
(first and last input pixel, hence its centre and size) and the length of its
map as a function of the input length, in exact rational arithmetic. It reads
the layers' configurations (kernel sizes, strides, dilations, paddings), never
their names, and refuses layers it does not know rather than guess.

Conventions: input pixel `p` has its centre at coordinate `p`; cell `i` of a
map at stride `S` has the receptive field `[start + S*i, start + S*i + size - 1]`
(inclusive; `start` is negative where the field reaches into padding), so its
centre is `start + (size - 1) / 2 + S*i`. The formulas are those of Araujo,
Norris and Sim, "Computing Receptive Fields of Convolutional Neural Networks"
(Distill, 2019), with TensorFlow's split of `padding="same"`: of the
`max((ceil(n / s) - 1) * s + k - n, 0)` zeros a window of `k` taps at stride `s`
needs on an input of `n` cells, `floor(total / 2)` go before the first cell and
the rest after the last (JAX/XLA splits the same way). A map's length is
tracked as `period * m + offset` for the input's `m` (`Length`), so that the
split of "same" padding, which depends on the length modulo the stride, is
known whenever the input is padded to a multiple of the stride.

Layers that change no geometry: activations, normalizations (batch, layer,
group, `Rescaling`, `Normalization`, keras-fcn's `InputNormalization` and
`LocalResponseNormalization`), dropout and noise, per-position `Dense`, and
element-wise merges (`Add`, `Multiply`, `Concatenate` on channels, ...) whose
inputs have the same stride. The receptive field of a merge is the union of
its inputs' (NASNet concatenates paths one pixel apart). Global context
(global pooling, squeeze-and-excitation gates) has no spatial geometry and
does not widen the receptive field of the maps it multiplies: the geometry is
that of the local path. Nested models (ConvNeXt's `Sequential` stem) are
walked layer by layer.
"""

import dataclasses
from fractions import Fraction
from typing import Optional

import keras

from keras_fcn.alexnet import LocalResponseNormalization
from keras_fcn.errors import InvalidArgumentError
from keras_fcn.layers import InputNormalization, PadToMultiple

_L = keras.layers
# Layers that compute each output position from the same input position only.
PER_POSITION_LAYERS = (
    _L.Activation, _L.ReLU, _L.LeakyReLU, _L.PReLU, _L.ELU, _L.Softmax,
    _L.BatchNormalization, _L.LayerNormalization, _L.GroupNormalization, _L.UnitNormalization,
    _L.Normalization, _L.Rescaling, _L.Dropout, _L.SpatialDropout2D, _L.GaussianNoise,
    _L.GaussianDropout, _L.AlphaDropout, _L.ActivityRegularization, _L.Identity, _L.Dense,
    InputNormalization, LocalResponseNormalization,
)  # fmt: skip
# Keras Applications' own per-position layers, which Keras does not export:
# ConvNeXt's LayerScale and StochasticDepth.
PER_POSITION_CLASS_NAMES = ("LayerScale", "StochasticDepth")
MERGE_LAYERS = (_L.Add, _L.Subtract, _L.Multiply, _L.Average, _L.Maximum, _L.Minimum, _L.Concatenate)
# InceptionResNetV2's residual `x + scale * branch`, which Keras does not export.
MERGE_CLASS_NAMES = ("CustomScaleLayer",)
# Element-wise `keras.ops` that appear in functional graphs (`x + 3.0` in
# MobileNetV3's hard sigmoid); they are operations, not layers.
ELEMENTWISE_OPS = (
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power", "Negative",
    "Abs", "Square", "Sqrt", "Exp", "Log", "Tanh", "Sigmoid", "HardSigmoid", "Relu", "Relu6", "Silu",
    "HardSilu", "Gelu", "Cast", "Clip",
)  # fmt: skip
WINDOW_LAYERS = (_L.Conv2D, _L.DepthwiseConv2D, _L.SeparableConv2D, _L.MaxPooling2D, _L.AveragePooling2D)
GLOBAL_LAYERS = (_L.GlobalAveragePooling2D, _L.GlobalMaxPooling2D, _L.Flatten)
AXES = ("rows", "columns")


class GeometryError(InvalidArgumentError):
    """A layer's effect on the receptive-field geometry is unknown, or its inputs disagree."""


class MergeError(GeometryError):
    """A merge of maps whose cells do not line up (different strides or lengths)."""


@dataclasses.dataclass(frozen=True)
class Length:
    """The length of a map along one axis, `period * m + offset`, for the input's `m`.

    `period = 0` is a fixed length. The model's input has `Length(1, 0)`
    (any length) unless told otherwise; after `PadToMultiple(32)` it is
    `Length(32, 0)`, `m` then counting blocks of 32 pixels.
    """

    period: int
    offset: int

    def residue(self, modulus):
        """The length modulo `modulus`, or None when it depends on `m`."""
        if self.period % modulus:
            return None
        return self.offset % modulus

    def __add__(self, other):
        return Length(self.period, self.offset + other)


@dataclasses.dataclass(frozen=True)
class AxisGeometry:
    """Where the cells of a map look, along one spatial axis, in input pixels.

    Attributes:
        stride: Fraction, input pixels between neighbouring cells.
        start: Fraction, the first input pixel of cell 0's receptive field.
        size: Fraction, the receptive field's size in pixels.
        length: `Length` of the map, or None where it is not an affine
            function of the input's length.
    """

    stride: Fraction
    start: Fraction
    size: Fraction
    length: Optional[Length]

    @property
    def centre(self):
        """Fraction, the pixel coordinate of the centre of cell 0's receptive field."""
        return self.start + (self.size - 1) / 2

    def cell_centre(self, index):
        """Fraction, the pixel coordinate of cell `index`'s receptive-field centre."""
        return self.centre + self.stride * index

    @property
    def end(self):
        return self.start + self.size - 1


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """The geometry of one feature map: `rows` and `columns`, each an `AxisGeometry`.

    `stride`, `centre` and `size` give the pair `(rows, columns)` of each.
    """

    rows: AxisGeometry
    columns: AxisGeometry

    @property
    def stride(self):
        return (self.rows.stride, self.columns.stride)

    @property
    def centre(self):
        return (self.rows.centre, self.columns.centre)

    @property
    def size(self):
        return (self.rows.size, self.columns.size)

    def axis(self, index):
        return (self.rows, self.columns)[index]


# A tensor without spatial extent (global pooling, squeeze-and-excitation gates).
GLOBAL = "global"


def _input_geometry(length):
    return AxisGeometry(Fraction(1), Fraction(0), Fraction(1), length)


def _same_padding_before(layer, kernel, stride, length):
    """Zeros TensorFlow puts before the first cell for `padding="same"` (see the module docstring)."""
    residues = range(stride) if length is None or length.residue(stride) is None else [length.residue(stride)]
    befores = {max(kernel - stride + (-residue) % stride, 0) // 2 for residue in residues}
    if len(befores) > 1:
        raise GeometryError(
            f"Layer '{layer.name}' ({type(layer).__name__}) pads by {sorted(befores)} rows or columns before "
            f"its input depending on the input's length modulo {stride} (padding='same'): pad the input to a "
            f"multiple of the network's total stride (keras_fcn.layers.PadToMultiple) to fix its geometry."
        )
    return befores.pop()


def _window(layer, geometry, kernel, stride, dilation, padding):
    """A sliding window of `kernel` taps, `dilation` apart, moved `stride` cells per output cell."""
    span = dilation * (kernel - 1) + 1
    length = geometry.length
    if padding == "valid":
        before = 0
        if length is not None:
            length = (
                Length(length.period // stride, (length.offset - span) // stride + 1)
                if length.residue(stride) is not None
                else None
            )
    elif padding == "same":
        before = _same_padding_before(layer, span, stride, length)
        if length is not None:
            length = (
                Length(length.period // stride, -(-length.offset // stride))
                if length.residue(stride) is not None
                else None
            )
    else:
        raise GeometryError(f"Layer '{layer.name}' ({type(layer).__name__}) has padding={padding!r}.")
    return AxisGeometry(
        stride=geometry.stride * stride,
        start=geometry.start - geometry.stride * before,
        size=geometry.size + geometry.stride * (span - 1),
        length=length,
    )


def _shift(geometry, before, after):
    """Zero padding (positive) or cropping (negative) of `before` cells at the start and `after` at the end."""
    return dataclasses.replace(
        geometry,
        start=geometry.start - geometry.stride * before,
        length=None if geometry.length is None else geometry.length + (before + after),
    )


def _window_layer(layer, field):
    if layer.data_format != "channels_last":
        raise GeometryError(f"Layer '{layer.name}' ({type(layer).__name__}) is not channels_last.")
    if isinstance(layer, (_L.MaxPooling2D, _L.AveragePooling2D)):
        kernels, strides, dilations = layer.pool_size, layer.strides, (1, 1)
    else:
        kernels, strides, dilations = layer.kernel_size, layer.strides, layer.dilation_rate
    return ReceptiveField(
        *(
            _window(layer, field.axis(axis), kernels[axis], strides[axis], dilations[axis], layer.padding)
            for axis in range(2)
        )
    )


def _padded_length(length, multiple):
    """The length of a map padded up to a multiple of `multiple`; `m` then counts blocks of `multiple`."""
    if length is not None and length.period == 0:
        return Length(0, -(-length.offset // multiple) * multiple)
    return Length(multiple, 0)


def _padding_layer(layer, field):
    if isinstance(layer, PadToMultiple):
        return ReceptiveField(
            *(dataclasses.replace(field.axis(axis), length=_padded_length(field.axis(axis).length, layer.multiple))
              for axis in range(2))
        )
    sign = 1 if isinstance(layer, _L.ZeroPadding2D) else -1
    amounts = layer.padding if sign == 1 else layer.cropping
    return ReceptiveField(
        *(_shift(field.axis(axis), sign * amounts[axis][0], sign * amounts[axis][1]) for axis in range(2))
    )


def _merge(name, kind, fields):
    """The union of the receptive fields of a merge's spatial inputs, which must share a stride."""
    spatial = [field for field in fields if field is not GLOBAL]
    if not spatial:
        return GLOBAL
    axes = []
    for axis in range(2):
        geometries = [field.axis(axis) for field in spatial]
        strides = {geometry.stride for geometry in geometries}
        if len(strides) > 1:
            raise MergeError(
                f"Layer '{name}' ({kind}) merges maps at different strides {sorted(map(str, strides))} along "
                f"the {AXES[axis]}: its inputs do not line up."
            )
        lengths = {geometry.length for geometry in geometries if geometry.length is not None}
        if len(lengths) > 1:
            raise MergeError(
                f"Layer '{name}' ({kind}) merges maps of different lengths along the {AXES[axis]}: "
                f"{sorted((length.period, length.offset) for length in lengths)} as (period, offset)."
            )
        start = min(geometry.start for geometry in geometries)
        end = max(geometry.end for geometry in geometries)
        axes.append(
            AxisGeometry(strides.pop(), start, end - start + 1, lengths.pop() if len(lengths) == 1 else None)
        )
    return ReceptiveField(*axes)


def _layer_field(layer, fields, walk_nested):
    """The geometry of a layer's output from those of its inputs (GLOBAL for no spatial extent)."""
    kind = type(layer).__name__
    spatial = [field for field in fields if field is not GLOBAL]
    if not spatial:
        return GLOBAL
    if isinstance(layer, keras.Model):
        return walk_nested(layer, fields)
    if isinstance(layer, MERGE_LAYERS) or kind in MERGE_CLASS_NAMES:
        if isinstance(layer, _L.Concatenate) and layer.axis not in (-1, 3):
            raise GeometryError(f"Layer '{layer.name}' (Concatenate) concatenates along axis {layer.axis}.")
        return _merge(layer.name, kind, fields)
    if len(fields) != 1:
        raise GeometryError(f"Layer '{layer.name}' ({kind}) has {len(fields)} inputs; expected one.")
    (field,) = fields
    if isinstance(layer, PER_POSITION_LAYERS) or kind in PER_POSITION_CLASS_NAMES:
        return field
    if isinstance(layer, WINDOW_LAYERS):
        return _window_layer(layer, field)
    if isinstance(layer, (_L.ZeroPadding2D, _L.Cropping2D, PadToMultiple)):
        return _padding_layer(layer, field)
    if isinstance(layer, GLOBAL_LAYERS):
        return GLOBAL
    raise GeometryError(
        f"Layer '{layer.name}' ({kind}) may change the receptive-field geometry, and keras_fcn.geometry "
        "does not know how: it knows convolutions, poolings, zero padding, cropping, per-position layers "
        "and element-wise merges."
    )


def node_references(structure):
    """The `(name, node index, tensor index)` of the tensors in a serialized node's arguments, in order."""
    if isinstance(structure, dict):
        if structure.get("class_name") == "__keras_tensor__":
            return [tuple(structure["config"]["keras_history"])]
        return [tensor for value in structure.values() for tensor in node_references(value)]
    if isinstance(structure, (list, tuple)):
        return [tensor for value in structure for tensor in node_references(value)]
    return []


def io_references(structure):
    """The `(name, node index, tensor index)` references of a model config's `input_layers` or `output_layers`."""
    if isinstance(structure, (list, tuple)) and len(structure) == 3 and isinstance(structure[0], str):
        return [tuple(structure)]
    if isinstance(structure, dict):
        structure = list(structure.values())
    return [reference for value in structure for reference in io_references(value)]


def calls(model, config=None):
    """Every call of a functional or `Sequential` model's layers and operations, each after the calls it reads.

    Keras has no public way to walk a functional graph; its config (what
    `.keras` files store) lists every layer and operation with the tensors
    each call reads, which is what this reads.

    Yields:
        `(name, key, inputs, node)`: the layer's or operation's name, the
        `(name, node index)` key of the tensor the call makes, the keys of
        the tensors it reads, in order, and the call's serialized arguments
        (`{"args": [...], "kwargs": {...}}`, tensors as `__keras_tensor__`
        records). The model's input has the key `input_key(model)`.

    Args:
        model: the model.
        config: `model.get_config()`, if the caller has it already.
    """
    if isinstance(model, keras.Sequential):
        previous = input_key(model)
        for layer in model.layers:
            reference = {"class_name": "__keras_tensor__", "config": {"keras_history": [*previous, 0]}}
            yield layer.name, (layer.name, 0), [previous], {"args": [reference], "kwargs": {}}
            previous = (layer.name, 0)
        return
    config = config or model.get_config()
    ready = {input_key(model, config)}
    pending = [
        (record["name"], (record["name"], _first_node(record["class_name"]) + index), node)
        for record in config["layers"]
        for index, node in enumerate(record["inbound_nodes"])
    ]
    while pending:
        waiting = []
        for name, key, node in pending:
            inputs = [(source, index) for source, index, _ in node_references(node)]
            if all(tensor in ready for tensor in inputs):
                ready.add(key)
                yield name, key, inputs, node
            else:
                waiting.append((name, key, node))
        if len(waiting) == len(pending):
            raise GeometryError(
                f"Model '{model.name}' has layers that its input does not reach: {[name for name, _, _ in waiting]}"
            )
        pending = waiting


def _first_node(class_name):
    """The index a config gives a layer's first call: 1 for a nested functional model (its node 0 is its own graph)."""
    return 1 if class_name == "Functional" else 0


def input_key(model, config=None):
    """The `(name, node index)` key of a single-input model's input in `calls` (`config`: its config, if known)."""
    if isinstance(model, keras.Sequential):
        return (model.name, 0)
    name, node, _ = io_references((config or model.get_config())["input_layers"])[0]
    return (name, node)


def _walk(model, input_field):
    """Geometry of every call of a functional or `Sequential` model, given its input's.

    Returns:
        `(nodes, outputs)`: a list of `(name, field, input names)` for the
        first call of every layer and operation, in the order they can be
        computed, and the list of the geometries of the model's outputs.
    """
    layers = {layer.name: layer for layer in model.layers}
    config = None if isinstance(model, keras.Sequential) else model.get_config()
    classes = {record["name"]: record["class_name"] for record in config["layers"]} if config else {}
    tensors, nodes = {input_key(model, config): input_field}, []
    for name, key, inputs, _ in calls(model, config):
        fields = [tensors[tensor] for tensor in inputs]
        if name in layers:
            field = _layer_field(layers[name], fields, lambda nested, fields: _walk(nested, fields[0])[1][0])
        elif classes[name] in ELEMENTWISE_OPS:
            field = _merge(name, classes[name], fields)
        else:
            raise GeometryError(
                f"Operation '{name}' ({classes[name]}) of model '{model.name}' may change the receptive-field "
                "geometry, and keras_fcn.geometry does not know how."
            )
        if key[1] == _first_node(classes.get(name)):
            nodes.append((name, field, [source for source, _ in inputs]))
        tensors[key] = field
    if config is None:
        return nodes, [tensors[key]]
    return nodes, [tensors[name, node] for name, node, _ in io_references(config["output_layers"])]


def _input_length(model, axis, input_length):
    if input_length is not None:
        return input_length if isinstance(input_length, Length) else Length(0, int(input_length))
    size = model.inputs[0].shape[1 + axis]
    return Length(1, 0) if size is None else Length(0, size)


def _input_field(model, input_size):
    if len(model.inputs) != 1:
        raise GeometryError(f"Model '{model.name}' has {len(model.inputs)} inputs; expected one image input.")
    input_size = (None, None) if input_size is None else input_size
    return ReceptiveField(*(_input_geometry(_input_length(model, axis, input_size[axis])) for axis in range(2)))


def receptive_fields(model, input_size=None):
    """The receptive-field geometry of every layer of a single-input functional model.

    Args:
        model: a functional (or `Sequential`) `keras.Model` with one
            `(batch, height, width, channels)` input, channels last.
        input_size: `(rows, columns)`, each an int (a fixed length) or a
            `Length`; by default the model input's own height and width,
            `Length(1, 0)` (any length) where they are None.

    Returns:
        A dict from layer name to the `ReceptiveField` of the layer's output
        (of its first call, as `layer.output`), or `GLOBAL` for tensors
        without spatial extent.

    Raises:
        GeometryError: naming the layer and its class, for a layer that may
            change the geometry in a way this module does not know, a merge
            of maps at different strides or lengths, or "same" padding whose
            split depends on the input size (pad the input to a multiple of
            the total stride).

    Example:

    >>> fields = keras_fcn.geometry.receptive_fields(keras.applications.VGG16(weights=None))
    >>> fields["block5_pool"].rows.stride, fields["block5_pool"].rows.centre
    (Fraction(32, 1), Fraction(31, 2))
    """
    return {name: field for name, field, _ in _walk(model, _input_field(model, input_size))[0]}


def receptive_field(model, layer_name, input_size=None):
    """The `ReceptiveField` of one layer's output; see `receptive_fields`."""
    field = receptive_fields(model, input_size).get(layer_name)
    if field is None:
        raise InvalidArgumentError(f"Model '{model.name}' has no layer named '{layer_name}'.")
    if field is GLOBAL:
        raise GeometryError(f"Layer '{layer_name}' of model '{model.name}' has no spatial extent (global).")
    return field


def output_fields(model, input_size=None):
    """The `ReceptiveField` (or `GLOBAL`) of each of `model.outputs`, in order; see `receptive_fields`."""
    return _walk(model, _input_field(model, input_size))[1]


# Layers that only move a map (add or remove cells at its edges): never a feature map of their own.
_MOVING_LAYERS = (_L.ZeroPadding2D, _L.Cropping2D, PadToMultiple)
FEATURE_STRIDES = (8, 16, 32)


def _square_stride(field):
    if field is GLOBAL or field.rows.stride != field.columns.stride:
        return None
    return field.rows.stride


def _cut_vertices(order, inputs_of, end):
    """The nodes every path from the input to `end` passes through (`order` is topological).

    In a topological order, a node lies on every path to `end` exactly when
    no edge between two of `end`'s ancestors jumps over it.
    """
    ancestors, stack = {end}, [end]
    while stack:
        for parent in inputs_of.get(stack.pop(), ()):
            if parent not in ancestors:
                ancestors.add(parent)
                stack.append(parent)
    order = [name for name in order if name in ancestors]
    position = {name: index for index, name in enumerate(order)}
    jumps = [0] * (len(order) + 1)
    for name in order:
        for parent in inputs_of.get(name, ()):
            if parent in position and position[name] - position[parent] > 1:
                jumps[position[parent] + 1] += 1
                jumps[position[name]] -= 1
    cuts, open_jumps = set(), 0
    for index, name in enumerate(order):
        open_jumps += jumps[index]
        if open_jumps == 0:
            cuts.add(name)
    return order, cuts


def feature_layers(model, input_size=None):
    """The layers whose outputs an FCN scores: the last feature map at stride 8, 16 and 32.

    The stride-32 layer is the last layer (in the model's topological order)
    whose output has stride 32 along both axes: the classifier's last
    feature map (a classifier with its top included is cut before its global
    pooling). The stride-8 and stride-16 layers are the last layers at those
    strides that every path from the input to the stride-32 layer passes
    through: the output of the network's last stage at that stride (ResNet's
    `conv4_block6_out`, InceptionV3's `mixed7`, VGG's `block5_conv3`), never
    a branch inside a block. NASNet, whose cells each read the two previous
    cells, has no such layer at strides 8 and 16; there the last layer at
    that stride is taken. Layers that only pad or crop are never taken.

    Args:
        model: a single-input functional `keras.Model`.
        input_size: see `receptive_fields`.

    Returns:
        A dict `{8: name, 16: name, 32: name}` of layer (or operation) names.

    Raises:
        GeometryError: when the model never reaches stride 32 or has no map
            at stride 8 or 16 (naming the model and its deepest stride), or
            for the reasons `receptive_fields` gives.
    """
    return {stride: name for stride, (name, _) in feature_maps(model, input_size).items()}


def feature_maps(model, input_size=None):
    """`{stride: (layer name, ReceptiveField)}` of the maps `feature_layers` finds, from one walk of the model."""
    nodes, _ = _walk(model, _input_field(model, input_size))
    fields = {name: field for name, field, _ in nodes}
    layers = {layer.name: layer for layer in model.layers}
    strides = {
        name: _square_stride(field)
        for name, field, _ in nodes
        if not isinstance(layers.get(name), _MOVING_LAYERS)
    }
    at_32 = [name for name, stride in strides.items() if stride == 32]
    if not at_32:
        deepest = max((s for s in strides.values() if s is not None), default=1)
        raise GeometryError(
            f"Model '{model.name}' never reaches stride 32 (its deepest feature map is at stride {deepest}); "
            "an FCN needs feature maps at strides 8, 16 and 32: pass a backbone that downsamples 32 times."
        )
    end = at_32[-1]
    order, cuts = _cut_vertices([name for name, _, _ in nodes], {name: inputs for name, _, inputs in nodes}, end)
    found = {32: end}
    for stride in FEATURE_STRIDES[:-1]:
        candidates = [name for name in order if strides.get(name) == stride]
        if not candidates:
            raise GeometryError(
                f"Model '{model.name}' has no feature map at stride {stride}; an FCN needs maps at strides "
                "8, 16 and 32."
            )
        found[stride] = ([name for name in candidates if name in cuts] or candidates)[-1]
    return {stride: (found[stride], fields[found[stride]]) for stride in FEATURE_STRIDES}


def node_output(model, name):
    """The output tensor of the first call of the layer or operation `name` of `model`.

    Operations that are not layers (`x + y` in ConvNeXt's residual blocks)
    are not reachable with `model.get_layer`; their output is found as the
    input of a layer that reads it.
    """
    layers = {layer.name: layer for layer in model.layers}
    if name in layers:
        return layers[name].output
    for record in model.get_config()["layers"]:
        if record["name"] in layers and record["inbound_nodes"]:
            references = node_references(record["inbound_nodes"][0])
            for position, (source, node_index, _) in enumerate(references):
                if (source, node_index) == (name, 0):
                    return keras.tree.flatten(layers[record["name"]].input)[position]
    raise InvalidArgumentError(f"Model '{model.name}' has no layer or operation '{name}' whose output a layer reads.")
