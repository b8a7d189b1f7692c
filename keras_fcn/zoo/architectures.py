"""Builds the model a zoo entry's weights fit, its input preprocessing included."""

import re

import keras

from keras_fcn import models
from keras_fcn.backbones import BACKBONES
from keras_fcn.heads import fcn_head, upsample_to_image
from keras_fcn.layers import InputNormalization

_BUILDER_ARCHITECTURE = re.compile(r"fcn(?P<stride>32|16|8)s(?P<at_once>_atonce)?_(?P<backbone>\w+)")
_BUILDERS = {
    ("32", False): "FCN32s",
    ("16", False): "FCN16s",
    ("8", False): "FCN8s",
    ("8", True): "FCN8sAtOnce",
}
# The authors' nets the builders do not make: SIFT Flow's semantic and
# geometric heads on one trunk, and NYUDv2's late fusion of colour and HHA.
_SEMANTIC_GEOMETRIC = re.compile(r"fcn(?P<stride>32|16|8)s_semantic_geometric_(?P<backbone>\w+)")
_COLOR_HHA = re.compile(r"fcn32s_color_hha_(?P<backbone>\w+)")


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


def _copy(model, preprocessing, *, input_name=None, suffix=""):
    """A copy of `model`, random weights, whose `normalization` layer applies `preprocessing`.

    Args:
        model: a single-input functional keras-fcn model.
        preprocessing: the `Preprocessing` of the copy's input.
        input_name: str, the name of the copy's input; by default `model`'s.
        suffix: str appended to every layer's name, as the authors' NYUDv2
            late-fusion net names each stream's layers (`conv1_1color`,
            `score_frhha`).

    Returns:
        A functional `keras.Model` with the same input and output shapes.
    """

    def clone(layer):
        name = f"{layer.name}{suffix}"
        if layer.name == "normalization":
            mean, std, bgr = preprocessing.as_normalization()
            return InputNormalization(mean, std, bgr, name=name)
        return layer.__class__.from_config({**layer.get_config(), "name": name})

    inputs = keras.Input(model.input.shape[1:], name=input_name) if input_name else None
    return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)


def _random_fcn(builder, num_classes, backbone, backbone_kwargs=None):
    """`keras_fcn.<builder>(num_classes, backbone=backbone, ...)`, random weights, the backbone's normalization."""
    return getattr(models, builder)(
        num_classes, backbone=backbone, backbone_weights=None, backbone_kwargs=backbone_kwargs or None
    )


def _semantic_geometric(entry, stride, backbone):
    """One trunk and one FCN head per output of `entry` (SIFT Flow: `score_sem`, `score_geo`).

    Each head's layers are named as the FCN's with the output's name, less
    its leading `score`, appended (`score_sem` -> `score_fr_sem`,
    `upscore2_sem`, ..., `score_sem`), as in the authors'
    siftflow-fcn32s/16s/8s nets.

    Returns:
        A functional `keras.Model` from `(batch, H, W, 3)` images in
        `[0, 255]` to a dict of float32 logits, one per output name, each
        `(batch, H, W, classes of that output)`.
    """
    trunk = _copy(_random_fcn("FCN32s", entry.num_classes, backbone), entry.preprocessing)
    spec = BACKBONES[backbone]
    skips = tuple(trunk.get_layer(name).output for name in spec.features[:2])
    features = trunk.get_layer("score_fr").input
    outputs = {
        name: fcn_head(
            trunk.input,
            skips,
            features,
            num_classes=len(classes),
            stride=stride,
            offsets=spec.offsets,
            stepwise_upsampling=spec.stepwise_upsampling,
            odd_kernels=spec.odd_upsampling_kernels,
            suffix=name.removeprefix("score"),
        )
        for name, classes in entry.outputs
    }
    return keras.Model(trunk.input, outputs, name=entry.architecture)


def _color_hha(entry, backbone):
    """Late fusion (NYUDv2 colour-HHA): one FCN-32s trunk and `score_fr` per input, averaged.

    Each input's stream is an FCN-32s up to `score_fr` with the input's name
    appended to every layer name (`conv1_1color` ... `score_frcolor`,
    `conv1_1hha` ... `score_frhha`) and its own preprocessing. As in the
    authors' nyud-fcn32s-color-hha net, `score_fused` averages the streams'
    scores (Caffe's Eltwise SUM with coefficients 0.5 and 0.5), and one
    `upscore` and crop `score` bring the average to the first input's size.

    Returns:
        A functional `keras.Model` from a dict of `(batch, H, W, 3)` images
        in `[0, 255]`, one per input name, all of one size, to
        `(batch, H, W, num_classes)` float32 logits.
    """
    stream = _random_fcn("FCN32s", entry.num_classes, backbone)
    inputs, scores = {}, []
    for name, preprocessing in entry.inputs:
        copy = _copy(stream, preprocessing, input_name=name, suffix=name)
        inputs[name] = copy.input
        scores.append(copy.get_layer(f"score_fr{name}").output)
    fused = keras.layers.Average(name="score_fused")(scores)
    spec = BACKBONES[backbone]
    output = upsample_to_image(
        fused,
        inputs[entry.inputs[0][0]],
        stride=32,
        offset=spec.offsets[32][-1],
        stepwise_upsampling=spec.stepwise_upsampling,
        odd_kernels=spec.odd_upsampling_kernels,
    )
    return keras.Model(inputs, output, name=entry.architecture)


def build(entry):
    """Builds, with random weights, the model that `entry`'s weights fit.

    The model takes the entry's inputs in `[0, 255]` and applies the entry's
    preprocessing itself (for the NYUDv2 models, their own means; for the
    HHA model, no channel swap). Besides the builders' architectures
    (`fcn8s_vgg16_reference`, ...) it builds the authors' two-head SIFT Flow
    nets (`fcn<stride>s_semantic_geometric_<backbone>`: one image in, a dict
    of logits out, keyed by the entry's output names) and their NYUDv2
    late-fusion net (`fcn32s_color_hha_<backbone>`: a dict of images in,
    keyed by the entry's input names, one tensor of logits out).

    Args:
        entry: a `keras_fcn.zoo.ZooEntry`.

    Returns:
        A `keras.Model` named after `entry.architecture`.

    Raises:
        NotImplementedError: for architectures the package cannot build yet.
    """
    semantic_geometric = _SEMANTIC_GEOMETRIC.fullmatch(entry.architecture)
    if semantic_geometric and semantic_geometric["backbone"] in BACKBONES:
        return _semantic_geometric(entry, int(semantic_geometric["stride"]), semantic_geometric["backbone"])
    color_hha = _COLOR_HHA.fullmatch(entry.architecture)
    if color_hha and color_hha["backbone"] in BACKBONES:
        return _color_hha(entry, color_hha["backbone"])
    call = builder_call(entry.architecture)
    if call is None or len(entry.inputs) != 1 or len(entry.outputs) != 1:
        raise NotImplementedError(
            f"Zoo entry '{entry.name}' needs architecture '{entry.architecture}', which keras-fcn "
            "cannot build yet; its caffemodel can still be read with keras_fcn.caffe.read_caffemodel."
        )
    builder, backbone = call
    model = _random_fcn(builder, entry.num_classes, backbone, entry.backbone_kwargs)
    if entry.preprocessing.matches(BACKBONES[backbone].normalization):
        return model
    return _copy(model, entry.preprocessing)
