"""Builds the model a zoo entry's weights fit, its input preprocessing included."""

import keras

from keras_fcn import models
from keras_fcn.architecture import architecture_of, recorded_tensors
from keras_fcn.backbones import BACKBONES
from keras_fcn.heads import fcn_head, upsample_to_image
from keras_fcn.layers import InputNormalization

# An architecture's name is a head followed by `_<backbone>`. The heads the builders make:
_BUILDERS = {"fcn32s": "FCN32s", "fcn16s": "FCN16s", "fcn8s": "FCN8s", "fcn8s_atonce": "FCN8sAtOnce"}
# The authors' nets the builders do not make: SIFT Flow's semantic and
# geometric heads on one trunk, and NYUDv2's late fusion of colour and HHA.
_SEMANTIC_GEOMETRIC = {f"fcn{stride}s_semantic_geometric": stride for stride in (32, 16, 8)}
_COLOR_HHA = "fcn32s_color_hha"
_HEADS = sorted([*_BUILDERS, *_SEMANTIC_GEOMETRIC, _COLOR_HHA], key=len, reverse=True)


def _split(architecture):
    """`(head, backbone)` of an architecture name, or `(None, None)` for no known head on a known backbone.

    For example `"fcn8s_atonce_vgg16_reference"` -> `("fcn8s_atonce", "vgg16_reference")`.
    """
    for head in _HEADS:
        backbone = architecture.removeprefix(f"{head}_")
        if backbone != architecture and backbone in BACKBONES:
            return head, backbone
    return None, None


def builder_call(architecture):
    """`(builder name, backbone)` of an architecture the package's builders make, or None.

    For example `"fcn8s_atonce_vgg16_reference"` -> `("FCN8sAtOnce", "vgg16_reference")`.
    """
    head, backbone = _split(architecture)
    return (_BUILDERS[head], backbone) if head in _BUILDERS else None


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
        if isinstance(layer, InputNormalization):
            mean, std, bgr = preprocessing.as_normalization()
            return InputNormalization(mean, std, bgr, name=name)
        return layer.__class__.from_config({**layer.get_config(), "name": name})

    inputs = keras.Input(model.input.shape[1:], name=input_name) if input_name else None
    return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)


def _random_fcn(builder, entry):
    """`keras_fcn.<builder>` for `entry`'s classes, backbone and head geometry, random weights."""
    return getattr(models, builder)(
        entry.num_classes,
        backbone=entry.backbone,
        backbone_weights=None,
        backbone_kwargs=entry.backbone_kwargs or None,
        geometry=entry.geometry,
    )


def _semantic_geometric(entry, stride):
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
    trunk = _copy(_random_fcn("FCN32s", entry), entry.preprocessing)
    tensors = recorded_tensors(trunk)
    outputs = {
        name: fcn_head(
            trunk.input,
            (tensors["pool3"], tensors["pool4"]),
            tensors["features"],
            num_classes=len(classes),
            stride=stride,
            geometry=architecture_of(trunk).head_geometry,
            suffix=name.removeprefix("score"),
        )[0]
        for name, classes in entry.outputs
    }
    return keras.Model(trunk.input, outputs, name=entry.architecture)


def _color_hha(entry):
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
    stream = _random_fcn("FCN32s", entry)
    inputs, scores = {}, []
    for name, preprocessing in entry.inputs:
        copy = _copy(stream, preprocessing, input_name=name, suffix=name)
        inputs[name] = copy.input
        scores.append(recorded_tensors(copy)["score_fr"])
    fused = keras.layers.Average(name="score_fused")(scores)
    output = upsample_to_image(
        fused, inputs[entry.inputs[0][0]], stride=32, geometry=architecture_of(stream).head_geometry
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
    head, backbone = _split(entry.architecture)
    if backbone != entry.backbone:
        head = None
    if head in _SEMANTIC_GEOMETRIC:
        return _semantic_geometric(entry, _SEMANTIC_GEOMETRIC[head])
    if head == _COLOR_HHA:
        return _color_hha(entry)
    if head not in _BUILDERS or len(entry.inputs) != 1 or len(entry.outputs) != 1:
        raise NotImplementedError(
            f"Zoo entry '{entry.name}' needs architecture '{entry.architecture}', which keras-fcn "
            "cannot build yet; its caffemodel can still be read with keras_fcn.caffe.read_caffemodel."
        )
    model = _random_fcn(_BUILDERS[head], entry)
    if entry.preprocessing.matches(BACKBONES[entry.backbone].normalization):
        return model
    return _copy(model, entry.preprocessing)
