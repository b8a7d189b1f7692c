"""The classifiers an FCN can be built on, and where their stride-8/16/32 features are."""

import dataclasses
from typing import Callable, Optional

import keras

from keras_fcn.alexnet import reference_alexnet_trunk
from keras_fcn.constants import CAFFE_IMAGENET_MEAN_BGR, IMAGENET_MEAN, IMAGENET_STD
from keras_fcn.reference import reference_vgg16_trunk

# Input conversions from RGB in [0, 255], as (mean, std, bgr).
CAFFE = (CAFFE_IMAGENET_MEAN_BGR, (1.0, 1.0, 1.0), True)
TF = ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5), False)
TORCH = (IMAGENET_MEAN, IMAGENET_STD, False)
# The FCN reference models' BGR mean (fcn.berkeleyvision.org).
FCN_REFERENCE = ((104.00699, 116.66877, 122.67892), (1.0, 1.0, 1.0), True)

# Crop offsets of the FCN heads: for each output stride, the offsets of the
# pool4 skip, the pool3 skip and the final crop, in that order (only those the
# head has).
# "reference": the Caffe nets (conv1_1 padding 100, one final upsampling).
REFERENCE_OFFSETS = {32: (19,), 16: (5, 27), 8: (5, 9, 31)}
# The reference FCN-AlexNet (conv1 padding 100, VALID 3x3 stride-2 poolings,
# fc6 6x6 VALID): pool1, pool2 and fc6 cells are centred on pixels 8i - 91,
# 16i - 83 and 32i + 13 (Caffe's coordinate maps). Its one 63/32 upsampling
# (odd kernel) puts fc6 cell i on index 32i + 31: crop 18, as in the authors'
# net. The FCN-16s and FCN-8s, which the authors did not release, upsample
# 3/2 then 31/16 (or 3/2, 3/2, 15/8): upsampled index u lands on pool2 cell
# u + 5, then on pool1 cell u + 10, and the final crop is again 18.
ALEXNET_OFFSETS = {32: (18,), 16: (5, 18), 8: (5, 10, 18)}
# "padded": backbones whose input is padded to a multiple of 32, so every
# stride-s map has exactly size/s cells, upsampled by bilinear 2x steps. A 2x
# step (kernel 4, stride 2) puts input cell i at output index 2i + 1.5, the
# centre of its two children: pool4 cell q lands at index q + 1 (offset -1),
# pool3 cell r at r + 3 (offset -3), and after five steps coarse cell i lands
# at 32i + 46.5, the centre 32i + 15.5 of its 32x32 pixel cell (offset 31).
PADDED_OFFSETS = {32: (31,), 16: (-1, 31), 8: (-1, -3, 31)}
# InceptionV3: its stem and reduction blocks are VALID 3x3 convolutions and
# poolings, so the cells of its stride-8, 16 and 32 maps are centred on
# pixels 8i + 13, 16i + 21 and 32i + 37 of its input, which has 32m + 43 rows
# for m cells at stride 32 (4m + 3 at stride 8, 2m + 1 at stride 16). The
# image, padded to 32m rows, gets 21 more rows at the top and 22 at the
# bottom (`INCEPTION_PADDING`), which puts the cells at 8i - 8, 16i and
# 32i + 16 of the image, 32i + 16 being the centre, up to half a pixel, of
# the 32x32 block i. A 2x step with kernel 3 (odd kernels, see
# `keras_fcn.heads.fcn_head`) puts cell i on index 2i + 1, the next map's
# cell 2i + 1 (skip offsets 0), and five such steps put it on 32i + 31, so
# the final crop starts at 15.
INCEPTION_PADDING = ((21, 22), (21, 22))
INCEPTION_OFFSETS = {32: (15,), 16: (0, 15), 8: (0, 0, 15)}


