"""Folders of images and masks matched by file name: the layout most users bring."""

import os

from keras_fcn.data.decode import format_list
from keras_fcn.data.file_pairs import from_file_pairs
from keras_fcn.data.image_files import IMAGE_EXTENSIONS, list_image_files
from keras_fcn.errors import InvalidArgumentError, InvalidDataError


def _files_by_stem(directory, what):
    """Maps each file stem in `directory` to its path (image files only, hidden files skipped)."""
    if not os.path.isdir(directory):
        raise InvalidArgumentError(f"`{what}` must be an existing directory. Received {what}={directory!r}")
    files = {}
    for path in list_image_files(directory):
        name = os.path.basename(path)
        stem = os.path.splitext(name)[0]
        if stem in files:
            raise InvalidDataError(
                f"Two files in {directory!r} share the name {stem!r}: "
                f"{os.path.basename(files[stem])!r} and {name!r}. Keep one."
            )
        files[stem] = path
    if not files:
        raise InvalidDataError(
            f"Found no image files ({', '.join(IMAGE_EXTENSIONS)}) in {what}={directory!r}"
        )
    return files


def match_by_stem(images_dir, masks_dir, mask_suffix=""):
    """Pairs the images in one folder with the masks in another by file stem.

    Args:
        images_dir: str, folder of images (PNG, JPEG, BMP, TIFF, by
            extension); hidden files, such as macOS `._*` files, are
            skipped.
        masks_dir: str, folder of masks with the same extensions.
        mask_suffix: str, what a mask's stem adds to its image's stem, e.g.
            `"_L"` to pair `0001.png` with `0001_L.png`.

    Returns:
        Two lists of paths `(image_paths, mask_paths)`, sorted by stem.

    Raises:
        ValueError: if a folder has no images, if two files in a folder share
            a stem, or if an image has no mask or a mask no image (the error
            lists them).
    """
    images = _files_by_stem(images_dir, "images_dir")
    masks, unmatched_masks = {}, []
    for stem, path in _files_by_stem(masks_dir, "masks_dir").items():
        image_stem = stem[: len(stem) - len(mask_suffix)]
        if stem.endswith(mask_suffix) and image_stem in images:
            masks[image_stem] = path
        else:
            unmatched_masks.append(os.path.basename(path))
    unmatched_images = sorted(os.path.basename(path) for stem, path in images.items() if stem not in masks)
    if unmatched_images or unmatched_masks:
        lines = []
        if unmatched_images:
            lines.append(f"images in {images_dir!r} without a mask in {masks_dir!r}: {format_list(unmatched_images)}")
        if unmatched_masks:
            lines.append(f"masks in {masks_dir!r} without an image in {images_dir!r}: {format_list(unmatched_masks)}")
        rule = "the same name" if not mask_suffix else f"the image's name + {mask_suffix!r}"
        raise InvalidDataError(
            f"Images and masks must pair up by file name (a mask's name, extension aside, is {rule}); found "
            + "; ".join(lines)
        )
    stems = sorted(images)
    return [images[s] for s in stems], [masks[s] for s in stems]


def from_folders(
    images_dir,
    masks_dir,
    *,
    num_classes,
    color_map=None,
    label_map=None,
    mask_threshold=None,
    mask_suffix="",
    check=True,
    verbose=1,
):
    """A dataset of the image/mask pairs in two folders, matched by file stem.

    Masks are class-index PNGs (palette or greyscale) or, with `color_map`,
    RGB colour-coded images. Pairs come in order of file stem. Every pair is
    checked now (see `from_file_pairs`).

    Args:
        images_dir: str, folder of images (PNG, JPEG, BMP, TIFF; read
            upright, as RGB; see `keras_fcn.data.read_image`). Hidden files,
            such as macOS `._*` files, are skipped.
        masks_dir: str, folder of masks, one per image.
        num_classes: int, the number of classes; mask values must be
            `0 .. num_classes - 1` or 255 (ignore), after `label_map`.
        color_map: optional, for colour-coded masks: a sequence of `(r, g, b)`
            colours (position `i` is class `i`) or a dict
            `{(r, g, b): class id or 255}`; see also `read_color_map`.
        label_map: optional dict `{raw value: class id or 255}` remapping
            index masks, e.g. `{11: 255}`, or `{255: 1}` for 0/255 binary
            masks.
        mask_threshold: optional int, for binary masks with in-between
            values (JPEG): grey values below it are class 0, the others
            class 1 (`num_classes=2`).
        mask_suffix: str, see `match_by_stem`.
        check: bool, whether to read every pair now and raise one error
            listing all bad pairs (see `from_file_pairs`).
        verbose: 0 (silent), 1 (default: a line and a progress bar while
            the pairs are checked) or 2 (the line and one line when done).

    Returns:
        A `tf.data.Dataset` of `(image, mask)`: uint8 `(H, W, 3)` and uint8
        `(H, W)`.

    Raises:
        ValueError: for an image without a mask or a mask without an image
            (listing them), for bad pairs (listing them all), and for invalid
            arguments.

    Example:

    >>> ds = keras_fcn.data.from_folders(
    ...     "photos", "labels", num_classes=3,
    ...     color_map=[(0, 0, 0), (128, 0, 0), (0, 128, 0)])
    >>> image, mask = next(iter(ds))  # uint8 (H, W, 3), uint8 (H, W)
    """
    image_paths, mask_paths = match_by_stem(images_dir, masks_dir, mask_suffix)
    return from_file_pairs(
        image_paths,
        mask_paths,
        num_classes=num_classes,
        label_map=label_map,
        color_map=color_map,
        mask_threshold=mask_threshold,
        check=check,
        verbose=verbose,
    )
