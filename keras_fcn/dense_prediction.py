"""Dense predictions without interpolation: shift-and-stitch and filter rarefaction (paper, section 3.2).

A net whose layers subsample by a total stride `S` predicts one output per
`S x S` block of pixels. Two ways make its predictions `f` times denser
(`f` dividing `S`) without interpolating them:

- **shift-and-stitch** (OverFeat): run the net `f^2` times, on the input
  shifted by `(S / f) * (x, y)` for every `(x, y)` in `{0..f-1}^2`, and
  interlace the `f^2` outputs (`shift_and_stitch`);
- **filter rarefaction**: one net in which the layers that subsample by `f`
  in all have stride 1 and every later filter is dilated by the subsampling
  removed before it, `f'_ij = f_{i/s, j/s}` when `s` divides `i` and `j`,
  else 0: today's dilated ("atrous") convolution (`rarefy`).

For nets without padding the two give the same output (`rarefy`'s
docstring says what padding changes). Both apply to the coarse part of an
FCN from this package, the model from the image to `score_fr`:

>>> fcn = keras_fcn.FCN32s(21, backbone_weights=None)
>>> net = keras.Model(fcn.input, fcn.get_layer("score_fr").output)   # stride 32
>>> stitched = keras_fcn.dense_prediction.shift_and_stitch(net, 4)             # stride 8, 16 passes
>>> rarefied = keras_fcn.dense_prediction.rarefy(net, from_layer="pool4")      # stride 8, one pass
"""

import keras
from keras import ops
from keras import tree

from keras_fcn.graph import producers
from keras_fcn.layers import CropLike, PadToMultiple, _pair

_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
_PADDINGS = (keras.layers.ZeroPadding2D, keras.layers.Cropping2D)
# Layers whose geometry has no dilated equivalent; refused once the map they see is rarefied.
_RESAMPLING = (
    keras.layers.Conv2DTranspose,
    keras.layers.UpSampling2D,
    keras.layers.Resizing,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    CropLike,
    PadToMultiple,
)


@keras.saving.register_keras_serializable(package="keras_fcn")
class DilatedPooling2D(keras.layers.Layer):
    """Stride-1 max or average pooling over a dilated window.

    The pooling a rarefied net uses in place of a strided one (Keras'
    `MaxPooling2D` and `AveragePooling2D` have no dilation): output
    `(i, j)` pools the `pool_size` inputs
    `x[i + a * dilation, j + b * dilation]` of the padded input. Padded
    cells never count: they are ignored by the maximum and left out of the
    average, as in TensorFlow's "same" pooling.

    Args:
        pool_size: int or pair of ints, the window's number of taps.
        dilation_rate: int or pair of ints, the distance between taps.
        padding: pair of `(before, after)` pairs, the rows and columns
            padded at the top and bottom, left and right.
        mode: `"max"` or `"average"`.
        **kwargs: standard layer arguments.

    Input shape:
        `(batch, h, w, channels)`, floating point.

    Output shape:
        `(batch, h + top + bottom - (ph - 1) * dh,
        w + left + right - (pw - 1) * dw, channels)`, same dtype.
    """

    def __init__(self, pool_size, dilation_rate=1, padding=((0, 0), (0, 0)), mode="max", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size, "pool_size")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        self.padding = tuple(_pair(p, "padding") for p in padding)
        if mode not in ("max", "average"):
            raise ValueError(f"`mode` must be 'max' or 'average'. Received mode={mode!r}")
        self.mode = mode

    def _windows(self, x):
        """The `pool_size` shifted views of `x` (already padded) that each output pools."""
        shape = ops.shape(x)
        (ph, pw), (dh, dw) = self.pool_size, self.dilation_rate
        rows, cols = shape[1] - (ph - 1) * dh, shape[2] - (pw - 1) * dw
        return [
            x[:, a * dh : a * dh + rows, b * dw : b * dw + cols, :] for a in range(ph) for b in range(pw)
        ]

    def _pad(self, x, value):
        return ops.pad(x, [[0, 0], list(self.padding[0]), list(self.padding[1]), [0, 0]], constant_values=value)

    def call(self, inputs):
        if self.mode == "max":
            windows = self._windows(self._pad(inputs, float("-inf")))
            out = windows[0]
            for window in windows[1:]:
                out = ops.maximum(out, window)
            return out
        total = sum(self._windows(self._pad(inputs, 0.0)))
        ones = ops.ones_like(inputs[:1, :, :, :1])
        count = sum(self._windows(self._pad(ones, 0.0)))
        return total / count

    def compute_output_shape(self, input_shape):
        sizes = []
        for size, (before, after), taps, rate in zip(
            input_shape[1:3], self.padding, self.pool_size, self.dilation_rate
        ):
            sizes.append(None if size is None else size + before + after - (taps - 1) * rate)
        return (input_shape[0], *sizes, input_shape[3])

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "dilation_rate": self.dilation_rate,
            "padding": self.padding,
            "mode": self.mode,
        }


