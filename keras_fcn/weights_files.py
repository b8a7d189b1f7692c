"""Reading weights and model files, with errors that name the file and say what is wrong with it.

Keras reports a weights file for another number of classes with kilobytes
of tensor values and no file name, a corrupt `.keras` file as "File is not a
zip file", and a failed ImageNet download as a generic exception; the
functions here turn these into one `keras_fcn.errors.InvalidDataError` that
names the file (or download) and what to do.
"""

import collections
import contextlib
import io
import os
import warnings
import zipfile

import keras

from keras_fcn.errors import InvalidDataError

# The member of a `.keras` archive that holds the weights (Keras's format, `keras.saving.save_model`).
KERAS_ARCHIVE_WEIGHTS = "model.weights.h5"
# How `keras.utils.get_file` starts the message of a download that failed (URL and HTTP errors alike).
_DOWNLOAD_FAILURE = "URL fetch failure"


def _weight_shapes(path):
    """The shapes of the arrays stored in a `.weights.h5` file or in a `.keras` archive's weights, as a Counter."""
    import h5py

    shapes = collections.Counter()

    def collect(_, item):
        if isinstance(item, h5py.Dataset):
            shapes[tuple(item.shape)] += 1

    source = path
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            source = io.BytesIO(archive.read(KERAS_ARCHIVE_WEIGHTS))
    with h5py.File(source, "r") as file:
        file.visititems(collect)
    return shapes


def _mismatch(model, path):
    """What differs between `model`'s weights and the file's: a sentence naming the file."""
    try:
        in_file = _weight_shapes(path)
    except (OSError, KeyError, zipfile.BadZipFile):
        in_file = collections.Counter()
    in_model = collections.Counter(tuple(weight.shape) for weight in model.weights)
    only_in_file, only_in_model = in_file - in_model, in_model - in_file
    num_classes = model.output_shape[-1]
    # A score layer's kernel ends in the number of classes: the file's count is the last dimension of its arrays
    # shaped like such a kernel in all but the last dimension (the file may also hold optimizer state).
    file_classes = collections.Counter(
        stored[-1]
        for stored in only_in_file
        for expected in only_in_model
        if stored and len(expected) >= 2 and expected[-1] == num_classes != stored[-1] and stored[:-1] == expected[:-1]
    )
    if file_classes:
        count = file_classes.most_common(1)[0][0]
        return (
            f"{path} holds a {count}-class {model.name}; this model has {num_classes} classes. "
            f"Build it with num_classes={count}, or start from other weights"
        )
    example = next(iter(only_in_file), None)
    detail = f", e.g. {example} (the model's: {next(iter(only_in_model), None)})" if example else ""
    return (
        f"{path} does not fit this {model.name} ({num_classes} classes): {sum(only_in_file.values())} of its arrays "
        f"have shapes the model's weights do not have{detail}. Is it the weights of another architecture or backbone?"
    )


def load_weights(model, path, argument="weights"):
    """`model.load_weights(path)`, refusing a file that is not weights of this model with a message naming it.

    Args:
        model: a `keras.Model`.
        path: str, a `.weights.h5` or `.keras` file.
        argument: str, the argument that named the file, for the message.

    Raises:
        keras_fcn.errors.InvalidDataError: (a `ValueError`) for a file that
            cannot be read as Keras weights (corrupt, truncated, another
            format), or whose weights do not fit `model` (another number of
            classes, named with the file's and the model's, or another
            architecture).
    """
    try:
        # Keras warns about every layer it skips before it raises for weights that do not fit; a load that
        # succeeds has its warnings shown.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.load_weights(path)
        for warning in caught:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    except ValueError as error:
        raise InvalidDataError(f"`{argument}`: {_mismatch(model, path)}.") from error
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise InvalidDataError(
            f"`{argument}`: {path} is not a readable Keras weights file (.weights.h5 or .keras): {error}"
        ) from error


def check_model_path(path, argument="model"):
    """Refuses a path that cannot name a saved model: a folder, or a file whose suffix is not `.keras` (or `.h5`).

    Raises:
        keras_fcn.errors.InvalidDataError: naming `argument` and the path.
    """
    if os.path.isdir(path):
        raise InvalidDataError(f"`{argument}`: {path} is a folder, not a .keras model file")
    suffix = os.path.splitext(str(path))[1]
    if suffix not in (".keras", ".h5"):
        raise InvalidDataError(
            f"`{argument}`: {path} is not a .keras model file (one written by `model.save('name.keras')`); "
            f"received a {suffix or 'suffix-less'} file"
        )


def load_model_file(path, argument="model"):
    """`keras.saving.load_model(path, compile=False)`, naming the file when it cannot be read.

    Args:
        path: str, a `.keras` file.
        argument: str, the argument that named the file, for the message.

    Returns:
        The `keras.Model`.

    Raises:
        keras_fcn.errors.InvalidDataError: for a file that is not a
            readable `.keras` model (corrupt, truncated, another format).
    """
    check_model_path(path, argument)
    if str(path).endswith(".keras") and not zipfile.is_zipfile(path):
        raise InvalidDataError(
            f"`{argument}`: {path} is not a readable .keras model file: not a zip archive (truncated, or another format)"
        )
    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        details = " ".join(str(error).split())  # Keras's messages span lines; an error here is one
        raise InvalidDataError(f"`{argument}`: {path} is not a readable .keras model file: {details}") from error


@contextlib.contextmanager
def imagenet_download(backbone, backbone_weights):
    """Turns a failed download of Keras Applications weights inside the block into a one-line error.

    Args:
        backbone: str, the backbone's name, for the message.
        backbone_weights: what was passed as `backbone_weights`.

    Raises:
        keras_fcn.errors.InvalidDataError: when `keras.utils.get_file`
            cannot fetch the weights (offline, blocked, HTTP error).
    """
    try:
        yield
    except Exception as error:
        if backbone_weights != "imagenet" or not str(error).startswith(_DOWNLOAD_FAILURE):
            raise
        cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
        raise InvalidDataError(
            f"Could not download the ImageNet weights of backbone {backbone!r} ({error}). Offline, pass the path "
            f"of a local copy of the Keras Applications weights file (or put it in {cache}), or "
            "backbone_weights=None (--backbone-weights none) to start from random weights."
        ) from error
