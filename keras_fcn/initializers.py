"""Kernel initializers for FCN layers."""

import keras
from keras import ops


def _bilinear_weights(size, dtype):
    """1-D bilinear interpolation weights of length `size` (Caffe's `upsample_filt`).

    For an even size `2f` (upsampling by `f`), the weights are
    `1 - |i - (f - 0.5)| / f` for `i = 0 .. 2f-1`; for an odd size the centre is
    the middle tap.
    """
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = ops.arange(size, dtype=dtype)
    return 1.0 - ops.abs(taps - centre) / factor


@keras.saving.register_keras_serializable(package="keras_fcn")
class BilinearUpsampling(keras.initializers.Initializer):
    """Initializes a `Conv2DTranspose` kernel to bilinear interpolation.

    The kernel maps every input channel to the same output channel (and to no
    other) with the outer product of two 1-D bilinear filters, as the FCN
    reference code does. A transposed convolution with `strides=f`,
    `kernel_size=2 * f` and `padding="valid"` initialized this way upsamples
    its input `f` times by bilinear interpolation; its output of size
    `(n + 1) * f` holds input sample `i` at position `i * f + f - 0.5`.

    Kernel shape: `(kernel_h, kernel_w, channels, channels)`; the two channel
    dimensions must be equal.

    Example:

    >>> up = keras.layers.Conv2DTranspose(
    ...     21, kernel_size=4, strides=2, use_bias=False,
    ...     kernel_initializer=keras_fcn.BilinearUpsampling())
    """

    def __call__(self, shape, dtype=None):
        if len(shape) != 4 or shape[2] != shape[3]:
            raise ValueError(
                "BilinearUpsampling initializes kernels of shape "
                "(kernel_h, kernel_w, channels, channels) with equal channel "
                f"dimensions. Received shape={tuple(shape)}"
            )
        dtype = dtype or "float32"
        rows = _bilinear_weights(shape[0], dtype)
        cols = _bilinear_weights(shape[1], dtype)
        spatial = rows[:, None] * cols[None, :]
        identity = ops.eye(shape[2], dtype=dtype)
        return spatial[:, :, None, None] * identity[None, None, :, :]

    def get_config(self):
        return {}
