"""Staged training: make an FCN-16s from an FCN-32s and an FCN-8s from an FCN-16s."""

import dataclasses

import keras

from keras_fcn.errors import InvalidArgumentError
from keras_fcn.architecture import architecture_name, architecture_of, record, recorded_tensors
from keras_fcn.heads import fcn_head


def output_stride(model):
    """The output stride (32, 16 or 8) of a keras-fcn FCN, read from its `Architecture`."""
    return architecture_of(model).stride


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
    difference along each axis. Everything is read from the model's
    `keras_fcn.Architecture` record, so renamed layers do not matter.

    Args:
        model: an FCN-32s or FCN-16s built by keras-fcn (or loaded from one).
        name: name of the new model; defaults to the builders' name for it,
            e.g. `"fcn16s_mobilenet"`.

    Returns:
        A new functional `keras.Model` with the same input and output shapes.

    Raises:
        ValueError: for a model that is not a keras-fcn FCN, an FCN-8s, or an
            at-once FCN-8s (naming the model).

    Example:

    >>> fcn32s = keras_fcn.FCN32s(21, backbone_weights=None)
    >>> fcn16s = keras_fcn.upgrade(fcn32s)
    """
    architecture = architecture_of(model)
    if architecture.at_once:
        raise InvalidArgumentError(f"Model '{model.name}' is an at-once FCN, which is not trained in stages.")
    if architecture.stride == 8:
        raise InvalidArgumentError(f"Model '{model.name}' is already an FCN-8s: there is no next stage.")
    tensors = recorded_tensors(model)
    logits, scores = fcn_head(
        model.input,
        (tensors["pool3"], tensors["pool4"]),
        tensors["features"],
        num_classes=architecture.num_classes,
        stride=architecture.stride // 2,
        geometry=architecture.head_geometry,
        trainable_upsampling=any(
            layer.trainable for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)
        ),
        scores={role: tensors[role] for role in ("score_fr", "score_pool4") if role in tensors},
    )
    upgraded = dataclasses.replace(architecture, name=architecture_name(architecture.stride // 2), skip_layers=())
    outputs = record(upgraded, {**tensors, "logits": logits, **scores})
    grafted = keras.Model(model.input, outputs, name=name or upgraded.model_name)
    copy = keras.models.clone_model(grafted)
    copy.set_weights(grafted.get_weights())
    return copy
