"""Mixed precision by name: the Keras dtype policy a run computes in."""

import contextlib

import keras
import tensorflow as tf

from keras_fcn.errors import InvalidArgumentError

MIXED_PRECISION = ("auto", "mixed_float16", "mixed_bfloat16", "float32")


def dtype_policy(mixed_precision):
    """The Keras dtype policy name for a `mixed_precision` argument.

    Args:
        mixed_precision: None or `"float32"` (no mixed precision), `"auto"`
            (`"mixed_float16"` when a GPU is visible, else
            `"mixed_bfloat16"`), `"mixed_float16"` or `"mixed_bfloat16"`.

    Returns:
        str, a policy name for `keras.mixed_precision.set_global_policy`.

    Raises:
        keras_fcn.errors.InvalidArgumentError: (a `ValueError`) for another value.
    """
    if mixed_precision not in (None,) + MIXED_PRECISION:
        raise InvalidArgumentError(
            f"`mixed_precision` must be one of {MIXED_PRECISION}. Received mixed_precision={mixed_precision!r}"
        )
    if mixed_precision == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    return mixed_precision or "float32"


@contextlib.contextmanager
def global_policy(policy):
    """Sets Keras's global dtype policy to `policy` for the `with` block, then restores the previous one."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
