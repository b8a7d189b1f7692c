"""Reading image/mask files, and the label checks every source applies.

Every source of `keras_fcn.data` yields `(image, mask)` pairs: `image` uint8
of shape `(H, W, 3)` (RGB) and `mask` uint8 of shape `(H, W)` holding class
ids `0 .. num_classes - 1` or `IGNORE_LABEL` (255) for pixels that count in
no loss or metric. The checks here make a pair that breaks this contract
fail with an error naming its files, never pass silently.
"""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.errors import InvalidArgumentError, InvalidDataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
# Greatest raw mask value a `label_map` may remap (16-bit PNG masks).
MAX_RAW_VALUE = 65535
# Values listed in an error message before it says "...".
_MAX_LISTED = 10


def format_list(values):
    """`'a', 'b', ... (N in all)` for error messages, shortened past `_MAX_LISTED`."""
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:_MAX_LISTED])
    if len(values) > _MAX_LISTED:
        shown += f", ... ({len(values)} in all)"
    return shown


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def validate_num_classes(num_classes):
    """Checks that `num_classes` is an int from 1 to 255 (255 is the ignore label)."""
    if not _is_int(num_classes) or not 1 <= num_classes <= IGNORE_LABEL:
        raise InvalidArgumentError(
            f"`num_classes` must be an int from 1 to {IGNORE_LABEL} ({IGNORE_LABEL} is "
            f"the ignore label). Received num_classes={num_classes!r}"
        )


def _validate_class_id(value, num_classes, what):
    if not _is_int(value) or not (0 <= value < num_classes or value == IGNORE_LABEL):
        raise InvalidArgumentError(
            f"{what} must map to a class id from 0 to {num_classes - 1} or to the "
            f"ignore label {IGNORE_LABEL}. Received {value!r}"
        )


