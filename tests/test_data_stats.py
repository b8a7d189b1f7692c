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


# Three images: class 0 in the first two, class 1 in the first, class 2 in the second, class 3 nowhere;
# the third image is all 255. The first has 3 labelled pixels, the second 4.
SEGNET_MASKS = np.array(
    [
        [[0, 0], [1, 255]],
        [[0, 2], [2, 2]],
        [[255, 255], [255, 255]],
    ],
    np.uint8,
)


@pytest.mark.parametrize("batch_size", [None, 2, 3])
def test_class_frequencies_among_images_with_class_hand_computed(batch_size):
    dataset = mask_dataset(SEGNET_MASKS)
    if batch_size:
        dataset = dataset.batch(batch_size)
    # Over all 7 labelled pixels: 3, 1, 3 and 0 of them.
    np.testing.assert_allclose(data.class_frequencies(dataset, 4), [3 / 7, 1 / 7, 3 / 7, 0])
    # Class 0: 3 pixels of the 3 + 4 in images 1 and 2; class 1: 1 of image 1's 3; class 2: 3 of image 2's 4.
    frequencies = data.class_frequencies(dataset, 4, among="images_with_class")
    np.testing.assert_allclose(frequencies, [3 / 7, 1 / 3, 3 / 4, 0])
    # SegNet's median frequency balancing: the median of 1/3, 3/7, 3/4 is 3/7; class 3 has no pixel, weight 0.
    np.testing.assert_allclose(data.median_frequency_weights(frequencies), [1, 9 / 7, 4 / 7, 0])


def test_class_frequencies_refuse_bad_arguments():
    with pytest.raises(ValueError, match=r"among` must be one of \('dataset', 'images_with_class'\). Received"):
        data.class_frequencies(mask_dataset(SEGNET_MASKS), 4, among="x")
    unknown_rank = tf.data.Dataset.from_generator(
        lambda: iter([]),
        output_signature=(tf.TensorSpec(None, tf.uint8), tf.TensorSpec(None, tf.uint8)),
    )
    with pytest.raises(ValueError, match="masks of known rank"):
        data.class_frequencies(unknown_rank, 4)


@pytest.mark.parametrize("frequencies", [[0.5, float("nan")], [[0.5, 0.5]], [0.5, -0.1]])
def test_median_frequency_weights_refuse_bad_frequencies(frequencies):
    with pytest.raises(ValueError, match="`frequencies` must be a 1-D array of finite, non-negative numbers"):
        data.median_frequency_weights(frequencies)
