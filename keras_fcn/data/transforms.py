"""Geometric and photometric augmentation of image/mask pairs.

Images are resized bilinearly, masks always with nearest neighbour, so a
mask only ever holds values it had. Padding fills images with a mean colour
and masks with the ignore label 255.
"""

import numbers

import tensorflow as tf

from keras_fcn.constants import IGNORE_LABEL, IMAGENET_MEAN, SCALE_FACTOR_LIMITS, is_scale_factor
from keras_fcn.errors import InvalidArgumentError

# The streams of keyed draws (`keyed_seed`), kept apart: the order of a pass, and the augmentation of its pairs.
SHUFFLE_STREAM, AUGMENT_STREAM = 0, 1


def validate_size(size, name):
    """Checks a `(height, width)` pair of positive ints and returns it as a tuple."""
    valid = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    )
    if not valid:
        raise InvalidArgumentError(
            f"`{name}` must be a (height, width) pair of positive ints. Received {name}={size!r}"
        )
    return tuple(size)


def validate_mean(mean):
    """Checks an RGB mean colour and returns it as a tuple of 3 floats."""
    if not (
        isinstance(mean, (tuple, list))
        and len(mean) == 3
        and all(isinstance(m, numbers.Real) and 0 <= m <= 255 for m in mean)
    ):
        raise InvalidArgumentError(f"`mean` must be 3 numbers (R, G, B) in [0, 255]. Received mean={mean!r}")
    return tuple(float(m) for m in mean)


def check_unbatched(dataset, function):
    """Raises unless `dataset` yields single `(image (H, W, 3), mask (H, W))` pairs."""
    spec = dataset.element_spec
    if not (
        isinstance(spec, tuple)
        and len(spec) == 2
        and spec[0].shape.rank == 3
        and spec[1].shape.rank == 2
    ):
        raise InvalidArgumentError(
            f"`{function}` takes a dataset of single (image (H, W, 3), mask (H, W)) "
            f"pairs, before batching. Received a dataset with element_spec={spec!r}"
        )


def resize_pair(image, mask, size):
    """Resizes an image bilinearly and its mask with nearest neighbour.

    Args:
        image: float32 tensor `(H, W, 3)`.
        mask: uint8 tensor `(H, W)`.
        size: `(height, width)`, ints or int32 tensors.

    Returns:
        `(image, mask)`: float32 `(height, width, 3)` and uint8
        `(height, width)`.
    """
    image = tf.image.resize(image, size, method="bilinear")
    mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
    return image, mask


def pad_pair(image, mask, size, mean):
    """Pads at the bottom and right up to at least `size`: images with `mean`, masks with 255.

    Args:
        image: float32 tensor `(H, W, 3)`.
        mask: uint8 tensor `(H, W)`.
        size: `(height, width)`; a side already at least this long is kept.
        mean: 3 floats, the RGB fill colour.

    Returns:
        `(image, mask)`: float32 `(max(H, height), max(W, width), 3)` and
        uint8 of the same height and width.
    """
    shape = tf.shape(mask)
    paddings = [[0, tf.maximum(size[0] - shape[0], 0)], [0, tf.maximum(size[1] - shape[1], 0)]]
    channels = [tf.pad(image[..., c], paddings, constant_values=mean[c]) for c in range(3)]
    return tf.stack(channels, axis=-1), tf.pad(mask, paddings, constant_values=IGNORE_LABEL)


def check_epoch_seed(seed, epoch):
    """Raises unless `epoch` is None or comes with a `seed`, which keyed draws need."""
    if epoch is not None and seed is None:
        raise InvalidArgumentError(
            f"`epoch` keys the random draws by `seed`: give a seed too. Received seed=None, epoch={epoch!r}"
        )


def keyed_seed(seed, *keys):
    """A random int64 that is a function of `seed` and `keys` only, the same in any process (stateless draws).

    Args:
        seed: int.
        *keys: ints or int64 scalar tensors, e.g. a stream (`SHUFFLE_STREAM`,
            `AUGMENT_STREAM`), an epoch and a position in it.

    Returns:
        An int64 scalar tensor, uniform over the int64 range.
    """
    key = tf.constant([seed, 0], tf.int64)
    for number in keys:
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(number, tf.int64))
    return tf.random.stateless_uniform([], key, minval=None, maxval=None, dtype=tf.int64)


def _random_scale(image, mask, scale_range, seed):
    scale = tf.random.stateless_uniform([], seed, scale_range[0], scale_range[1])
    shape = tf.cast(tf.shape(mask), tf.float32)
    size = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1)
    return resize_pair(image, mask, size)


def _random_window(image, mask, crop_size, seed):
    """The part of the image inside a random `crop_size` window of the bottom/right padded image."""
    shape = tf.shape(mask)
    limits = tf.maximum(shape - tf.constant(crop_size), 0) + 1
    top = tf.random.stateless_uniform([], seed, 0, limits[0], dtype=tf.int32)
    left = tf.random.stateless_uniform([], tf.reverse(seed, [0]), 0, limits[1], dtype=tf.int32)
    window = (slice(top, top + crop_size[0]), slice(left, left + crop_size[1]))
    return image[window], mask[window]


