"""The batches of a run: training keyed by the absolute epoch, validation with each image at its own size.

Training: epoch `e` of a run reads passes over the training pairs whose
order and augmentation are a function of the run's seed and of `e` only
(`keras_fcn.data.make_pipeline` with `epoch`), so that a run resumed at
epoch `e` in a new process reads what the uninterrupted run reads, and
every epoch reads another order however often the run is stopped.

Validation: each image at its own size (`keras_fcn.data.batch_by_size`,
nothing padded or resized), with per-image loss weights that make Keras's
validation loss the mean over the images of each image's loss. The
validation figures (`val_loss`, `val_mean_iou`, ...) are then those of the
images taken one at a time, as the reference code evaluates, whatever the
batch size.
"""

import math

import tensorflow as tf

from keras_fcn import data as fcn_data
from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.errors import InvalidArgumentError

# Scaling by 1 and no mirroring: the training pairs as they are (cropped to `crop_size` still).
NO_AUGMENTATION = {"scale_range": (1.0, 1.0), "flip": False}


def _too_few(count, batch_size):
    return InvalidArgumentError(
        f"`batch_size` must be at most the number of training pairs, {count}, as each step takes a full batch. "
        f"Received batch_size={batch_size}"
    )


def training_steps(pairs, batch_size, steps_per_epoch):
    """The steps of an epoch, and the passes over the training pairs an epoch reads.

    Args:
        pairs: `tf.data.Dataset` of the training `(image, mask)` pairs.
        batch_size: int, the global batch size.
        steps_per_epoch: int or None (one pass: the full batches of the
            pairs, whose number must then be known).

    Returns:
        A tuple `(steps, passes)` of ints: `passes` passes hold at least
        `steps` full batches.

    Raises:
        keras_fcn.errors.InvalidArgumentError: when `batch_size` exceeds the
            number of pairs (both named), or that number is unknown and
            `steps_per_epoch` is None.
    """
    count = int(pairs.cardinality())
    if count == tf.data.INFINITE_CARDINALITY:
        if steps_per_epoch is None:
            raise InvalidArgumentError(
                "The training dataset repeats forever: pass `steps_per_epoch`. Received steps_per_epoch=None"
            )
        return steps_per_epoch, 1
    if count == tf.data.UNKNOWN_CARDINALITY:
        if steps_per_epoch is None:
            raise InvalidArgumentError(
                "The training dataset's length is unknown: pass `steps_per_epoch`. Received steps_per_epoch=None"
            )
        first = sum(1 for _ in pairs.take(batch_size))
        if first < batch_size:
            raise _too_few(first, batch_size)
        return steps_per_epoch, steps_per_epoch  # each pass holds a batch at least
    if count < batch_size:
        raise _too_few(count, batch_size)
    batches = count // batch_size
    steps = steps_per_epoch or batches
    return steps, math.ceil(steps / batches)


def training_batches(pairs, options, seed, first_epoch, steps, passes):
    """The training batches of epochs `first_epoch` to `options.epochs - 1`, each a function of `seed` and its number.

    Epoch `e` reads the first `steps` batches of passes `e * passes`,
    `e * passes + 1`, ... over `pairs`, each shuffled and augmented by
    `keras_fcn.data.make_pipeline` keyed by `seed` and the pass's number.

    Args:
        pairs: `tf.data.Dataset` of the training `(image, mask)` pairs.
        options: the run's `keras_fcn.training.TrainingOptions`
            (`batch_size`, `crop_size`, `augment`, `scale_range`, `jitter`, `epochs`).
        seed: int, the run's seed.
        first_epoch: int, the epoch training starts at (0, or where a
            resumed run's backup ends).
        steps, passes: ints, as `training_steps` returns them.

    Returns:
        A `tf.data.Dataset` of `(options.epochs - first_epoch) * steps`
        batches `(images, masks)`, for `model.fit` with
        `steps_per_epoch=steps` and `initial_epoch=first_epoch`.
    """
    augmentation = {"scale_range": options.scale_range, "jitter": options.jitter} if options.augment else NO_AUGMENTATION

    def epoch_batches(epoch):
        def one_pass(index):
            return fcn_data.make_pipeline(
                pairs,
                options.batch_size,
                training=True,
                crop_size=options.crop_size,
                seed=seed,
                epoch=epoch * passes + index,
                **augmentation,
            )

        return tf.data.Dataset.range(passes).flat_map(one_pass).take(steps)

    epochs = tf.data.Dataset.range(first_epoch, options.epochs)
    return epochs.flat_map(epoch_batches).prefetch(tf.data.AUTOTUNE)


def _labelled(masks, num_classes):
    """Whether each pixel holds a class: below `num_classes` and not the ignore label."""
    masks = tf.cast(masks, tf.int32)
    return tf.logical_and(masks < num_classes, masks != IGNORE_LABEL)


def validation_batches(pairs, batch_size, num_classes, loss_reduction):
    """Validation batches of images at their own sizes, with the loss weights that make the loss a mean over images.

    Keras's validation loss is the mean of the batches' losses weighted by
    their numbers of images. The weight of each image makes a batch's loss
    the mean of its images' own losses: `1 / (labelled pixels)` for the
    `"mean"` reduction (which divides by the batch's weighted pixel count),
    `1 / (images in the batch)` for `"sum"`. Images without any labelled
    pixel, whose own mean loss is 0, are batched apart from the others.
    The figures count every labelled pixel once, whatever its weight.

    Args:
        pairs: `tf.data.Dataset` of the validation `(image, mask)` pairs.
        batch_size: int, at most this many images a batch.
        num_classes: int.
        loss_reduction: `"mean"` or `"sum"`, the loss's reduction.

    Returns:
        A `tf.data.Dataset` of `(images, masks, weights)`: float32
        `(B, H, W, 3)`, uint8 `(B, H, W)` and float32 `(B,)`, of known
        cardinality (counted by a pass over the pairs here), which spares
        Keras's warning that the data "ran out" at the end of each
        evaluation.
    """

    def unlabelled(image, mask):
        return tf.logical_not(tf.reduce_any(_labelled(mask, num_classes)))

    def weighted(images, masks):
        if loss_reduction == "sum":
            count = tf.shape(masks)[:1]
            weights = tf.fill(count, 1.0 / tf.cast(count[0], tf.float32))
        else:
            pixels = tf.reduce_sum(tf.cast(_labelled(masks, num_classes), tf.float32), axis=[1, 2])
            weights = 1.0 / tf.maximum(pixels, 1.0)
        return images, masks, weights

    batches = fcn_data.batch_by_size(pairs, batch_size, keep_apart=unlabelled)
    count = batches.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
    batches = batches.apply(tf.data.experimental.assert_cardinality(count))
    return batches.map(weighted, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