@keras.saving.register_keras_serializable(package="keras_fcn")
class Interlace(keras.layers.Layer):
    """Stitches the `factor^2` outputs of shift-and-stitch into one map `factor` times denser.

    Input `x * factor + y` is the net's output on the input shifted by
    `(x, y)` steps; its cell `(i, j)` becomes output cell
    `(factor * i + x, factor * j + y)`. The shifted outputs may be one
    cell shorter than the unshifted one (a shift drops input rows); the
    output has as many rows as they have together, `sum_x rows(x * factor)`,
    and as many columns, `sum_y cols(y)`.

    Args:
        factor: int, the densification per axis.
        **kwargs: standard layer arguments.

    Input shape:
        A list of `factor^2` tensors `(batch, h_x, w_y, channels)`, `h_x`
        and `w_y` each `h_0` or `h_0 - 1` (`w_0` or `w_0 - 1`).

    Output shape:
        `(batch, sum_x h_x, sum_y w_y, channels)`, same dtype.
    """

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"`factor` must be a positive int. Received factor={factor!r}")
        self.factor = factor

    def call(self, inputs):
        f = self.factor
        rows, cols = ops.shape(inputs[0])[1], ops.shape(inputs[0])[2]
        padded = [
            ops.pad(t, [[0, 0], [0, rows - ops.shape(t)[1]], [0, cols - ops.shape(t)[2]], [0, 0]])
            for t in inputs
        ]
        channels = inputs[0].shape[-1]
        grid = ops.reshape(ops.stack(padded, axis=1), (-1, f, f, rows, cols, channels))
        woven = ops.reshape(ops.transpose(grid, (0, 3, 1, 4, 2, 5)), (-1, rows * f, cols * f, channels))
        total_rows = sum(ops.shape(inputs[x * f])[1] for x in range(f))
        total_cols = sum(ops.shape(inputs[y])[2] for y in range(f))
        return woven[:, :total_rows, :total_cols, :]

    def compute_output_shape(self, input_shape):
        f = self.factor

        def total(sizes):
            return None if None in sizes else sum(sizes)

        return (
            input_shape[0][0],
            total([input_shape[x * f][1] for x in range(f)]),
            total([input_shape[y][2] for y in range(f)]),
            input_shape[0][3],
        )

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _strides(layer):
    """The `(rows, cols)` subsampling of a convolution or pooling layer, else `(1, 1)`."""
    if isinstance(layer, (*_CONVOLUTIONS, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        return tuple(layer.strides)
    return (1, 1)


def _densities(model, start):
    """The subsampling each layer's input has had since layer `start` (in `model.layers` order).

    Returns:
        dict from layer name to `(input, output)`, each an int: the product
        of the strides of the layers at or after `start` on the path to
        the layer's input (output). Branches that merge must agree.
    """
    producer = producers(model)
    densities = {}
    for index, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.InputLayer):
            densities[layer.name] = (1, 1)
            continue
        sources = {_source(producer, tensor, f"Layer '{layer.name}'", model).name for tensor in tree.flatten(layer.input)}
        incoming = {densities[source][1] for source in sources}
        if len(incoming) != 1:
            raise ValueError(
                f"Layer '{layer.name}' merges maps subsampled by {sorted(incoming)} since the "
                "first rarefied layer: rarefy from a layer before the branches split."
            )
        factor = incoming.pop()
        if factor > 1 and isinstance(layer, _RESAMPLING):
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) resamples a subsampled map; "
                "shift-and-stitch and rarefy apply to nets of convolutions, poolings and "
                "per-position layers only (for an FCN: the model up to score_fr)."
            )
        rows, cols = _strides(layer) if index >= start else (1, 1)
        if rows != cols:
            raise ValueError(f"Layer '{layer.name}' has unequal strides {(rows, cols)}.")
        densities[layer.name] = (factor, factor * rows)
    return densities


def _source(producer, tensor, consumer, model):
    """The layer of `producer` (see `keras_fcn.graph.producers`) that outputs `tensor`, which `consumer` takes."""
    if id(tensor) not in producer:
        raise ValueError(
            f"{consumer} takes a tensor that no layer of model '{model.name}' outputs on its first call: "
            "a layer is called more than once (shared); shift-and-stitch and rarefy need every layer called once."
        )
    return producer[id(tensor)]


