"""The training recipe in one call: data, model, optimizer, logs, checkpoints and resume (paper, section 4.3).

`train` wraps `model.fit` with what an FCN run needs: the dataset by name or
folder, the model (optionally started from the previous stage, FCN-32s ->
FCN-16s -> FCN-8s), an optimizer preset, mixed precision, a
`tf.distribute` strategy, and in `output_dir`:

- `log.csv`, one row per epoch; `tensorboard/`, TensorBoard logs;
- `best.keras` (best validation mean IU, with `best.keras.json` recording
  it) and `last.keras`, full models written atomically at each epoch end;
- `backup/`, the weights and optimizer state of the last completed epoch:
  a run that is killed and started again with the same arguments resumes
  after it, and a finished run started again trains nothing;
- `classes.json`, the class names, which `keras-fcn predict` and
  `keras-fcn evaluate` read beside the model.
"""

import dataclasses
import os

import keras
import tensorflow as tf

from keras_fcn import data as fcn_data
from keras_fcn.callbacks import AtomicBackupAndRestore, AtomicModelCheckpoint, ResumableCSVLogger
from keras_fcn.distribute import MultiWorkerMirroredStrategy
from keras_fcn.losses import SegmentationCrossEntropy
from keras_fcn.metrics import MeanIoU, PixelAccuracy
from keras_fcn.models import FCN8s, FCN8sAtOnce, FCN16s, FCN32s
from keras_fcn.optimizers import CaffeSGD
from keras_fcn.precision import with_dtype_policy
from keras_fcn.upgrade import _output_stride, upgrade
from keras_fcn.zoo.cache import write_json_atomically

MODELS = {"fcn32s": FCN32s, "fcn16s": FCN16s, "fcn8s": FCN8s, "fcn8s_atonce": FCN8sAtOnce}
STRIDES = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8, "fcn8s_atonce": 8}
STRATEGIES = ("default", "mirrored", "multi-worker")
MIXED_PRECISION = ("auto", "mixed_float16", "mixed_bfloat16", "float32")
# The paper's split: train on SBD train, validate on seg11valid (VOC2011 val minus SBD train).
SBD_FOLDER, VOC_FOLDER = "benchmark_RELEASE", "VOCdevkit"
TFDS_VALIDATION_SPLITS = {"oxford_iiit_pet": "test", "scene_parse150": "validation"}
NAMED_DATASETS = ("camvid", "voc", "sbd") + tuple(TFDS_VALIDATION_SPLITS)
CLASSES_FILE = "classes.json"


@dataclasses.dataclass(frozen=True)
class Preset:
    """An optimizer recipe.

    Attributes:
        optimizer: `"sgd"` or `"adam"` (AdamW when `weight_decay` is set).
        momentum: float, SGD momentum.
        learning_rate: dict from model name to the initial learning rate.
        reduction: `"sum"` or `"mean"`, the loss's reduction.
        weight_decay: float, the default weight decay.
        coupled_decay: bool; True adds `weight_decay / 2 * ||kernel||^2` to
            the loss (L2 regularization, Caffe's `weight_decay`: the gradient
            gains `weight_decay * kernel`, momentum included); False decays
            the weights by `learning_rate * weight_decay` each step outside
            the gradient (the optimizers' decoupled `weight_decay`).
        poly_decay: bool, whether the learning rate follows
            `keras.optimizers.schedules.PolynomialDecay` (power 0.9) to 0
            over the run.
        bias_learning_rate_multiplier: float, the biases' learning rate
            relative to the kernels' (2 in the reference solvers; SGD only,
            through `keras_fcn.optimizers.CaffeSGD`).
    """

    optimizer: str
    momentum: float
    learning_rate: dict
    reduction: str
    weight_decay: float
    coupled_decay: bool
    poly_decay: bool
    bias_learning_rate_multiplier: float = 1.0


def _same_rate(rate):
    return dict.fromkeys(MODELS, rate)


