import keras
import numpy as np
import pytest

import keras_fcn
from _helpers import randomize as _randomize
from _helpers import run as _run
from _numpy_reference import bilinear_upsample, crop

pytestmark = pytest.mark.backend_agnostic

INCEPTION = {"backbone": "inceptionv3", "backbone_weights": None}


def test_inception_cells_are_centred_on_pixels():
    """By hand: the stem's VALID 3x3 windows (convolutions and poolings) each move cell 0 by one input cell.

    Stride 2: 1; stride 4: 3 + 2 = 5; stride 8: 5 + 4 (3x3 conv) + 4 (pooling) = 13; mixed3's and mixed8's
    VALID 3x3 stride-2 branches: 13 + 8 = 21 at stride 16, 21 + 16 = 37 at stride 32.
    """
    with keras.StatelessScope():
        trunk = keras.applications.InceptionV3(include_top=False, weights=None)
    fields = keras_fcn.geometry.receptive_fields(trunk)
    assert [(fields[name].rows.centre, fields[name].rows.stride) for name in ["mixed2", "mixed7", "mixed10"]] == [
        (13, 8), (21, 16), (37, 32)
    ]
    assert keras_fcn.backbones.skip_layer_names("InceptionV3") == {8: "mixed2", 16: "mixed7", 32: "mixed10"}


@pytest.mark.parametrize("size", [(1, 1), (32, 33), (75, 101)])
def test_maps_have_4m_plus_5_2m_plus_2_and_m_cells(rng, size):
    """21 zeros above put mixed10 cell 0 on pixel 37 - 21 = 16; 43 below make the 32m-row image 32m + 64 rows.

    By hand, a 32m + 64-row input gives 16m + 31, 16m + 29, 8m + 14, 8m + 12, then 4m + 5 rows at stride 8,
    2m + 2 at stride 16 and m at stride 32 (each VALID 3x3 window at stride 2 takes floor((n - 3) / 2) + 1):
    one stride-32 cell per 32-pixel block of the image.
    """
    model = keras_fcn.FCN8s(2, **INCEPTION)
    m = np.ceil(np.array(size) / 32).astype(int)
    probe = keras.Model(model.input, [model.get_layer(n).output for n in ["mixed2", "mixed7", "mixed10"]] + [model.output])
    outputs = probe(rng.uniform(0, 255, size=(1, *size, 3)).astype("float32"))
    assert [tuple(o.shape[1:3]) for o in outputs] == [tuple(4 * m + 5), tuple(2 * m + 2), tuple(m), size]
    assert model.get_layer("input_padding").padding == ((21, 43), (21, 43))


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


def test_fcn8s_head_equals_numpy_upsample_crop_and_sum(rng):
    model = keras_fcn.FCN8s(3, **INCEPTION)
    _randomize(model, ["score_fr", "score_pool4", "score_pool3"], rng, scale=0.05)
    image = rng.uniform(0, 255, size=(1, 45, 70, 3)).astype("float32")
    probe = keras.Model(model.input, [model.get_layer(n).output for n in ["score_fr", "score_pool4", "score_pool3"]])
    score_fr, score_pool4, score_pool3 = (keras.ops.convert_to_numpy(t)[0] for t in probe(image, training=False))
    up2 = bilinear_upsample(score_fr, 2, 3)
    fuse_pool4 = up2 + crop(score_pool4, 0, up2.shape[:2])
    up4 = bilinear_upsample(fuse_pool4, 2, 3)
    fused = up4 + crop(score_pool3, 0, up4.shape[:2])
    for _ in range(3):
        fused = bilinear_upsample(fused, 2, 3)
    np.testing.assert_allclose(_run(model, image)[0], crop(fused, 15, (45, 70)), rtol=1e-4, atol=1e-4)
    kernels = {layer.name: layer.kernel_size for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)}
    assert kernels == {name: (3, 3) for name in ["upscore2", "upscore_pool4", "upscore8_1", "upscore8_2", "upscore8_3"]}
