"""Checking every image/mask pair of a file dataset before any training or evaluation starts.

A bad pair found by `tf.data` in the middle of `model.fit` ends the run in a
TensorFlow traceback naming that one pair, and can leave the process hanging
at exit (a `tf.data` iterator stuck on the failed `tf.numpy_function`).
`check_file_pairs` instead reads the whole dataset once, up front:

1. sizes from the file headers (Pillow reads no pixels), EXIF orientation
   applied: an image and mask of different sizes;
2. every pair decoded and converted as training will read it (in threads,
   with a `keras.utils.Progbar`): unreadable or truncated files, lossy
   masks, mask values that are neither class ids nor 255;

and raises one `ValueError` listing every bad pair, or, for masks that
store a class as 255 (the ignore label), one explaining the fix.
"""

import concurrent.futures
import os

import keras
import numpy as np

from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.data.decode import format_list, is_sbd_mat, size_mismatch
from keras_fcn.data.image_files import upright_size
from keras_fcn.errors import InvalidDataError


def _header_problem(image_path, mask_path):
    """The size mismatch of a pair from the file headers, as an error message, or None."""
    try:
        image_size, stored_size, orientation = upright_size(image_path, "image")
        if is_sbd_mat(mask_path):
            return None
        mask_size = upright_size(mask_path, "mask")[0]
    except ValueError as error:
        return str(error)
    if image_size == mask_size:
        return None
    note = ""
    if orientation != 1 and stored_size == mask_size:
        note = (
            f" The image is stored {stored_size[0]}x{stored_size[1]} with EXIF orientation {orientation}, which "
            "is applied when it is read (as photo viewers do); the mask fits the stored, unrotated pixels. "
            "Turn the mask to fit the upright image, or save the image upright without the orientation tag."
        )
    return size_mismatch(image_path, image_size, mask_path, mask_size, note)


def _value_counts(spec, image_path, mask_path):
    """`(counts of the class ids and 255 in the converted mask, None)`, or `(None, error message)`."""
    try:
        _, mask = spec.load_pair(image_path, mask_path)
    except ValueError as error:
        return None, str(error)
    return np.bincount(mask.ravel(), minlength=IGNORE_LABEL + 1), None


def _masks_place(mask_paths):
    """Where the masks are, for messages: their common folder, or the first mask's name."""
    try:
        return f"the masks in '{os.path.commonpath([os.path.dirname(p) or os.curdir for p in mask_paths])}'"
    except ValueError:
        return f"the masks ('{mask_paths[0]}', ...)"


def check_ignore_label_use(counts, spec, place="the masks"):
    """Refuses masks that most likely store a class as 255, the ignore label (e.g. 0/255 binary masks).

    Masks holding 0 for background and 255 for the object, read with
    `num_classes=2`, leave class 1 without a single pixel: the object is
    ignored, the model never sees it and evaluation reports mean IU 1.0.
    The rule: unless a `label_map`, `color_map` or threshold says how to
    read the masks, some class has no pixels, 255 has some, and either at
    most one class has pixels or 255 covers more pixels than all classes.

    Args:
        counts: int array `(256,)`, the pixel count of each converted mask
            value (class ids, and 255 at index 255).
        spec: the `LabelSpec` the masks were read with.
        place: str, where the masks are, for the message.

    Raises:
        ValueError: suggesting `label_map={255: c}` or a threshold, or
            `label_map={255: 255}` to confirm that 255 means "ignore".
    """
    labelled, ignored = counts[: spec.num_classes], int(counts[IGNORE_LABEL])
    absent = np.flatnonzero(labelled == 0)
    if spec.maps_values or not absent.size or not ignored:
        return
    if np.count_nonzero(labelled) > 1 and ignored <= labelled.sum():
        return
    share = ignored / (ignored + labelled.sum())
    missing = int(absent[-1])
    raise InvalidDataError(
        f"{place[0].upper()}{place[1:]} hold no pixel of class{'es' if absent.size > 1 else ''} "
        f"{format_list(absent.tolist())} and {share:.0%} of their pixels are {IGNORE_LABEL}, the ignore label. "
        f"Masks that store a class as {IGNORE_LABEL} (such as 0/255 binary masks) would train a model that "
        f"never sees it, and evaluation would leave it out. To read {IGNORE_LABEL} as class {missing}, pass "
        f"--label-map {IGNORE_LABEL}:{missing} (label_map={{{IGNORE_LABEL}: {missing}}}); for binary masks "
        "with in-between values (JPEG, smoothed edges), --mask-threshold 128 (mask_threshold=128). If "
        f"{IGNORE_LABEL} does mark pixels to ignore, say so with --label-map {IGNORE_LABEL}:{IGNORE_LABEL} "
        f"(label_map={{{IGNORE_LABEL}: {IGNORE_LABEL}}})."
    )


def check_file_pairs(image_paths, mask_paths, spec, *, verbose=1):
    """Reads every image/mask pair once and reports all bad pairs together.

    Args:
        image_paths: sequence of str, the image files.
        mask_paths: sequence of str of the same length, their masks.
        spec: a `keras_fcn.data.LabelSpec`, how the masks are read.
        verbose: 0 (silent), 1 (a line and a progress bar over the pairs) or
            2 (the line, and one line when done).

    Returns:
        int64 numpy array `(256,)`: the number of pixels of each class id,
        and of the ignore label at index 255, over all masks.

    Raises:
        ValueError: listing every bad pair (one line each, naming its
            files), or from `check_ignore_label_use`.

    Example:

    >>> counts = check_file_pairs(["a.jpg"], ["a.png"], LabelSpec(3))
    """
    problems = {}
    for index, (image_path, mask_path) in enumerate(zip(image_paths, mask_paths)):
        problem = _header_problem(image_path, mask_path)
        if problem is not None:
            problems[index] = problem
    to_read = [index for index in range(len(image_paths)) if index not in problems]
    if verbose:
        print(f"Checking {len(image_paths)} image/mask pairs ({_masks_place(mask_paths)})")
    progbar = keras.utils.Progbar(len(image_paths), verbose=verbose, unit_name="pair")
    if problems:
        progbar.add(len(problems))  # refused by their headers: checked, not decoded
    counts = np.zeros(IGNORE_LABEL + 1, np.int64)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        results = pool.map(lambda index: _value_counts(spec, image_paths[index], mask_paths[index]), to_read)
        for index, (pair_counts, problem) in zip(to_read, results):
            if problem is None:
                counts += pair_counts
            else:
                problems[index] = problem
            progbar.add(1)
    if problems:
        raise InvalidDataError(
            f"{len(problems)} of {len(image_paths)} image/mask pairs cannot be used:\n"
            + "\n".join(f"- {problems[index]}" for index in sorted(problems))
        )
    check_ignore_label_use(counts, spec, _masks_place(mask_paths))
    return counts