PRESETS = {
    # The reference code's "heavy" nets: unnormalized loss, momentum 0.99, fixed tiny learning rates, biases at 2x.
    "paper": Preset(
        "sgd",
        0.99,
        {"fcn32s": 1e-10, "fcn16s": 1e-12, "fcn8s": 1e-14, "fcn8s_atonce": 1e-10},
        "sum",
        5e-4,
        True,
        False,
        2.0,
    ),
    "sgd": Preset("sgd", 0.9, _same_rate(1e-2), "mean", 1e-4, False, True),
    "adam": Preset("adam", 0.0, _same_rate(1e-3), "mean", 1e-4, False, True),
}


@dataclasses.dataclass(frozen=True)
class DatasetSplits:
    """A segmentation dataset's training and validation pairs and its classes.

    Attributes:
        train: `tf.data.Dataset` of `(image, mask)` pairs.
        validation: `tf.data.Dataset` of pairs, or None.
        num_classes: int.
        class_names: tuple of str, one per class.
    """

    train: tf.data.Dataset
    validation: object
    num_classes: int
    class_names: tuple


def _folder_pairs(folder, num_classes, argument):
    if num_classes is None:
        raise ValueError(
            f"A folder dataset needs `num_classes` (or `class_names`). Received {argument}={folder!r}"
        )
    return fcn_data.from_folders(
        os.path.join(folder, "images"), os.path.join(folder, "masks"), num_classes=num_classes
    )


def _named_splits(name, data_root):
    """`(train, validation, class names or None, num_classes)` of a dataset known by name."""
    if name in TFDS_VALIDATION_SPLITS:
        num_classes = fcn_data.TFDS_SOURCES[name].num_classes
        return (
            fcn_data.from_tfds(name, "train", data_dir=data_root),
            fcn_data.from_tfds(name, TFDS_VALIDATION_SPLITS[name], data_dir=data_root),
            None,
            num_classes,
        )
    if data_root is None:
        raise ValueError(f"Dataset {name!r} needs `data_root`, the folder holding it. Received data_root=None")
    if name == "camvid":
        pair = fcn_data.camvid(data_root, "train"), fcn_data.camvid(data_root, "val")
        return (*pair, fcn_data.CAMVID_CLASSES, len(fcn_data.CAMVID_CLASSES))
    if name == "voc":
        pair = fcn_data.voc(data_root, "train"), fcn_data.voc(data_root, "val")
    else:
        sbd_root, voc_root = os.path.join(data_root, SBD_FOLDER), os.path.join(data_root, VOC_FOLDER)
        pair = fcn_data.sbd(sbd_root, "train"), fcn_data.seg11valid(voc_root, sbd_root)
    return (*pair, fcn_data.VOC_CLASSES, len(fcn_data.VOC_CLASSES))


