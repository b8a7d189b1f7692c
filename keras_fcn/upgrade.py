"""Staged training: make an FCN-16s from an FCN-32s and an FCN-8s from an FCN-16s."""

import keras

from keras_fcn.backbones import BACKBONES, backbone_of
from keras_fcn.heads import fcn_head


def _output_stride(model):
    names = {layer.name for layer in model.layers}
    return 8 if "fuse_pool3" in names else 16 if "fuse_pool4" in names else 32


def upgrade(model, name=None):
    """Makes the next stage of staged FCN training: FCN-32s -> FCN-16s -> FCN-8s.

    The returned model has its own copy of every weight the two nets share
    (trunk, fc6/fc7, `score_fr`, and `score_pool4` when upgrading an FCN-16s).
    Its new skip score layer starts at zero and its new upsamplings are
    bilinear, so before any training it starts from `model`'s predictions
    (the paper, section 4.2). For the backbones that upsample in bilinear 2x
    steps the output is exactly `model`'s. The reference VGG16 nets upsample
    in one step per head (64/32, then 4/2 + 32/16): a 2x step followed by a
    16x step samples the coarse scores a quarter cell either side of their
    centres, so near each centre its output cuts the corner of the FCN-32s's
    linear interpolation, by at most 1/8 of the coarse scores' second
    difference along each axis.

    Args:
        model: an FCN-32s or FCN-16s built by keras-fcn (or loaded from one).
        name: name of the new model; defaults to `model.name` with `fcn32s`
            replaced by `fcn16s` (or `fcn16s` by `fcn8s`).

    Returns:
        A new functional `keras.Model` with the same input and output shapes.

    Example:

    >>> fcn32s = keras_fcn.FCN32s(21, backbone_weights=None)
    >>> fcn16s = keras_fcn.upgrade(fcn32s)
    """
    stride = _output_stride(model)
    if stride == 8:
        raise ValueError(f"Model '{model.name}' is already an FCN-8s: there is no next stage.")
    if any(layer.name.startswith("scale_pool") for layer in model.layers):
        raise ValueError(f"Model '{model.name}' is an at-once FCN, which is not trained in stages.")
    backbone = BACKBONES[backbone_of(model)]
    score_fr = model.get_layer("score_fr")
    outputs = fcn_head(
        model.input,
        tuple(model.get_layer(layer).output for layer in backbone.features[:2]),
        score_fr.input,
        num_classes=score_fr.filters,
        stride=stride // 2,
        offsets=backbone.offsets,
        stepwise_upsampling=backbone.stepwise_upsampling,
        odd_kernels=backbone.odd_upsampling_kernels,
        trainable_upsampling=any(
            layer.trainable for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)
        ),
    )
    default_name = model.name.replace(f"fcn{stride}s", f"fcn{stride // 2}s")
    grafted = keras.Model(model.input, outputs, name=name or default_name)
    upgraded = keras.models.clone_model(grafted)
    shared = {layer.name for layer in model.layers}
    for layer in upgraded.layers:
        if layer.name in shared:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return upgraded
