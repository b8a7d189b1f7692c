"""The FCN-AlexNet trunk, layer for layer as in the authors' voc-fcn-alexnet Caffe net (paper, Table 1)."""

import keras
from keras import ops

# Zero padding of conv1, as in the reference nets: any input size gives an output at least as large.
CONV1_PADDING = 100
# (name, filters, kernel, stride, Caffe padding, groups) of AlexNet's convolutions.
CONVOLUTIONS = {
    "conv1": (96, 11, 4, 0, 1),
    "conv2": (256, 5, 1, 2, 2),
    "conv3": (384, 3, 1, 1, 1),
    "conv4": (384, 3, 1, 1, 2),
    "conv5": (256, 3, 1, 1, 2),
}
# Caffe's LRN parameters of norm1 and norm2 (k defaults to 1).
LRN = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}


@keras.saving.register_keras_serializable(package="keras_fcn")
class LocalResponseNormalization(keras.layers.Layer):
    """Caffe's cross-channel local response normalization (AlexNet's `norm1`, `norm2`).

    `y_c = x_c / (k + alpha / size * sum_{c'} x_{c'}^2) ** beta`, the sum
    over the `size` channels centred on `c` (fewer at the first and last
    channels).

    Args:
        size: odd int, the number of channels summed.
        alpha: float, the scale of the sum (divided by `size`, as in Caffe).
        beta: float, the exponent.
        k: float, the constant added.
        **kwargs: standard layer arguments.

    Input shape:
        `(batch, h, w, channels)`, floating point.

    Output shape:
        Same as the input.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=1.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ValueError(f"`size` must be a positive odd int. Received size={size!r}")
        self.size, self.alpha, self.beta, self.k = size, float(alpha), float(beta), float(k)

    def call(self, inputs):
        half, channels = self.size // 2, inputs.shape[-1]
        squares = ops.pad(ops.square(inputs), [[0, 0], [0, 0], [0, 0], [half, half]])
        total = sum(squares[..., offset : offset + channels] for offset in range(self.size))
        return inputs / ops.power(self.k + self.alpha / self.size * total, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}


def _ceil_mode_pool(x, name):
    """Caffe's 3x3 stride-2 max pooling, which rounds the output size up.

    Caffe gives `ceil((n - 3) / 2) + 1` rows, its last window reaching one
    row past an even-sized input. Padding every input by one row and column
    at the bottom and right, then pooling VALID, gives the same windows; the
    padding is zeros, which a maximum over ReLU outputs (never negative)
    ignores.
    """
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name=name)(x)


def reference_alexnet_trunk(x):
    """Applies the authors' FCN-AlexNet conv1 ... pool5 to `x`.

    conv1 (11x11, stride 4, 96) pads the input by 100; pool1, pool2 and
    pool5 are 3x3 stride-2 ceil-mode max poolings; norm1 and norm2 are LRN
    (5 channels, alpha 1e-4, beta 0.75); conv2, conv4 and conv5 are grouped
    (two groups, as AlexNet was split over two GPUs), padded by 2, 1 and 1;
    conv3 is padded by 1. Every convolution is followed by a ReLU. Layer
    names follow voc-fcn-alexnet's net.py: `conv1`, `pool1`, `norm1`, ...,
    `pool5`.

    Args:
        x: tensor `(batch, h, w, 3)`, BGR minus the reference mean.

    Returns:
        The pool5 tensor `(batch, rows, cols, 256)`: conv1 gives
        `c = floor((h + 189) / 4) + 1` rows, each pooling `ceil((c - 3) / 2) + 1`
        of its input's `c` (h = 16: 52, 26, 13, 6 rows); likewise for `cols`.
    """
    x = keras.layers.ZeroPadding2D(CONV1_PADDING, name="conv1_pad")(x)
    for name, (filters, kernel, stride, padding, groups) in CONVOLUTIONS.items():
        x = keras.layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding="same" if padding else "valid",
            groups=groups,
            activation="relu",
            name=name,
        )(x)
        if name in ("conv1", "conv2", "conv5"):
            pool = f"pool{name[-1]}"
            x = _ceil_mode_pool(x, pool)
            if name != "conv5":
                x = LocalResponseNormalization(**LRN, name=f"norm{name[-1]}")(x)
    return x