def _output_layer(model):
    if len(model.outputs) != 1:
        raise ValueError(f"Expected a model with one output. Model '{model.name}' has {len(model.outputs)}.")
    return _source(producers(model), model.outputs[0], "The output", model).name


def _start(model, from_layer):
    names = [layer.name for layer in model.layers]
    if from_layer not in names:
        raise ValueError(f"Model '{model.name}' has no layer {from_layer!r}.")
    return names.index(from_layer)


def subsampling(model, from_layer=None):
    """The factor by which a net's layers subsample, from `from_layer` on.

    The product of the strides of the convolutions and poolings on the path
    from `from_layer` (in `model.layers` order, inclusive; by default the
    first layer) to the output: the net's total stride, or the factor
    `rarefy(model, from_layer)` makes its output denser by.

    Args:
        model: a functional `keras.Model` with one output.
        from_layer: str, a layer name, or `None` for the whole net.

    Returns:
        int.
    """
    start = 0 if from_layer is None else _start(model, from_layer)
    return _densities(model, start)[_output_layer(model)][1]


def shift_and_stitch(net, factor, name=None):
    """Makes `net`'s output `factor` times denser by shifting its input and interlacing its outputs.

    OverFeat's shift-and-stitch (the paper, section 3.2). With `S` the
    net's total stride (`subsampling(net)`) and `d = S / factor`, the
    returned model runs `net` `factor^2` times, on
    `image[:, d * x:, d * y:, :]` for every `(x, y)` in `{0..factor-1}^2`,
    and interlaces the outputs (see `Interlace`): its cell `(i, j)` is
    `net`'s response to the input shifted by `(d * i, d * j)` pixels, one
    prediction every `d` pixels instead of every `S`. For a net without
    padding (VALID layers) it equals `rarefy(net, from_layer)` for any
    `from_layer` after which the net subsamples by `factor`.

    Args:
        net: a functional `keras.Model` from images of any size
            `(batch, None, None, channels)` to one map, made of
            convolutions, poolings and per-position layers (for an FCN of
            this package, the model up to `score_fr`, not the upsampling
            head).
        factor: int dividing the net's total stride.
        name: str, the model's name; defaults to
            `"<net name>_shift_and_stitch_<factor>"`.

    Returns:
        A functional `keras.Model` from `(batch, H, W, channels)` to
        `(batch, rows, cols, K)` in `net`'s output dtype, where `rows` is
        the number of `x` for which the input shifted by `d * x` still
        yields an output row: `factor * h - q` for `net`'s `h` output rows
        on `H` and some `0 <= q < factor`; for a VALID net with receptive
        field `r`, `floor((H - r) / d) + 1`; for a net padded to
        `ceil(H / S)` rows, `ceil(H / d)`.
    """
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"`factor` must be a positive int. Received factor={factor!r}")
    stride = subsampling(net)
    if stride % factor:
        raise ValueError(
            f"`factor` must divide the total stride {stride} of model '{net.name}'. Received factor={factor}"
        )
    if tuple(net.input.shape[1:3]) != (None, None):
        raise ValueError(
            f"shift_and_stitch needs a net that takes any input size; model '{net.name}' takes "
            f"{tuple(net.input.shape)}."
        )
    step = stride // factor
    inputs = keras.Input(net.input.shape[1:], dtype=net.input.dtype, name="image")
    outputs = [
        net(inputs[:, step * x :, step * y :, :]) for x in range(factor) for y in range(factor)
    ]
    stitched = Interlace(factor, name="interlace")(outputs)
    return keras.Model(inputs, stitched, name=name or f"{net.name}_shift_and_stitch_{factor}")


