"""Tests of keras_fcn.caffe: caffemodel reading, writing and conversion onto Keras layers.

The caffemodels here are written with the real protobuf library, from a
schema built in this file with caffe.proto's field numbers, so the
package's own wire-format reader and writer are checked against an
independent implementation. Converted models are checked against the blobs
written (exact equality) and against a numpy forward pass of the Caffe net.
"""

import keras
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import keras_fcn
from keras_fcn import caffe, models, reference

# --- caffe.proto's weight-holding messages, built without protoc -------------

_F = descriptor_pb2.FieldDescriptorProto


def _field(message, name, number, kind, label=_F.LABEL_OPTIONAL, type_name=None, packed=False):
    field = message.field.add(name=name, number=number, type=kind, label=label)
    if type_name:
        field.type_name = type_name
    if packed:
        field.options.packed = True


def _caffe_schema():
    proto = descriptor_pb2.FileDescriptorProto(name="test_caffe.proto", package="caffe", syntax="proto2")
    repeated = _F.LABEL_REPEATED
    shape = proto.message_type.add(name="BlobShape")
    _field(shape, "dim", 1, _F.TYPE_INT64, repeated, packed=True)
    blob = proto.message_type.add(name="BlobProto")
    _field(blob, "shape", 7, _F.TYPE_MESSAGE, type_name=".caffe.BlobShape")
    _field(blob, "data", 5, _F.TYPE_FLOAT, repeated, packed=True)
    _field(blob, "diff", 6, _F.TYPE_FLOAT, repeated, packed=True)
    _field(blob, "double_data", 8, _F.TYPE_DOUBLE, repeated, packed=True)
    for number, name in enumerate(("num", "channels", "height", "width"), start=1):
        _field(blob, name, number, _F.TYPE_INT32)
    layer = proto.message_type.add(name="LayerParameter")
    _field(layer, "name", 1, _F.TYPE_STRING)
    _field(layer, "type", 2, _F.TYPE_STRING)
    _field(layer, "bottom", 3, _F.TYPE_STRING, repeated)
    _field(layer, "top", 4, _F.TYPE_STRING, repeated)
    _field(layer, "blobs", 7, _F.TYPE_MESSAGE, repeated, type_name=".caffe.BlobProto")
    v1 = proto.message_type.add(name="V1LayerParameter")
    layer_type = v1.enum_type.add(name="LayerType")
    for name, number in (
        ("NONE", 0),
        ("CONVOLUTION", 4),
        ("INNER_PRODUCT", 14),
        ("POOLING", 17),
        ("RELU", 18),
        ("DECONVOLUTION", 39),
    ):
        layer_type.value.add(name=name, number=number)
    _field(v1, "bottom", 2, _F.TYPE_STRING, repeated)
    _field(v1, "top", 3, _F.TYPE_STRING, repeated)
    _field(v1, "name", 4, _F.TYPE_STRING)
    _field(v1, "type", 5, _F.TYPE_ENUM, type_name=".caffe.V1LayerParameter.LayerType")
    _field(v1, "blobs", 6, _F.TYPE_MESSAGE, repeated, type_name=".caffe.BlobProto")
    net = proto.message_type.add(name="NetParameter")
    _field(net, "name", 1, _F.TYPE_STRING)
    _field(net, "layers", 2, _F.TYPE_MESSAGE, repeated, type_name=".caffe.V1LayerParameter")
    _field(net, "layer", 100, _F.TYPE_MESSAGE, repeated, type_name=".caffe.LayerParameter")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe.NetParameter"))


NetParameter = _caffe_schema()
V1_TYPES = {"Convolution": 4, "Deconvolution": 39, "InnerProduct": 14, "ReLU": 18}


def protobuf_caffemodel(layers, *, legacy=False, double=False):
    """Serializes `[(name, type, [arrays])]` with the protobuf library, as Caffe would."""
    net = NetParameter(name="test")
    for name, layer_type, blobs in layers:
        if legacy:
            layer = net.layers.add(name=name, type=V1_TYPES[layer_type], bottom=["in"], top=[name])
        else:
            layer = net.layer.add(name=name, type=layer_type, bottom=["in"], top=[name])
        for array in blobs:
            blob = layer.blobs.add()
            if legacy:
                blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - array.ndim) + array.shape
            else:
                blob.shape.dim.extend(array.shape)
            (blob.double_data if double else blob.data).extend(array.ravel().tolist())
    return net.SerializeToString()


def random_layers(seed=0):
    rng = np.random.default_rng(seed)
    return [
        (
            "conv",
            "Convolution",
            [rng.standard_normal((4, 3, 3, 2)).astype(np.float32), rng.standard_normal(4).astype(np.float32)],
        ),
        ("relu", "ReLU", []),
        ("up", "Deconvolution", [rng.standard_normal((4, 5, 4, 4)).astype(np.float32)]),
    ]


