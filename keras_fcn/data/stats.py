"""Class statistics of a segmentation dataset, for class weighting."""

import numpy as np
import tensorflow as tf

from keras_fcn.data.decode import IGNORE_LABEL, format_list, validate_num_classes

# Bin of mask values outside [0, 255].
_OUT_OF_RANGE = IGNORE_LABEL + 1


def class_frequencies(dataset, num_classes):
    """The share of the labelled pixels that each class has in a dataset.

    Pixels with the ignore label 255 are not counted. One pass over the
    dataset; batched and unbatched datasets both work.

    Args:
        dataset: a `tf.data.Dataset` of `(image, mask)` with integer masks of
            any shape, e.g. uint8 `(H, W)` or `(B, H, W)`.
        num_classes: int, the number of classes.

    Returns:
        float64 numpy array `(num_classes,)` summing to 1 (all zeros if no
        pixel is labelled).

    Raises:
        ValueError: if a mask has a value that is neither a class id nor 255.

    Example:

    >>> freq = keras_fcn.data.class_frequencies(
    ...     keras_fcn.data.camvid("data/camvid", "train"), 11)
    >>> weights = keras_fcn.data.median_frequency_weights(freq)
    """
    validate_num_classes(num_classes)

    def count(counts, pair):
        values = tf.reshape(tf.cast(pair[1], tf.int32), [-1])
        values = tf.where((values >= 0) & (values <= IGNORE_LABEL), values, _OUT_OF_RANGE)
        return counts + tf.math.bincount(
            values, minlength=_OUT_OF_RANGE + 1, maxlength=_OUT_OF_RANGE + 1, dtype=tf.int64
        )

    counts = dataset.reduce(tf.zeros([_OUT_OF_RANGE + 1], tf.int64), count).numpy()
    counts[IGNORE_LABEL] = 0
    bad = np.flatnonzero(counts[num_classes:]) + num_classes
    if bad.size:
        names = ["outside 0..255" if v == _OUT_OF_RANGE else int(v) for v in bad]
        raise ValueError(
            f"Masks have values [{format_list(names)}] that are neither class ids "
            f"(0 to {num_classes - 1}) nor the ignore label {IGNORE_LABEL}."
        )
    total = counts.sum()
    return counts[:num_classes] / total if total else np.zeros(num_classes)


def median_frequency_weights(frequencies):
    """Class weights by median frequency balancing (Eigen and Fergus, ICCV 2015).

    `weight[c] = median(frequencies) / frequencies[c]`, the median taken over
    the classes that occur; classes that never occur get weight 0.

    Args:
        frequencies: 1-D array of class frequencies, e.g. from
            `class_frequencies`.

    Returns:
        float64 numpy array of the same shape.
    """
    frequencies = np.asarray(frequencies, dtype=np.float64)
    if frequencies.ndim != 1 or (frequencies < 0).any() or not (frequencies > 0).any():
        raise ValueError(
            "`frequencies` must be a 1-D array of non-negative numbers, one of them positive. "
            f"Received {frequencies!r}"
        )
    present = frequencies > 0
    weights = np.zeros_like(frequencies)
    weights[present] = np.median(frequencies[present]) / frequencies[present]
    return weights
