"""Test-time augmentation (`keras_fcn.test_time`): hand-computed averages over mirrored and rescaled views."""

import numpy as np
import pytest

import keras_fcn
from keras_fcn.test_time import augmented_inference, scaled_size

pytestmark = pytest.mark.backend_agnostic


def _sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, "float64")))


def _columns_as_class_0(images):
    """A "model" whose class-0 logit is the column index, class 1's zero."""
    columns = np.broadcast_to(np.arange(images.shape[2], dtype="float32")[None, None, :], images.shape[:3])
    return np.stack([columns, np.zeros_like(columns)], axis=-1)


def test_flip_averages_the_probabilities_of_the_image_and_its_mirror():
    # On a 1x2 image class 0 has the probabilities 0.5, sigmoid(1) at columns 0, 1, and its mirror (mirrored
    # back) sigmoid(1), 0.5.
    probabilities = augmented_inference(_columns_as_class_0, flip=True)(np.zeros((1, 1, 2, 3), "float32"))
    class_0 = (0.5 + _sigmoid(1)) / 2
    np.testing.assert_allclose(probabilities[0, 0, :, 0], [class_0, class_0], rtol=1e-6)
    np.testing.assert_allclose(probabilities.sum(-1), 1, rtol=1e-6)


def test_each_scale_scores_the_image_at_its_scaled_size():
    # A "model" whose class-0 logit is the input's height everywhere: at scale s it scores round(s * 5) rows.
    def height_as_class_0(images):
        height = np.full(images.shape[:3], images.shape[1], "float32")
        return np.stack([height / 4, np.zeros_like(height)], axis=-1)

    probabilities = augmented_inference(height_as_class_0, scales=(0.5, 1.0, 1.3, 2.0))(np.zeros((2, 5, 7, 3)))
    assert probabilities.shape == (2, 5, 7, 2) and probabilities.dtype == np.float32
    heights = [3, 5, 7, 10]  # 2.5 rounds up; 6.5 rounds up
    assert [scaled_size((5, 7), s)[0] for s in (0.5, 1.0, 1.3, 2.0)] == heights
    expected = np.mean(_sigmoid(np.array(heights) / 4))
    np.testing.assert_allclose(probabilities[..., 0], expected, rtol=1e-6)


def test_scaled_logits_are_resized_back_bilinearly_with_half_pixel_centres():
    # The image's columns 0, 1, 2, 3 are the class-0 logits. Doubled (half-pixel bilinear, edges clamped):
    # 0, .25, .75, 1.25, 1.75, 2.25, 2.75, 3; halved back, each output samples between two of these:
    # .125, 1, 2, 2.875.
    def first_channel_as_class_0(images):
        return np.stack([images[..., 0], np.zeros(images.shape[:3])], axis=-1).astype("float32")

    images = np.broadcast_to(np.arange(4, dtype="float32")[None, None, :, None], (1, 3, 4, 3))
    probabilities = augmented_inference(first_channel_as_class_0, scales=(1.0, 2.0))(images)
    expected = (_sigmoid([0, 1, 2, 3]) + _sigmoid([0.125, 1, 2, 2.875])) / 2
    np.testing.assert_allclose(probabilities[0, 1, :, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(probabilities[0, 0], probabilities[0, 2], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scales": ()}, r"`scales` must be a non-empty sequence of scaling factors from 0.1 to 4, e\.g\. \(1\.0, "
         r"1\.25, 1\.5\)\. Received scales=\(\)"),
        ({"scales": (1.0, 0.0)}, r"Received scales=\(1\.0, 0\.0\)"),
        ({"scales": (1.0, 125)}, r"Received scales=\(1\.0, 125\)"),
        ({"scales": 1.5}, r"Received scales=1\.5"),
        ({"scales": (1.0, 1.25, 1)}, r"`scales` gives a scaling factor twice: each is scored once, so give each "
         r"once\. Received scales=\(1\.0, 1\.25, 1\)"),
        ({"scales": np.array([[1.0]])}, r"Received scales=array\(\[\[1\.\]\]\)"),
        ({"flip": "yes"}, r"`flip` must be True or False. Received flip='yes'"),
    ],
)
def test_bad_augmentation_is_refused_before_any_work(kwargs, message):
    def never(images):
        raise AssertionError("ran")

    with pytest.raises(ValueError, match=message):
        augmented_inference(never, **kwargs)
    with pytest.raises(ValueError, match=message):
        keras_fcn.predict(never, [np.zeros((4, 4, 3))], **kwargs)


def test_scales_may_be_a_numpy_array():
    # A 1-D array is a sequence of factors as a list is: the same probabilities.
    def class_0_everywhere(images):
        return np.concatenate([np.ones(images.shape[:3] + (1,)), np.zeros(images.shape[:3] + (1,))], -1)

    image = np.zeros((1, 4, 6, 3))
    from_array = augmented_inference(class_0_everywhere, scales=np.array([1.0, 1.5]))(image)
    from_list = augmented_inference(class_0_everywhere, scales=[1.0, 1.5])(image)
    np.testing.assert_array_equal(from_array, from_list)
    np.testing.assert_allclose(from_array[..., 0], 1 / (1 + np.exp(-1.0)), rtol=1e-6)  # softmax of (1, 0)