# --- reading and writing -------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["layer", "layers"])
@pytest.mark.parametrize("double", [False, True], ids=["float", "double"])
def test_parse_reads_protobuf_written_files_exactly(legacy, double):
    written = random_layers()
    parsed = caffe.parse_caffemodel(protobuf_caffemodel(written, legacy=legacy, double=double))
    assert [layer.name for layer in parsed] == ["conv", "relu", "up"]
    assert [layer.type for layer in parsed] == ["Convolution", "V1:18" if legacy else "ReLU", "Deconvolution"]
    for layer, (_, _, blobs) in zip(parsed, written):
        assert len(layer.blobs) == len(blobs)
        for got, want in zip(layer.blobs, blobs):
            expected_shape = (1,) * (4 - want.ndim) + want.shape if legacy else want.shape
            assert got.shape == expected_shape and got.dtype == np.float32
            np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_parse_reads_unpacked_repeated_fields():
    # Protobuf parsers must accept unpacked encodings of packed fields; build one by hand:
    # NetParameter.layer { name "c" type "Convolution" blobs { data: 1.5, data: -2 (fixed32 each), shape { dim: 2 (varint) } } }
    def ld(number, payload):
        return bytes([number << 3 | 2]) + bytes([len(payload)]) + payload

    blob = bytes([5 << 3 | 5]) + np.float32(1.5).tobytes() + bytes([5 << 3 | 5]) + np.float32(-2).tobytes()
    blob += ld(7, bytes([1 << 3 | 0, 2]))
    layer = ld(1, b"c") + ld(2, b"Convolution") + ld(7, blob)
    data = bytes([0xA2, 0x06, len(layer)]) + layer  # field 100, wire type 2
    (parsed,) = caffe.parse_caffemodel(data)
    assert parsed.name == "c"
    np.testing.assert_array_equal(parsed.blobs[0], np.array([1.5, -2], np.float32))


@pytest.mark.parametrize("legacy", [False, True], ids=["layer", "layers"])
def test_written_files_parse_with_protobuf(legacy):
    written = [layer for layer in random_layers() if layer[2]]
    message = NetParameter.FromString(caffe.encode_caffemodel(written, legacy=legacy))
    layers = message.layers if legacy else message.layer
    assert len(message.layer if legacy else message.layers) == 0
    assert [layer.name for layer in layers] == ["conv", "up"]
    for layer, (_, layer_type, blobs) in zip(layers, written):
        assert layer.type == (V1_TYPES[layer_type] if legacy else layer_type)
        for blob, array in zip(layer.blobs, blobs):
            if legacy:
                assert (blob.num, blob.channels, blob.height, blob.width) == (1,) * (
                    4 - array.ndim
                ) + array.shape
            else:
                assert tuple(blob.shape.dim) == array.shape
            np.testing.assert_array_equal(np.array(blob.data, np.float32), array.ravel())


def test_truncated_file_fails_clearly(tmp_path):
    data = protobuf_caffemodel(random_layers())
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[: len(data) - 7])
    with pytest.raises(caffe.CaffeModelError, match="cut.caffemodel.*[Tt]runcated"):
        caffe.read_caffemodel(path)


def test_v0_layout_fails_clearly():
    v0_layer = bytes([1 << 3 | 2, 0])  # V1LayerParameter.layer: an (empty) V0LayerParameter
    data = bytes([2 << 3 | 2, len(v0_layer)]) + v0_layer
    with pytest.raises(caffe.CaffeModelError, match="V0 layer layout"):
        caffe.parse_caffemodel(data)


def test_blob_size_must_match_its_shape():
    net = NetParameter()
    blob = net.layer.add(name="c", type="Convolution").blobs.add()
    blob.shape.dim.extend([2, 3])
    blob.data.extend([1.0] * 5)
    with pytest.raises(caffe.CaffeModelError, match=r"shape \(2, 3\) holds 5 values instead of 6"):
        caffe.parse_caffemodel(net.SerializeToString())


# --- conversion onto a reduced-width reference FCN -------------------------------

SMALL_BLOCKS = ((1, 2, 3), (2, 2, 4), (3, 3, 4), (4, 3, 5), (5, 3, 5))
SMALL_FC = 6
MEAN_BGR = np.array([104.00699, 116.66877, 122.67892], np.float32)  # the paper's mean (fcn-paper.md)


@pytest.fixture
def small_reference(monkeypatch):
    """Makes the builders' vgg16_reference trunk and fc6/fc7 narrow, for fast exact tests."""
    monkeypatch.setattr(reference, "VGG16_BLOCKS", SMALL_BLOCKS)
    monkeypatch.setattr(models, "FC_FILTERS", SMALL_FC)


