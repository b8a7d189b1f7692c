"""The classifiers an FCN is built on, and the trunk each gives the heads.

A backbone is the name of a classifier in `keras.applications`, any case
(`"DenseNet121"`, `"xception"`, `"ResNet152V2"`), one of the authors' Caffe
nets (`"vgg16_reference"`, `"alexnet_reference"`), or a `keras.Model`. Its
trunk gives the heads the feature maps at strides 8, 16 and 32 that
`keras_fcn.geometry.feature_layers` finds (the last stage's output at each
stride); the reference nets keep the paper's pool3, pool4 and pool5. VGG16
and VGG19 keep their fully connected layers fc6 and fc7 as convolutions
(paper, section 3.1); the others lose their global-pooling classifier.
"""

import dataclasses
import inspect
import math
import random
import warnings
from typing import Callable, Optional

import keras

from keras_fcn import geometry
from keras_fcn.alexnet import reference_alexnet_trunk
from keras_fcn.constants import CAFFE_IMAGENET_MEAN_BGR, IMAGENET_MEAN, IMAGENET_STD
from keras_fcn.errors import InvalidArgumentError
from keras_fcn.heads import PIXEL_BLOCKS, input_padding_for
from keras_fcn.layers import InputNormalization, PadToMultiple
from keras_fcn.weights_files import imagenet_download
from keras_fcn.reference import reference_vgg16_trunk

# Input conversions from RGB in [0, 255], as (mean, std, bgr): what each
# family's `keras.applications.<family>.preprocess_input` does ("caffe":
# BGR minus the ImageNet mean; "tf": to [-1, 1]; "torch": the ImageNet mean
# and standard deviation, scaled to [0, 255]).
CAFFE = (CAFFE_IMAGENET_MEAN_BGR, (1.0, 1.0, 1.0), True)
TF = ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5), False)
TORCH = (IMAGENET_MEAN, IMAGENET_STD, False)
# EfficientNetV2-S, M and L's own preprocessing, `Rescaling(1 / 128, offset=-1)`.
HALF_RANGE = ((128.0, 128.0, 128.0), (128.0, 128.0, 128.0), False)
# Nets that normalize inside (EfficientNet's Rescaling and Normalization layers).
UNCHANGED = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False)
# The FCN reference models' BGR mean (fcn.berkeleyvision.org).
FCN_REFERENCE = ((104.00699, 116.66877, 122.67892), (1.0, 1.0, 1.0), True)
# Each keras.applications family (module): its input conversion, and the
# constructor arguments that leave the conversion to keras-fcn where the
# network would otherwise do it itself (ConvNeXt, EfficientNetV2 and
# MobileNetV3 normalize inside unless include_preprocessing=False; their
# preprocess_input does nothing). EfficientNet has no such argument and
# keeps its own layers.
_NO_PREPROCESSING = {"include_preprocessing": False}
FAMILIES = {
    "convnext": (TORCH, _NO_PREPROCESSING),
    "densenet": (TORCH, {}),
    "efficientnet": (UNCHANGED, {}),
    "efficientnet_v2": (TORCH, _NO_PREPROCESSING),
    "inception_resnet_v2": (TF, {}),
    "inception_v3": (TF, {}),
    "mobilenet": (TF, {}),
    "mobilenet_v2": (TF, {}),
    "mobilenet_v3": (TF, _NO_PREPROCESSING),
    "nasnet": (TF, {}),
    "resnet": (CAFFE, {}),
    "resnet50": (CAFFE, {}),
    "resnet_v2": (TF, {}),
    "vgg16": (CAFFE, {}),
    "vgg19": (CAFFE, {}),
    "xception": (TF, {}),
}
# EfficientNetV2's B variants use the "torch" conversion, the others HALF_RANGE.
NORMALIZATION_OVERRIDES = {"efficientnetv2s": HALF_RANGE, "efficientnetv2m": HALF_RANGE, "efficientnetv2l": HALF_RANGE}
# Families whose classifier ends in fully connected layers that the FCN keeps
# as fc6 (7x7, 4096) and fc7 (1x1, 4096) convolutions.
FULLY_CONNECTED_FAMILIES = ("vgg16", "vgg19")


