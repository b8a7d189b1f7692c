"""A cheap fingerprint of a model's weights: whether they changed since a function was made from them.

An inference function that runs a copy of a model (an export, or a copy in
another precision) compares it at each call, so that after `fit`,
`load_weights` or an `assign` it computes with the model's weights as they
are, as `model.predict` does. A sha256 of the weights (what the engines'
cache is keyed by, `keras_fcn.engine_cache.weights_digest`) would cost
more than a small net's inference.
"""

import math

import keras
import numpy as np

# The model attribute holding its fingerprint function (TensorFlow backend), with the weights it reads.
FINGERPRINT_ATTRIBUTE = "_keras_fcn_weights_fingerprint"


def weights_fingerprint(model):
    """The fingerprint of `model`'s weights as they are now.

    Each weight's elements are read as unsigned integers of their width (the
    bits of a float, unchanged; a 64-bit element as two 32-bit halves, side
    by side along its last axis). A weight of fewer than two axes gives them
    all; any other is seen as a matrix with one column per index of its
    last axis, and gives the sums of every row and of every column, modulo
    2**32. The fingerprint is these numbers, in `model.weights` order. So a
    change of any one element always changes it, and so does an exchange of
    any two different elements (they differ in row or in column, and the
    sums of both change), such as a swap of two channels or classes; other
    changes leave it as it was only when they keep every row's and every
    column's sum (modulo 2**32). Under the TensorFlow backend one
    `tf.function`, kept on the model, reads all the variables in one call
    (`weights_check_s` of `benchmarks/inference.py` on a 2-core CPU: 1.4 to
    3 ms for the bundled camvid net's 146 weights, mostly TensorFlow's cost
    per operation; 0.13 s for the VGG16 nets' 134 M, two reads of each
    weight); other backends read them through numpy.

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


def _columns(shape, itemsize):
    """The number of columns of a weight of `shape` and element size `itemsize` (two words a 64-bit element)."""
    return shape[-1] * (2 if itemsize == 8 else 1)


def _numpy_sums(value):
    """A weight's elements, or its row sums then column sums, as `weights_fingerprint` describes: uint32."""
    value = np.ascontiguousarray(value)
    words = (value.view("u4") if value.dtype.itemsize == 8 else value.view(f"u{value.dtype.itemsize}")).astype("u4")
    if value.ndim < 2:
        return words.reshape(-1)
    matrix = words.reshape(math.prod(value.shape[:-1]), _columns(value.shape, value.dtype.itemsize))
    return np.concatenate([matrix.sum(axis=1, dtype="u4"), matrix.sum(axis=0, dtype="u4")])


def _tensorflow_fingerprint(weights):
    """A `tf.function` of no arguments computing the sums of `_numpy_sums` for every weight, concatenated."""
    import tensorflow as tf

    def sums(weight):
        value = tf.convert_to_tensor(weight.value)
        if value.dtype == tf.bool:
            words = tf.cast(value, tf.uint32)
        elif value.dtype.size == 8:
            words = tf.bitcast(value, tf.uint32)  # a trailing axis of the two halves
        else:
            words = tf.cast(tf.bitcast(value, {1: tf.uint8, 2: tf.uint16, 4: tf.uint32}[value.dtype.size]), tf.uint32)
        if value.shape.rank < 2:
            return [tf.reshape(words, [-1])]
        # The rows in blocks of the second-to-last axis: summing a tall matrix's columns at once is several times
        # slower in TensorFlow than summing within the blocks, then the blocks.
        blocks = tf.reshape(words, (math.prod(value.shape[:-2]), value.shape[-2], _columns(value.shape, value.dtype.size)))
        return [tf.reshape(tf.reduce_sum(blocks, axis=2), [-1]), tf.reduce_sum(tf.reduce_sum(blocks, axis=1), axis=0)]

    @tf.function(autograph=False)
    def fingerprint():
        return tf.concat([part for weight in weights for part in sums(weight)], axis=0)

    return fingerprint
