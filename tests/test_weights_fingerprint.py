"""The weights fingerprint: each weight's elements, as unsigned integers, summed by row and by column mod 2**32."""

import itertools

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
    """The definition, in plain Python: the elements' bytes as little-endian unsigned ints of `width` bytes (a
    64-bit element as its two halves, side by side); for fewer than two axes these, else in rows of the last axis,
    each row's sum, then each column's, modulo 2**32."""
    halves = 2 if width == 8 else 1
    step = width // halves
    data = np.ascontiguousarray(value).tobytes()
    words = [int.from_bytes(data[i : i + step], "little") for i in range(0, len(data), step)]
    if value.ndim < 2:
        return words
    columns = value.shape[-1] * halves
    rows = [words[i : i + columns] for i in range(0, len(words), columns)]
    return [sum(row) % 2**32 for row in rows] + [sum(column) % 2**32 for column in zip(*rows)]


def test_the_fingerprint_is_the_row_and_column_sums_of_each_weight():
    values = [
        np.array([[1.5, -2.25], [3.0e-30, np.inf], [7.0, 0.0]], "float32"),
        np.arange(24, dtype="float32").reshape(2, 3, 4) * 1.25,
        np.array([7, -1, 2**40], "int64"),
        np.array([0.1, 65504.0], "float16"),
        np.array([True, False, True]),
        np.array(2.5, "float32"),
    ]
    layer = _layer_of(*values)
    stored = [keras.ops.convert_to_numpy(weight) for weight in layer.weights]  # JAX keeps int64 as int32
    expected = [s for value in stored for s in _python_sums(value, value.dtype.itemsize)]
    np.testing.assert_array_equal(np.frombuffer(weights_fingerprint(layer), "<u4"), expected)


def _swap(value, axis, i, j):
    swapped = value.copy()
    first, second = [slice(None)] * value.ndim, [slice(None)] * value.ndim
    first[axis], second[axis] = i, j
    swapped[tuple(first)], swapped[tuple(second)] = value[tuple(second)], value[tuple(first)]
    return swapped


@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_swapping_two_slices_of_a_kernel_changes_the_fingerprint(axis):
    # e.g. two classes' output channels, two input channels, two kernel rows: a sum over the weight would not see it
    kernel = np.random.default_rng(1).normal(0, 1, (3, 3, 4, 5)).astype("float32")
    layer = _layer_of(kernel)
    before = weights_fingerprint(layer)
    layer.weights[0].assign(_swap(kernel, axis, 0, 2))
    assert weights_fingerprint(layer) != before


def test_exchanging_any_two_different_elements_changes_the_fingerprint():
    values = np.random.default_rng(2).normal(0, 1, (2, 3, 2)).astype("float32")
    layer = _layer_of(values)
    before = weights_fingerprint(layer)
    flat = list(np.ndindex(values.shape))
    for first, second in itertools.combinations(flat, 2):
        exchanged = values.copy()
        exchanged[first], exchanged[second] = values[second], values[first]
        layer.weights[0].assign(exchanged)
        assert weights_fingerprint(layer) != before, (first, second)
    bias = np.array([0.5, -1.0, 2.0], "float32")
    layer = _layer_of(bias)
    before = weights_fingerprint(layer)
    layer.weights[0].assign(bias[[2, 1, 0]])
    assert weights_fingerprint(layer) != before


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