def load_dataset(dataset, *, data_root=None, validation=None, num_classes=None, class_names=None):
    """Resolves a dataset given by name, folder or `tf.data.Dataset` into its splits and classes.

    Args:
        dataset: one of `"camvid"` (`data_root/{train,val}/{images,masks}`),
            `"voc"` (`data_root` is a `VOCdevkit`; VOC2012 train and val),
            `"sbd"` (the paper's split: SBD train from
            `data_root/benchmark_RELEASE`, seg11valid from
            `data_root/VOCdevkit`), a TFDS name (`"oxford_iiit_pet"`,
            `"scene_parse150"`; `data_root` is the TFDS data folder); the
            path of a folder holding `images/` and `masks/` (class-index
            masks named like their images); or a `tf.data.Dataset` of
            `(image, mask)` pairs.
        data_root: str, where a named dataset lives.
        validation: None (the named dataset's validation split; none for a
            folder or a `tf.data.Dataset`), a folder holding `images/` and
            `masks/`, or a `tf.data.Dataset` of pairs.
        num_classes: int; needed for a folder or a `tf.data.Dataset`
            unless `class_names` is given. A named dataset has its own.
        class_names: sequence of str, one per class; defaults to the named
            dataset's names, else `"0"`, `"1"`, ...

    Returns:
        A `DatasetSplits`.

    Example:

    >>> splits = keras_fcn.training.load_dataset("my_data", num_classes=3, validation="my_val")
    """
    if class_names is not None:
        class_names = tuple(class_names)
        if num_classes is not None and num_classes != len(class_names):
            raise ValueError(
                f"`class_names` must name every class, {num_classes} names. Received class_names={class_names!r}"
            )
        num_classes = len(class_names)
    if isinstance(dataset, tf.data.Dataset):
        if num_classes is None:
            raise ValueError("A `tf.data.Dataset` needs `num_classes` (or `class_names`). Received num_classes=None")
        train, val, names = dataset, None, None
    elif isinstance(dataset, str) and dataset in NAMED_DATASETS:
        train, val, names, own_classes = _named_splits(dataset, data_root)
        if num_classes is not None and num_classes != own_classes:
            raise ValueError(
                f"Dataset {dataset!r} has {own_classes} classes. Received num_classes={num_classes!r}"
            )
        num_classes = own_classes
    elif isinstance(dataset, (str, os.PathLike)) and os.path.isdir(dataset):
        train, val, names = _folder_pairs(os.fspath(dataset), num_classes, "dataset"), None, None
    else:
        raise ValueError(
            f"`dataset` must be one of {list(NAMED_DATASETS)}, a folder holding images/ and masks/, "
            f"or a tf.data.Dataset. Received dataset={dataset!r}"
        )
    if isinstance(validation, tf.data.Dataset):
        val = validation
    elif validation is not None:
        val = _folder_pairs(os.fspath(validation), num_classes, "validation")
    names = class_names or names or tuple(str(i) for i in range(num_classes))
    return DatasetSplits(train, val, num_classes, tuple(names))


def get_strategy(strategy=None):
    """A `tf.distribute.Strategy` from its name.

    Args:
        strategy: None or `"default"` (the current strategy, usually one
            device), `"mirrored"` (`tf.distribute.MirroredStrategy`, every
            local GPU, else the CPU), `"multi-worker"`
            (`keras_fcn.distribute.MultiWorkerMirroredStrategy`, configured
            by the `TF_CONFIG` environment variable), or a strategy,
            returned as is.

    Returns:
        A `tf.distribute.Strategy`.
    """
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in (None,) + STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES} or a tf.distribute.Strategy. Received strategy={strategy!r}")
    if strategy in (None, "default"):
        return tf.distribute.get_strategy()
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"`strategy={strategy!r}` uses tf.distribute, which needs the TensorFlow backend. "
            f"Received KERAS_BACKEND={keras.backend.backend()!r}"
        )
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return MultiWorkerMirroredStrategy()


def dtype_policy(mixed_precision):
    """The Keras dtype policy name for a `mixed_precision` argument.

    Args:
        mixed_precision: None or `"float32"` (no mixed precision), `"auto"`
            (`"mixed_float16"` when a GPU is visible, else
            `"mixed_bfloat16"`), `"mixed_float16"` or `"mixed_bfloat16"`.

    Returns:
        str, a policy name for `keras.mixed_precision.set_global_policy`.
    """
    if mixed_precision not in (None,) + MIXED_PRECISION:
        raise ValueError(f"`mixed_precision` must be one of {MIXED_PRECISION}. Received mixed_precision={mixed_precision!r}")
    if mixed_precision == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    return mixed_precision or "float32"


