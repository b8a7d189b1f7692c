"""Reading mask files, and the label checks every source applies (images: `image_files`).

Every source of `keras_fcn.data` yields `(image, mask)` pairs: `image` uint8
of shape `(H, W, 3)` (RGB) and `mask` uint8 of shape `(H, W)` holding class
ids `0 .. num_classes - 1` or `IGNORE_LABEL` (255) for pixels that count in
no loss or metric. The checks here make a pair that breaks this contract
fail with an error naming its files, never pass silently.
"""

import os

import numpy as np

from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.data.image_files import INT32_MODE, LOSSY_FORMATS, SIXTEEN_BIT_MODES, read_image, read_upright
from keras_fcn.errors import InvalidArgumentError, InvalidDataError

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

    At most one of `label_map`, `color_map` and `mask_threshold` may be given;
    without any, mask values are class ids as they are.

    Args:
        num_classes: int, the number of classes; valid mask values are
            `0 .. num_classes - 1` and the ignore label 255.
        label_map: optional dict `{raw value: class id or 255}` applied to
            index masks before the check, e.g. `{11: 255}` to ignore a void
            class stored as 11, or `{255: 1}` for binary masks that store
            the foreground as 255. Values it does not name are kept.
        color_map: optional, for RGB colour-coded masks: a sequence of
            `(r, g, b)` colours where position `i` is class `i`, or a dict
            `{(r, g, b): class id or 255}`. Every mask is then read as RGB
            and a colour outside the map is an error.
        mask_threshold: optional int from 1 to 65535, for binary masks with
            in-between values (JPEG masks, anti-aliased edges): a grey value
            below it is class 0, at or above it class 1. Needs
            `num_classes=2`; colour masks are read as grey (luma).

    Lossy (JPEG) masks are refused unless `label_map` or `mask_threshold` says
    how to read their values.
    """

    def __init__(self, num_classes, label_map=None, color_map=None, mask_threshold=None):
        validate_num_classes(num_classes)
        options = {"label_map": label_map, "color_map": color_map, "mask_threshold": mask_threshold}
        given = [name for name, value in options.items() if value is not None]
        if len(given) > 1:
            raise InvalidArgumentError(
                "Give at most one of `label_map`, `color_map` and `mask_threshold`: each says alone how mask "
                f"values become class ids. Received {', '.join(given)}."
            )
        self.num_classes = num_classes
        self.lut = None if label_map is None else self._label_lut(label_map)
        self.color_keys = self.color_ids = None
        if color_map is not None:
            self.color_keys, self.color_ids = self._color_table(color_map)
        self.threshold = None if mask_threshold is None else self._validate_threshold(mask_threshold)

    @property
    def maps_values(self):
        """Whether a `label_map`, `color_map` or `mask_threshold` says how mask values become class ids."""
        return self.lut is not None or self.color_keys is not None or self.threshold is not None

    def _validate_threshold(self, threshold):
        if not _is_int(threshold) or not 1 <= threshold <= MAX_RAW_VALUE:
            raise InvalidArgumentError(
                f"`mask_threshold` must be an int from 1 to {MAX_RAW_VALUE}: grey values below it are class 0, "
                f"the others class 1. Received mask_threshold={threshold!r}"
            )
        if self.num_classes != 2:
            raise InvalidArgumentError(
                "`mask_threshold` makes binary masks (class 0 below it, class 1 at or above it) and needs "
                f"num_classes=2. Received num_classes={self.num_classes}, mask_threshold={threshold}"
            )
        return threshold

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
        if self.threshold is not None:
            return self._binarize(raw, name)
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
                f"{IGNORE_LABEL}. Remap them, e.g. --label-map {int(bad[0])}:{IGNORE_LABEL} "
                f"(label_map={{{int(bad[0])}: {IGNORE_LABEL}}})."
            )
        return raw.astype(np.uint8)

    def _binarize(self, raw, name):
        if raw.ndim == 3 and raw.shape[-1] == 1:
            raw = raw[..., 0]
        if raw.ndim != 2 or not (np.issubdtype(raw.dtype, np.integer) or raw.dtype == bool):
            raise InvalidDataError(
                f"Mask '{name}' must be a 2-D grey image to be read with `mask_threshold`. "
                f"Received dtype {raw.dtype} and shape {raw.shape}"
            )
        return (raw >= self.threshold).astype(np.uint8)

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
            raise InvalidDataError(size_mismatch(image_name, image.shape[:2], mask_name, mask.shape[:2]))
        return image, self.to_class_ids(mask, mask_name)

    def load_pair(self, image_path, mask_path):
        """Reads, converts and checks one image file and its mask file.

        The image is read by `keras_fcn.data.read_image`; the mask by
        `read_mask`, as this spec reads masks.

        Returns:
            `(image, mask)`: uint8 `(H, W, 3)` and uint8 `(H, W)`.
        """
        image_path, mask_path = os.fsdecode(image_path), os.fsdecode(mask_path)
        reading = "color" if self.color_keys is not None else "grey" if self.threshold is not None else "index"
        mask = read_mask(mask_path, reading=reading, allow_lossy=self.lut is not None or self.threshold is not None)
        return self.check_pair(read_image(image_path), mask, image_path, mask_path)


def size_mismatch(image_name, image_size, mask_name, mask_size, note=""):
    """The error message for an image and a mask of different `(height, width)`, with an optional `note`."""
    return (
        f"Image and mask differ in size: image '{image_name}' is {image_size[0]}x{image_size[1]} "
        f"but mask '{mask_name}' is {mask_size[0]}x{mask_size[1]} (height x width).{note}"
    )


MASK_READINGS = ("index", "color", "grey")


def read_mask(path, reading="index", allow_lossy=False):
    """Reads a mask file: an image file (upright, see `read_image`), or an SBD `.mat` file.

    Args:
        path: str, the file.
        reading: `"index"` (pixel values as stored: palette PNGs give
            their palette indices, 16-bit PNGs their 16-bit values),
            `"color"` (RGB, for colour-coded masks) or `"grey"` (one grey
            value per pixel: colours become their luma, grey and 16-bit
            masks keep their values).
        allow_lossy: bool, whether to read a mask stored in a lossy format
            (JPEG), whose compression changes values near edges.

    Returns:
        The raw mask array, see `LabelSpec.to_class_ids`; a `.mat` file
        gives its `GTcls.Segmentation`.

    Raises:
        ValueError: naming the file, if it cannot be read, or is lossy and
            `allow_lossy` is False.
    """
    if reading not in MASK_READINGS:
        raise InvalidArgumentError(f"`reading` must be one of {MASK_READINGS}. Received reading={reading!r}")
    if is_sbd_mat(path):
        return _read_sbd_mat(path)
    image, file_format = read_upright(path, "mask")
    if file_format in LOSSY_FORMATS and not allow_lossy:
        raise InvalidDataError(
            f"Mask '{path}' is a {file_format} file, whose lossy compression changes pixel values near edges, "
            "so it would give pixels wrong class ids. Save masks as PNG; or, to read these anyway, pass "
            "--mask-threshold (mask_threshold=) for binary masks, or --label-map (label_map=) naming their values."
        )
    if reading == "color":
        return np.asarray(image.convert("RGB"))
    if reading == "grey" and image.mode not in ("L", INT32_MODE) + SIXTEEN_BIT_MODES:
        return np.asarray(image.convert("L"))
    return np.asarray(image)


def is_sbd_mat(path):
    """Whether a mask file is an SBD class mask, a MATLAB `.mat` file."""
    return path.lower().endswith(".mat")


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
