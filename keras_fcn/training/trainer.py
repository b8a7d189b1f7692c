"""The training loop: data pipelines, model, optimizer and callbacks put together around `model.fit`."""

import os

import keras

from keras_fcn.callbacks import AtomicBackupAndRestore, AtomicModelCheckpoint, ResumableCSVLogger
from keras_fcn.errors import InvalidArgumentError, release_pipelines_on_error
from keras_fcn import losses
from keras_fcn.data.stats import class_frequencies, median_frequency_weights
from keras_fcn.metrics import MeanIoU, PixelAccuracy
from keras_fcn.precision import with_dtype_policy
from keras_fcn.training import run_folder
from keras_fcn.training.datasets import dataset_classes, load_dataset
from keras_fcn.training.distribution import get_strategy, has_workers, process_dir, shard_by_data
from keras_fcn.training.options import TrainingOptions, takes_options
from keras_fcn.training.pipelines import training_batches, training_steps, validation_batches
from keras_fcn.training.policy import dtype_policy, global_policy
from keras_fcn.training.presets import PRESETS
from keras_fcn.training.stages import MODELS, staged_model


def _model(options, num_classes, policy, strategy, resuming):
    """The model to train, under `strategy`: built, or staged from `options.init_from`.

    A run that resumes gets every weight from its backup, so its backbone
    is built without reading (or downloading) its initial weights.
    """
    builder_kwargs = {"num_classes": num_classes, "backbone": options.backbone, "backbone_kwargs": options.backbone_kwargs}
    if options.init_from is not None:
        model = staged_model(options.model, options.init_from, options.init_from_model, builder_kwargs)
    else:
        backbone_weights = None if resuming else options.backbone_weights
        model = MODELS[options.model](**builder_kwargs, backbone_weights=backbone_weights, weights=options.weights)
    synchronized = strategy.num_replicas_in_sync > 1
    if synchronized or options.init_from is not None:
        model = with_dtype_policy(model, policy, synchronized_batch_norm=synchronized)
    return model


def _loss_reduction(options):
    """The loss's reduction: the preset's for the per-pixel losses; the mean over the classes for Dice."""
    return "mean" if options.loss == "dice" else PRESETS[options.optimizer].loss_reduction


def _check_loss(options):
    if options.loss == "dice" and PRESETS[options.optimizer].loss_reduction == "sum":
        raise InvalidArgumentError(
            f'The "dice" loss does not go with the {options.optimizer!r} optimizer preset, whose learning rates are '
            f'for a summed per-pixel loss; use optimizer="sgd" or "adam". Received loss={options.loss!r}, '
            f"optimizer={options.optimizer!r}"
        )


def _check_class_weight_count(options, num_classes):
    weights = options.class_weights
    if weights not in (None, "median_frequency") and len(weights) != num_classes:
        raise InvalidArgumentError(
            f"`class_weights` must have one weight per class, {num_classes}; it has {len(weights)}. "
            f"Received class_weights={list(weights)!r}"
        )


def _class_weights(options, splits):
    """The loss weight of each class: as given, from the training set's median frequencies, or None."""
    if options.class_weights == "median_frequency":
        frequencies = class_frequencies(splits.train, splits.num_classes, among="images_with_class")
        return median_frequency_weights(frequencies).tolist()
    return options.class_weights


def _compile(model, options, num_classes, total_steps, class_weights):
    """Compiles `model` with the preset's optimizer, the loss, and the mean IU and pixel accuracy metrics."""
    preset = PRESETS[options.optimizer]
    learning_rate = preset.learning_rate[options.model] if options.learning_rate is None else options.learning_rate
    weight_decay = preset.weight_decay if options.weight_decay is None else options.weight_decay
    preset.add_coupled_weight_decay(model, weight_decay)
    model.compile(
        optimizer=preset.build_optimizer(learning_rate, weight_decay, total_steps),
        loss=losses.get(options.loss, reduction=_loss_reduction(options), class_weights=class_weights),
        metrics=[MeanIoU(num_classes), PixelAccuracy(num_classes)],
    )


def _validation_data(splits, options):
    """The validation batches, each image at its own size, split between workers by batch; None without any."""
    if splits.validation is None:
        return None
    if options.loss == "dice":
        # A batch's Dice is not the mean of its images' Dice: one image a batch, of weight 1 (the "sum" weights of
        # batches of one), makes the validation loss the mean of the images' own, whatever the batch size.
        val_data = validation_batches(splits.validation, 1, splits.num_classes, "sum")
    else:
        reduction = _loss_reduction(options)
        val_data = validation_batches(splits.validation, options.batch_size, splits.num_classes, reduction)
    if options.validation_steps is not None:
        val_data = val_data.take(options.validation_steps)
    return shard_by_data(val_data)


