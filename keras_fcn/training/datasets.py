"""Training data by name: a dataset name, folder or `tf.data.Dataset` -> its training and validation pairs and classes."""

import dataclasses
import os

import tensorflow as tf

from keras_fcn import data as fcn_data
from keras_fcn.errors import InvalidArgumentError

# The paper's split: train on SBD train, validate on seg11valid (VOC2011 val minus SBD train).
SBD_FOLDER, VOC_FOLDER = "benchmark_RELEASE", "VOCdevkit"
TFDS_VALIDATION_SPLITS = {"oxford_iiit_pet": "test", "scene_parse150": "validation"}
NAMED_DATASETS = ("camvid", "voc", "sbd") + tuple(TFDS_VALIDATION_SPLITS)


@dataclasses.dataclass(frozen=True)
class DatasetSplits:
    """A segmentation dataset's training and validation pairs and its classes.

    Attributes:
        train: `tf.data.Dataset` of `(image, mask)` pairs, or None (`training_split=False`).
        validation: `tf.data.Dataset` of pairs, or None.
        num_classes: int.
        class_names: tuple of str, one per class.
    """

    train: object
    validation: object
    num_classes: int
    class_names: tuple


def _folder_pairs(folder, num_classes, argument, mask_reading, verbose):
    if not os.path.isdir(folder):
        raise InvalidArgumentError(
            f"A folder dataset is a folder holding images/ and masks/; {folder!r} "
            f"{'is not a folder' if os.path.exists(folder) else 'does not exist'}. Received {argument}={folder!r}"
        )
    missing = [name for name in ("images", "masks") if not os.path.isdir(os.path.join(folder, name))]
    if missing:
        splits = sorted(name for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name, "images")))
        hint = (
            f" It holds the splits {', '.join(f'{name}/' for name in splits)}: give one of them (e.g. "
            f"{os.path.join(folder, splits[0])!r}), and another as the validation folder."
            if splits
            else ""
        )
        raise InvalidArgumentError(
            f"A folder dataset holds images/ and masks/; {folder!r} has no {' and no '.join(f'{m}/' for m in missing)}."
            f"{hint} Received {argument}={folder!r}"
        )
    return fcn_data.from_folders(
        os.path.join(folder, "images"), os.path.join(folder, "masks"), num_classes=num_classes, verbose=verbose, **mask_reading
    )


def _mask_reading(dataset, num_classes, class_names, label_map, color_map, mask_threshold):
    """`(mask reading keywords of from_folders, num_classes, class_names)`; a colour map file gives the classes."""
    given = {"label_map": label_map, "color_map": color_map, "mask_threshold": mask_threshold}
    given = {name: value for name, value in given.items() if value is not None}
    if not given:
        return {}, num_classes, class_names
    if len(given) > 1:
        raise InvalidArgumentError(
            f"Give at most one of `label_map`, `color_map` and `mask_threshold`. Received {given!r}"
        )
    if not isinstance(dataset, (str, os.PathLike)) or _is_named(dataset):
        raise InvalidArgumentError(
            f"`label_map`, `color_map` and `mask_threshold` apply to folder datasets. Received dataset={dataset!r}"
        )
    if isinstance(color_map, (str, os.PathLike)):
        colors = fcn_data.read_color_map(color_map)
        if num_classes not in (None, colors.num_classes):
            raise InvalidArgumentError(
                f"Colour map file {os.fspath(color_map)!r} names {colors.num_classes} classes. "
                f"Received num_classes={num_classes!r}"
            )
        given["color_map"] = colors.colors
        num_classes, class_names = colors.num_classes, class_names or colors.class_names
    return given, num_classes, class_names


def _named_classes(name):
    """`(class names or None, num_classes)` of a dataset known by name."""
    if name in TFDS_VALIDATION_SPLITS:
        return None, fcn_data.TFDS_SOURCES[name].num_classes
    names = fcn_data.CAMVID_CLASSES if name == "camvid" else fcn_data.VOC_CLASSES
    return names, len(names)


def _named_splits(name, data_root, verbose, training_split):
    """`(train or None, validation)` of a dataset known by name."""
    if name in TFDS_VALIDATION_SPLITS:
        return (
            fcn_data.from_tfds(name, "train", data_dir=data_root) if training_split else None,
            fcn_data.from_tfds(name, TFDS_VALIDATION_SPLITS[name], data_dir=data_root),
        )
    if data_root is None:
        raise InvalidArgumentError(f"Dataset {name!r} needs `data_root`, the folder holding it. Received data_root=None")
    if name == "camvid":
        train = fcn_data.camvid(data_root, "train", verbose=verbose) if training_split else None
        return train, fcn_data.camvid(data_root, "val", verbose=verbose)
    if name == "voc":
        train = fcn_data.voc(data_root, "train", verbose=verbose) if training_split else None
        return train, fcn_data.voc(data_root, "val", verbose=verbose)
    sbd_root, voc_root = os.path.join(data_root, SBD_FOLDER), os.path.join(data_root, VOC_FOLDER)
    train = fcn_data.sbd(sbd_root, "train", verbose=verbose) if training_split else None
    return train, fcn_data.seg11valid(voc_root, sbd_root, verbose=verbose)