@dataclasses.dataclass(frozen=True)
class Backbone:
    """How to build one trunk.

    Attributes:
        name: str, the backbone's name in lower case (`"densenet121"`).
        normalization: `(mean, std, bgr)` turning RGB in `[0, 255]` into the
            input the backbone's weights expect.
        application: the Keras Applications constructor of the classifier
            (its trunk, or for the reference VGG16 its weights, fill the
            FCN), or None (AlexNet, a `keras.Model`).
        application_kwargs: dict, fixed keyword arguments for `application`.
        fully_connected: None for a classifier whose global-pooling top the
            FCN drops, or `(padding, kernel)` of fc6, the convolution that
            fc6 and fc7 keep from the classifier ("same", 7 for Keras VGG;
            "valid" and the last map's size, 7 or 6, for the reference nets).
        trunk: None, or a function building the trunk layer by layer on the
            normalized input (the reference nets).
        skip_layers: None to find the stride-8, 16 and 32 layers with
            `keras_fcn.geometry.feature_layers`, or their names (the paper's
            pool3, pool4, pool5 for the reference nets).
        stepwise_upsampling: whether the heads upsample in bilinear 2x steps
            (see `keras_fcn.heads.design_head`) rather than in one step per
            head as the reference nets do.
        model: a `keras.Model` used as the trunk, or None.
    """

    name: str
    normalization: tuple
    application: Optional[Callable] = None
    application_kwargs: dict = dataclasses.field(default_factory=dict)
    fully_connected: Optional[tuple] = None
    trunk: Optional[Callable] = None
    skip_layers: Optional[tuple] = None
    stepwise_upsampling: bool = True
    model: Optional[keras.Model] = None

    @property
    def has_imagenet_weights(self):
        return self.application is not None


def _applications():
    """`{lower-case name: (constructor, family)}` of every classifier in `keras.applications`.

    The family is the module that defines the constructor (`keras.applications.mobilenet_v3` for
    `MobileNetV3Small`, which Keras exports only at the top level).
    """
    found = {}
    for name, constructor in sorted(vars(keras.applications).items()):
        family = getattr(constructor, "__module__", "").rpartition(".")[2]
        if name[:1].isupper() and callable(constructor) and family in FAMILIES:
            found[name.lower()] = (constructor, family)
    return found


def _application_backbone(name, constructor, family):
    normalization, kwargs = FAMILIES[family]
    return Backbone(
        name=name,
        normalization=NORMALIZATION_OVERRIDES.get(name, normalization),
        application=constructor,
        application_kwargs=dict(kwargs),
        fully_connected=("same", 7) if family in FULLY_CONNECTED_FAMILIES else None,
    )


APPLICATIONS = _applications()
# The function names of the Keras Applications classifiers, as keras.applications spells them.
APPLICATION_NAMES = tuple(sorted(constructor.__name__ for constructor, _ in APPLICATIONS.values()))
REFERENCE_BACKBONES = {
    "vgg16_reference": Backbone(
        name="vgg16_reference",
        normalization=FCN_REFERENCE,
        application=keras.applications.VGG16,
        fully_connected=("valid", 7),
        trunk=reference_vgg16_trunk,
        skip_layers=("pool3", "pool4", "pool5"),
        stepwise_upsampling=False,
    ),
    "alexnet_reference": Backbone(
        name="alexnet_reference",
        normalization=FCN_REFERENCE,
        fully_connected=("valid", 6),
        trunk=reference_alexnet_trunk,
        skip_layers=("pool1", "pool2", "pool5"),
        stepwise_upsampling=False,
    ),
}
BACKBONES = {
    **REFERENCE_BACKBONES,
    **{name: _application_backbone(name, *APPLICATIONS[name]) for name in sorted(APPLICATIONS)},
}


# How each input conversion reads in the README's table of backbones.
_CONVERSIONS = {
    CAFFE: "BGR minus the ImageNet mean (`caffe`)",
    TF: "to [-1, 1] (`tf`)",
    TORCH: "ImageNet mean and standard deviation (`torch`)",
    HALF_RANGE: "to [-1, 1] (`x / 128 - 1`)",
    UNCHANGED: "inside the network",
    FCN_REFERENCE: "BGR minus the FCN reference mean",
}


def markdown_table():
    """The README's table of every backbone name the builders accept (the README shows it verbatim)."""
    rows = []
    for name, spec in REFERENCE_BACKBONES.items():
        top = "fc6 {0}x{0} VALID, fc7".format(spec.fully_connected[1])
        rows.append((f"`{name}`", "the authors' Caffe net", _CONVERSIONS[spec.normalization], top))
    for function_name in APPLICATION_NAMES:
        spec = BACKBONES[function_name.lower()]
        top = "fc6 7x7, fc7 (kept as convolutions)" if spec.fully_connected else "dropped"
        family = f"`keras.applications.{APPLICATIONS[function_name.lower()][1]}`"
        rows.append((f"`{function_name}`", family, _CONVERSIONS[spec.normalization], top))
    header = "| `backbone` | from | input conversion | classifier top |\n|---|---|---|---|\n"
    return header + "".join(f"| {' | '.join(row)} |\n" for row in rows)


