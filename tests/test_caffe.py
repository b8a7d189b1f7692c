"""Tests of keras_fcn.caffe: caffemodel reading, writing and conversion onto Keras layers.

The caffemodels here are written with the real protobuf library, from a
schema built with caffe.proto's field numbers (tests/_caffe_helpers.py), so
the package's own wire-format reader and writer are checked against an
independent implementation. Converted models are checked against the blobs
written (exact equality) and against a numpy forward pass of the Caffe net.
"""

import keras
import numpy as np
import pytest

import keras_fcn
from keras_fcn import caffe
from _caffe_helpers import V1_TYPES, NetParameter, assert_weights_equal_blobs, caffe_fcn_blobs, np_fcn, protobuf_caffemodel


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
    assert_weights_equal_blobs(model, {name: blobs[name] for name in weighted})
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
