"""A `tf.data` dataset of image files and their mask files, checked before it is used."""

import os

import tensorflow as tf

from keras_fcn.data.checks import check_file_pairs
from keras_fcn.data.decode import LabelSpec, set_pair_shapes
from keras_fcn.errors import InvalidArgumentError


def from_file_pairs(
    image_paths, mask_paths, *, num_classes, label_map=None, color_map=None, mask_threshold=None, check=True, verbose=1
):
    """A dataset reading image files and their mask files, in the given order.

    With `check` (default), every pair is read once now
    (`keras_fcn.data.checks.check_file_pairs`, with a progress bar) and one
    `ValueError` lists every bad pair: files that cannot be read or are
    truncated, image and mask of different sizes (EXIF orientation
    applied), lossy (JPEG) masks without `mask_threshold` or `label_map`,
    mask values that are neither class ids nor 255, and masks that store a
    class as 255 (such as 0/255 binary masks read without `label_map`).
    The dataset then decodes the files in parallel (order kept) as it is
    iterated, with the same checks; with `check=False` only these, where a
    bad pair raises `tf.errors.InvalidArgumentError` naming its files.

    Args:
        image_paths: sequence of str, images in any format Pillow reads
            (PNG, JPEG, BMP, TIFF, ...), read by
            `keras_fcn.data.read_image`: upright (EXIF), RGB, 16-bit grey
            scaled to [0, 255].
        mask_paths: sequence of str of the same length: palette or
            greyscale PNGs (or BMPs, TIFFs) of class ids, RGB colour-coded
            images with `color_map`, or SBD `.mat` files.
        num_classes: int, see `keras_fcn.data.LabelSpec`.
        label_map: optional dict `{raw value: class id or 255}`, e.g.
            `{255: 1}` for 0/255 binary masks.
        color_map: optional colours of the classes, see `LabelSpec`.
        mask_threshold: optional int: binary masks, grey values below it
            are class 0, the others class 1 (`num_classes=2`).
        check: bool, whether to check every pair now.
        verbose: 0 (silent), 1 (default: a line and a progress bar while
            the pairs are checked) or 2 (the line and one line when done).

    Returns:
        A `tf.data.Dataset` of `(image, mask)`: uint8 `(H, W, 3)` and uint8
        `(H, W)`.

    Raises:
        ValueError: for invalid arguments, and with `check` for bad pairs.

    Example:

    >>> ds = keras_fcn.data.from_file_pairs(
    ...     ["a.jpg", "b.jpg"], ["a.png", "b.png"], num_classes=21)
    """
    spec = LabelSpec(num_classes, label_map=label_map, color_map=color_map, mask_threshold=mask_threshold)
    image_paths, mask_paths = [os.fspath(p) for p in image_paths], [os.fspath(p) for p in mask_paths]
    if len(image_paths) != len(mask_paths) or not image_paths:
        raise InvalidArgumentError(
            "`image_paths` and `mask_paths` must be non-empty and of the same length. "
            f"Received {len(image_paths)} image paths and {len(mask_paths)} mask paths."
        )
    if not isinstance(check, bool):
        raise InvalidArgumentError(f"`check` must be a bool. Received check={check!r}")
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise InvalidArgumentError(f"`verbose` must be 0, 1 or 2. Received verbose={verbose!r}")
    if check:
        check_file_pairs(image_paths, mask_paths, spec, verbose=verbose)

    def load(image_path, mask_path):
        pair = tf.numpy_function(
            spec.load_pair, [image_path, mask_path], (tf.uint8, tf.uint8), stateful=False
        )
        return set_pair_shapes(*pair)

    dataset = tf.data.Dataset.from_tensor_slices((image_paths, mask_paths))
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
