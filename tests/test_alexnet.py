import keras
import numpy as np
import pytest

import keras_fcn
from keras_fcn import caffe, zoo
from keras_fcn.alexnet import LocalResponseNormalization
from keras_fcn.zoo import architectures
from _helpers import run as _run
from _caffe_helpers import MEAN_BGR
from _numpy_reference import bilinear_blob, bilinear_upsample, conv2d, crop, deconv2d, local_response_normalization, pool2d

pytestmark = pytest.mark.backend_agnostic

# voc-fcn-alexnet's net.py: (name, kernel, stride, pad, group, outputs); pooling and LRN after some.
CAFFE_CONVOLUTIONS = [
    ("conv1", 11, 4, 100, 1, 96),
    ("conv2", 5, 1, 2, 2, 256),
    ("conv3", 3, 1, 1, 1, 384),
    ("conv4", 3, 1, 1, 2, 384),
    ("conv5", 3, 1, 1, 2, 256),
    ("fc6", 6, 1, 0, 1, 4096),
    ("fc7", 1, 1, 0, 1, 4096),
    ("score_fr", 1, 1, 0, 1, 21),
]


def _caffe_fcn_alexnet(blobs, image):
    """The authors' voc-fcn-alexnet val net (test mode: dropout is the identity) on an RGB image."""
    x = image[..., ::-1] - MEAN_BGR
    for name, kernel, stride, pad, group, _ in CAFFE_CONVOLUTIONS:
        x = conv2d(x, *blobs[name], stride, pad, group)
        if name != "score_fr":
            x = np.maximum(x, 0)
        if name in ("conv1", "conv2", "conv5"):
            x = pool2d(x, 3, 2, ceil_mode=True)
        if name in ("conv1", "conv2"):
            x = local_response_normalization(x)
    return crop(deconv2d(x, blobs["upscore"][0], 32), 18, image.shape[:2])


@pytest.fixture(scope="module")
def caffe_blobs():
    rng = np.random.default_rng(2015)
    blobs, channels = {}, 3
    for name, kernel, _, _, group, outputs in CAFFE_CONVOLUTIONS:
        fan_in = channels // group * kernel * kernel
        weights = rng.normal(scale=np.sqrt(2 / fan_in), size=(outputs, channels // group, kernel, kernel))
        blobs[name] = [weights.astype("float32"), rng.normal(scale=0.1, size=outputs).astype("float32")]
        channels = outputs
    blobs["upscore"] = [bilinear_blob(21, 63).astype("float32")]
    return blobs


def test_voc_fcn_alexnet_equals_the_caffe_net_in_numpy(caffe_blobs, rng):
    entry = zoo.get("voc-fcn-alexnet")
    assert entry.architecture == "fcn32s_alexnet_reference"
    model = architectures.build(entry)
    layers = [caffe.CaffeLayer(name, "Deconvolution" if name == "upscore" else "Convolution", blobs)
              for name, blobs in caffe_blobs.items()]
    assert caffe.load_caffemodel_weights(model, layers) == sorted(caffe_blobs)
    # 40x45: conv1 58x59, pool1 29x29 (the last window of 58 rows reaches one past the end), pool5 7x7, score_fr 2x2.
    image = rng.uniform(0, 255, size=(1, 40, 45, 3)).astype("float32")
    expected = _caffe_fcn_alexnet(caffe_blobs, image[0].astype("float64"))
    assert tuple(keras.Model(model.input, model.get_layer("score_fr").output)(image).shape[1:3]) == (2, 2)
    out = _run(model, image)[0]
    assert np.abs(expected).max() > 1.0
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_fcn_alexnet_has_the_reference_layers():
    model = keras_fcn.FCN32s(21, backbone="alexnet_reference", backbone_weights=None)
    assert model.get_layer("conv1_pad").padding == ((100, 100), (100, 100))
    for name, kernel, stride, pad, group, outputs in CAFFE_CONVOLUTIONS:
        layer = model.get_layer(name)
        assert (layer.kernel_size, layer.strides, layer.groups, layer.filters) == ((kernel, kernel), (stride, stride), group, outputs)
    upscore = model.get_layer("upscore")
    assert (upscore.kernel_size, upscore.strides, upscore.use_bias) == ((63, 63), (32, 32), False)
    assert model.get_layer("score").offset == (18, 18)
    for name in ["norm1", "norm2"]:
        norm = model.get_layer(name)
        assert (norm.size, norm.alpha, norm.beta, norm.k) == (5, 1e-4, 0.75, 1.0)


def test_fcn8s_offsets_follow_the_cell_centres(rng):
    """pool1, pool2 and fc6 cells are centred on pixels 8i - 91, 16i - 83 and 32i + 13 (crops 5, 10 and 18)."""
    model = keras_fcn.FCN8s(3, backbone="alexnet_reference", backbone_weights=None)
    for name in ["score_fr", "score_pool4", "score_pool3"]:
        layer = model.get_layer(name)
        layer.set_weights([rng.normal(scale=0.01, size=w.shape).astype("float32") for w in layer.get_weights()])
    image = rng.uniform(0, 255, size=(1, 40, 45, 3)).astype("float32")
    probe = keras.Model(model.input, [model.get_layer(n).output for n in ["score_fr", "score_pool4", "score_pool3"]])
    score_fr, score_pool4, score_pool3 = (keras.ops.convert_to_numpy(t)[0] for t in probe(image, training=False))
    # fc6 cell i (pixel 32i + 13) lands on index 2i + 1, pool2 cell 2i + 6 (16 (2i + 6) - 83): offset 5.
    up2 = bilinear_upsample(score_fr, 2, 3)
    fuse_pool4 = up2 + crop(score_pool4, 5, up2.shape[:2])
    # Index u of fuse_pool4 (pool2 cell u + 5) lands on 2u + 1, pool1 cell 2u + 11: offset 10.
    up4 = bilinear_upsample(fuse_pool4, 2, 3)
    fuse_pool3 = up4 + crop(score_pool3, 10, up4.shape[:2])
    # Index v (pool1 cell v + 10, pixel 8v - 11) lands on 8v + 7: offset 18.
    expected = crop(bilinear_upsample(fuse_pool3, 8, 15), 18, (40, 45))
    out = _run(model, image)[0]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_lrn_matches_caffe_in_numpy_and_round_trips(rng):
    x = rng.uniform(0, 30, size=(1, 3, 4, 7)).astype("float32")
    layer = LocalResponseNormalization(5, alpha=0.5, beta=0.75)
    expected = local_response_normalization(x[0].astype("float64"), 5, 0.5, 0.75)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x))[0], expected, rtol=1e-5)
    restored = LocalResponseNormalization.from_config(layer.get_config())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored(x)), keras.ops.convert_to_numpy(layer(x)))


def test_alexnet_needs_fcn_weights_not_imagenet():
    with pytest.raises(ValueError, match="no Keras Applications \\(ImageNet\\) weights.*backbone_weights='imagenet'"):
        keras_fcn.FCN32s(21, backbone="alexnet_reference")
