"""CamVid (11 classes) in the `{split}/images`, `{split}/masks` layout."""

import os

from keras_fcn.data.folders import from_folders
from keras_fcn.errors import InvalidArgumentError

CAMVID_CLASSES = (
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "sign_symbol",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
)


def camvid(root, split="train", *, label_map=None, verbose=1):
    """The 11-class CamVid release (SegNet's), from `root/{split}/images` and `root/{split}/masks`.

    Images are 480x360 RGB PNGs; masks are greyscale PNGs of the same name
    with values 0..10 (`CAMVID_CLASSES`, in order) and 255 for void.

    Args:
        root: str, the folder holding the split folders.
        split: str, a split folder name such as `"train"`, `"val"` or `"test"`.
        label_map: optional dict `{raw value: class id or 255}`, e.g.
            `{11: 255}` for masks that store void as 11.
        verbose: 0 (silent), 1 (default: a line and a progress bar while
            the pairs are checked) or 2 (the line and one line when done).

    Returns:
        A `tf.data.Dataset` of `(image, mask)`: uint8 `(360, 480, 3)` and
        uint8 `(360, 480)`, in file name order.

    Example:

    >>> train = keras_fcn.data.camvid("data/camvid", "train")
    """
    split_dir = os.path.join(root, split)
    if not os.path.isdir(split_dir):
        raise InvalidArgumentError(
            f"CamVid split folder {split_dir!r} does not exist: `root` must hold "
            f"`{split}/images` and `{split}/masks`. Received root={root!r}, split={split!r}"
        )
    return from_folders(
        os.path.join(split_dir, "images"),
        os.path.join(split_dir, "masks"),
        num_classes=len(CAMVID_CLASSES),
        label_map=label_map,
        verbose=verbose,
    )