def _color_key(rgb):
    """Packs RGB values (last axis of size 3) into one int per colour."""
    rgb = np.asarray(rgb, dtype=np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


class LabelSpec:
    """How the raw values of a mask become class ids, and which ids are valid.

    Args:
        num_classes: int, the number of classes; valid mask values are
            `0 .. num_classes - 1` and the ignore label 255.
        label_map: optional dict `{raw value: class id or 255}` applied to
            index masks before the check, e.g. `{11: 255}` to ignore a void
            class stored as 11. Values it does not name are kept.
        color_map: optional, for RGB colour-coded masks: a sequence of
            `(r, g, b)` colours where position `i` is class `i`, or a dict
            `{(r, g, b): class id or 255}`. Every mask is then read as RGB
            and a colour outside the map is an error.
    """

    def __init__(self, num_classes, label_map=None, color_map=None):
        validate_num_classes(num_classes)
        self.num_classes = num_classes
        self.lut = None if label_map is None else self._label_lut(label_map)
        self.color_keys = self.color_ids = None
        if color_map is not None:
            self.color_keys, self.color_ids = self._color_table(color_map)

    def _label_lut(self, label_map):
        if not isinstance(label_map, dict):
            raise InvalidArgumentError(
                "`label_map` must be a dict {raw mask value: class id}. "
                f"Received label_map={label_map!r}"
            )
        lut = np.arange(MAX_RAW_VALUE + 1)
        for raw, new in label_map.items():
            if not _is_int(raw) or not 0 <= raw <= MAX_RAW_VALUE:
                raise InvalidArgumentError(
                    f"`label_map` keys must be ints from 0 to {MAX_RAW_VALUE}. "
                    f"Received key {raw!r} in label_map={label_map!r}"
                )
            _validate_class_id(new, self.num_classes, f"`label_map` key {raw}")
            lut[raw] = new
        return lut

    def _color_table(self, color_map):
        items = color_map.items() if isinstance(color_map, dict) else enumerate(color_map)
        colors, ids = [], []
        for key, value in items:
            color, class_id = (key, value) if isinstance(color_map, dict) else (value, key)
            color = tuple(color) if isinstance(color, (tuple, list, np.ndarray)) else color
            is_rgb = isinstance(color, tuple) and len(color) == 3
            if not (is_rgb and all(_is_int(c) and 0 <= c <= 255 for c in color)):
                raise InvalidArgumentError(
                    "`color_map` colours must be (r, g, b) tuples of ints from 0 to 255. "
                    f"Received colour {color!r} in color_map={color_map!r}"
                )
            _validate_class_id(class_id, self.num_classes, f"`color_map` colour {color}")
            colors.append(color)
            ids.append(class_id)
        if not colors or len(set(colors)) != len(colors):
            raise InvalidArgumentError(
                "`color_map` must name at least one colour and each colour once. "
                f"Received color_map={color_map!r}"
            )
        keys = _color_key(colors)
        order = np.argsort(keys)
        return keys[order], np.asarray(ids, dtype=np.uint8)[order]

    def to_class_ids(self, raw, name):
        """Turns a raw mask array into class ids and checks them.

        Args:
            raw: integer array `(H, W)`, `(H, W, 1)`, `(H, W, 2)` (grey and
                alpha), or `(H, W, 3 or 4)`: colours looked up in
                `color_map`, or without one a grey mask stored as RGB
                (all three channels equal).
            name: str, the mask's file or example name for error messages.

        Returns:
            uint8 array `(H, W)` of class ids or 255.
        """
        raw = np.asarray(raw)
        if self.color_keys is not None:
            return self._lookup_colors(raw, name)
        if raw.ndim == 3 and raw.shape[-1] in (3, 4):
            rgb = raw[..., :3]
            if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                raise InvalidDataError(
                    f"Mask '{name}' is a colour image (its R, G and B channels differ). "
                    "Pass `color_map` to read colour-coded masks, or store class ids "
                    "as a palette or greyscale PNG."
                )
        if raw.ndim == 3:
            raw = raw[..., 0]
        if raw.dtype == bool:
            raw = raw.astype(np.uint8)
        if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer):
            raise InvalidDataError(
                f"Mask '{name}' must be a 2-D integer array of class ids. "
                f"Received dtype {raw.dtype} and shape {raw.shape}"
            )
        counts = np.bincount(raw.ravel().astype(np.int64), minlength=IGNORE_LABEL + 1)
        if self.lut is not None:
            if len(counts) > len(self.lut):
                raise InvalidDataError(f"Mask '{name}' has values above {MAX_RAW_VALUE}.")
            raw = self.lut[raw]
            counts = np.bincount(raw.ravel(), minlength=IGNORE_LABEL + 1)
        counts[IGNORE_LABEL] = 0
        bad = np.flatnonzero(counts[self.num_classes :]) + self.num_classes
        if bad.size:
            raise InvalidDataError(
                f"Mask '{name}' has values [{format_list(bad.tolist())}] that are neither "
                f"class ids (0 to {self.num_classes - 1}) nor the ignore label "
                f"{IGNORE_LABEL}. Pass `label_map` to remap them, e.g. "
                f"label_map={{{int(bad[0])}: {IGNORE_LABEL}}}."
            )
        return raw.astype(np.uint8)

    def _lookup_colors(self, raw, name):
        if raw.ndim != 3 or raw.shape[-1] not in (3, 4):
            raise InvalidDataError(
                f"Mask '{name}' must be an RGB image to be read with `color_map`. "
                f"Received shape {raw.shape}"
            )
        keys = _color_key(raw[..., :3])
        index = np.minimum(np.searchsorted(self.color_keys, keys), len(self.color_keys) - 1)
        known = self.color_keys[index] == keys
        if not known.all():
            unknown = [((k >> 16) & 255, (k >> 8) & 255, k & 255) for k in np.unique(keys[~known]).tolist()]
            raise InvalidDataError(
                f"Mask '{name}' has colours [{format_list(unknown)}] that are not in `color_map`."
            )
        return self.color_ids[index]

    def check_pair(self, image, mask, image_name, mask_name):
        """Checks that an RGB image and a raw mask match; returns them as a pair.

        Args:
            image: uint8 array `(H, W, 3)`.
            mask: raw mask array, see `to_class_ids`.
            image_name, mask_name: str, names for error messages.

        Returns:
            `(image, mask)`: uint8 `(H, W, 3)` and uint8 `(H, W)`.
        """
        if image.shape[:2] != mask.shape[:2]:
            raise InvalidDataError(
                f"Image and mask differ in size: image '{image_name}' is "
                f"{image.shape[0]}x{image.shape[1]} but mask '{mask_name}' is "
                f"{mask.shape[0]}x{mask.shape[1]} (height x width)."
            )
        return image, self.to_class_ids(mask, mask_name)

    def load_pair(self, image_path, mask_path):
        """Reads, converts and checks one image file and its mask file."""
        image_path, mask_path = os.fsdecode(image_path), os.fsdecode(mask_path)
        return self.check_pair(
            read_image(image_path),
            read_mask(mask_path, rgb=self.color_keys is not None),
            image_path,
            mask_path,
        )