def _is_chief(strategy):
    """Whether this process writes the run's files (always, except on non-chief multi-worker tasks)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def _process_dir(output_dir, strategy):
    """`output_dir` for the chief; a folder of its own inside it for each other multi-worker task."""
    if _is_chief(strategy):
        return output_dir
    resolver = strategy.cluster_resolver
    return os.path.join(output_dir, "workers", f"{resolver.task_type}-{resolver.task_id}")


def _load_stage(path, source_model, **builder_kwargs):
    """The model saved at `path`: a `.keras` file, or a weights file of `source_model`'s architecture."""
    if not os.path.isfile(path):
        raise ValueError(f"`init_from` must be an existing .keras or .weights.h5 file. Received init_from={path!r}")
    if path.endswith(".keras"):
        return keras.saving.load_model(path, compile=False)
    model = MODELS[source_model](**builder_kwargs, backbone_weights=None)
    try:
        model.load_weights(path)
    except ValueError as error:
        raise ValueError(
            f"`init_from` weights do not fit a {source_model} with these builder arguments ({error}). "
            f"Received init_from={path!r}, init_from_model={source_model!r}"
        ) from error
    return model


def _staged_model(name, init_from, init_from_model, builder_kwargs):
    """Upgrades the model saved at `init_from` (a coarser stage) until it is a `name`."""
    target = STRIDES[name]
    if name == "fcn8s_atonce" or target == 32:
        raise ValueError(
            f"`init_from` starts an FCN-16s or FCN-8s from a coarser stage; a {name} is trained in one stage. "
            f"Received model={name!r}, init_from={init_from!r}"
        )
    source_model = init_from_model or f"fcn{target * 2}s"
    if source_model not in MODELS:
        raise ValueError(f"`init_from_model` must be one of {sorted(MODELS)}. Received init_from_model={source_model!r}")
    model = _load_stage(init_from, source_model, **builder_kwargs)
    stride = _output_stride(model)
    if stride <= target:
        raise ValueError(
            f"`init_from` holds an FCN-{stride}s ('{model.name}'), which cannot start an FCN-{target}s "
            f"(model={name!r}): staged training goes FCN-32s -> FCN-16s -> FCN-8s. Received init_from={init_from!r}"
        )
    while stride > target:
        model = upgrade(model)
        stride //= 2
    return model


def _optimizer(preset, learning_rate, weight_decay, total_steps):
    schedule = (
        keras.optimizers.schedules.PolynomialDecay(learning_rate, total_steps, end_learning_rate=0.0, power=0.9)
        if preset.poly_decay
        else learning_rate
    )
    decoupled = None if preset.coupled_decay or not weight_decay else weight_decay
    if preset.optimizer == "sgd":
        optimizer = CaffeSGD(
            schedule,
            momentum=preset.momentum,
            weight_decay=decoupled,
            bias_learning_rate_multiplier=preset.bias_learning_rate_multiplier,
        )
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=decoupled) if decoupled else keras.optimizers.Adam(schedule)
    if decoupled:
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def _add_l2(model, weight_decay):
    """Caffe's weight decay on the kernels: adds `weight_decay / 2 * ||kernel||^2` to the loss."""
    regularizer = keras.regularizers.L2(weight_decay / 2)
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and kernel.trainable:
            kernel.regularizer = regularizer


def _steps(dataset, steps_per_epoch):
    if steps_per_epoch is not None:
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ValueError(f"`steps_per_epoch` must be a positive int. Received steps_per_epoch={steps_per_epoch!r}")
        return steps_per_epoch
    steps = int(dataset.cardinality())
    if steps < 1:
        raise ValueError(
            "The training dataset's length is unknown or it has no full batch: pass `steps_per_epoch`. "
            "Received steps_per_epoch=None"
        )
    return steps