def caffe_fcn_blobs(num_classes, stride, seed=0, scales=False):
    """Random blobs for the reference FCN in Caffe's layout: name -> (type, [blobs])."""
    rng = np.random.default_rng(seed)

    def conv(out, inp, k):
        return (
            "Convolution",
            [
                rng.standard_normal((out, inp, k, k)).astype(np.float32) * 0.3,
                rng.standard_normal(out).astype(np.float32),
            ],
        )

    def deconv(k):
        return (
            "Deconvolution",
            [rng.standard_normal((num_classes, num_classes, k, k)).astype(np.float32) * 0.3],
        )

    blobs, channels = {}, 3
    for block, count, filters in SMALL_BLOCKS:
        for index in range(1, count + 1):
            blobs[f"conv{block}_{index}"] = conv(filters, channels, 3)
            channels = filters
    blobs["fc6"] = conv(SMALL_FC, channels, 7)
    blobs["fc7"] = conv(SMALL_FC, SMALL_FC, 1)
    blobs["score_fr"] = conv(num_classes, SMALL_FC, 1)
    if stride <= 16:
        blobs["upscore2"] = deconv(4)
        blobs["score_pool4"] = conv(num_classes, SMALL_BLOCKS[3][2], 1)
    if stride == 8:
        blobs["upscore_pool4"] = deconv(4)
        blobs["score_pool3"] = conv(num_classes, SMALL_BLOCKS[2][2], 1)
    blobs[{32: "upscore", 16: "upscore16", 8: "upscore8"}[stride]] = deconv(2 * stride)
    if scales:
        blobs["scale_pool4"] = ("Scale", [np.full(SMALL_BLOCKS[3][2], 0.01, np.float32)])
        blobs["scale_pool3"] = ("Scale", [np.full(SMALL_BLOCKS[2][2], 0.0001, np.float32)])
    return blobs


# A numpy forward pass with Caffe's definitions (NCHW, batch of 1 dropped).


def np_conv(x, weight, bias, pad):
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    kh, kw = weight.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # (in, H, W, kh, kw)
    return np.einsum("chwij,ocij->ohw", windows, weight, optimize=True) + bias[:, None, None]


