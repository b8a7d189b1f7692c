import keras
import numpy as np
import pytest

import keras_fcn
from _helpers import randomize as _randomize
from _helpers import run as _run

pytestmark = pytest.mark.backend_agnostic

INCEPTION = {"backbone": "inceptionv3", "backbone_weights": None}




def layer_centre(model, layer_name):
    """(first, step): cell i of the layer's map is centred on input pixel first + step * i.

    Follows the first input of each layer back to the model's input, through
    zero paddings, convolutions and poolings, from their configs: a window of
    k taps at stride s, padded by p at the top, centres output i on
    (k - 1) / 2 - p + s * i of its input.
    """
    layer, chain = model.get_layer(layer_name), []
    while not isinstance(layer, keras.layers.InputLayer):
        chain.append(layer)
        layer = keras.tree.flatten(layer.input)[0]._keras_history.operation
    first, step = 0.0, 1
    for layer in reversed(chain):
        if isinstance(layer, keras.layers.ZeroPadding2D):
            first -= step * layer.padding[0][0]
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            k = layer.kernel_size[0] if isinstance(layer, keras.layers.Conv2D) else layer.pool_size[0]
            s = layer.strides[0]
            assert layer.padding == "valid" or s == 1 and k % 2 == 1
            top = 0 if layer.padding == "valid" else (k - 1) // 2
            first, step = first + step * ((k - 1) / 2 - top), step * s
    return first, step


def test_inception_cells_are_centred_on_pixels():
    trunk = keras.applications.InceptionV3(include_top=False, weights=None)
    assert [layer_centre(trunk, name) for name in ["mixed2", "mixed7", "mixed10"]] == [(13, 8), (21, 16), (37, 32)]


@pytest.mark.parametrize("size", [(1, 1), (32, 33), (75, 101)])
def test_maps_have_4m_plus_3_2m_plus_1_and_m_cells(rng, size):
    model = keras_fcn.FCN8s(2, **INCEPTION)
    m = np.ceil(np.array(size) / 32).astype(int)
    probe = keras.Model(model.input, [model.get_layer(n).output for n in ["mixed2", "mixed7", "mixed10", "score"]])
    outputs = probe(rng.uniform(0, 255, size=(1, *size, 3)).astype("float32"))
    assert [tuple(o.shape[1:3]) for o in outputs] == [tuple(4 * m + 3), tuple(2 * m + 1), tuple(m), size]
    assert model.get_layer("input_padding").padding == ((21, 22), (21, 22))


def test_fcn32s_output_interpolates_the_coarse_scores_between_their_centres(rng):
    """mixed10 cell i is centred on pixel 37 + 32 i of the padded input, i.e. 16 + 32 i of the image."""
    model = keras_fcn.FCN32s(2, **INCEPTION)
    _randomize(model, ["score_fr"], rng, scale=0.05)
    image = rng.uniform(0, 255, size=(1, 100, 130, 3)).astype("float32")
    coarse = _run(keras.Model(model.input, model.get_layer("score_fr").output), image)[0]
    assert coarse.shape[:2] == (4, 5)
    inner_rows, inner_cols = np.arange(16, 100), np.arange(16, 130)
    rows = np.stack([np.interp(inner_rows, 16 + 32 * np.arange(4), e) for e in np.eye(4)], 1)
    cols = np.stack([np.interp(inner_cols, 16 + 32 * np.arange(5), e) for e in np.eye(5)], 1)
    expected = np.einsum("pi,qj,ijc->pqc", rows, cols, coarse)
    out = _run(model, image)[0]
    np.testing.assert_allclose(out[16:, 16:], expected, rtol=1e-4, atol=1e-5)


def _numpy_upsample(x, factor):
    """A bilinear deconvolution with the odd kernel 2 * factor - 1, stride factor, on x (h, w, c)."""
    size = 2 * factor - 1
    taps = 1 - np.abs(np.arange(size) - (factor - 1)) / factor
    kernel = np.outer(taps, taps)[..., None]
    out = np.zeros(((x.shape[0] - 1) * factor + size, (x.shape[1] - 1) * factor + size, x.shape[2]))
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i * factor : i * factor + size, j * factor : j * factor + size] += kernel * x[i, j]
    return out


def test_fcn8s_head_equals_numpy_upsample_crop_and_sum(rng):
    model = keras_fcn.FCN8s(3, **INCEPTION)
    _randomize(model, ["score_fr", "score_pool4", "score_pool3"], rng, scale=0.05)
    image = rng.uniform(0, 255, size=(1, 45, 70, 3)).astype("float32")
    probe = keras.Model(model.input, [model.get_layer(n).output for n in ["score_fr", "score_pool4", "score_pool3"]])
    score_fr, score_pool4, score_pool3 = (keras.ops.convert_to_numpy(t)[0] for t in probe(image, training=False))
    up2 = _numpy_upsample(score_fr, 2)
    fuse_pool4 = up2 + score_pool4[: up2.shape[0], : up2.shape[1]]
    up4 = _numpy_upsample(fuse_pool4, 2)
    fused = up4 + score_pool3[: up4.shape[0], : up4.shape[1]]
    for _ in range(3):
        fused = _numpy_upsample(fused, 2)
    np.testing.assert_allclose(_run(model, image)[0], fused[15 : 15 + 45, 15 : 15 + 70], rtol=1e-4, atol=1e-4)
    kernels = {layer.name: layer.kernel_size for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)}
    assert kernels == {name: (3, 3) for name in ["upscore2", "upscore_pool4", "upscore8_1", "upscore8_2", "upscore8_3"]}
