"""The FCN-32s, FCN-16s and FCN-8s heads (paper, section 4.2), and where they put each score.

A head scores the stride-32 features, upsamples the scores 2x and adds the
scores of the stride-16 skip, again with the stride-8 skip, and upsamples to
the image. For the sums and the output to mean anything, every score must
land where the cell it scores looks: on the centre of its receptive field.
`design_head` derives from the trunk's geometry (`keras_fcn.geometry`) the
zero padding of the input, the size (even `2f` or odd `2f - 1`) of each
bilinear `f`x upsampling kernel and each crop offset that do this, as the
reference code derives its crops 19; 5, 27; 5, 9, 31 from Caffe's coordinate
maps; the result is a `HeadGeometry`.

Coordinates are input pixels (pixel `p` centred on `p`). An `f`x transposed
convolution with kernel `K`, stride `f` and "valid" padding puts input cell
`i` at output index `f*i + (K - 1) / 2`: a grid of cells at `c + S*i`
becomes one at `c - (S / f) * (K - 1) / 2 + (S / f) * u`. A crop with offset
`o` then makes index `u + o` of a map the head's index `u`. Both kernels
interpolate bilinearly; an odd kernel puts the cell on an output sample, an
even one half-way between two.
"""

import dataclasses
import math
from fractions import Fraction

import keras

from keras_fcn.errors import InvalidArgumentError
from keras_fcn.geometry import AXES, FEATURE_STRIDES, GeometryError
from keras_fcn.initializers import BilinearUpsampling
from keras_fcn.layers import CropLike

# Skip layers of each head, coarse to fine: (name, scaling of the at-once net).
SKIPS = {32: (), 16: (("pool4", 0.01),), 8: (("pool4", 0.01), ("pool3", 0.0001))}
# Names of the 2x upsamplings before each skip, and of the final upsampling.
SKIP_UPSAMPLING_NAMES = ("upscore2", "upscore_pool4")
FINAL_UPSAMPLING_NAMES = {32: "upscore", 16: "upscore16", 8: "upscore8"}
HEAD_STRIDES = (32, 16, 8)
# Where the heads put each score. "receptive_field": on its receptive
# field's centre, as derived from the trunk. "pixel_blocks": keras-fcn
# 0.1's assumption that stride-s cell i is centred on the s x s pixel block i
# (true of VGG and ConvNeXt, half a cell off for MobileNet, EfficientNet and
# ResNet), kept only to load weights trained with it (keras-fcn 0.1's files).
RECEPTIVE_FIELD, PIXEL_BLOCKS = "receptive_field", "pixel_blocks"
ALIGNMENTS = (RECEPTIVE_FIELD, PIXEL_BLOCKS)
# Pixels per cell of the coarsest map: the input is padded to a multiple of it.
BLOCK = 32


def _pairs(value):
    """Nested lists (a config read back from JSON) as nested tuples."""
    return tuple(_pairs(item) for item in value) if isinstance(value, (list, tuple)) else value


@dataclasses.dataclass(frozen=True)
class HeadGeometry:
    """Where an FCN's heads put each score, for the three head strides; see `design_head`.

    Every pair is `(rows, columns)`.

    Attributes:
        alignment: `"receptive_field"` or `"pixel_blocks"` (see `ALIGNMENTS`).
        input_padding: `((top, bottom), (left, right))`, the zeros added to
            the normalized image (after it is padded to a multiple of 32 at
            the bottom and right, for Keras Applications trunks).
        skip_kernels: the kernel pairs of the 2x upsamplings from stride 32
            to 16 (`upscore2`) and from 16 to 8 (`upscore_pool4`).
        skip_offsets: the crop offset pairs of the stride-16 skip
            (`score_pool4c`) and of the stride-8 skip (`score_pool3c`).
        final_upsamplings: for the heads of stride 32, 16 and 8, in that
            order, the final upsamplings as `(factor, kernel pair)` steps.
        final_offsets: for the heads of stride 32, 16 and 8, the offset
            pair of the crop to the image (`score`).
    """

    alignment: str
    input_padding: tuple
    skip_kernels: tuple
    skip_offsets: tuple
    final_upsamplings: tuple
    final_offsets: tuple

    def final(self, stride):
        """`(upsampling steps, crop offset)` of the head of output stride `stride`."""
        index = HEAD_STRIDES.index(stride)
        return self.final_upsamplings[index], self.final_offsets[index]

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        return cls(**{key: _pairs(value) for key, value in config.items()})


