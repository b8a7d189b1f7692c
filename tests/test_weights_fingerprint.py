"""The weights fingerprint: each weight's elements, read as unsigned integers, summed modulo 2**32."""

import keras
import ml_dtypes
import numpy as np
import pytest

from keras_fcn.weights_fingerprint import weights_fingerprint

pytestmark = pytest.mark.backend_agnostic


def _layer_of(*values):
    """A layer holding one weight of each of `values` (numpy arrays), in order."""
    layer = keras.layers.Layer()
    for index, value in enumerate(values):
        layer.add_weight(shape=value.shape, dtype=str(value.dtype), initializer="zeros", trainable=False, name=f"w{index}")
        layer.weights[-1].assign(value)
    return layer


def _python_sums(value, width):
    """The definition, in plain Python: the elements' bytes as little-endian unsigned ints of `width` bytes, summed."""
    data = np.ascontiguousarray(value).tobytes()
    halves = 2 if width == 8 else 1
    step = width // halves
    words = [int.from_bytes(data[i : i + step], "little") for i in range(0, len(data), step)]
    return [sum(words[h::halves]) % 2**32 for h in range(halves)]


def test_the_fingerprint_is_the_sums_of_the_bits_of_each_weight():
    values = [
        np.array([[1.5, -2.25], [3.0e-30, np.inf]], "float32"),
        np.array([7, -1, 2**40], "int64"),
        np.array([0.1, 65504.0], "float16"),
        np.array([True, False, True]),
    ]
    layer = _layer_of(*values)
    stored = [keras.ops.convert_to_numpy(weight) for weight in layer.weights]  # JAX keeps int64 as int32
    expected = [s for value in stored for s in _python_sums(value, value.dtype.itemsize)]
    np.testing.assert_array_equal(np.frombuffer(weights_fingerprint(layer), "<u4"), expected)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int64"])
def test_one_element_changed_by_its_last_place_changes_the_fingerprint(dtype):
    value = np.random.default_rng(0).normal(0, 1, (3, 4, 5)).astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    layer = _layer_of(value)
    before = weights_fingerprint(layer)
    assert weights_fingerprint(layer) == before  # the same weights, the same fingerprint
    changed = value.copy()
    changed.reshape(-1).view(f"u{value.dtype.itemsize}")[37] += 1  # the next representable value
    layer.weights[0].assign(changed)
    assert weights_fingerprint(layer) != before


def test_a_model_without_weights_has_an_empty_fingerprint():
    assert weights_fingerprint(keras.layers.Layer()) == b""
