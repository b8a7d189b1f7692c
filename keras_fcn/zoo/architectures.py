"""Builds the model a zoo entry's weights fit, its input preprocessing included."""

import re

import keras

from keras_fcn.backbones import BACKBONES
from keras_fcn.layers import InputNormalization

_BUILDER_ARCHITECTURE = re.compile(r"fcn(?P<stride>32|16|8)s(?P<at_once>_atonce)?_(?P<backbone>\w+)")
_BUILDERS = {
    ("32", False): "FCN32s",
    ("16", False): "FCN16s",
    ("8", False): "FCN8s",
    ("8", True): "FCN8sAtOnce",
}


def builder_call(architecture):
    """`(builder name, backbone)` of an architecture the package's builders make, or None.

    For example `"fcn8s_atonce_vgg16_reference"` -> `("FCN8sAtOnce", "vgg16_reference")`.
    """
    match = _BUILDER_ARCHITECTURE.fullmatch(architecture)
    if (
        not match
        or match["backbone"] not in BACKBONES
        or (match["stride"], bool(match["at_once"])) not in _BUILDERS
    ):
        return None
    return _BUILDERS[match["stride"], bool(match["at_once"])], match["backbone"]


def _with_normalization(model, preprocessing):
    """A copy of `model` whose `normalization` layer applies `preprocessing` instead."""

    def clone(layer):
        if layer.name == "normalization":
            mean, std, bgr = preprocessing.as_normalization()
            return InputNormalization(mean, std, bgr, name="normalization")
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=clone)


def build(entry):
    """Builds, with random weights, the model that `entry`'s weights fit.

    The model takes the entry's inputs in `[0, 255]` and applies the entry's
    preprocessing itself (for the NYUDv2 models, their own means; for the
    HHA model, no channel swap).

    Args:
        entry: a `keras_fcn.zoo.ZooEntry`.

    Returns:
        A `keras.Model` named after `entry.architecture`.

    Raises:
        NotImplementedError: for architectures the package cannot build yet.
    """
    call = builder_call(entry.architecture)
    if call is None or len(entry.inputs) != 1 or len(entry.outputs) != 1:
        raise NotImplementedError(
            f"Zoo entry '{entry.name}' needs architecture '{entry.architecture}', which keras-fcn "
            "cannot build yet; its caffemodel can still be read with keras_fcn.caffe.read_caffemodel."
        )
    from keras_fcn import models  # here, as keras_fcn.models imports the zoo to resolve `weights`

    builder, backbone = call
    model = getattr(models, builder)(entry.num_classes, backbone=backbone, backbone_weights=None)
    if entry.preprocessing.matches(BACKBONES[backbone].normalization):
        return model
    return _with_normalization(model, entry.preprocessing)
