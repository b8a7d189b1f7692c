"""The errors keras-fcn raises when what it was given is at fault, not keras-fcn.

Each is also the built-in exception a caller would expect (`ValueError`,
`ImportError`, `OSError`), so `except ValueError` keeps working. The
command line reports an `InputError` on one line with exit status 2; any
other exception is a bug and shows its traceback.
"""

import atexit
import functools
import gc
import re
import sys


class InputError(Exception):
    """Base class: an argument, a file, its content, a missing package or the network is at fault."""


class InvalidArgumentError(InputError, ValueError):
    """An argument has a value that is not allowed; the message names it, the value received and what is allowed."""


class InvalidDataError(InputError, ValueError):
    """A data file (image, mask, model, class list) is missing, unreadable, or breaks its format; the message names it."""


class UnsupportedModelError(InputError, RuntimeError):
    """A model that an engine or a file format cannot convert or run faithfully; the message says what to use instead."""


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


def _release_uncaught_exception():
    """Drops the uncaught exception Python keeps for post-mortem debugging, and collects what it held."""
    for name in ("last_exc", "last_type", "last_value", "last_traceback"):
        if hasattr(sys, name):
            setattr(sys, name, None)
    gc.collect()


def release_pipelines_on_error(function):
    """Decorates a public entry point that runs a `tf.data` pipeline so an error it raises cannot hang the process.

    An exception raised inside `model.fit` or a prediction loop keeps,
    through the frames of Keras's loop, a live `tf.data` iterator. When the
    exception is not caught, Python keeps it (`sys.last_exc`) until the
    interpreter is finalized, and the iterator is destroyed by the last
    garbage collection, when the pipeline's worker threads can no longer run
    Python (`tf.numpy_function`, as keras-fcn's file readers use): its
    teardown waits for them forever and the process hangs after printing the
    error. When an exception leaves the entry point, the decorator registers
    (once) an `atexit` function, which runs while the interpreter still
    works: it drops the uncaught exception and collects what it held. The
    exception itself is re-raised unchanged, traceback included.
    """

    @functools.wraps(function)
    def entry_point(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except BaseException:
            atexit.unregister(_release_uncaught_exception)
            atexit.register(_release_uncaught_exception)
            raise

    return entry_point