@dataclasses.dataclass(frozen=True)
class Backbone:
    """How to build one trunk and which of its layers feed the FCN heads.

    Attributes:
        application: the Keras Applications constructor of the classifier
            (its trunk, or for VGG its weights, fill the FCN), or `None`
            for a trunk that Keras Applications lacks (AlexNet), which
            then has no ImageNet weights.
        features: names of the layers giving the stride-8, stride-16 and
            stride-32 feature maps (the paper's pool3, pool4 and pool5).
        normalization: `(mean, std, bgr)` turning RGB in `[0, 255]` into the
            input the backbone's weights expect.
        fc6_padding: `None` for a classifier whose fully connected layers the
            FCN drops with its last layer (global-pooling heads); for VGG the
            padding ("same" or "valid") of fc6, the 7x7 convolution that
            fc6 (7x7, 4096) and fc7 (1x1, 4096) keep from the classifier.
        fc6_kernel: int, fc6's kernel size: the size of the last feature
            map the classifier saw (7 for VGG, 6 for AlexNet).
        offsets: crop offsets of the heads, see `PADDED_OFFSETS`.
        stepwise_upsampling: whether the heads upsample in bilinear 2x steps
            (see `keras_fcn.heads.fcn_head`) rather than in one step as the
            reference nets do.
        trunk: `None` to use `application`'s own layers on an input padded to
            a multiple of 32, or a function building the trunk layer by layer
            on the normalized input (the reference VGG16).
        application_kwargs: fixed keyword arguments for `application`.
        input_padding: `((top, bottom), (left, right))` zeros added around
            the input once it is padded to a multiple of 32 (see
            `INCEPTION_OFFSETS`).
        odd_upsampling_kernels: whether the heads' upsamplings have odd
            kernels `2f - 1` (see `keras_fcn.heads.fcn_head`).
    """

    application: Optional[Callable]
    features: tuple
    normalization: tuple
    fc6_padding: Optional[str] = None
    fc6_kernel: int = 7
    offsets: dict = dataclasses.field(default_factory=lambda: PADDED_OFFSETS)
    stepwise_upsampling: bool = True
    trunk: Optional[Callable] = None
    application_kwargs: dict = dataclasses.field(default_factory=dict)
    input_padding: tuple = ((0, 0), (0, 0))
    odd_upsampling_kernels: bool = False


_apps = keras.applications
_NO_PREPROCESSING = {"include_preprocessing": False}

BACKBONES = {
    "vgg16_reference": Backbone(
        _apps.VGG16,
        ("pool3", "pool4", "pool5"),
        FCN_REFERENCE,
        fc6_padding="valid",
        offsets=REFERENCE_OFFSETS,
        stepwise_upsampling=False,
        trunk=reference_vgg16_trunk,
    ),
    "alexnet_reference": Backbone(
        None,
        ("pool1", "pool2", "pool5"),
        FCN_REFERENCE,
        fc6_padding="valid",
        fc6_kernel=6,
        offsets=ALEXNET_OFFSETS,
        stepwise_upsampling=False,
        trunk=reference_alexnet_trunk,
        odd_upsampling_kernels=True,
    ),
    "vgg16": Backbone(
        _apps.VGG16, ("block3_pool", "block4_pool", "block5_pool"), CAFFE, fc6_padding="same"
    ),
    "vgg19": Backbone(
        _apps.VGG19, ("block3_pool", "block4_pool", "block5_pool"), CAFFE, fc6_padding="same"
    ),
    "resnet50": Backbone(
        _apps.ResNet50, ("conv3_block4_out", "conv4_block6_out", "conv5_block3_out"), CAFFE
    ),
    "resnet50v2": Backbone(
        _apps.ResNet50V2, ("conv3_block4_1_relu", "conv4_block6_1_relu", "post_relu"), TF
    ),
    "mobilenet": Backbone(
        _apps.MobileNet, ("conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu"), TF
    ),
    "mobilenetv2": Backbone(
        _apps.MobileNetV2, ("block_6_expand_relu", "block_13_expand_relu", "out_relu"), TF
    ),
    "efficientnetv2b0": Backbone(
        _apps.EfficientNetV2B0,
        ("block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        TORCH,
        application_kwargs=_NO_PREPROCESSING,
    ),
    "convnexttiny": Backbone(
        _apps.ConvNeXtTiny,
        (
            "convnext_tiny_stage_1_block_2_identity",
            "convnext_tiny_stage_2_block_8_identity",
            "convnext_tiny_stage_3_block_2_identity",
        ),
        TORCH,
        application_kwargs=_NO_PREPROCESSING,
    ),
    "inceptionv3": Backbone(
        _apps.InceptionV3,
        ("mixed2", "mixed7", "mixed10"),
        TF,
        offsets=INCEPTION_OFFSETS,
        input_padding=INCEPTION_PADDING,
        odd_upsampling_kernels=True,
    ),
}


def get_backbone(name):
    """Returns the `Backbone` registered as `name`, or raises a ValueError listing the names."""
    if name not in BACKBONES:
        raise ValueError(
            f"Unknown backbone. Expected one of {sorted(BACKBONES)}. Received backbone={name!r}"
        )
    return BACKBONES[name]


def backbone_of(model):
    """Returns the name of the backbone a keras-fcn model was built on.

    Found from the layer that feeds the head (fc6, or score_fr where there is
    no fc6): it is the stride-32 feature layer of exactly one backbone.
    """
    names = {layer.name for layer in model.layers}
    head = "fc6" if "fc6" in names else "score_fr"
    if head not in names:
        raise ValueError(
            f"Model '{model.name}' is not a keras-fcn FCN: it has no layer named 'score_fr'."
        )
    source = model.get_layer(head).input._keras_history.operation.name
    for name, backbone in BACKBONES.items():
        if backbone.features[2] == source and set(backbone.features) <= names:
            return name
    raise ValueError(
        f"Model '{model.name}' feeds its head from layer '{source}', which is not the "
        f"stride-32 feature layer of any backbone in {sorted(BACKBONES)}."
    )