def _same_pooling_padding(layer, dilation):
    """Padding of the dilated stride-1 pooling that keeps a "same" pooling's windows where they were.

    On an input whose size is a multiple of its stride `s`, a "same"
    pooling pads `max(k - s, 0) // 2` cells at the top (TensorFlow puts
    the odd cell at the bottom); the dilated pooling pads that many
    dilated cells at the top and the rest of `(k - 1) * dilation` at the
    bottom, so that it keeps its input's size.
    """
    return tuple(
        (dilation * (max(k - s, 0) // 2), (k - 1) * dilation - dilation * (max(k - s, 0) // 2))
        for k, s in zip(layer.pool_size, layer.strides)
    )


def _rarefied(layer, dilation):
    """A new layer equivalent to `layer` on a map rarefied by `dilation`, without subsampling."""
    config = layer.get_config()
    if isinstance(layer, _CONVOLUTIONS):
        rates = _pair(config["dilation_rate"], "dilation_rate")
        config.update(strides=(1, 1), dilation_rate=tuple(rate * dilation for rate in rates))
        return layer.__class__.from_config(config)
    if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        padding = ((0, 0), (0, 0)) if layer.padding == "valid" else _same_pooling_padding(layer, dilation)
        mode = "max" if isinstance(layer, keras.layers.MaxPooling2D) else "average"
        return DilatedPooling2D(layer.pool_size, dilation, padding, mode, name=layer.name, dtype=layer.dtype_policy)
    if isinstance(layer, DilatedPooling2D):
        config.update(
            dilation_rate=tuple(rate * dilation for rate in layer.dilation_rate),
            padding=tuple((before * dilation, after * dilation) for before, after in layer.padding),
        )
        return DilatedPooling2D.from_config(config)
    if isinstance(layer, keras.layers.ZeroPadding2D):
        config["padding"] = tuple((before * dilation, after * dilation) for before, after in layer.padding)
    if isinstance(layer, keras.layers.Cropping2D):
        config["cropping"] = tuple((before * dilation, after * dilation) for before, after in layer.cropping)
    return layer.__class__.from_config(config)


def rarefy(model, from_layer, name=None):
    """Removes a net's subsampling from `from_layer` on and dilates the later filters (filter rarefaction).

    The paper's section 3.2: every convolution and pooling at or after
    `from_layer` (in `model.layers` order) gets stride 1, and each is
    dilated by the product `D` of the strides removed on the path before
    it: a convolution's `dilation_rate` is multiplied by `D`, a pooling
    becomes a `DilatedPooling2D` with dilation `D`, and `ZeroPadding2D`
    and `Cropping2D` pad or crop `D` times as many cells. Per-position
    layers (activations, normalization, merges, dropout, ...) are kept.
    The output is `subsampling(model, from_layer)` times denser, and the
    result has its own copy of every weight.

    On a net without padding (VALID convolutions and poolings) the result
    equals `shift_and_stitch(model, subsampling(model, from_layer))`
    exactly, and has the same shape. With padding, the two have the same
    shape and agree away from the borders (where shift-and-stitch pads
    each shifted input and the rarefied net pads once) as long as every
    rarefied layer pads the same at the top whatever its input size: a
    "same" pooling is replaced by a dilated pooling that pads where it did
    on inputs that are multiples of its stride (exact for 2x2 stride-2
    ceil-mode pooling), a "same" convolution keeps Keras' "same" padding,
    which is right for odd kernels at stride 1. A strided "same"
    convolution pads by an amount that depends on the parity of its input
    (3x3 stride 2 pads 0 or 1 rows at the top); shift-and-stitch then
    mixes two alignments and the rarefied net matches one of them.
    Padding that depends on the input size (`PadToMultiple`, or a
    `ZeroPadding2D` before a strided VALID layer, as in MobileNet) pads
    every shifted input again, so shift-and-stitch's map can also have
    one more row or column at the bottom or right.

    Args:
        model: a functional `keras.Model` with one output, each layer
            called once, with no upsampling, flattening or global pooling
            after `from_layer` (for an FCN, the model up to `score_fr`).
        from_layer: str, the name of the first layer to rarefy (for the
            reference VGG16, `"pool4"` gives stride 8, `"pool5"` stride
            16).
        name: str, the new model's name; defaults to
            `"<model name>_rarefied"`.

    Returns:
        A functional `keras.Model` with `model`'s input and output
        dtypes, `(batch, H, W, channels)` to `(batch, rows, cols, K)`
        with the rows and columns of `shift_and_stitch`'s output.
    """
    start = _start(model, from_layer)
    densities = _densities(model, start)
    if densities[_output_layer(model)][1] == 1:
        raise ValueError(f"Model '{model.name}' does not subsample at or after layer '{from_layer}'.")
    index = {layer.name: i for i, layer in enumerate(model.layers)}

    def clone(layer):
        if index[layer.name] < start:
            return layer.__class__.from_config(layer.get_config())
        return _rarefied(layer, densities[layer.name][0])

    inputs = keras.Input(batch_shape=model.input.shape, dtype=model.input.dtype, name=model.input.name)
    rarefied = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
    for layer in model.layers:
        if layer.weights:
            rarefied.get_layer(layer.name).set_weights(layer.get_weights())
    return keras.Model(rarefied.input, rarefied.output, name=name or f"{model.name}_rarefied")