def get_backbone(backbone):
    """The `Backbone` for a name (any case) or a `keras.Model`; a ValueError lists the names.

    A `keras.Model` gets its own layers' copies (with its weights) as the
    trunk, and the images unchanged: RGB in `[0, 255]`, so it must
    normalize them itself.
    """
    if isinstance(backbone, keras.Model):
        return Backbone(name=backbone.name, normalization=UNCHANGED, model=backbone)
    if isinstance(backbone, str) and backbone.lower() in BACKBONES:
        return BACKBONES[backbone.lower()]
    raise InvalidArgumentError(
        "Unknown backbone. Expected a keras.Model or one of (any case) "
        f"{list(REFERENCE_BACKBONES) + list(APPLICATION_NAMES)}. Received backbone={backbone!r}"
    )


@dataclasses.dataclass(frozen=True)
class Trunk:
    """A built trunk: its stride-8, 16 and 32 feature tensors and the zeros added around the image."""

    pool3: keras.KerasTensor
    pool4: keras.KerasTensor
    pool5: keras.KerasTensor
    input_padding: tuple


def _trunk_length(shape):
    """The `Length` pair of a padded trunk input of static `shape`: fixed where known, else any multiple of 32."""
    return tuple(geometry.Length(32, 0) if size is None else geometry.Length(0, size) for size in shape[1:3])


def _copy_layers(model, x):
    """Copies of `model`'s layers and operations (with its weights) applied to `x`, call by call.

    Keras's `clone_model(model, input_tensors=x)` returns a separate model
    whose graph starts at a copy of `x`, not at `x` itself, so its layers
    could not join the FCN's graph; this small equivalent applies copies of
    them one by one to the tensors they read (`keras_fcn.geometry.calls`).

    Returns:
        A dict from layer or operation name to the output of its first call.
    """
    layers = {layer.name: layer for layer in model.layers}
    config = None if isinstance(model, keras.Sequential) else model.get_config()
    records = {record["name"]: record for record in config["layers"]} if config else {}
    tensors, copies, outputs = {geometry.input_key(model, config): x}, {}, {}

    def substitute(structure):
        if isinstance(structure, dict):
            if structure.get("class_name") == "__keras_tensor__":
                return tensors[tuple(structure["config"]["keras_history"][:2])]
            return {key: substitute(value) for key, value in structure.items()}
        if isinstance(structure, (list, tuple)):
            return [substitute(value) for value in structure]
        return structure

    for name, key, _, node in geometry.calls(model, config):
        if name not in copies:
            source = layers.get(name)
            copies[name] = (
                source.__class__.from_config(source.get_config())
                if source is not None
                else keras.saving.deserialize_keras_object(records[name])
            )
        tensors[key] = copies[name](*substitute(node.get("args", [])), **substitute(node.get("kwargs", {})))
        outputs.setdefault(name, tensors[key])
    for name, copy in copies.items():
        if name in layers:
            copy.set_weights(layers[name].get_weights())
    return outputs


# The most characters of a Keras Applications error quoted in ours.
MESSAGE_LENGTH = 300
# The Keras Applications keywords the builders set themselves or that shape only the classifier they leave out,
# and how to choose what they would set.
BUILDER_KEYWORDS = {
    "include_top": "the trunk is built without its classifier; fully connected layers are convolutionalized",
    "weights": "choose the trunk's weights with `backbone_weights`",
    "input_tensor": "the trunk is built on the FCN's input, of any size unless the builder's `input_shape` fixes it",
    "input_shape": "the trunk is built on the FCN's input, of any size unless the builder's `input_shape` fixes it",
    "pooling": "the trunk is built without its classifier, whose input the pooling makes; the FCN scores every cell",
    "classes": "the trunk is built without its classifier; choose the FCN's classes with `num_classes`",
    "classifier_activation": "the trunk is built without its classifier; the FCN outputs logits",
}


def validate_backbone_kwargs(backbone_kwargs, name="backbone_kwargs"):
    """Refuses `backbone_kwargs` that are not None or a dict with str keys (a constructor's keyword arguments).

    Raises:
        keras_fcn.errors.InvalidArgumentError: naming `name` and the value.
    """
    if backbone_kwargs is not None and not (
        isinstance(backbone_kwargs, dict) and all(isinstance(key, str) for key in backbone_kwargs)
    ):
        raise InvalidArgumentError(
            f"`{name}` must be None or a dict of the backbone constructor's keyword arguments, "
            f"such as {{'alpha': 0.25}}. Received {name}={backbone_kwargs!r}"
        )


