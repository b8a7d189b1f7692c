"""Batching pairs of different sizes, and the whole input pipeline in one call."""

import tensorflow as tf

from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.data.transforms import (
    IMAGENET_MEAN,
    augment,
    check_unbatched,
    pad_pair,
    resize_pair,
    validate_mean,
    validate_size,
)
from keras_fcn.errors import InvalidArgumentError

FITS = ("pad", "resize_crop")


def _as_float(image, mask):
    return tf.cast(image, tf.float32), mask


def _pad_batches(dataset, batch_size, mean, drop_remainder):
    """Pads each batch at the bottom and right to its largest height and width."""

    def with_valid(image, mask):
        return image, mask, tf.ones_like(mask)

    def fill_mean(images, masks, valid):
        return tf.where(valid[..., None] == 1, images, tf.constant(mean)), masks

    dataset = dataset.map(with_valid, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.padded_batch(
        batch_size,
        padded_shapes=([None, None, 3], [None, None], [None, None]),
        padding_values=(0.0, tf.constant(IGNORE_LABEL, tf.uint8), tf.constant(0, tf.uint8)),
        drop_remainder=drop_remainder,
    )
    return dataset.map(fill_mean, num_parallel_calls=tf.data.AUTOTUNE)


def _pad_to(size, mean):
    def pad(image, mask):
        tf.debugging.assert_less_equal(
            tf.shape(mask),
            tf.constant(size),
            message=f"An image is larger than size={size} and cannot be padded to it; "
            "use a larger size or fit='resize_crop'",
        )
        image, mask = pad_pair(image, mask, size, mean)
        return tf.ensure_shape(image, size + (3,)), tf.ensure_shape(mask, size)

    return pad


def _resize_crop_to(size):
    def resize_crop(image, mask):
        shape = tf.cast(tf.shape(mask), tf.float32)
        scale = tf.reduce_max(tf.constant(size, tf.float32) / shape)
        image, mask = resize_pair(image, mask, tf.cast(tf.math.ceil(shape * scale), tf.int32))
        top, left = tf.unstack((tf.shape(mask) - tf.constant(size)) // 2)
        window = (slice(top, top + size[0]), slice(left, left + size[1]))
        return tf.ensure_shape(image[window], size + (3,)), tf.ensure_shape(mask[window], size)

    return resize_crop


def batch(dataset, batch_size, *, size=None, fit="pad", mean=IMAGENET_MEAN, drop_remainder=False):
    """Batches image/mask pairs whose sizes may differ.

    With `fit="pad"`, pairs are padded at the bottom and right, images with
    `mean` and masks with 255 (ignored), to `size` or, without one, to the
    largest height and width in each batch; nothing is resized. With
    `fit="resize_crop"`, each pair is scaled (keeping its aspect ratio;
    image bilinear, mask nearest neighbour) to cover `size`, and the centre
    `size` window is kept.

    Args:
        dataset: a `tf.data.Dataset` of single `(image, mask)` pairs: image
            `(H, W, 3)` (uint8 or float, RGB in [0, 255]), mask uint8
            `(H, W)`.
        batch_size: int, pairs per batch.
        size: `None` or `(height, width)` of every batch; required by
            `fit="resize_crop"`. With `fit="pad"`, a larger image is an error.
        fit: `"pad"` or `"resize_crop"`.
        mean: RGB fill colour of padded image pixels, in [0, 255].
        drop_remainder: bool, whether to drop a last, smaller batch.

    Returns:
        A `tf.data.Dataset` of `(images, masks)`: float32 `(B, h, w, 3)` RGB
        in [0, 255] and uint8 `(B, h, w)`.

    Example:

    >>> val = keras_fcn.data.batch(keras_fcn.data.camvid("data/camvid", "val"), 4)
    """
    check_unbatched(dataset, "batch")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"`batch_size` must be a positive int. Received batch_size={batch_size!r}")
    if fit not in FITS:
        raise InvalidArgumentError(f"`fit` must be one of {FITS}. Received fit={fit!r}")
    if fit == "resize_crop" and size is None:
        raise InvalidArgumentError("`fit='resize_crop'` needs a `size`. Received size=None")
    mean = validate_mean(mean)
    dataset = dataset.map(_as_float, num_parallel_calls=tf.data.AUTOTUNE)
    if size is None:
        return _pad_batches(dataset, batch_size, mean, drop_remainder)
    size = validate_size(size, "size")
    fit_pair = _pad_to(size, mean) if fit == "pad" else _resize_crop_to(size)
    dataset = dataset.map(fit_pair, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=drop_remainder)


def make_pipeline(
    dataset,
    batch_size,
    *,
    training,
    crop_size=None,
    scale_range=(0.5, 2.0),
    flip=True,
    jitter=0.0,
    mean=IMAGENET_MEAN,
    shuffle_buffer=256,
    cache=False,
    seed=None,
):
    """The input pipeline for `model.fit` or `model.evaluate` in one call.

    Training: optional cache, shuffle, `augment`, `batch` (dropping a last
    smaller batch), prefetch. Evaluation: optional cache, `batch` (padding
    to the largest pair of each batch), prefetch; the augmentation and
    shuffling arguments apply to training only.

    Args:
        dataset: a `tf.data.Dataset` of single `(image, mask)` pairs, such as
            `keras_fcn.data.camvid(...)`.
        batch_size: int.
        training: bool, whether to shuffle and augment.
        crop_size, scale_range, flip, jitter, mean: see `augment`; `mean`
            also fills the padding of `batch`.
        shuffle_buffer: int, the shuffle buffer size in pairs (0: no
            shuffling).
        cache: `False`, `True` (cache the decoded pairs in memory) or a file
            name prefix (cache on disk).
        seed: optional int, for a reproducible order and augmentation.

    Returns:
        A `tf.data.Dataset` of `(images, masks)`: float32 `(B, h, w, 3)` RGB
        in [0, 255] and uint8 `(B, h, w)`, 255 = ignore.

    Example:

    >>> train = keras_fcn.data.make_pipeline(
    ...     keras_fcn.data.camvid("data/camvid", "train"), 8,
    ...     training=True, crop_size=(360, 480), cache=True, seed=0)
    >>> model.fit(train, epochs=10)
    """
    if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
        raise InvalidArgumentError(f"`shuffle_buffer` must be an int >= 0. Received shuffle_buffer={shuffle_buffer!r}")
    if not isinstance(cache, (bool, str)):
        raise InvalidArgumentError(f"`cache` must be a bool or a file name prefix. Received cache={cache!r}")
    if cache is not False:
        dataset = dataset.cache("" if cache is True else cache)
    if not training:
        dataset = batch(dataset, batch_size, mean=mean)
    else:
        if shuffle_buffer:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        dataset = augment(
            dataset,
            crop_size=crop_size,
            scale_range=scale_range,
            flip=flip,
            jitter=jitter,
            mean=mean,
            seed=seed,
        )
        dataset = batch(dataset, batch_size, size=crop_size, mean=mean, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
