import keras
import numpy as np
import pytest

from keras_fcn import BilinearUpsampling

pytestmark = pytest.mark.backend_agnostic


def _upsample(x, factor, kernel_size=None):
    """Applies a bilinear transposed convolution to x of shape (h, w, channels)."""
    layer = keras.layers.Conv2DTranspose(
        x.shape[-1],
        kernel_size or 2 * factor,
        strides=factor,
        padding="valid",
        use_bias=False,
        kernel_initializer=BilinearUpsampling(),
    )
    return keras.ops.convert_to_numpy(layer(x[None].astype("float32")))[0]


def _numpy_bilinear(x, positions_y, positions_x):
    """Separable linear interpolation of x (h, w) at fractional input coordinates."""
    rows = np.stack([np.interp(positions_y, np.arange(x.shape[0]), x[:, j]) for j in range(x.shape[1])], 1)
    return np.stack([np.interp(positions_x, np.arange(x.shape[1]), rows[i]) for i in range(len(positions_y))])


@pytest.mark.parametrize("factor", [2, 4, 16])
def test_reproduces_bilinear_interpolation_of_a_ramp(factor):
    rows, cols = np.meshgrid(np.arange(5.0), np.arange(7.0), indexing="ij")
    ramp = 3.0 * rows - 2.0 * cols + 10.0
    out = _upsample(ramp[..., None], factor)[..., 0]
    assert out.shape == (6 * factor, 8 * factor)
    # Output pixel o sits at input coordinate (o - (factor - 0.5)) / factor; the
    # interior is where that coordinate lies between the first and last sample.
    first, last_y, last_x = factor - 1, 4 * factor + factor - 1, 6 * factor + factor - 1
    oy, ox = np.meshgrid(np.arange(first + 1, last_y), np.arange(first + 1, last_x), indexing="ij")
    u, v = (oy - factor + 0.5) / factor, (ox - factor + 0.5) / factor
    expected = 3.0 * u - 2.0 * v + 10.0
    np.testing.assert_allclose(out[first + 1 : last_y, first + 1 : last_x], expected, atol=1e-4)


@pytest.mark.parametrize("factor, kernel_size, centre", [(4, 8, 3.5), (32, 63, 31.0)])
def test_interior_equals_numpy_interpolation_of_random_maps(rng, factor, kernel_size, centre):
    x = rng.normal(size=(4, 3, 2))
    out = _upsample(x, factor, kernel_size)
    # Interior: output pixels whose input coordinate lies in [0, n - 1].
    oy = np.arange(int(np.ceil(centre)), int(3 * factor + centre) + 1)
    ox = np.arange(int(np.ceil(centre)), int(2 * factor + centre) + 1)
    for channel in range(2):
        expected = _numpy_bilinear(x[..., channel], (oy - centre) / factor, (ox - centre) / factor)
        np.testing.assert_allclose(out[np.ix_(oy, ox)][..., channel], expected, atol=1e-5)


def test_kernel_maps_each_channel_to_itself_only():
    kernel = keras.ops.convert_to_numpy(BilinearUpsampling()((4, 4, 3, 3)))
    taps = np.array([0.25, 0.75, 0.75, 0.25])
    for i in range(3):
        for j in range(3):
            expected = np.outer(taps, taps) if i == j else np.zeros((4, 4))
            np.testing.assert_allclose(kernel[:, :, i, j], expected)


def test_rejects_unequal_channel_dimensions():
    with pytest.raises(ValueError, match=r"equal channel dimensions.*\(4, 4, 3, 5\)"):
        BilinearUpsampling()((4, 4, 3, 5))


def test_serializes_by_name():
    config = keras.initializers.serialize(BilinearUpsampling())
    assert isinstance(keras.initializers.deserialize(config), BilinearUpsampling)
