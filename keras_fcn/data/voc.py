"""PASCAL VOC segmentation, the Semantic Boundaries Dataset (SBD) and the paper's seg11valid split.

The paper (section 4.2) trains on SBD train (8,498 images) and validates on
seg11valid: the 736 images of VOC2011 segmentation val that are not in SBD
train. `seg11valid_ids` computes that list from the user's own VOCdevkit and
SBD copies.
"""

import os

from keras_fcn.data.decode import format_list
from keras_fcn.data.file_pairs import from_file_pairs
from keras_fcn.errors import InvalidArgumentError, InvalidDataError

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def read_ids(path):
    """The image ids of a split file, one per line, in file order."""
    if not os.path.isfile(path):
        raise InvalidDataError(f"Split file {path!r} does not exist.")
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _voc_year_dir(root, year):
    year_dir = os.path.join(root, f"VOC{year}")
    if not os.path.isdir(year_dir):
        raise InvalidArgumentError(
            f"`root` must be a VOCdevkit folder holding VOC{year}/; {year_dir!r} does "
            f"not exist. Received root={root!r}, year={year!r}"
        )
    return year_dir


def _dataset_from_ids(ids, image_pattern, mask_pattern, label_map, verbose):
    """Pairs `image_pattern.format(id)` with `mask_pattern.format(id)`; all files must exist."""
    image_paths = [image_pattern.format(i) for i in ids]
    mask_paths = [mask_pattern.format(i) for i in ids]
    missing = [p for p in image_paths + mask_paths if not os.path.isfile(p)]
    if missing:
        raise InvalidDataError(f"Files of the split are missing: {format_list(missing)}")
    return from_file_pairs(image_paths, mask_paths, num_classes=len(VOC_CLASSES), label_map=label_map, verbose=verbose)


def _voc_dataset(year_dir, ids, label_map, verbose):
    return _dataset_from_ids(
        ids,
        os.path.join(year_dir, "JPEGImages", "{}.jpg"),
        os.path.join(year_dir, "SegmentationClass", "{}.png"),
        label_map,
        verbose,
    )


def voc(root, split="train", *, year="2012", label_map=None, verbose=1):
    """PASCAL VOC segmentation from a `VOCdevkit` folder.

    Reads the ids in `VOC{year}/ImageSets/Segmentation/{split}.txt`, the
    images `JPEGImages/{id}.jpg` and the palette PNG masks
    `SegmentationClass/{id}.png` (palette index = class id, `VOC_CLASSES`;
    the 255 object borders stay 255, ignored).

    Args:
        root: str, the `VOCdevkit` folder.
        split: str, `"train"`, `"val"`, `"trainval"` or any list in
            `ImageSets/Segmentation`.
        year: str, `"2012"`, `"2011"`, ...
        label_map: optional dict `{raw value: class id or 255}`.
        verbose: 0 (silent), 1 (default: a line and a progress bar while
            the pairs are checked) or 2 (the line and one line when done).

    Returns:
        A `tf.data.Dataset` of `(image, mask)`: uint8 `(H, W, 3)` and uint8
        `(H, W)`, in the order of the split file.

    Example:

    >>> val = keras_fcn.data.voc("VOCdevkit", "val", year="2012")
    """
    year_dir = _voc_year_dir(root, year)
    ids = read_ids(os.path.join(year_dir, "ImageSets", "Segmentation", f"{split}.txt"))
    return _voc_dataset(year_dir, ids, label_map, verbose)


def _sbd_dir(root):
    dataset_dir = os.path.join(root, "dataset")
    if not os.path.isdir(dataset_dir):
        raise InvalidArgumentError(
            "`root` must be the SBD folder holding dataset/ (with train.txt, val.txt, "
            f"img/ and cls/), e.g. benchmark_RELEASE; {dataset_dir!r} does not exist. "
            f"Received root={root!r}"
        )
    return dataset_dir


def sbd(root, split="train", *, label_map=None, verbose=1):
    """The Semantic Boundaries Dataset (Hariharan et al. 2011), class masks.

    Reads the ids in `dataset/{split}.txt`, the images `dataset/img/{id}.jpg`
    and the class masks `dataset/cls/{id}.mat` (the `GTcls.Segmentation`
    field, VOC class ids, read with scipy).

    Args:
        root: str, the folder holding `dataset/` (`benchmark_RELEASE`).
        split: str, `"train"` (8,498 images, the paper's training set) or
            `"val"`.
        label_map: optional dict `{raw value: class id or 255}`.
        verbose: 0 (silent), 1 (default: a line and a progress bar while
            the pairs are checked) or 2 (the line and one line when done).

    Returns:
        A `tf.data.Dataset` of `(image, mask)`: uint8 `(H, W, 3)` and uint8
        `(H, W)`, in the order of the split file.

    Example:

    >>> train = keras_fcn.data.sbd("benchmark_RELEASE", "train")
    """
    dataset_dir = _sbd_dir(root)
    return _dataset_from_ids(
        read_ids(os.path.join(dataset_dir, f"{split}.txt")),
        os.path.join(dataset_dir, "img", "{}.jpg"),
        os.path.join(dataset_dir, "cls", "{}.mat"),
        label_map,
        verbose,
    )


def seg11valid_ids(voc_root, sbd_root):
    """The paper's validation ids: VOC2011 segmentation val minus SBD train.

    With the full datasets this is 736 ids.

    Args:
        voc_root: str, a `VOCdevkit` folder holding `VOC2011/`.
        sbd_root: str, the SBD folder holding `dataset/train.txt`.

    Returns:
        list of str, in the order of VOC2011's `val.txt`.
    """
    val = read_ids(
        os.path.join(_voc_year_dir(voc_root, "2011"), "ImageSets", "Segmentation", "val.txt")
    )
    sbd_train = set(read_ids(os.path.join(_sbd_dir(sbd_root), "train.txt")))
    return [i for i in val if i not in sbd_train]


def seg11valid(voc_root, sbd_root, *, label_map=None, verbose=1):
    """The paper's validation set: VOC2011 images and masks of `seg11valid_ids`.

    Args:
        voc_root: str, a `VOCdevkit` folder holding `VOC2011/`.
        sbd_root: str, the SBD folder holding `dataset/train.txt`.
        label_map: optional dict `{raw value: class id or 255}`.
        verbose: 0 (silent), 1 (default: a line and a progress bar while
            the pairs are checked) or 2 (the line and one line when done).

    Returns:
        A `tf.data.Dataset` of `(image, mask)`: uint8 `(H, W, 3)` and uint8
        `(H, W)`.

    Example:

    >>> train = keras_fcn.data.sbd("benchmark_RELEASE", "train")
    >>> val = keras_fcn.data.seg11valid("VOCdevkit", "benchmark_RELEASE")
    """
    ids = seg11valid_ids(voc_root, sbd_root)
    return _voc_dataset(_voc_year_dir(voc_root, "2011"), ids, label_map, verbose)