def _read(path, kind, mode=None):
    """Decodes an image file with Pillow, converted to `mode` if given; names the file on failure."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode) if mode else image)
    except (OSError, ValueError, SyntaxError) as error:
        raise InvalidDataError(f"Cannot read {kind} file '{path}': {error}") from error


def read_image(path):
    """Reads a PNG, JPEG or BMP file as RGB (greyscale, palette and RGBA are converted).

    Returns:
        uint8 array `(H, W, 3)`.
    """
    return _read(path, "image", "RGB")


def read_mask(path, rgb=False):
    """Reads a mask file: an image file, or an SBD `.mat` file (its `GTcls.Segmentation`).

    Args:
        path: str, the file.
        rgb: bool, whether to convert an image file to RGB (colour-coded
            masks); otherwise palette PNGs give their palette indices.

    Returns:
        The raw mask array, see `LabelSpec.to_class_ids`.
    """
    if path.lower().endswith(".mat"):
        return _read_sbd_mat(path)
    return _read(path, "mask", "RGB" if rgb else None)


def _read_sbd_mat(path):
    import scipy.io

    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise InvalidDataError(
            f"Cannot read mask file '{path}' as an SBD class mask (a MATLAB file "
            f"with a GTcls.Segmentation field): {error!r}"
        ) from error


def set_pair_shapes(image, mask):
    """Gives a pair returned by `tf.numpy_function` its known ranks."""
    image.set_shape([None, None, 3])
    mask.set_shape([None, None])
    return image, mask


def from_file_pairs(image_paths, mask_paths, *, num_classes, label_map=None, color_map=None):
    """A dataset reading image files and their mask files, in the given order.

    Files are decoded in parallel (order kept). Each pair is checked as it
    is read: an unreadable file, an image and mask of different sizes, or a
    mask value that is neither a class id nor 255 raises
    `tf.errors.InvalidArgumentError` whose message names the file(s).

    Args:
        image_paths: sequence of str, PNG, JPEG or BMP images (greyscale,
            palette and RGBA images become RGB).
        mask_paths: sequence of str of the same length: palette or
            greyscale PNGs (or BMPs) of class ids, RGB colour-coded images
            with `color_map`, or SBD `.mat` files.
        num_classes: int, see `LabelSpec`.
        label_map: optional dict `{raw value: class id or 255}`.
        color_map: optional colours of the classes, see `LabelSpec`.

    Returns:
        A `tf.data.Dataset` of `(image, mask)`: uint8 `(H, W, 3)` and uint8
        `(H, W)`.

    Example:

    >>> ds = keras_fcn.data.from_file_pairs(
    ...     ["a.jpg", "b.jpg"], ["a.png", "b.png"], num_classes=21)
    """
    spec = LabelSpec(num_classes, label_map=label_map, color_map=color_map)
    image_paths, mask_paths = [os.fspath(p) for p in image_paths], [os.fspath(p) for p in mask_paths]
    if len(image_paths) != len(mask_paths) or not image_paths:
        raise InvalidArgumentError(
            "`image_paths` and `mask_paths` must be non-empty and of the same length. "
            f"Received {len(image_paths)} image paths and {len(mask_paths)} mask paths."
        )

    def load(image_path, mask_path):
        pair = tf.numpy_function(
            spec.load_pair, [image_path, mask_path], (tf.uint8, tf.uint8), stateful=False
        )
        return set_pair_shapes(*pair)

    dataset = tf.data.Dataset.from_tensor_slices((image_paths, mask_paths))
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
