"""The training loop: data pipelines, model, optimizer and callbacks put together around `model.fit`."""

import os

import keras

from keras_fcn import data as fcn_data
from keras_fcn.callbacks import AtomicBackupAndRestore, AtomicModelCheckpoint, ResumableCSVLogger
from keras_fcn.constants import CLASSES_FILE
from keras_fcn.errors import InvalidArgumentError
from keras_fcn.files import write_json_atomically
from keras_fcn.losses import SegmentationCrossEntropy
from keras_fcn.metrics import MeanIoU, PixelAccuracy
from keras_fcn.precision import with_dtype_policy
from keras_fcn.training.datasets import load_dataset
from keras_fcn.training.distribution import get_strategy, process_dir, shard_by_data
from keras_fcn.training.options import TrainingOptions, takes_options
from keras_fcn.training.policy import dtype_policy, global_policy
from keras_fcn.training.presets import PRESETS
from keras_fcn.training.stages import MODELS, staged_model


def _pipelines(splits, options):
    """`(training batches, steps per epoch, validation batches or None)`, split between workers by batch."""
    augmentation = {} if options.augment else {"scale_range": (1.0, 1.0), "flip": False}
    train_data = fcn_data.make_pipeline(
        splits.train, options.batch_size, training=True, crop_size=options.crop_size, seed=options.seed, **augmentation
    )
    steps = options.steps_per_epoch or int(train_data.cardinality())
    if steps < 1:
        raise InvalidArgumentError(
            "The training dataset's length is unknown or it has no full batch: pass `steps_per_epoch`. "
            "Received steps_per_epoch=None"
        )
    if options.steps_per_epoch is not None:
        train_data = train_data.repeat()
    val_data = None
    if splits.validation is not None:
        val_data = fcn_data.make_pipeline(splits.validation, options.batch_size, training=False)
        if options.validation_steps is not None:
            val_data = val_data.take(options.validation_steps)
        val_data = shard_by_data(val_data)
    return shard_by_data(train_data), steps, val_data


def _model(options, num_classes, policy, strategy):
    """The model to train, under `strategy`: built, or staged from `options.init_from`."""
    builder_kwargs = {"num_classes": num_classes, "backbone": options.backbone, "backbone_kwargs": options.backbone_kwargs}
    if options.init_from is not None:
        model = staged_model(options.model, options.init_from, options.init_from_model, builder_kwargs)
    else:
        model = MODELS[options.model](
            **builder_kwargs, backbone_weights=options.backbone_weights, weights=options.weights
        )
    synchronized = strategy.num_replicas_in_sync > 1
    if synchronized or options.init_from is not None:
        model = with_dtype_policy(model, policy, synchronized_batch_norm=synchronized)
    return model


def _compile(model, options, num_classes, total_steps):
    """Compiles `model` with the preset's optimizer and loss, and the mean IU and pixel accuracy metrics."""
    preset = PRESETS[options.optimizer]
    learning_rate = preset.learning_rate[options.model] if options.learning_rate is None else options.learning_rate
    weight_decay = preset.weight_decay if options.weight_decay is None else options.weight_decay
    preset.add_coupled_weight_decay(model, weight_decay)
    model.compile(
        optimizer=preset.build_optimizer(learning_rate, weight_decay, total_steps),
        loss=SegmentationCrossEntropy(reduction=preset.loss_reduction),
        metrics=[MeanIoU(num_classes), PixelAccuracy(num_classes)],
    )


def _callbacks(run_dir, backup, monitor):
    """The backup, log, checkpoints and TensorBoard."""
    return [
        backup,
        ResumableCSVLogger(os.path.join(run_dir, "log.csv")),
        AtomicModelCheckpoint(os.path.join(run_dir, "best.keras"), monitor=monitor, mode="max", save_best_only=True),
        AtomicModelCheckpoint(os.path.join(run_dir, "last.keras")),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), write_graph=False),
    ]


@takes_options
def train(dataset, output_dir, **options):
    """Trains an FCN with the paper's recipe or a modern one, with logs, checkpoints and resume.

    The optimizer presets (`optimizer`) are described in
    `keras_fcn.training.presets`; the run folder in `keras_fcn.training`.
    Calling `train` again with the same `output_dir` resumes after the last
    completed epoch (killed runs included), restoring weights, optimizer
    state and learning-rate schedule position, and continuing `log.csv`.
    Every option below is also a flag of `keras-fcn train`
    (`keras_fcn.training.options`).

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
            option with a value not allowed, named in the message.
        TypeError: for an unknown option.

    Example:

    >>> model, history = keras_fcn.train(
    ...     "my_data", "runs/fcn8s", num_classes=3, validation="my_val",
    ...     backbone="mobilenet", crop_size=(256, 256), epochs=20)
    >>> history.history["val_mean_iou"][-1]
    """
    options = TrainingOptions.from_keywords(options)
    strategy = get_strategy(options.strategy)
    policy = dtype_policy(options.mixed_precision)
    splits = load_dataset(
        dataset,
        data_root=options.data_root,
        validation=options.validation,
        num_classes=options.num_classes,
        class_names=options.class_names,
        label_map=options.label_map,
        color_map=options.color_map,
        mask_threshold=options.mask_threshold,
    )
    if options.seed is not None:
        keras.utils.set_random_seed(options.seed)
    train_data, steps, val_data = _pipelines(splits, options)
    run_dir = process_dir(os.fspath(output_dir), strategy)
    os.makedirs(run_dir, exist_ok=True)
    with global_policy(policy), strategy.scope():
        model = _model(options, splits.num_classes, policy, strategy)
        _compile(model, options, splits.num_classes, steps * options.epochs)
    write_json_atomically(os.path.join(run_dir, CLASSES_FILE), {"class_names": list(splits.class_names)})
    backup = AtomicBackupAndRestore(os.path.join(run_dir, "backup"))
    history = model.fit(
        train_data,
        epochs=options.epochs,
        initial_epoch=backup.initial_epoch,
        steps_per_epoch=steps,
        validation_data=val_data,
        callbacks=_callbacks(run_dir, backup, monitor="val_mean_iou" if val_data is not None else "mean_iou"),
        verbose=options.verbose,
        shuffle=False,  # the tf.data pipeline shuffles; fit cannot shuffle a dataset and warns if asked to
    )
    return model, history