def _data_sharding(dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _validate(model, optimizer, epochs, batch_size, crop_size):
    if model not in MODELS:
        raise ValueError(f"`model` must be one of {sorted(MODELS)}. Received model={model!r}")
    if optimizer not in PRESETS:
        raise ValueError(f"`optimizer` must be one of {sorted(PRESETS)}. Received optimizer={optimizer!r}")
    for argument, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{argument}` must be a positive int. Received {argument}={value!r}")
    if crop_size is not None:
        fcn_data.transforms.validate_size(crop_size, "crop_size")


def train(
    dataset,
    output_dir,
    *,
    model="fcn8s",
    backbone="vgg16_reference",
    backbone_weights="imagenet",
    backbone_kwargs=None,
    weights=None,
    init_from=None,
    init_from_model=None,
    data_root=None,
    validation=None,
    num_classes=None,
    class_names=None,
    crop_size=None,
    batch_size=8,
    epochs=10,
    steps_per_epoch=None,
    validation_steps=None,
    optimizer="adam",
    learning_rate=None,
    weight_decay=None,
    mixed_precision=None,
    strategy=None,
    augment=True,
    seed=None,
    verbose="auto",
):
    """Trains an FCN with the paper's recipe or a modern one, with logs, checkpoints and resume.

    Optimizer presets (`optimizer`):

    - `"paper"`: the reference code's recipe (section 4.3): SGD with
      momentum 0.99, the summed (unnormalized) loss, fixed learning rate
      1e-10 / 1e-12 / 1e-14 for FCN-32s / 16s / 8s (1e-10 for the at-once
      FCN-8s, our choice), weight decay 5e-4 as Caffe does it: L2 on the
      kernels, added to the gradient before momentum. The reference code
      also trains biases at twice the learning rate; this preset does not.
    - `"sgd"`: SGD with momentum 0.9, mean loss, learning rate 1e-2 with
      polynomial decay (power 0.9) to 0 over the run, decoupled weight decay
      1e-4 (`weight_decay` of the optimizer, biases and batch-norm
      parameters excluded).
    - `"adam"` (default): Adam(W), mean loss, learning rate 1e-3 with the
      same decay, decoupled weight decay 1e-4.

    Run folder: see the module's documentation. Calling `train` again with
    the same `output_dir` resumes after the last completed epoch (killed
    runs included), restoring weights, optimizer state and learning-rate
    schedule position, and continuing `log.csv`.

    Args:
        dataset: a dataset name, folder or `tf.data.Dataset` of
            `(image, mask)` pairs; see `load_dataset`.
        output_dir: str, the run folder (created).
        model: `"fcn32s"`, `"fcn16s"`, `"fcn8s"` or `"fcn8s_atonce"`.
        backbone, backbone_weights, backbone_kwargs, weights: passed to the
            builder (see `keras_fcn.FCN8s`); `weights` may also be a `.keras`
            or `.weights.h5` file of the same architecture to continue from.
        init_from: staged training: a `.keras` file of a coarser stage (or
            its `.weights.h5`, built as `init_from_model` with this
            `backbone` and `backbone_kwargs`), upgraded with
            `keras_fcn.upgrade` to `model` (FCN-32s -> FCN-16s -> FCN-8s).
        init_from_model: the architecture of a `.weights.h5` `init_from`;
            defaults to the previous stage of `model`.
        data_root, validation, num_classes, class_names: see `load_dataset`.
        crop_size: `(height, width)` of the training crops; None trains on
            whole (augmented) images, padded per batch.
        batch_size: int, the global batch size (split across replicas).
        epochs: int, the total number of epochs of the run.
        steps_per_epoch: int, training batches per epoch; defaults to one
            pass over the training data.
        validation_steps: int, validation batches per epoch (the same
            first ones every epoch); defaults to the whole validation set.
        optimizer: `"paper"`, `"sgd"` or `"adam"`, see above.
        learning_rate: float, overrides the preset's initial rate.
        weight_decay: float, overrides the preset's weight decay (0: none).
        mixed_precision: None, `"auto"`, `"mixed_float16"`,
            `"mixed_bfloat16"` or `"float32"`; see `dtype_policy`. The global
            policy is restored after building the model.
        strategy: None, `"default"`, `"mirrored"`, `"multi-worker"` or a
            `tf.distribute.Strategy`; see `get_strategy`. With several
            replicas, batch normalization layers are synchronized (batch
            statistics over the global batch), so a step equals one device's
            step on the global batch. On multi-worker runs the chief writes
            `output_dir` and every other task its own
            `output_dir/workers/<task>-<id>`.
        augment: bool, random scaling (0.5 to 2) and mirroring of the
            training pairs (`keras_fcn.data.augment`); cropping to
            `crop_size` happens either way.
        seed: int, seeds the initial weights, shuffling and augmentation.
        verbose: `"auto"`, 0, 1 or 2, as for `model.fit`.

    Returns:
        A tuple `(model, history)`: the trained `keras.Model` (the weights of
        the last epoch) and the `keras.callbacks.History` of this call.

    Example:

    >>> model, history = keras_fcn.train(
    ...     "my_data", "runs/fcn8s", num_classes=3, validation="my_val",
    ...     backbone="mobilenet", crop_size=(256, 256), epochs=20)
    >>> history.history["val_mean_iou"][-1]
    """
    _validate(model, optimizer, epochs, batch_size, crop_size)
    strategy = get_strategy(strategy)
    policy = dtype_policy(mixed_precision)
    preset = PRESETS[optimizer]
    splits = load_dataset(
        dataset, data_root=data_root, validation=validation, num_classes=num_classes, class_names=class_names
    )
    if seed is not None:
        keras.utils.set_random_seed(seed)
    augmentation = {} if augment else {"scale_range": (1.0, 1.0), "flip": False}
    train_data = fcn_data.make_pipeline(
        splits.train, batch_size, training=True, crop_size=crop_size, seed=seed, **augmentation
    )
    steps = _steps(train_data, steps_per_epoch)
    if steps_per_epoch is not None:
        train_data = train_data.repeat()
    val_data = None
    if splits.validation is not None:
        val_data = fcn_data.make_pipeline(splits.validation, batch_size, training=False)
        if validation_steps is not None:
            val_data = val_data.take(validation_steps)
        val_data = _data_sharding(val_data)
    run_dir = _process_dir(os.fspath(output_dir), strategy)
    os.makedirs(run_dir, exist_ok=True)
    learning_rate = preset.learning_rate[model] if learning_rate is None else learning_rate
    weight_decay = preset.weight_decay if weight_decay is None else weight_decay
    builder_kwargs = {"num_classes": splits.num_classes, "backbone": backbone, "backbone_kwargs": backbone_kwargs}
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope():
            if init_from is not None:
                net = _staged_model(model, init_from, init_from_model, builder_kwargs)
            else:
                net = MODELS[model](**builder_kwargs, backbone_weights=backbone_weights, weights=weights)
            synchronized = strategy.num_replicas_in_sync > 1
            if synchronized or init_from is not None:
                net = with_dtype_policy(net, policy, synchronized_batch_norm=synchronized)
            if preset.coupled_decay and weight_decay:
                _add_l2(net, weight_decay)
            net.compile(
                optimizer=_optimizer(preset, learning_rate, weight_decay, steps * epochs),
                loss=SegmentationCrossEntropy(reduction=preset.reduction),
                metrics=[MeanIoU(splits.num_classes), PixelAccuracy(splits.num_classes)],
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    write_json_atomically(os.path.join(run_dir, CLASSES_FILE), {"class_names": list(splits.class_names)})
    monitor = "val_mean_iou" if val_data is not None else "mean_iou"
    backup = AtomicBackupAndRestore(os.path.join(run_dir, "backup"))
    callbacks = [
        backup,
        ResumableCSVLogger(os.path.join(run_dir, "log.csv")),
        AtomicModelCheckpoint(os.path.join(run_dir, "best.keras"), monitor=monitor, mode="max", save_best_only=True),
        AtomicModelCheckpoint(os.path.join(run_dir, "last.keras")),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), write_graph=False),
    ]
    history = net.fit(
        _data_sharding(train_data),
        epochs=epochs,
        initial_epoch=backup.initial_epoch,
        steps_per_epoch=steps,
        validation_data=val_data,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles; fit cannot shuffle a dataset and warns if asked to
    )
    return net, history