def _check_constructor_kwargs(spec, backbone_kwargs):
    """Refuses a keyword the builder sets, one the constructor lacks, or text where its default is a number."""
    parameters = inspect.signature(spec.application).parameters
    for key, value in (backbone_kwargs or {}).items():
        if key in BUILDER_KEYWORDS:
            raise InvalidArgumentError(
                f"`backbone_kwargs` cannot hold {key}: {BUILDER_KEYWORDS[key]}. "
                f"Received backbone_kwargs={backbone_kwargs!r}"
            )
        if key in spec.application_kwargs:
            raise InvalidArgumentError(
                f"`backbone_kwargs` cannot hold {key}: keras-fcn builds {spec.name!r} with "
                f"{key}={spec.application_kwargs[key]!r}, as its normalization of the image (the model's first "
                f"layer) requires. Received backbone_kwargs={backbone_kwargs!r}"
            )
        if key not in parameters and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            raise InvalidArgumentError(
                f"`backbone_kwargs`: {spec.name!r} takes no argument {key!r}; the arguments it can be given are "
                f"{', '.join(name for name in parameters if name not in BUILDER_KEYWORDS)}. "
                f"Received backbone_kwargs={backbone_kwargs!r}"
            )
        default = parameters[key].default if key in parameters else None
        number = (int, float)
        if isinstance(default, number) and not isinstance(default, bool) and not (
            isinstance(value, number) and not isinstance(value, bool) and math.isfinite(value)
        ):
            raise InvalidArgumentError(
                f"`backbone_kwargs`: {key} of {spec.name!r} must be a finite number (its default is {default!r}). "
                f"Received backbone_kwargs={backbone_kwargs!r}"
            )


def _application(spec, x, backbone_weights, backbone_kwargs):
    """The Keras Applications trunk on `x`; a failed download, or arguments or a weights file it refuses, one line."""
    _check_constructor_kwargs(spec, backbone_kwargs)
    weights = None if spec.fully_connected else backbone_weights
    with imagenet_download(spec.name, weights), warnings.catch_warnings():
        # MobileNets warn that their ImageNet weights were trained at 224x224: an FCN takes any size by design.
        warnings.filterwarnings("ignore", message=r"`input_shape` is undefined or non-square", category=UserWarning)
        try:
            return spec.application(
                include_top=False, weights=weights, input_tensor=x, **{**spec.application_kwargs, **(backbone_kwargs or {})}
            )
        except (TypeError, ValueError, OSError) as error:
            given = {"backbone_kwargs": backbone_kwargs or None}
            if weights not in (None, "imagenet"):
                given["backbone_weights"] = weights
            given = {name: value for name, value in given.items() if value is not None}
            if not given:
                raise
            reason = " ".join(str(error).split())
            reason = reason if len(reason) <= MESSAGE_LENGTH else reason[:MESSAGE_LENGTH] + "..."
            reason = reason if reason.endswith((".", "...")) else reason + "."
            raise InvalidArgumentError(
                f"Backbone {spec.name!r} cannot be built with {' and '.join(f'`{name}`' for name in given)}: {reason} "
                f"Received {', '.join(f'{name}={value!r}' for name, value in given.items())}"
            ) from error


def _dry_application(spec, input_shape, backbone_kwargs):
    """A Keras Applications trunk to read the layer graph of: no weights, no variables kept, no random draws.

    Keras draws the default seed of each initializer from Python's `random`;
    its state is restored, or `keras.utils.set_random_seed(s)` would give
    other weights to a model built after a dry build than to one built
    without.
    """
    state = random.getstate()
    try:
        with keras.StatelessScope():
            return _application(spec, keras.Input(input_shape), None, backbone_kwargs)
    finally:
        random.setstate(state)


# The input padding of each (backbone, constructor arguments, padded input size) planned so far.
_PLANNED_PADDING = {}


def _plan_input_padding(spec, shape, backbone_kwargs):
    """The input padding centring a backbone's stride-32 cells (`keras_fcn.heads.input_padding_for`).

    A Keras Applications trunk is read from a dry build, without its weights
    (inside a `keras.StatelessScope`), on an input of the padded image's
    shape, before the real trunk is built after the padding; the result is
    kept for the next build of the same backbone, arguments and shape.
    """
    size = tuple(shape[1:3])
    if spec.model is not None:
        return _input_padding(spec.model, spec.name, size)
    key = (spec.name, repr(sorted((backbone_kwargs or {}).items())), size)
    if key not in _PLANNED_PADDING:
        trunk = _dry_application(spec, (*size, 3), backbone_kwargs)
        _PLANNED_PADDING[key] = _input_padding(trunk, spec.name, size)
    return _PLANNED_PADDING[key]


