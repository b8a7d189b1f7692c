"""The errors keras-fcn raises when what it was given is at fault, not keras-fcn.

Each is also the built-in exception a caller would expect (`ValueError`,
`ImportError`, `OSError`), so `except ValueError` keeps working. The
command line reports an `InputError` on one line with exit status 2; any
other exception is a bug and shows its traceback.
"""

import functools
import gc
import re
import sys
import traceback


class InputError(Exception):
    """Base class: an argument, a file, its content, a missing package or the network is at fault."""


class InvalidArgumentError(InputError, ValueError):
    """An argument has a value that is not allowed; the message names it, the value received and what is allowed."""


class InvalidDataError(InputError, ValueError):
    """A data file (image, mask, model, class list) is missing, unreadable, or breaks its format; the message names it."""


class MissingPackageError(InputError, ImportError):
    """An optional package that a feature needs is not installed; the message says what to install."""


# TensorFlow re-raises an exception from inside `tf.numpy_function` (a data
# pipeline's file reading) as `tf.errors.InvalidArgumentError`, keeping the
# original type only in the message, as a line `<module>.<TypeName>: <message>`.
_IN_PIPELINE = re.compile(r"^([\w.]+): (.+)$", re.MULTILINE)


def _input_error_names(cls=InputError):
    """The qualified names of `cls` and its subclasses, as a traceback writes them."""
    return {f"{cls.__module__}.{cls.__qualname__}"}.union(*(_input_error_names(sub) for sub in cls.__subclasses__()))


def input_error_message(error):
    """The message of an error caused by input, or None for an error of another kind (a bug).

    Input errors are an `InputError`; an `OSError` (a file that is missing
    or cannot be written, the network); or an error of TensorFlow
    (`tf.errors.OpError`) that carries an `InputError` raised while a
    `tf.data` pipeline read a file.

    Args:
        error: an exception.

    Returns:
        str or None.
    """
    if isinstance(error, (InputError, OSError)):
        return str(error)
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.OpError):
        names = _input_error_names()
        lines = [match[2] for match in _IN_PIPELINE.finditer(error.message) if match[1] in names]
        return lines[-1] if lines else None
    return None


def release_pipelines_on_error(function):
    """Decorates a public entry point that runs a `tf.data` pipeline so an error it raises cannot hang the process.

    An exception raised inside `model.fit` or a prediction loop keeps,
    through its traceback and the reference cycles of Keras's loop, a live
    `tf.data` iterator. Left to the garbage collector, that iterator is
    destroyed only as the interpreter exits, when the pipeline's worker
    threads can no longer run Python (`tf.numpy_function`, as keras-fcn's
    file readers use): its teardown waits for them forever and the process
    hangs after printing the error. As the exception leaves, the decorator
    clears the local variables of the finished frames (the entry point's and
    every frame below it) and collects the cycles, so the iterator is
    destroyed while the interpreter still runs. The traceback keeps its files
    and lines; the exception is re-raised unchanged.
    """

    @functools.wraps(function)
    def entry_point(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except BaseException as error:
            traceback.clear_frames(error.__traceback__)
            gc.collect()
            raise

    return entry_point
