"""Batching pairs of different sizes, and the whole input pipeline in one call."""

import tensorflow as tf

from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.data.transforms import (
    IMAGENET_MEAN,
    SHUFFLE_STREAM,
    augment,
    check_epoch_seed,
    check_unbatched,
    keyed_seed,
    pad_pair,
    resize_pair,
    validate_mean,
    validate_size,
)
from keras_fcn.errors import InvalidArgumentError

FITS = ("pad", "resize_crop")
# `batch_by_size` groups the pairs of this many batches at a time: memory for as many pairs, and full batches
# where sizes repeat (all of them for a dataset of one size).
GROUPING_WINDOW_BATCHES = 8


def _as_float(image, mask):
    return tf.cast(image, tf.float32), mask


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"`{name}` must be a positive int. Received {name}={value!r}")


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
        fits = tf.debugging.assert_less_equal(
            tf.shape(mask),
            tf.constant(size),
            message=f"An image is larger than size={size} and cannot be padded to it; "
            "use a larger size or fit='resize_crop'",
        )
        # Graph ops run in any order their data allows: without this, the shape
        # check of the padded pair may fail first, with a message naming no size.
        with tf.control_dependencies([fits]):
            image, mask = tf.identity(image), tf.identity(mask)
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
    _positive_int(batch_size, "batch_size")
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


def batch_by_size(dataset, batch_size, *, keep_apart=None, window=None):
    """Batches pairs of the same size together, so that each is seen at its own size: nothing padded or resized.

    For evaluation, where padding would change the figures (the reference
    code evaluates one image at a time): every pair comes out once, in a
    batch of pairs of its height and width, whatever `batch_size`. Pairs
    are read `window` at a time; within a window, those of the same size
    (and `keep_apart`) are batched in their order, up to `batch_size` a
    batch, so batches may be smaller than `batch_size` and the pairs come
    out in another order. A dataset of one size is batched as `batch` does.

    Args:
        dataset: a `tf.data.Dataset` of single `(image, mask)` pairs: image
            `(H, W, 3)` (uint8 or float, RGB in [0, 255]), mask uint8
            `(H, W)`.
        batch_size: int, at most this many pairs a batch.
        keep_apart: None, or a function of `(image, mask)` returning a bool
            scalar tensor: pairs for which it is True are batched only with
            each other (e.g. masks without any labelled pixel).
        window: int, the number of pairs grouped at a time (held in memory);
            defaults to `GROUPING_WINDOW_BATCHES` batches.

    Returns:
        A `tf.data.Dataset` of `(images, masks)`: float32 `(B, H, W, 3)` RGB
        in [0, 255] and uint8 `(B, H, W)`, `B <= batch_size`; with
        `batch_size=1`, of known length where `dataset`'s is known.

    Example:

    >>> val = keras_fcn.data.batch_by_size(keras_fcn.data.voc("VOCdevkit", "val"), 8)
    """
    check_unbatched(dataset, "batch_by_size")
    _positive_int(batch_size, "batch_size")
    window = GROUPING_WINDOW_BATCHES * batch_size if window is None else window
    _positive_int(window, "window")

    def key(image, mask):
        height, width = tf.unstack(tf.shape(mask, out_type=tf.int64))  # each below 2**31
        apart = tf.constant(0, tf.int64) if keep_apart is None else tf.cast(keep_apart(image, mask), tf.int64)
        return (apart * 2**31 + height) * 2**31 + width

    def group(images, masks):
        pairs = tf.data.Dataset.zip((images, masks))
        return pairs.group_by_window(key, lambda _, same: same.batch(batch_size), window_size=batch_size)

    batches = dataset.window(window).flat_map(group).map(_as_float, num_parallel_calls=tf.data.AUTOTUNE)
    count = dataset.cardinality()
    if batch_size == 1 and count >= 0:  # a batch a pair: the length is known (for progress bars)
        batches = batches.apply(tf.data.experimental.assert_cardinality(count))
    return batches


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
    epoch=None,
):
    """The input pipeline for `model.fit` or `model.evaluate` in one call.

    Training: optional cache, shuffle, `augment`, `batch` (dropping a last
    smaller batch), prefetch. Evaluation: optional cache, `batch_by_size`
    (each pair at its own size, so the figures do not depend on
    `batch_size`), prefetch; the augmentation and shuffling arguments apply
    to training only.

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
        epoch: None, or the number of this pass over `dataset` (an int or an
            int64 scalar tensor), with `seed`: the order and augmentation of
            the pass are then a function of `seed` and `epoch` only,
            whichever process runs it, not of the passes this process made
            before (see `augment`). Training only.

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
        return batch_by_size(dataset, batch_size).prefetch(tf.data.AUTOTUNE)
    check_epoch_seed(seed, epoch)

    def one_pass(number):
        pairs = dataset
        if shuffle_buffer and number is None:
            pairs = pairs.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        elif shuffle_buffer:
            # The order from the shuffle's own seed alone: with a graph-level seed set (as
            # `keras.utils.set_random_seed` sets it), TensorFlow would draw it from both (and fails
            # on a seed tensor when that seed is 0). Cleared here, in the function of this pass only.
            tf.random.set_seed(None)
            order = keyed_seed(seed, SHUFFLE_STREAM, number)
            pairs = pairs.shuffle(shuffle_buffer, seed=order, reshuffle_each_iteration=False)
        pairs = augment(
            pairs,
            crop_size=crop_size,
            scale_range=scale_range,
            flip=flip,
            jitter=jitter,
            mean=mean,
            seed=seed,
            epoch=number,
        )
        return batch(pairs, batch_size, size=crop_size, mean=mean, drop_remainder=True)

    if epoch is None:
        batches = one_pass(None)
    else:
        batches = tf.data.Dataset.from_tensors(tf.cast(epoch, tf.int64)).flat_map(one_pass)
    return batches.prefetch(tf.data.AUTOTUNE)
