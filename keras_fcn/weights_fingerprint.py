"""A cheap fingerprint of a model's weights: whether they changed since a function was made from them.

An inference function that runs a copy of a model (an export, or a copy in
another precision) compares it at each call, so that after `fit`,
`load_weights` or an `assign` it computes with the model's weights as they
are, as `model.predict` does. A sha256 of the weights (what the engines'
cache is keyed by, `keras_fcn.engine_cache.weights_digest`) would cost
more than a small net's inference.
"""

import keras
import numpy as np

# The model attribute holding its fingerprint function (TensorFlow backend), with the weights it reads.
FINGERPRINT_ATTRIBUTE = "_keras_fcn_weights_fingerprint"


def weights_fingerprint(model):
    """The fingerprint of `model`'s weights as they are now.

    Each weight's elements are read as unsigned integers of their width (the
    bits of a float, unchanged; a 64-bit element as two 32-bit halves) and
    summed modulo 2**32, into a sequence of sums in `model.weights` order.
    A change of any one element always changes a sum; several changes leave
    every sum as it was with a chance of about 2**-32. Under the TensorFlow
    backend one `tf.function`, kept on the model, reads all the variables in
    one call (1.6 to 3.4 ms for the 146 weights of the bundled camvid net on a
    2-core CPU, `benchmarks/inference.py`: mostly TensorFlow's cost per
    operation); other backends read them through numpy.

    Args:
        model: a `keras.Model` (or any Keras layer).

    Returns:
        bytes, equal for equal weights.
    """
    weights = model.weights
    if not weights:
        return b""
    if keras.backend.backend() != "tensorflow":
        return np.concatenate([_numpy_sums(keras.ops.convert_to_numpy(weight)) for weight in weights]).tobytes()
    kept = getattr(model, FINGERPRINT_ATTRIBUTE, None)
    if kept is None or len(kept[0]) != len(weights) or any(a is not b for a, b in zip(kept[0], weights)):
        kept = (weights, _tensorflow_fingerprint(weights))
        # Kept on the model, as Keras keeps `predict_function`; plain attribute setting would track it as state.
        object.__setattr__(model, FINGERPRINT_ATTRIBUTE, kept)
    return kept[1]().numpy().tobytes()


def _numpy_sums(value):
    """A weight's sums, as `weights_fingerprint` describes: uint32, one (two for 64-bit elements)."""
    value = np.ascontiguousarray(value).reshape(-1)
    halves = 2 if value.dtype.itemsize == 8 else 1
    bits = value.view("u4" if halves == 2 else f"u{value.dtype.itemsize}").reshape(-1, halves)
    return bits.sum(axis=0, dtype=np.uint32)


def _tensorflow_fingerprint(weights):
    """A `tf.function` of no arguments computing the sums of `_numpy_sums` for every weight, concatenated."""
    import tensorflow as tf

    def sums(weight):
        value = tf.convert_to_tensor(weight.value)
        if value.dtype == tf.bool:
            bits = tf.cast(value, tf.uint32)
        elif value.dtype.size == 8:
            bits = tf.bitcast(value, tf.uint32)  # a trailing axis of the two halves
        else:
            bits = tf.cast(tf.bitcast(value, {1: tf.uint8, 2: tf.uint16, 4: tf.uint32}[value.dtype.size]), tf.uint32)
        return tf.reduce_sum(tf.reshape(bits, [-1, 2 if value.dtype.size == 8 else 1]), axis=0)

    @tf.function(autograph=False)
    def fingerprint():
        return tf.concat([sums(weight) for weight in weights], axis=0)

    return fingerprint