def np_max_pool(x):
    """2x2 stride 2, Caffe's ceil mode: a last window hanging over the edge pools what it covers."""
    c, h, w = x.shape
    oh, ow = -(-(h - 2) // 2) + 1, -(-(w - 2) // 2) + 1
    padded = np.full((c, 2 * oh, 2 * ow), -np.inf, x.dtype)
    padded[:, :h, :w] = x
    return padded.reshape(c, oh, 2, ow, 2).max(axis=(2, 4))


def np_deconv(x, weight, stride):
    """Caffe Deconvolution, no padding: out[o, y*s+i, x*s+j] += x[c, y, x] * W[c, o, i, j]."""
    c, h, w = x.shape
    _, out, kh, kw = weight.shape
    y = np.zeros((out, (h - 1) * stride + kh, (w - 1) * stride + kw))
    for row in range(h):
        for col in range(w):
            patch = np.einsum("c,coij->oij", x[:, row, col], weight)
            y[:, row * stride : row * stride + kh, col * stride : col * stride + kw] += patch
    return y


def np_crop(x, offset, size):
    return x[:, offset : offset + size[0], offset : offset + size[1]]


def np_fcn(image_rgb, blobs, stride, scales=None, mean=MEAN_BGR, bgr=True):
    """The reference FCN (paper section 4 and fcn-paper.md's crop offsets) in numpy."""
    x = ((image_rgb[..., ::-1] if bgr else image_rgb) - mean).transpose(2, 0, 1).astype(np.float64)
    taps = {}
    for block, count, _ in SMALL_BLOCKS:
        for index in range(1, count + 1):
            weight, bias = blobs[f"conv{block}_{index}"][1]
            x = np.maximum(np_conv(x, weight, bias, 100 if (block, index) == (1, 1) else 1), 0)
        x = np_max_pool(x)
        taps[f"pool{block}"] = x
    x = np.maximum(np_conv(x, *blobs["fc6"][1], 0), 0)
    x = np.maximum(np_conv(x, *blobs["fc7"][1], 0), 0)
    scores = np_conv(x, *blobs["score_fr"][1], 0)
    skips = {
        32: [],
        16: [("upscore2", "pool4", 5)],
        8: [("upscore2", "pool4", 5), ("upscore_pool4", "pool3", 9)],
    }[stride]
    for up_name, pool, offset in skips:
        scores = np_deconv(scores, blobs[up_name][1][0], 2)
        tap = taps[pool] * (scales[pool] if scales else 1.0)
        skip = np_conv(tap, *blobs[f"score_{pool}"][1], 0)
        scores = scores + np_crop(skip, offset, scores.shape[1:])
    final_name, final_offset = {32: ("upscore", 19), 16: ("upscore16", 27), 8: ("upscore8", 31)}[stride]
    scores = np_deconv(scores, blobs[final_name][1][0], stride)
    return np_crop(scores, final_offset, image_rgb.shape[:2]).transpose(1, 2, 0)


BUILDERS = {32: keras_fcn.FCN32s, 16: keras_fcn.FCN16s, 8: keras_fcn.FCN8s}


@pytest.mark.parametrize(
    "stride, at_once, legacy",
    [(32, False, False), (16, False, True), (8, False, False), (8, True, False)],
    ids=["fcn32s-layer", "fcn16s-layers", "fcn8s-layer", "fcn8s-atonce-layer"],
)
def test_converted_fcn_matches_blobs_and_numpy_forward(small_reference, tmp_path, stride, at_once, legacy):
    num_classes = 3
    blobs = caffe_fcn_blobs(num_classes, stride, scales=at_once)
    written = [
        (name, kind, arrays) for name, (kind, arrays) in blobs.items() if not (legacy and kind == "Scale")
    ]
    path = tmp_path / "net.caffemodel"
    path.write_bytes(protobuf_caffemodel(written, legacy=legacy))
    builder = keras_fcn.FCN8sAtOnce if at_once else BUILDERS[stride]
    model = builder(num_classes, backbone="vgg16_reference", backbone_weights=None)
    loaded = caffe.load_caffemodel_weights(model, str(path))
    weighted = sorted(name for name, (kind, _) in blobs.items() if kind != "Scale")
    assert loaded == weighted
    for name in weighted:
        weights = model.get_layer(name).get_weights()
        caffe_blobs = blobs[name][1]
        assert len(weights) == len(caffe_blobs)
        # Keras kernels are (kh, kw, in, out) for Conv2D and (kh, kw, out, in) for Conv2DTranspose.
        np.testing.assert_array_equal(weights[0], np.transpose(caffe_blobs[0], (2, 3, 1, 0)))
        for got, want in zip(weights[1:], caffe_blobs[1:]):
            np.testing.assert_array_equal(got, want)
    image = np.random.default_rng(1).uniform(0, 255, (11, 14, 3)).astype(np.float32)
    scales = {"pool4": 0.01, "pool3": 0.0001} if at_once else None
    expected = np_fcn(image, blobs, stride, scales)
    got = keras.ops.convert_to_numpy(model(image[None]))[0]
    assert got.shape == (11, 14, num_classes)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_conversion_names_unknown_missing_and_misshapen_layers(small_reference):
    model = keras_fcn.FCN32s(3, backbone="vgg16_reference", backbone_weights=None)
    blobs = caffe_fcn_blobs(3, 32)
    del blobs["conv2_1"]
    blobs["extra_layer"] = blobs["fc7"]
    kind, (kernel, bias) = blobs["fc6"]
    blobs["fc6"] = (kind, [kernel[:, :, :3, :3], bias])
    blobs["upscore"] = ("Convolution", blobs["upscore"][1])
    layers = [caffe.CaffeLayer(name, kind, arrays) for name, (kind, arrays) in blobs.items()]
    before = model.get_layer("conv1_1").get_weights()[0].copy()
    with pytest.raises(caffe.CaffeModelError) as error:
        caffe.load_caffemodel_weights(model, layers)
    message = str(error.value)
    assert "layers the model lacks: ['extra_layer']" in message
    assert "no blobs for the model's layers ['conv2_1']" in message
    assert (
        "layer 'fc6' needs blobs of shapes [(6, 5, 7, 7), (6,)]; the caffemodel has [(6, 5, 3, 3), (6,)]"
        in message
    )
    assert "layer 'upscore' needs a Caffe Deconvolution layer; the caffemodel's is a Convolution" in message
    np.testing.assert_array_equal(model.get_layer("conv1_1").get_weights()[0], before)


def test_atonce_scale_blobs_must_equal_the_fixed_scales(small_reference):
    model = keras_fcn.FCN8sAtOnce(3, backbone="vgg16_reference", backbone_weights=None)
    blobs = caffe_fcn_blobs(3, 8, scales=True)
    blobs["scale_pool3"] = ("Scale", [np.full(4, 0.5, np.float32)])
    layers = [caffe.CaffeLayer(name, kind, arrays) for name, (kind, arrays) in blobs.items()]
    with pytest.raises(caffe.CaffeModelError, match="'scale_pool3' scales by the fixed 0.0001.*0.5"):
        caffe.load_caffemodel_weights(model, layers)
