"""Small layers used by the FCN builders. All work with dynamic height and width."""

import keras
from keras import ops


def _pair(value, name):
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ValueError(
            f"`{name}` must be an int or a pair of ints. Received {name}={value!r}"
        )
    return value


def _at_least_zero(length):
    """max(length, 0) for a static length (an int, as JAX's traced shapes are) or a dynamic one (a tensor)."""
    return max(length, 0) if isinstance(length, int) else ops.maximum(length, 0)


def _at_most(length, limit):
    """min(length, limit) for a static `limit` (an int) or a dynamic one (a tensor)."""
    return min(length, limit) if isinstance(limit, int) else ops.minimum(length, limit)


@keras.saving.register_keras_serializable(package="keras_fcn")
class CropLike(keras.layers.Layer):
    """Crops a feature map to the height and width of a reference tensor.

    Unlike `keras.layers.Cropping2D`, the size to crop to is read from the
    reference tensor at run time, so it works for inputs of any size. This is
    the reference FCN's `Crop` layer: `output = x[:, oy:oy + H, ox:ox + W, :]`
    where `(H, W)` is the reference's spatial size and `(oy, ox)` the offset,
    with zeros where the window reaches beyond `x`: before its first row or
    column (a negative offset) or after its last (an FCN head's skip map
    that ends before the upsampled scores do contributes nothing there).

    Args:
        offset: int or tuple of 2 ints `(oy, ox)`, the position in `x` of the
            output's top-left pixel.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Input shape:
        A list `[x, like]`: `x` of shape `(batch, h, w, channels)` and `like`
        of shape `(batch, H, W, any)`.

    Output shape:
        `(batch, H, W, channels)`, with the dtype of `x`.

    Example:

    >>> crop = keras_fcn.layers.CropLike(offset=19)
    >>> crop([keras.ops.ones((1, 40, 40, 2)), keras.ops.ones((1, 8, 10, 3))]).shape
    (1, 8, 10, 2)
    """

    def __init__(self, offset=0, **kwargs):
        super().__init__(**kwargs)
        self.offset = _pair(offset, "offset")

    def call(self, inputs):
        x, like = inputs
        size = ops.shape(like)
        # The window's part inside x first (slicing clamps to x), then zeros for the rest: padding copies less.
        (top, bottom), (left, right) = (
            (max(offset, 0), _at_least_zero(offset + size[axis + 1])) for axis, offset in enumerate(self.offset)
        )
        x = x[:, top:bottom, left:right, :]
        kept = ops.shape(x)
        before = [_at_most(max(-offset, 0), size[axis + 1]) for axis, offset in enumerate(self.offset)]
        after = [size[axis + 1] - before[axis] - kept[axis + 1] for axis in range(2)]
        return ops.pad(x, [[0, 0], [before[0], after[0]], [before[1], after[1]], [0, 0]])

    def compute_output_shape(self, input_shape):
        x_shape, like_shape = input_shape
        return (x_shape[0], like_shape[1], like_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


@keras.saving.register_keras_serializable(package="keras_fcn")
class PadToMultiple(keras.layers.Layer):
    """Zero-pads the bottom and right edges up to a multiple of `multiple`.

    With its input padded this way, every stride-`s` feature map of a
    backbone whose strides divide `multiple` has exactly `size / s` rows and
    columns, so the FCN heads align without rounding.

    Args:
        multiple: int, the height and width become multiples of it.
        **kwargs: standard layer arguments.

    Input shape:
        `(batch, h, w, channels)`.

    Output shape:
        `(batch, ceil(h / multiple) * multiple, ceil(w / multiple) * multiple,
        channels)`, same dtype.
    """

    def __init__(self, multiple=32, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(multiple, int) or multiple < 1:
            raise ValueError(
                f"`multiple` must be a positive int. Received multiple={multiple!r}"
            )
        self.multiple = multiple

    def call(self, inputs):
        shape = ops.shape(inputs)
        # (m - s % m) % m, not (-s) % m: ONNX converters turn an integer modulo into truncated division,
        # which is wrong for a negative operand.
        pad_h = (self.multiple - shape[1] % self.multiple) % self.multiple
        pad_w = (self.multiple - shape[2] % self.multiple) % self.multiple
        return ops.pad(inputs, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])

    def compute_output_shape(self, input_shape):
        def padded(size):
            return None if size is None else -(-size // self.multiple) * self.multiple

        return (input_shape[0], padded(input_shape[1]), padded(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="keras_fcn")
class InputNormalization(keras.layers.Layer):
    """Converts RGB images in `[0, 255]` to the input a backbone was trained on.

    Computes `(x[..., ::-1] if bgr else x) - mean) / std` per channel; this
    covers Keras Applications' "caffe", "tf" and "torch" preprocessing modes
    and the FCN reference models' BGR mean subtraction.

    Args:
        mean: tuple of 3 floats, subtracted per channel (in the output's
            channel order).
        std: tuple of 3 floats (or one float), divides per channel.
        bgr: bool, whether to reverse the channel order (RGB -> BGR) first.
        **kwargs: standard layer arguments.

    Input shape:
        `(batch, h, w, 3)`, any numeric dtype, RGB in `[0, 255]`.

    Output shape:
        `(batch, h, w, 3)` in the layer's compute dtype.
    """

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), bgr=False, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in ((std,) * 3 if isinstance(std, (int, float)) else std))
        self.bgr = bool(bgr)
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(
                "`mean` and `std` need one value per RGB channel. "
                f"Received mean={mean!r}, std={std!r}"
            )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.bgr:
            x = ops.flip(x, axis=-1)
        x = x - self._per_channel(self.mean)
        return x if self.std == (1.0, 1.0, 1.0) else x / self._per_channel(self.std)

    def _per_channel(self, values):
        """`values` as a scalar when the channels share it (engines broadcast a scalar fastest), else a `(3,)` tensor."""
        if len(set(values)) == 1:
            return values[0]
        return ops.convert_to_tensor(values, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std, "bgr": self.bgr}
