"""The FCN-32s, FCN-16s and FCN-8s heads (paper, section 4.2)."""

import keras

from keras_fcn.initializers import BilinearUpsampling
from keras_fcn.layers import CropLike

# Skip layers of each head, coarse to fine: (name, scaling of the at-once net).
SKIPS = {32: (), 16: (("pool4", 0.01),), 8: (("pool4", 0.01), ("pool3", 0.0001))}
# Names of the 2x upsamplings before each skip, and of the final upsampling.
SKIP_UPSAMPLING_NAMES = ("upscore2", "upscore_pool4")
FINAL_UPSAMPLING_NAMES = {32: "upscore", 16: "upscore16", 8: "upscore8"}


def _score(num_classes, name):
    """A 1x1 class-scoring convolution that starts at zero, as in the paper."""
    return keras.layers.Conv2D(
        num_classes, 1, kernel_initializer="zeros", bias_initializer="zeros", name=name
    )


def _upsample(x, factor, name, trainable, odd_kernel=False):
    """A bilinear `factor`x transposed convolution without bias (kernel 2*factor, or 2*factor - 1, stride factor)."""
    return keras.layers.Conv2DTranspose(
        x.shape[-1],
        kernel_size=2 * factor - odd_kernel,
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
    offsets,
    stepwise_upsampling=False,
    trainable_upsampling=False,
    at_once=False,
    suffix="",
    odd_kernels=False,
):
    """Scores coarse features, fuses finer skips, and upsamples to the image.

    FCN-32s: `score_fr` on the stride-32 features, one 32x upsampling, a crop
    to the image. FCN-16s adds `score_pool4` on the stride-16 features, summed
    with the 2x-upsampled coarse scores before a 16x upsampling; FCN-8s does
    the same again with `score_pool3` before an 8x upsampling. With
    `at_once`, pool4 and pool3 are scaled by 0.01 and 0.0001 before scoring,
    as in the reference at-once FCN-8s. Layer names follow the reference nets,
    each with `suffix` appended as the SIFT Flow nets append `_sem` and `_geo`
    to their two heads: `score_fr_sem`, `upscore2_sem`, `score_pool4_sem`,
    `score_pool4_semc` (the crop), `fuse_pool4_sem`, ..., `score_sem`.

    Args:
        image: the model's input `(batch, H, W, 3)`; the output is cropped to
            its height and width.
        skips: `(pool3, pool4)` tensors at strides 8 and 16.
        features: the tensor `score_fr` scores, at stride 32.
        num_classes: int, output channels.
        stride: 32, 16 or 8, the output stride of the head.
        offsets: the backbone's crop offsets, see `keras_fcn.backbones`.
        stepwise_upsampling: bool. If False, the final upsampling is one
            transposed convolution (kernel `2 * stride`, as in the reference
            nets); if True, it is `log2(stride)` bilinear 2x steps named
            `<name>_1`, `<name>_2`, ..., so that every head applies the same
            chain of 2x steps to the coarse scores and an FCN-16s or FCN-8s
            with zero skip scores equals its FCN-32s exactly.
        trainable_upsampling: bool, whether the bilinear upsamplings learn.
        at_once: bool, whether to scale the skips as the at-once FCN-8s does.
        suffix: str appended to the name of every layer the head creates
            (default: none), so that several heads can share one trunk.
        odd_kernels: bool. If False, an `f`x upsampling has kernel `2f`
            and puts input cell `i` at output index `f * i + f - 0.5`,
            between two pixels, the centre of a cell of `f` pixels (the
            paper's kernels). If True, kernel `2f - 1` puts it at
            `f * i + f - 1`, on a pixel, for backbones whose cells are
            centred on pixels (all kernels odd and VALID: AlexNet's 63/32,
            InceptionV3's 3/2 steps).

    Returns:
        Logits `(batch, H, W, num_classes)`, float32.
    """
    taps = dict(zip(("pool3", "pool4"), skips))
    *skip_offsets, final_offset = offsets[stride]
    scores = _score(num_classes, f"score_fr{suffix}")(features)
    for (name, scale), offset, up_name in zip(SKIPS[stride], skip_offsets, SKIP_UPSAMPLING_NAMES):
        upsampled = _upsample(scores, 2, f"{up_name}{suffix}", trainable_upsampling, odd_kernels)
        tap = taps[name]
        if at_once:
            tap = keras.layers.Rescaling(scale, name=f"scale_{name}{suffix}")(tap)
        skip = _score(num_classes, f"score_{name}{suffix}")(tap)
        skip = CropLike(offset, name=f"score_{name}{suffix}c")([skip, upsampled])
        scores = keras.layers.Add(name=f"fuse_{name}{suffix}")([upsampled, skip])
    return upsample_to_image(
        scores,
        image,
        stride=stride,
        offset=final_offset,
        stepwise_upsampling=stepwise_upsampling,
        trainable_upsampling=trainable_upsampling,
        suffix=suffix,
        odd_kernels=odd_kernels,
    )


def upsample_to_image(
    scores,
    image,
    *,
    stride,
    offset,
    stepwise_upsampling=False,
    trainable_upsampling=False,
    suffix="",
    odd_kernels=False,
):
    """The last step of an FCN head: upsamples scores `stride`x and crops them to the image.

    `fcn_head` ends with it; the NYUDv2 colour-HHA late-fusion net applies it
    to the average of its two streams' `score_fr`.

    Args:
        scores: tensor `(batch, h, w, num_classes)` at stride `stride`.
        image: the model's input `(batch, H, W, channels)`; the output is
            cropped to its height and width.
        stride: 32, 16 or 8; the final upsampling is named `upscore`,
            `upscore16` or `upscore8` (then `suffix`).
        offset: int, the crop offset (the last of the backbone's offsets
            for `stride`).
        stepwise_upsampling: bool, see `fcn_head`.
        trainable_upsampling: bool, whether the bilinear upsampling learns.
        suffix: str appended to the layer names, see `fcn_head`.
        odd_kernels: bool, see `fcn_head`.

    Returns:
        Logits `(batch, H, W, num_classes)`, float32, from the crop layer
        `score` (then `suffix`).
    """
    name = f"{FINAL_UPSAMPLING_NAMES[stride]}{suffix}"
    if stepwise_upsampling:
        for step in range(1, stride.bit_length()):
            scores = _upsample(scores, 2, f"{name}_{step}", trainable_upsampling, odd_kernels)
        upsampled = scores
    else:
        upsampled = _upsample(scores, stride, name, trainable_upsampling, odd_kernels)
    return CropLike(offset, name=f"score{suffix}", dtype="float32")([upsampled, image])