def _jitter(image, strength, seed):
    """Random brightness, contrast and saturation, each of relative size up to `strength`."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    x = image / 255.0
    x = tf.image.stateless_random_brightness(x, strength, seeds[0])
    x = tf.image.stateless_random_contrast(x, 1.0 - strength, 1.0 + strength, seeds[1])
    x = tf.image.stateless_random_saturation(x, 1.0 - strength, 1.0 + strength, seeds[2])
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def validate_scale_range(scale_range, name):
    """Checks a `(min, max)` pair of scaling factors, `min <= max`, both within `SCALE_FACTOR_LIMITS`.

    Returns:
        The pair as a tuple of floats.
    """
    low, high = SCALE_FACTOR_LIMITS
    if not (
        isinstance(scale_range, (tuple, list))
        and len(scale_range) == 2
        and all(is_scale_factor(s) for s in scale_range)
        and scale_range[0] <= scale_range[1]
    ):
        raise InvalidArgumentError(
            f"`{name}` must be (min, max) scaling factors with {low:g} <= min <= max <= {high:g}. "
            f"Received {name}={scale_range!r}"
        )
    return tuple(float(s) for s in scale_range)


def validate_jitter(jitter, name):
    """Checks a colour jitter strength, a number in `[0, 1)`, and returns it as a float."""
    if not (isinstance(jitter, numbers.Real) and not isinstance(jitter, bool) and 0 <= jitter < 1):
        raise InvalidArgumentError(f"`{name}` must be a number in [0, 1). Received {name}={jitter!r}")
    return float(jitter)


def _validate_augment_args(crop_size, scale_range, flip, jitter, seed, epoch):
    if crop_size is not None:
        validate_size(crop_size, "crop_size")
    if scale_range is not None:
        validate_scale_range(scale_range, "scale_range")
    if not isinstance(flip, bool):
        raise InvalidArgumentError(f"`flip` must be a bool. Received flip={flip!r}")
    validate_jitter(jitter, "jitter")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise InvalidArgumentError(f"`seed` must be None or an int. Received seed={seed!r}")
    check_epoch_seed(seed, epoch)


def augment(
    dataset,
    *,
    crop_size=None,
    scale_range=(0.5, 2.0),
    flip=True,
    jitter=0.0,
    mean=IMAGENET_MEAN,
    seed=None,
    epoch=None,
):
    """Randomly scales, crops, jitters and flips image/mask pairs.

    Steps, each skipped when off: scale both by a factor drawn uniformly
    from `scale_range` (image bilinear, mask nearest neighbour); cut a
    `crop_size` window at a random position, padding an image smaller than
    the window at the bottom and right (image with `mean`, mask with 255);
    jitter brightness, contrast and saturation of the image; flip both
    horizontally with probability 1/2. Pairs keep their pixel alignment
    throughout.

    The random draws of each pair come from `seed` and the pair's position
    in the pass over `dataset`. Without `epoch`, with a seed the same
    pipeline gives the same augmentations, and each new pass over the
    dataset (epoch) gives new ones, counted from the first pass of this
    process. With `epoch`, the draws are a function of `seed`, `epoch` and
    the position only (`keyed_seed`): the same pass in any process, so a
    resumed run replays the epoch it resumes at.

    Args:
        dataset: a `tf.data.Dataset` of single `(image, mask)` pairs: image
            `(H, W, 3)` (uint8 or float, RGB in [0, 255]), mask uint8
            `(H, W)`.
        crop_size: `None` (keep the size) or `(height, width)`.
        scale_range: `None` (no scaling) or `(min, max)` factors.
        flip: bool, random horizontal flips.
        jitter: float in `[0, 1)`: brightness shifts of up to `jitter * 255`
            and contrast and saturation factors in `[1 - jitter, 1 + jitter]`;
            0 turns jitter off.
        mean: RGB fill colour of padded image pixels, in [0, 255].
        seed: optional int, for reproducible augmentation.
        epoch: None, or the number of this pass over `dataset`, an int or an
            int64 scalar tensor (e.g. in `tf.data.Dataset.flat_map`); needs
            `seed`.

    Returns:
        A `tf.data.Dataset` of `(image, mask)`: float32 `(h, w, 3)` in
        [0, 255] and uint8 `(h, w)`, where `(h, w)` is `crop_size` if given.

    Example:

    >>> train = keras_fcn.data.camvid("data/camvid", "train")
    >>> train = keras_fcn.data.augment(train, crop_size=(360, 480), seed=0)
    """
    check_unbatched(dataset, "augment")
    _validate_augment_args(crop_size, scale_range, flip, jitter, seed, epoch)
    crop_size = None if crop_size is None else tuple(crop_size)
    mean = validate_mean(mean)

    if epoch is None:
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    else:
        randoms = tf.data.Dataset.counter()  # the positions, keyed in `transform` (in parallel)

    def transform(pair, random):
        image, mask = pair
        if epoch is not None:
            random = keyed_seed(seed, AUGMENT_STREAM, epoch, random)
        seeds = tf.random.experimental.stateless_split(tf.stack([random, 0]), 4)
        image = tf.cast(image, tf.float32)
        if scale_range is not None:
            image, mask = _random_scale(image, mask, scale_range, seeds[0])
        if crop_size is not None:
            image, mask = _random_window(image, mask, crop_size, seeds[1])
        if jitter:
            image = _jitter(image, float(jitter), seeds[2])
        if crop_size is not None:
            image, mask = pad_pair(image, mask, crop_size, mean)
            image.set_shape(crop_size + (3,))
            mask.set_shape(crop_size)
        if flip:
            flipped = tf.random.stateless_uniform([], seeds[3]) < 0.5
            image = tf.cond(flipped, lambda: tf.reverse(image, [1]), lambda: image)
            mask = tf.cond(flipped, lambda: tf.reverse(mask, [1]), lambda: mask)
        return image, mask

    return tf.data.Dataset.zip((dataset, randoms)).map(
        transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
