import keras
import numpy as np
import pytest

from keras_fcn.layers import CropLike, InputNormalization, PadToMultiple
from _numpy_reference import crop

pytestmark = pytest.mark.backend_agnostic


def _dynamic_model(layer, *channels):
    """Wraps a layer in a model whose inputs have unknown height and width."""
    inputs = [keras.Input((None, None, c)) for c in channels]
    inputs = inputs if len(inputs) > 1 else inputs[0]
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize(
    "offset, like_shape",
    [(19, (7, 5)), ((2, 5), (10, 3)), (0, (12, 12)), (-1, (6, 8)), ((-2, 17), (33, 6)), (28, (4, 4)),
     ((-9, 3), (5, 4)), ((3, 25), (4, 6))],
    ids=["inside-then-past-the-right", "inside", "at-zero", "before-both", "before-and-past", "past-both",
         "wholly-above", "wholly-right"],
)
def test_crop_like_takes_the_window_at_the_offset_with_zeros_outside(rng, offset, like_shape):
    x = rng.normal(size=(2, 30, 20, 3)).astype("float32")
    like = np.zeros((2, *like_shape, 1), "float32")
    out = keras.ops.convert_to_numpy(_dynamic_model(CropLike(offset), 3, 1)([x, like]))
    np.testing.assert_array_equal(out, np.stack([crop(image, offset, like_shape) for image in x]))


@pytest.mark.floor
def test_crop_like_serves_new_sizes_after_save_and_load(tmp_path, rng):
    model = _dynamic_model(CropLike((1, 2), name="crop"), 2, 1)
    path = tmp_path / "crop.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.get_layer("crop").get_config()["offset"] == (1, 2)
    x = rng.normal(size=(1, 9, 11, 2)).astype("float32")
    out = keras.ops.convert_to_numpy(restored([x, np.zeros((1, 4, 3, 1), "float32")]))
    np.testing.assert_array_equal(out, x[:, 1:5, 2:5])


def test_crop_like_rejects_a_bad_offset():
    with pytest.raises(ValueError, match=r"offset.*\(1, 2, 3\)"):
        CropLike((1, 2, 3))


@pytest.mark.parametrize("size, padded", [((32, 64), (32, 64)), ((33, 17), (64, 32)), ((1, 95), (32, 96))])
def test_pad_to_multiple_pads_bottom_and_right_with_zeros(rng, size, padded):
    x = rng.normal(size=(2, *size, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(_dynamic_model(PadToMultiple(32), 3)(x))
    expected = np.zeros((2, *padded, 3), "float32")
    expected[:, : size[0], : size[1]] = x
    np.testing.assert_array_equal(out, expected)


def test_pad_to_multiple_rejects_non_positive_multiple():
    with pytest.raises(ValueError, match="multiple=0"):
        PadToMultiple(0)


def test_input_normalization_matches_caffe_preprocessing(rng):
    images = rng.uniform(0, 255, size=(2, 5, 4, 3)).astype("float32")
    mean = (104.00699, 116.66877, 122.67892)
    out = keras.ops.convert_to_numpy(InputNormalization(mean, 1.0, bgr=True)(images))
    np.testing.assert_allclose(out, images[..., ::-1] - np.array(mean), rtol=1e-6, atol=1e-4)


def test_input_normalization_scales_per_channel_and_accepts_uint8(rng):
    images = rng.integers(0, 256, size=(1, 3, 3, 3)).astype("uint8")
    layer = InputNormalization((10.0, 20.0, 30.0), (2.0, 4.0, 5.0))
    out = keras.ops.convert_to_numpy(layer(images))
    expected = (images.astype("float32") - [10.0, 20.0, 30.0]) / [2.0, 4.0, 5.0]
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    revived = InputNormalization.from_config(layer.get_config())
    assert (revived.mean, revived.std, revived.bgr) == ((10.0, 20.0, 30.0), (2.0, 4.0, 5.0), False)


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-6), ("float16", 1e-3)])
def test_input_normalization_with_one_value_for_every_channel(rng, dtype, rtol):
    images = rng.integers(0, 256, size=(2, 4, 3, 3)).astype("uint8")
    out = InputNormalization((127.5, 127.5, 127.5), 127.5, bgr=True, dtype=dtype)(images)
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    expected = images[..., ::-1].astype("float64") / 127.5 - 1
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out).astype("float64"), expected, rtol=rtol, atol=rtol)


def test_input_normalization_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match=r"mean=\(1, 2\)"):
        InputNormalization((1, 2))