def input_padding_for(fields, trunk_length):
    """The zeros to add around the image that centre the stride-32 cells on its 32-pixel blocks.

    For each axis, `before` puts cell centres at `32i + 15.5` (or `+ 16`
    where they sit on pixels) of the image, so each 32-pixel block is scored
    by a cell centred on it; it is taken modulo 32 when negative (one cell
    above the image is then spent). `before + after` is the smallest multiple
    of 32 for which the last cell of every map is centred within half a cell
    of the image's last pixel: a multiple of 32 keeps the trunk's input
    length modulo every stride, so the padding does not change the trunk's
    geometry (the split of its "same" paddings).

    Args:
        fields: `{8: field, 16: field, 32: field}`, the `ReceptiveField` of
            the trunk's skips and features, on the trunk's input (the image
            padded to a multiple of 32 at the bottom and right).
        trunk_length: `(rows, columns)` `Length` of the trunk's input.

    Returns:
        `((top, bottom), (left, right))`.

    Raises:
        GeometryError: when a map's length does not follow the input's.
    """
    padding = []
    for axis in range(2):
        geometries = {stride: fields[stride].axis(axis) for stride in FEATURE_STRIDES}
        before = math.floor(geometries[32].centre - Fraction(BLOCK - 1, 2))
        if before < 0:
            before %= BLOCK
        blocks = -(-before // BLOCK)
        while not all(
            _covers(geometries[stride], stride, before, blocks, trunk_length[axis], axis) for stride in FEATURE_STRIDES
        ):
            blocks += 1
        padding.append((before, BLOCK * blocks - before))
    return tuple(padding)


def _covers(geometry, stride, before, blocks, trunk_length, axis):
    """Whether the last cell is centred within half a cell of the image's end, the input grown by `blocks` x 32."""
    length = geometry.length
    if length is None or length.period * stride != trunk_length.period:
        raise GeometryError(
            f"The length of the stride-{stride} map along the {AXES[axis]} is not a fixed "
            "function of the input's length: the trunk's geometry depends on the input size."
        )
    last = geometry.centre - before + stride * (length.offset - 1) + BLOCK * blocks
    return last >= trunk_length.offset - 1 - Fraction(stride, 2)


def _upsampling(origin, stride, factor, aligned_to=None, odd_first=True):
    """`(kernel, new origin)` of an `f`x bilinear step on cells at `origin + stride * i`.

    With `aligned_to`, the kernel (`2f` or `2f - 1`) for which the new grid
    of pitch `stride / f` contains the point `aligned_to` (the centre of the
    next map's cell 0, or pixel 0); otherwise `2f - 1` (`odd_first`), whose
    output samples include the input cells, so that a chain of such steps
    interpolates exactly as one bilinear step would, or the paper's `2f`.
    """
    pitch = Fraction(stride, factor)
    for kernel in (2 * factor - 1, 2 * factor) if odd_first else (2 * factor, 2 * factor - 1):
        new_origin = origin - pitch * Fraction(kernel - 1, 2)
        if aligned_to is None or ((new_origin - aligned_to) / pitch).denominator == 1:
            return kernel, new_origin
    raise GeometryError(
        f"Cells centred at {origin} + {stride}i cannot be upsampled {factor}x onto a grid through {aligned_to}: "
        f"the stride-{stride // factor} cells sit a fraction of a cell off the stride-{stride} ones."
    )


def _axis_design(centres, stepwise, odd_first):
    """The kernels and offsets of one axis from the cell-0 centres `{8: c8, 16: c16, 32: c32}` on the image."""
    kernel_32, origin_16 = _upsampling(centres[32], 32, 2, centres[16])
    kernel_16, origin_8 = _upsampling(origin_16, 16, 2, centres[8])
    skip_offsets = (int((origin_16 - centres[16]) / 16), int((origin_8 - centres[8]) / 8))
    if stepwise:
        kernel_8, origin_4 = _upsampling(origin_8, 8, 2, odd_first=odd_first)
        kernel_4, origin_2 = _upsampling(origin_4, 4, 2, odd_first=odd_first)
        kernel_2, origin_1 = _upsampling(origin_2, 2, 2, Fraction(0))
        steps = [(2, kernel) for kernel in (kernel_32, kernel_16, kernel_8, kernel_4, kernel_2)]
        finals = [(tuple(steps[index:]), -int(origin_1)) for index in range(3)]
    else:
        finals = []
        for stride, origin in zip(HEAD_STRIDES, (centres[32], origin_16, origin_8)):
            kernel, origin_1 = _upsampling(origin, stride, stride, Fraction(0))
            finals.append((((stride, kernel),), -int(origin_1)))
    return (kernel_32, kernel_16), skip_offsets, finals


def design_head(fields, *, input_padding=((0, 0), (0, 0)), stepwise=True, alignment=RECEPTIVE_FIELD):
    """Derives the `HeadGeometry` that puts every score on its receptive field's centre.

    For each axis: the 2x step from stride 32 to 16 takes the kernel (4 or
    3) that puts the upsampled stride-32 scores on the stride-16 cells'
    centres, and the skip's crop is the offset between the two grids;
    likewise from 16 to 8. The final
    upsampling is either `log2(stride)` 2x steps (`stepwise`), kernel 3
    where the geometry leaves the choice (a chain of kernel-3 steps
    interpolates exactly as one bilinear step) and 3 or 4 at the last so
    that the output grid falls on the pixels, all heads sharing the steps
    from 32 to 16 and 16 to 8, so that an FCN-16s whose skip scores are zero
    equals its FCN-32s exactly; or one `f`x step per head (kernel `2f` or
    `2f - 1`, the reference nets). This reproduces the reference VGG16's
    crops 19; 5, 27; 5, 9, 31 and FCN-AlexNet's 18 (its cells sit on pixels,
    so its kernels are odd). `"pixel_blocks"` takes the paper's kernel 4
    wherever it can, as keras-fcn 0.1 did.

    Args:
        fields: `{8: field, 16: field, 32: field}`, the `ReceptiveField` of
            the skips and of the features `score_fr` scores, on the image.
        input_padding: the zeros added around the image before the trunk
            (see `input_padding_for`), recorded in the result.
        stepwise: bool, whether the final upsampling is in 2x steps.
        alignment: `"receptive_field"`, or `"pixel_blocks"` to assume, as
            keras-fcn 0.1 did, that stride-`s` cell `i` is centred on pixel
            `s*i + (s - 1) / 2` and pad nothing (see `ALIGNMENTS`).

    Returns:
        A `HeadGeometry`.

    Raises:
        GeometryError: when no kernel lines one map's cells up with the
            next's (a skip off by a fraction of a cell).
    """
    if alignment not in ALIGNMENTS:
        raise InvalidArgumentError(f"`alignment` must be one of {ALIGNMENTS}. Received alignment={alignment!r}")
    rows, columns = (
        _axis_design(
            {
                stride: Fraction(stride - 1, 2) if alignment == PIXEL_BLOCKS else fields[stride].axis(axis).centre
                for stride in FEATURE_STRIDES
            },
            stepwise,
            odd_first=alignment != PIXEL_BLOCKS,
        )
        for axis in range(2)
    )
    return HeadGeometry(
        alignment=alignment,
        input_padding=tuple(tuple(pair) for pair in input_padding),
        skip_kernels=tuple(zip(rows[0], columns[0])),
        skip_offsets=tuple(zip(rows[1], columns[1])),
        final_upsamplings=tuple(
            tuple((factor, (row_kernel, column_kernel)) for (factor, row_kernel), (_, column_kernel) in zip(r, c))
            for (r, _), (c, _) in zip(rows[2], columns[2])
        ),
        final_offsets=tuple((r, c) for (_, r), (_, c) in zip(rows[2], columns[2])),
    )


def _score(num_classes, name):
    """A 1x1 class-scoring convolution that starts at zero, as in the paper."""
    return keras.layers.Conv2D(
        num_classes, 1, kernel_initializer="zeros", bias_initializer="zeros", name=name
    )


def _upsample(x, factor, kernel, name, trainable):
    """A bilinear `factor`x transposed convolution without bias, `kernel` a `(rows, columns)` pair."""
    return keras.layers.Conv2DTranspose(
        x.shape[-1],
        kernel_size=kernel,
        strides=factor,
        padding="valid",
        use_bias=False,
        kernel_initializer=BilinearUpsampling(),
        trainable=trainable,
        name=name,
    )(x)


def fcn_head(
    image,
    skips,
    features,
    *,
    num_classes,
    stride,
    geometry,
    trainable_upsampling=False,
    at_once=False,
    suffix="",
    scores=None,
):
    """Scores coarse features, fuses finer skips, and upsamples to the image.

    FCN-32s: `score_fr` on the stride-32 features, upsampling, a crop to the
    image. FCN-16s adds `score_pool4` on the stride-16 features, cropped and
    summed with the 2x-upsampled coarse scores before the final upsampling;
    FCN-8s does the same again with `score_pool3`. With `at_once`, pool4 and
    pool3 are scaled by 0.01 and 0.0001 before scoring, as in the reference
    at-once FCN-8s. Kernels and crops come from `geometry`. Layer names
    follow the reference nets, each with `suffix` appended as the SIFT Flow
    nets append `_sem` and `_geo` to their two heads: `score_fr_sem`,
    `upscore2_sem`, `score_pool4_sem`, `score_pool4_semc` (the crop),
    `fuse_pool4_sem`, ..., `score_sem`.

    Args:
        image: the model's input `(batch, H, W, 3)`; the output is cropped to
            its height and width.
        skips: `(pool3, pool4)` tensors at strides 8 and 16.
        features: the tensor `score_fr` scores, at stride 32.
        num_classes: int, output channels.
        stride: 32, 16 or 8, the output stride of the head.
        geometry: the trunk's `HeadGeometry` (see `design_head`).
        trainable_upsampling: bool, whether the bilinear upsamplings learn.
        at_once: bool, whether to scale the skips as the at-once FCN-8s does.
        suffix: str appended to the name of every layer the head creates
            (default: none), so that several heads can share one trunk.
        scores: optional dict of score tensors to use instead of new score
            layers, keyed `"score_fr"`, `"score_pool4"` (an upgrade keeps the
            trained ones).

    Returns:
        `(logits, scores)`: logits `(batch, H, W, num_classes)`, float32, and
        a dict of the uncropped score maps by name (`"score_fr"`,
        `"score_pool4"`, `"score_pool3"` as the head has them).
    """
    taps = dict(zip(("pool3", "pool4"), skips))
    scores = dict(scores or {})
    if "score_fr" not in scores:
        scores["score_fr"] = _score(num_classes, f"score_fr{suffix}")(features)
    fused = scores["score_fr"]
    for (name, scale), kernel, offset, up_name in zip(
        SKIPS[stride], geometry.skip_kernels, geometry.skip_offsets, SKIP_UPSAMPLING_NAMES
    ):
        upsampled = _upsample(fused, 2, kernel, f"{up_name}{suffix}", trainable_upsampling)
        if f"score_{name}" not in scores:
            tap = taps[name]
            if at_once:
                tap = keras.layers.Rescaling(scale, name=f"scale_{name}{suffix}")(tap)
            scores[f"score_{name}"] = _score(num_classes, f"score_{name}{suffix}")(tap)
        skip = CropLike(offset, name=f"score_{name}{suffix}c")([scores[f"score_{name}"], upsampled])
        fused = keras.layers.Add(name=f"fuse_{name}{suffix}")([upsampled, skip])
    logits = upsample_to_image(
        fused, image, stride=stride, geometry=geometry, trainable_upsampling=trainable_upsampling, suffix=suffix
    )
    return logits, scores


def upsample_to_image(scores, image, *, stride, geometry, trainable_upsampling=False, suffix=""):
    """The last step of an FCN head: upsamples scores `stride`x and crops them to the image.

    `fcn_head` ends with it; the NYUDv2 colour-HHA late-fusion net applies it
    to the average of its two streams' `score_fr`.

    Args:
        scores: tensor `(batch, h, w, num_classes)` at stride `stride`.
        image: the model's input `(batch, H, W, channels)`; the output is
            cropped to its height and width.
        stride: 32, 16 or 8; the final upsampling is named `upscore`,
            `upscore16` or `upscore8` (then `suffix`), with `_1`, `_2`, ...
            for each of several steps.
        geometry: the trunk's `HeadGeometry`.
        trainable_upsampling: bool, whether the bilinear upsampling learns.
        suffix: str appended to the layer names, see `fcn_head`.

    Returns:
        Logits `(batch, H, W, num_classes)`, float32, from the crop layer
        `score` (then `suffix`).
    """
    name = f"{FINAL_UPSAMPLING_NAMES[stride]}{suffix}"
    steps, offset = geometry.final(stride)
    for index, (factor, kernel) in enumerate(steps, start=1):
        step_name = name if len(steps) == 1 else f"{name}_{index}"
        scores = _upsample(scores, factor, kernel, step_name, trainable_upsampling)
    return CropLike(offset, name=f"score{suffix}", dtype="float32")([scores, image])
