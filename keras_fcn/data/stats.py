"""Class statistics of a segmentation dataset, for class weighting."""

import numpy as np
import tensorflow as tf

from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.data.decode import format_list, validate_num_classes
from keras_fcn.errors import InvalidArgumentError, InvalidDataError

# Bin of mask values outside [0, 255].
_OUT_OF_RANGE = IGNORE_LABEL + 1
# What `class_frequencies` divides a class's pixels by: all labelled pixels, or those of the images holding the class.
FREQUENCY_DENOMINATORS = ("dataset", "images_with_class")


def class_frequencies(dataset, num_classes, *, among="dataset"):
    """The share of the labelled pixels that each class has in a dataset.

    Pixels with the ignore label 255 are not counted, neither in a class
    nor in a total. With `among="dataset"` (the default) the share of class
    `c` is its pixels over all labelled pixels of the dataset, so the shares
    sum to 1. With `among="images_with_class"` it is its pixels over the
    labelled pixels of the images in which `c` occurs: `freq(c)` of median
    frequency balancing (Eigen and Fergus, ICCV 2015, section 4.3; SegNet,
    Badrinarayanan et al., TPAMI 2017), see `median_frequency_weights`.
    One pass over the dataset; batched and unbatched datasets both work.

    Args:
        dataset: a `tf.data.Dataset` of `(image, mask)` with integer masks,
            one image `(H, W)` per element, or a batch `(B, H, W)` whose
            first axis is the image (any trailing axes belong to the image).
        num_classes: int, the number of classes.
        among: `"dataset"` or `"images_with_class"`, see above.

    Returns:
        float64 numpy array `(num_classes,)`, 0 for a class with no pixel.

    Raises:
        ValueError: if a mask has a value that is neither a class id nor
            255, the masks' rank is unknown, or `among` is another value.

    Example:

    >>> freq = keras_fcn.data.class_frequencies(
    ...     keras_fcn.data.camvid("data/camvid", "train"), 11, among="images_with_class")
    >>> weights = keras_fcn.data.median_frequency_weights(freq)
    """
    validate_num_classes(num_classes)
    if among not in FREQUENCY_DENOMINATORS:
        raise InvalidArgumentError(f"`among` must be one of {FREQUENCY_DENOMINATORS}. Received among={among!r}")
    rank = dataset.element_spec[1].shape.rank
    if rank is None:
        raise InvalidArgumentError(
            "`dataset` must have masks of known rank, (H, W) or (B, H, W). Received masks of unknown rank "
            f"in {dataset.element_spec!r}"
        )

    def count(totals, pair):
        masks = tf.cast(pair[1], tf.int32)
        images = tf.reshape(masks, [1, -1] if rank <= 2 else [tf.shape(masks)[0], -1])
        values = tf.where((images >= 0) & (images <= IGNORE_LABEL), images, _OUT_OF_RANGE)
        counts = tf.math.bincount(
            values, minlength=_OUT_OF_RANGE + 1, maxlength=_OUT_OF_RANGE + 1, dtype=tf.int64, axis=-1
        )
        class_counts = counts[:, :num_classes]
        labelled = tf.reduce_sum(class_counts, axis=1, keepdims=True)
        in_images_with_class = tf.reduce_sum(tf.where(class_counts > 0, labelled, 0), axis=0)
        return totals[0] + tf.reduce_sum(counts, axis=0), totals[1] + in_images_with_class

    start = (tf.zeros([_OUT_OF_RANGE + 1], tf.int64), tf.zeros([num_classes], tf.int64))
    counts, in_images_with_class = (total.numpy() for total in dataset.reduce(start, count))
    counts[IGNORE_LABEL] = 0
    bad = np.flatnonzero(counts[num_classes:]) + num_classes
    if bad.size:
        names = ["outside 0..255" if v == _OUT_OF_RANGE else int(v) for v in bad]
        raise InvalidDataError(
            f"Masks have values [{format_list(names)}] that are neither class ids "
            f"(0 to {num_classes - 1}) nor the ignore label {IGNORE_LABEL}."
        )
    counts = counts[:num_classes]
    denominator = np.full(num_classes, counts.sum()) if among == "dataset" else in_images_with_class
    return np.divide(counts, denominator, out=np.zeros(num_classes), where=denominator > 0)


def median_frequency_weights(frequencies):
    """Class weights by median frequency balancing (Eigen and Fergus, ICCV 2015; SegNet).

    `weight[c] = median(freq) / freq(c)`, so classes rarer than the median
    class weigh more than 1 and commoner ones less. Eigen and Fergus
    (section 4.3), whose weighting SegNet (Badrinarayanan, Kendall and
    Cipolla, TPAMI 2017, section 3.4) uses for CamVid, define `freq(c)` as
    "the number of pixels of class c divided by the total number of pixels
    in images where c is present": pass
    `class_frequencies(dataset, num_classes, among="images_with_class")`
    (labelled pixels only, 255 excluded). The median is taken over the
    classes that occur; a class with frequency 0 (no pixel in the dataset)
    has no defined weight and gets 0, which leaves the loss unchanged, as
    no pixel of it is seen.

    Args:
        frequencies: 1-D array of class frequencies, as `class_frequencies`
            returns.

    Returns:
        float64 numpy array of the same shape.

    Raises:
        ValueError: if `frequencies` is not 1-D, has a negative or
            non-finite entry, or no positive one.

    Example:

    >>> keras_fcn.data.median_frequency_weights([0.5, 0.25, 0.1, 0.0])
    array([0.5, 1. , 2.5, 0. ])
    """
    frequencies = np.asarray(frequencies, dtype=np.float64)
    if (
        frequencies.ndim != 1
        or not np.isfinite(frequencies).all()
        or (frequencies < 0).any()
        or not (frequencies > 0).any()
    ):
        raise InvalidArgumentError(
            "`frequencies` must be a 1-D array of finite, non-negative numbers, one of them positive. "
            f"Received {frequencies!r}"
        )
    present = frequencies > 0
    weights = np.zeros_like(frequencies)
    weights[present] = np.median(frequencies[present]) / frequencies[present]
    return weights