def _input_padding(trunk, name, size):
    lengths = _trunk_length((None, *size))
    try:
        maps = geometry.feature_maps(trunk, lengths)
    except geometry.MergeError as error:
        if None not in size:
            raise
        raise InvalidArgumentError(
            f"Backbone '{name}' cannot take images of any size: {error} A network whose layers depend on "
            "its input's size (NASNet) needs a fixed size: pass input_shape=(height, width, 3)."
        ) from error
    return input_padding_for({stride: field for stride, (_, field) in maps.items()}, lengths)


def build_trunk(image, spec, *, backbone_weights, backbone_kwargs, alignment):
    """Normalizes and pads the image and applies the backbone.

    A Keras Applications or `keras.Model` trunk sees the image padded to a
    multiple of 32 at the bottom and right, then by the zeros that centre
    its stride-32 cells on the image's 32-pixel blocks
    (`keras_fcn.heads.input_padding_for`; none for "pixel_blocks").

    Args:
        image: the model's input, `(batch, H, W, 3)` RGB in `[0, 255]`.
        spec: a `Backbone`.
        backbone_weights: `"imagenet"`, None or a weights file, for a Keras
            Applications backbone.
        backbone_kwargs: dict of extra constructor arguments, or None.
        alignment: `"receptive_field"` or `"pixel_blocks"` (see
            `keras_fcn.heads.ALIGNMENTS`).

    Returns:
        A `Trunk`.

    Raises:
        ValueError: for a backbone that never reaches stride 32 or needs a
            fixed input size (the message names it and says what to pass).
    """
    mean, std, bgr = spec.normalization
    x = InputNormalization(mean, std, bgr, name="image_normalization")(image)
    if spec.trunk is not None:
        trunk = keras.Model(image, spec.trunk(x))
        names = dict(zip(geometry.FEATURE_STRIDES, spec.skip_layers))
        padding = ((0, 0), (0, 0))
    else:
        pad_to_multiple = PadToMultiple(32, name="pad_to_multiple")
        padding = ((0, 0), (0, 0))
        if alignment != PIXEL_BLOCKS:
            padding = _plan_input_padding(spec, pad_to_multiple.compute_output_shape(x.shape), backbone_kwargs)
        if padding != ((0, 0), (0, 0)):
            # Before the padding to a multiple of 32 (the zeros land where they would after it, as the two sides
            # add up to a multiple of 32): a constant pad right before a "same" convolution is exported to
            # OpenVINO as one convolution that forgets the "same" padding.
            x = keras.layers.ZeroPadding2D(padding, name="input_padding")(x)
        x = pad_to_multiple(x)
        if spec.model is not None:
            outputs = _copy_layers(spec.model, x)
            names = geometry.feature_layers(spec.model, _trunk_length(x.shape))
            taps = [outputs[names[stride]] for stride in geometry.FEATURE_STRIDES]
        else:
            trunk = _application(spec, x, backbone_weights, backbone_kwargs)
            names = geometry.feature_layers(trunk)
    if spec.model is None:
        taps = [geometry.node_output(trunk, names[stride]) for stride in geometry.FEATURE_STRIDES]
    return Trunk(*taps, padding)


def skip_layer_names(backbone, backbone_kwargs=None):
    """The names of the layers a backbone's FCN takes its stride-8, 16 and 32 features from.

    Most Keras Applications name their layers (`conv4_block6_out`), and
    those names are the ones every FCN built on the backbone has. A few leave
    some layers to Keras's automatic names (MobileNetV3's `activation_N`),
    which count the layers of that kind made before in the process, so a
    model built later names them differently: for a built FCN, read
    `keras_fcn.architecture_of(model).skip_layers`, the names as that model
    has them.

    Args:
        backbone: a backbone name (any case) or a `keras.Model`.
        backbone_kwargs: dict of extra constructor arguments, or None.

    Returns:
        A dict `{8: name, 16: name, 32: name}`.

    Example:

    >>> keras_fcn.backbones.skip_layer_names("ResNet50")
    {8: 'conv3_block4_out', 16: 'conv4_block6_out', 32: 'conv5_block3_out'}
    """
    spec = get_backbone(backbone)
    if spec.skip_layers is not None:
        return dict(zip(geometry.FEATURE_STRIDES, spec.skip_layers))
    if spec.model is not None:
        return geometry.feature_layers(spec.model, _trunk_length((None, None, None, 3)))
    trunk = _dry_application(spec, (None, None, 3), backbone_kwargs)
    return geometry.feature_layers(trunk, _trunk_length((None, None, None, 3)))
