"""Image files as a viewer shows them: which files are images, upright (EXIF), as 8-bit RGB.

One reading for everything that takes image files (the data sources and
`keras-fcn predict`), so a photo is seen the same way in training and in
use. Pillow reads every format (PNG, JPEG, BMP, TIFF, ...); these functions
add what Pillow leaves to the caller:

- the EXIF orientation tag is applied (`PIL.ImageOps.exif_transpose`), so a
  phone photo stored sideways is read upright, as viewers show it;
- 16-bit greyscale images (Pillow modes `I;16`, `I;16B`, ..., and `I`
  holding 0..65535: 16-bit PNGs and TIFFs) are scaled to [0, 255] by
  `round(value * 255 / 65535)`, not clipped as Pillow's own conversion to
  8 bits does. (16-bit RGB PNGs come from Pillow already scaled to 8 bits,
  as `tf.image.decode_png(..., dtype=tf.uint8)` scales them.)
- folder listings skip hidden files, such as the `._*` files that macOS
  writes beside every file on a shared drive.
"""

import os

import numpy as np
from PIL import ExifTags, Image, ImageOps

from keras_fcn.errors import InvalidDataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Pillow modes of 16-bit greyscale images (native, little- and big-endian byte order).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# Pillow's 32-bit integer mode: 16-bit images in some formats and Pillow versions, read as 0..65535.
INT32_MODE = "I"
MAX_16_BIT = 65535
# EXIF orientations (TIFF tag 274) that turn the stored image by 90 or 270 degrees, swapping height and width.
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
# Formats whose compression changes pixel values (so a mask's class ids).
LOSSY_FORMATS = ("JPEG", "MPO", "JPEG2000")
READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def is_image_file(name):
    """Whether a file name is an image by its extension, and not hidden (`.name`, macOS `._name`)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_image_files(directory):
    """The image files of a folder (see `is_image_file`), sorted by name; sub-folders are not entered.

    Returns:
        list of str, paths `os.path.join(directory, name)`.
    """
    return [
        os.path.join(directory, name)
        for name in sorted(os.listdir(directory))
        if is_image_file(name) and os.path.isfile(os.path.join(directory, name))
    ]


def orientation(image):
    """The EXIF orientation (1 to 8) of an open `PIL.Image`, 1 when it has none; reads no pixels.

    A PNG's EXIF chunk, when it follows the pixel data, is not looked for
    (Pillow would decode the pixels to reach it).
    """
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    value = image.getexif().get(ExifTags.Base.Orientation, 1)
    return value if value in range(1, 9) else 1


def upright_size(path, kind="image"):
    """The `(height, width)` of an image file as shown (EXIF orientation applied), from its header alone.

    Args:
        path: str, the file.
        kind: str, `"image"` or `"mask"`, for the error message.

    Returns:
        `((height, width), (stored height, stored width), orientation)`: the
        upright size, the size of the stored pixels and the EXIF
        orientation (1 to 8).

    Raises:
        ValueError: naming the file, if Pillow cannot read its header.
    """
    try:
        with Image.open(path) as image:
            turn = orientation(image)
            stored = (image.height, image.width)
    except READ_ERRORS as error:
        raise InvalidDataError(f"Cannot read {kind} file '{path}': {error}") from error
    return (stored[::-1] if turn in SWAPPING_ORIENTATIONS else stored), stored, turn


def _as_uint8_rgb(image, path):
    """An upright Pillow image as a uint8 RGB array; 16-bit greyscale scaled to [0, 255]."""
    if image.mode in SIXTEEN_BIT_MODES + (INT32_MODE,):
        values = np.asarray(image).astype(np.float64)
        if values.size and (values.min() < 0 or values.max() > MAX_16_BIT):
            raise InvalidDataError(
                f"Image '{path}' has {image.mode} pixel values from {values.min():g} to {values.max():g}; "
                f"integer images are read as 16-bit, 0 to {MAX_16_BIT}. Save it as 8- or 16-bit."
            )
        grey = np.round(values * (255 / MAX_16_BIT)).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if image.mode == "F":
        raise InvalidDataError(
            f"Image '{path}' holds floating-point pixels (Pillow mode F), whose range is unknown. "
            "Save it as an 8- or 16-bit image."
        )
    return np.asarray(image.convert("RGB"))


def read_upright(path, kind="image"):
    """Opens an image file and applies its EXIF orientation.

    Args:
        path: str, the file.
        kind: str, `"image"` or `"mask"`, for the error message.

    Returns:
        `(image, format)`: the upright `PIL.Image` with its pixels loaded,
        and the file's format as Pillow names it (`"PNG"`, `"JPEG"`, ...).

    Raises:
        ValueError: naming the file, if it cannot be read (missing,
            truncated, not an image).
    """
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            upright.load()
            return upright, image.format
    except READ_ERRORS as error:
        raise InvalidDataError(f"Cannot read {kind} file '{path}': {error}") from error


def read_image(path):
    """Reads an image file as the models take it: upright, RGB, 8 bits per channel.

    Greyscale, palette, RGBA and CMYK images become RGB; 16-bit greyscale
    images are scaled to [0, 255] (see the module's documentation).

    Args:
        path: str, a PNG, JPEG, BMP, TIFF or any file Pillow reads.

    Returns:
        uint8 array `(H, W, 3)`, the image upright.

    Raises:
        ValueError: naming the file, if it cannot be read or holds
            floating-point or out-of-range integer pixels.

    Example:

    >>> keras_fcn.data.read_image("photo.jpg").shape   # a portrait phone photo
    (4032, 3024, 3)
    """
    return _as_uint8_rgb(read_upright(path)[0], path)
