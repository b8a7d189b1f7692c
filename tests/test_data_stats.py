"""Class statistics of keras_fcn.data against numpy counts and hand-computed weights."""

import numpy as np
import pytest
import tensorflow as tf

from keras_fcn import data


def mask_dataset(masks):
    images = np.zeros(masks.shape + (3,), np.uint8)
    return tf.data.Dataset.from_tensor_slices((images, masks))


def test_class_frequencies_match_numpy_and_ignore_255(rng):
    masks = rng.integers(0, 4, (6, 5, 7)).astype(np.uint8)
    masks[rng.random(masks.shape) < 0.3] = 255
    labelled = masks[masks != 255]
    want = np.bincount(labelled, minlength=5) / labelled.size

    np.testing.assert_allclose(data.class_frequencies(mask_dataset(masks), 5), want)
    np.testing.assert_allclose(data.class_frequencies(mask_dataset(masks).batch(4), 5), want)
    assert want[4] == 0


def test_class_frequencies_reject_values_out_of_range():
    masks = np.array([[[0, 3, 9, 255]]], np.uint8)
    with pytest.raises(ValueError, match=r"values \[3, 9\] that are neither class ids \(0 to 2\)"):
        data.class_frequencies(mask_dataset(masks), 3)


def test_median_frequency_weights():
    weights = data.median_frequency_weights([0.5, 0.25, 0.125, 0.125, 0.0])
    # Median of the present classes (0.5, 0.25, 0.125, 0.125) is 0.1875.
    np.testing.assert_allclose(weights, [0.375, 0.75, 1.5, 1.5, 0.0])
    with pytest.raises(ValueError, match=r"one of them positive"):
        data.median_frequency_weights([0.0, 0.0])