def _callbacks(run_dir, monitor):
    """The backup, then the log and checkpoints it commits (in this order at each epoch end), and TensorBoard."""
    dependents = [
        ResumableCSVLogger(os.path.join(run_dir, "log.csv")),
        AtomicModelCheckpoint(os.path.join(run_dir, "best.keras"), monitor=monitor, mode="max", save_best_only=True),
        AtomicModelCheckpoint(os.path.join(run_dir, "last.keras")),
    ]
    backup = AtomicBackupAndRestore(os.path.join(run_dir, run_folder.BACKUP_FOLDER), dependents=dependents)
    tensorboard = keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), write_graph=False)
    return backup, [backup, *dependents, tensorboard]


@release_pipelines_on_error
@takes_options
def train(dataset, output_dir, **options):
    """Trains an FCN with the paper's recipe or a modern one, with logs, checkpoints and resume.

    The optimizer presets (`optimizer`) are described in
    `keras_fcn.training.presets`; the run folder in `keras_fcn.training`.
    Calling `train` again with the same `output_dir` resumes after the last
    completed epoch (killed runs included), restoring weights, optimizer
    state and learning-rate schedule position, and continuing `log.csv`;
    each epoch's batches are a function of the seed and the epoch's number,
    so the resumed run ends where the uninterrupted run ends. The
    validation figures are those of each image at its own size, the same
    for any `batch_size` (`keras_fcn.training.pipelines`). Every option
    below is also a flag of `keras-fcn train` (`keras_fcn.training.options`).

    Args:
        dataset: a dataset name, folder or `tf.data.Dataset` of
            `(image, mask)` pairs; see `keras_fcn.training.load_dataset`.
        output_dir: str, the run folder (created).
        {options}

    Returns:
        A tuple `(model, history)`: the trained `keras.Model` (the weights of
        the last epoch) and the `keras.callbacks.History` of this call.

    Raises:
        keras_fcn.errors.InvalidArgumentError: (a `ValueError`) for an
            option with a value not allowed, named in the message; a
            `batch_size` larger than the training data; an `output_dir` in
            use by another training, or holding a run of other classes,
            model or seed (all before training, and before writing
            anything).
        OSError: when a file of the run cannot be written (a full disk),
            naming it; what earlier epochs wrote is kept.
        TypeError: for an unknown option.

    Example:

    >>> model, history = keras_fcn.train(
    ...     "my_data", "runs/fcn8s", num_classes=3, validation="my_val",
    ...     backbone="mobilenet", crop_size=(256, 256), epochs=20)
    >>> history.history["val_mean_iou"][-1]
    """
    options = TrainingOptions.from_keywords(options)
    _check_loss(options)
    strategy = get_strategy(options.strategy)
    if options.seed is None and has_workers(strategy):
        raise InvalidArgumentError(
            "Multi-worker training needs `seed`, the same on every worker, so that the workers read one order of "
            "batches. Received seed=None"
        )
    policy = dtype_policy(options.mixed_precision)
    run_dir = process_dir(os.fspath(output_dir), strategy)
    classes = {
        "num_classes": options.num_classes,
        "class_names": options.class_names,
        "label_map": options.label_map,
        "color_map": options.color_map,
        "mask_threshold": options.mask_threshold,
    }
    num_classes, _ = dataset_classes(dataset, **classes)
    _check_class_weight_count(options, num_classes)
    with run_folder.locked(run_dir):
        splits = load_dataset(
            dataset,
            data_root=options.data_root,
            validation=options.validation,
            verbose=1 if options.verbose == "auto" else options.verbose,
            **classes,
        )
        class_weights = _class_weights(options, splits)
        seed = run_folder.prepare(run_dir, splits.class_names, options)
        keras.utils.set_random_seed(seed)
        steps, passes = training_steps(splits.train, options.batch_size, options.steps_per_epoch)
        monitor = "val_mean_iou" if splits.validation is not None else "mean_iou"
        backup, callbacks = _callbacks(run_dir, monitor)
        if backup.initial_epoch >= options.epochs and options.verbose != 0:
            print(
                f"Nothing is left to train: the run in {run_dir} has trained its epochs (trained: "
                f"{backup.initial_epoch}, asked for: {options.epochs}). Ask for more epochs to train on."
            )
        train_data = training_batches(splits.train, options, seed, backup.initial_epoch, steps, passes)
        val_data = _validation_data(splits, options)
        with global_policy(policy), strategy.scope():
            model = _model(options, splits.num_classes, policy, strategy, resuming=backup.initial_epoch > 0)
            _compile(model, options, splits.num_classes, steps * options.epochs, class_weights)
        run_folder.record(run_dir, splits.class_names, options, seed)
        history = model.fit(
            shard_by_data(train_data),
            epochs=options.epochs,
            initial_epoch=backup.initial_epoch,
            steps_per_epoch=steps,
            validation_data=val_data,
            callbacks=callbacks,
            verbose=options.verbose,
            shuffle=False,  # the tf.data pipeline shuffles; fit cannot shuffle a dataset and warns if asked to
        )
    return model, history