def dataset_classes(dataset, *, num_classes=None, class_names=None, label_map=None, color_map=None, mask_threshold=None):
    """The classes of a dataset, known before any of its pairs is read.

    Args: as in `load_dataset`.

    Returns:
        `(num_classes, class_names)`: an int, and a tuple of str or None
        (none given, and no names known for the dataset).

    Raises:
        keras_fcn.errors.InvalidArgumentError: (a `ValueError`) for class
            counts that disagree, a folder or `tf.data.Dataset` without
            `num_classes` or `class_names`, or mask reading options that do
            not apply.
    """
    _, num_classes, class_names = _mask_reading(dataset, num_classes, class_names, label_map, color_map, mask_threshold)
    return _checked_classes(dataset, num_classes, class_names)


def _is_named(dataset):
    return isinstance(dataset, str) and dataset in NAMED_DATASETS


def _checked_classes(dataset, num_classes, class_names):
    """`(num_classes, class_names or None)` from those given and the dataset's own, after checking the dataset's kind."""
    if not (_is_named(dataset) or isinstance(dataset, tf.data.Dataset)) and not (
        isinstance(dataset, (str, os.PathLike)) and os.path.isdir(dataset)
    ):
        missing = isinstance(dataset, (str, os.PathLike)) and not os.path.exists(dataset)
        raise InvalidArgumentError(
            f"`dataset` must be one of {list(NAMED_DATASETS)}, a folder holding images/ and masks/, or a "
            f"tf.data.Dataset{'; no file or folder has that name' if missing else ''}. Received dataset={dataset!r}"
        )
    if class_names is not None:
        class_names = tuple(class_names)
        if num_classes is not None and num_classes != len(class_names):
            raise InvalidArgumentError(
                f"`class_names` must name every class, {num_classes} names. Received class_names={class_names!r}"
            )
        num_classes = len(class_names)
    if _is_named(dataset):
        own_names, own_classes = _named_classes(dataset)
        if num_classes is not None and num_classes != own_classes:
            raise InvalidArgumentError(
                f"Dataset {dataset!r} has {own_classes} classes. Received num_classes={num_classes!r}"
            )
        return own_classes, class_names or own_names
    if num_classes is None:
        kind = "A `tf.data.Dataset`" if isinstance(dataset, tf.data.Dataset) else "A folder dataset"
        raise InvalidArgumentError(f"{kind} needs `num_classes` (or `class_names`). Received num_classes=None")
    return num_classes, class_names


def load_dataset(
    dataset,
    *,
    data_root=None,
    validation=None,
    num_classes=None,
    class_names=None,
    label_map=None,
    color_map=None,
    mask_threshold=None,
    verbose=1,
    training_split=True,
):
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
            dataset's names (or a colour map file's), else `"0"`, `"1"`, ...
        label_map, color_map, mask_threshold: at most one, for folder
            datasets: how their masks become class ids (see
            `keras_fcn.data.from_folders`); `color_map` may be the path of a
            colour map file (`keras_fcn.data.read_color_map`), which then
            gives the number of classes and their names. Every pair of a
            folder is checked before this returns.
        verbose: 0, 1 (default) or 2: the progress shown while the pairs
            are checked (see `keras_fcn.data.from_file_pairs`).
        training_split: bool; False leaves out a named dataset's training
            split (neither read nor checked; `train` is None), for
            evaluation. A folder or `tf.data.Dataset` is read either way.

    Returns:
        A `DatasetSplits`.

    Raises:
        keras_fcn.errors.InvalidArgumentError: (a `ValueError`) for an
            unknown name, a missing folder, or class counts that disagree;
            `keras_fcn.errors.InvalidDataError` for bad image/mask pairs,
            all listed with their files.

    Example:

    >>> splits = keras_fcn.training.load_dataset("my_data", num_classes=3, validation="my_val")
    """
    mask_reading, num_classes, class_names = _mask_reading(
        dataset, num_classes, class_names, label_map, color_map, mask_threshold
    )
    num_classes, class_names = _checked_classes(dataset, num_classes, class_names)
    if isinstance(dataset, tf.data.Dataset):
        train, val = dataset, None
    elif _is_named(dataset):
        train, val = _named_splits(dataset, data_root, verbose, training_split)
    else:
        train, val = _folder_pairs(os.fspath(dataset), num_classes, "dataset", mask_reading, verbose), None
    if isinstance(validation, tf.data.Dataset):
        val = validation
    elif validation is not None:
        val = _folder_pairs(os.fspath(validation), num_classes, "validation", mask_reading, verbose)
    names = class_names or tuple(str(i) for i in range(num_classes))
    return DatasetSplits(train, val, num_classes, tuple(names))
