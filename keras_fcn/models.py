"""FCN-32s, FCN-16s, FCN-8s and the at-once FCN-8s builders (paper, section 4)."""

import os

import keras

from keras_fcn.architecture import Architecture, architecture_name, model_name, record
from keras_fcn.backbones import APPLICATION_NAMES, build_trunk, get_backbone, validate_backbone_kwargs
from keras_fcn.convolutionalize import convolutionalize
from keras_fcn.errors import InvalidArgumentError
from keras_fcn.geometry import FEATURE_STRIDES, output_fields
from keras_fcn.heads import ALIGNMENTS, RECEPTIVE_FIELD, design_head, fcn_head
from keras_fcn.reference import keras_vgg16_name
from keras_fcn.weights_files import imagenet_download, load_weights
from keras_fcn.zoo import entry_for, resolve_weights

FC_FILTERS = 4096
DEFAULT_NUM_CLASSES = 21  # PASCAL VOC: 20 classes and background
DROPOUT_RATE = 0.5


def _validate(num_classes, spec, backbone_weights, backbone_kwargs, input_shape, geometry):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidArgumentError(f"`num_classes` must be a positive int. Received num_classes={num_classes!r}")
    if spec.model is None and backbone_weights not in (None, "imagenet") and not (
        isinstance(backbone_weights, (str, os.PathLike)) and os.path.isfile(backbone_weights)
    ):
        raise InvalidArgumentError(
            "`backbone_weights` must be None, 'imagenet', or the path to a Keras "
            f"Applications weights file that exists. Received backbone_weights={backbone_weights!r}"
        )
    validate_backbone_kwargs(backbone_kwargs)
    if spec.model is not None and (backbone_weights not in (None, "imagenet") or backbone_kwargs):
        raise InvalidArgumentError(
            "A keras.Model backbone brings its own weights and arguments: leave `backbone_weights` and "
            f"`backbone_kwargs` out. Received backbone_weights={backbone_weights!r}, "
            f"backbone_kwargs={backbone_kwargs!r}"
        )
    if spec.trunk is not None and backbone_kwargs:
        raise InvalidArgumentError(
            f"Backbone {spec.name!r} is a reference net built as the paper's code builds it, without arguments: "
            "leave `backbone_kwargs` out, or choose a Keras Applications backbone (such as 'mobilenet') to pass "
            f"them to. Received backbone={spec.name!r}, backbone_kwargs={backbone_kwargs!r}"
        )
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise InvalidArgumentError(
            "`input_shape` must be (height, width, 3), with None for sizes that vary. "
            f"Received input_shape={input_shape!r}"
        )
    if geometry not in ALIGNMENTS:
        raise InvalidArgumentError(f"`geometry` must be one of {ALIGNMENTS}. Received geometry={geometry!r}")


def _fully_connected(x, padding, kernel):
    """fc6 (kernel x kernel, 4096) and fc7 (1x1, 4096), each followed by ReLU and dropout 0.5."""
    x = keras.layers.Conv2D(FC_FILTERS, kernel, padding=padding, activation="relu", name="fc6")(x)
    x = keras.layers.Dropout(DROPOUT_RATE, name="drop6")(x)
    x = keras.layers.Conv2D(FC_FILTERS, 1, activation="relu", name="fc7")(x)
    return keras.layers.Dropout(DROPOUT_RATE, name="drop7")(x)


def _load_classifier_weights(model, backbone, backbone_weights):
    """Copies a VGG classifier's weights, its fully connected layers convolutionalized, into `model`."""
    with imagenet_download(backbone.name, backbone_weights):
        source = convolutionalize(backbone.application(include_top=True, weights=backbone_weights))
    source_names = {layer.name for layer in source.layers}
    for layer in model.layers:
        name = keras_vgg16_name(layer.name)
        if layer.weights and name in source_names:
            layer.set_weights(source.get_layer(name).get_weights())


def _entry_geometry(entry, geometry):
    """The head geometry to build: `geometry`, else the zoo entry's, else "receptive_field"; refuses a mismatch."""
    if entry is None:
        return geometry or RECEPTIVE_FIELD
    if geometry not in (None, entry.geometry):
        raise InvalidArgumentError(
            f"Weights '{entry.name}' were trained with the '{entry.geometry}' head geometry and do not fit a "
            f"head with geometry={geometry!r}: leave `geometry` out (or pass geometry={entry.geometry!r})."
        )
    return entry.geometry


def build_fcn(
    stride,
    *,
    num_classes,
    backbone,
    weights,
    backbone_weights,
    backbone_kwargs,
    input_shape,
    trainable_upsampling,
    at_once,
    geometry,
    name,
):
    """The body shared by the builders: validate, build trunk and head, record, load weights."""
    spec = get_backbone(backbone)
    head = architecture_name(stride, at_once)
    default_name = model_name(head, spec.name)
    entry = entry_for(weights, default_name)
    if num_classes is None:
        num_classes = DEFAULT_NUM_CLASSES if entry is None else entry.num_classes
    if backbone_kwargs is None and entry is not None:
        backbone_kwargs = entry.backbone_kwargs or None
    geometry = _entry_geometry(entry, geometry)
    _validate(num_classes, spec, backbone_weights, backbone_kwargs, input_shape, geometry)
    weights = resolve_weights(
        weights, architecture=default_name, num_classes=num_classes, backbone_kwargs=backbone_kwargs
    )
    if weights is not None:
        backbone_weights = None
    if spec.model is None and not spec.has_imagenet_weights and backbone_weights is not None:
        raise InvalidArgumentError(
            f"Backbone {spec.name!r} has no Keras Applications (ImageNet) weights: pass "
            "backbone_weights=None, or FCN weights as weights=. "
            f"Received backbone_weights={backbone_weights!r}"
        )
    inputs = keras.Input(shape=input_shape, name="image")
    trunk = build_trunk(
        inputs,
        spec,
        backbone_weights=None if spec.model is not None else backbone_weights,
        backbone_kwargs=backbone_kwargs,
        alignment=geometry,
    )
    features = _fully_connected(trunk.pool5, *spec.fully_connected) if spec.fully_connected else trunk.pool5
    fields = output_fields(keras.Model(inputs, [trunk.pool3, trunk.pool4, features]))
    head_geometry = design_head(
        dict(zip(FEATURE_STRIDES, fields)),
        input_padding=trunk.input_padding,
        stepwise=spec.stepwise_upsampling,
        alignment=geometry,
    )
    logits, scores = fcn_head(
        inputs,
        (trunk.pool3, trunk.pool4),
        features,
        num_classes=num_classes,
        stride=stride,
        geometry=head_geometry,
        trainable_upsampling=trainable_upsampling,
        at_once=at_once,
    )
    architecture = Architecture(head, spec.name, dict(backbone_kwargs or {}), num_classes, head_geometry)
    tensors = {"logits": logits, "pool3": trunk.pool3, "pool4": trunk.pool4, "pool5": trunk.pool5}
    outputs = record(architecture, {**tensors, "features": features, **scores})
    model = keras.Model(inputs, outputs, name=name or default_name)
    if spec.fully_connected and spec.application is not None and backbone_weights is not None:
        _load_classifier_weights(model, spec, backbone_weights)
    if weights is not None:
        load_weights(model, weights)
    return model


_BUILDER_DOC = """Instantiates {title} (Long, Shelhamer and Darrell, CVPR 2015).

{summary}

The model maps RGB images of any height and width, with values in
`[0, 255]`, to per-pixel class scores (logits) of the same height and width;
it converts the images to what the backbone expects itself (for example BGR
minus the mean for VGG16). Score layers start at zero and the bilinear
upsamplings are fixed, as in the paper's reference code.

Args:
    num_classes: int, the number of classes, background included (21 for
        PASCAL VOC). Defaults to that of the zoo entry named by `weights`,
        else 21.
    backbone: str or `keras.Model`. The default, `"vgg16_reference"`, is
        the authors' Caffe VGG16 net layer for layer (conv1_1 padding 100,
        ceil-mode pooling, fc6 7x7 VALID), which their released weights
        need; `"alexnet_reference"` is their FCN-AlexNet. Any classifier of
        `keras.applications` by its function name, any case ({applications}),
        takes its skips from the last stage at strides 8 and 16
        (`keras_fcn.backbones.skip_layer_names`) and upsamples in bilinear
        2x steps. A functional `keras.Model` (taking RGB in `[0, 255]`,
        normalizing itself) is used the same way, with its own weights.
    weights: `None` (random score layers on top of `backbone_weights`),
        the name or alias of a `keras_fcn.zoo` entry (`"voc"` picks this
        architecture's PASCAL VOC weights), the path of a weights file of
        this same architecture, or an http(s) URL of a `.weights.h5` file,
        downloaded once into `$KERAS_HOME/keras_fcn`. `"camvid"` (11
        CamVid classes, `backbone="mobilenet"`) ships with the package.
    backbone_weights: `"imagenet"`, `None` (random initialization), or the
        path to a Keras Applications weights file, used when `weights` is
        `None`. VGG backbones take the classifier's weights
        (`include_top=True`) to keep fc6 and fc7; the others take the
        `include_top=False` file.
    backbone_kwargs: dict, extra keyword arguments for the Keras
        Applications constructor, e.g. `{{"alpha": 0.25}}` for MobileNet.
        Defaults to those of the zoo entry named by `weights`.
    input_shape: tuple `(height, width, 3)`; `None` sizes vary per batch.
    trainable_upsampling: bool, whether the bilinear upsampling kernels
        are learned (default: fixed, as in the reference code).
    geometry: `"receptive_field"` (every score on the centre of its
        receptive field, derived from the backbone; the default) or
        `"pixel_blocks"`, keras-fcn 0.1's placement, kept to load weights
        trained with it; defaults to that of the zoo entry named by
        `weights`.
    name: str, the model's name; defaults to `"{default_name}_<backbone>"`.

Returns:
    A functional `keras.Model`: `(batch, H, W, 3)` float images to
    `(batch, H, W, num_classes)` float32 logits. `keras_fcn.architecture_of`
    reads back what it is.

Raises:
    keras_fcn.errors.InvalidArgumentError: (a ValueError) for an unknown backbone (listing the names), a backbone that
        never reaches stride 32 or needs a fixed input size (saying what to
        pass), weights that do not fit, or a bad argument (naming it).

Example:

>>> model = keras_fcn.{function}(num_classes=21, backbone="mobilenetv2",
...                              backbone_weights=None)
>>> model(np.zeros((1, 333, 517, 3))).shape
(1, 333, 517, 21)
"""


def _builder(function_name, stride, at_once, title, summary):
    """Makes a public builder: a thin, documented wrapper around `build_fcn`."""

    def builder(
        num_classes=None,
        *,
        backbone="vgg16_reference",
        weights=None,
        backbone_weights="imagenet",
        backbone_kwargs=None,
        input_shape=(None, None, 3),
        trainable_upsampling=False,
        geometry=None,
        name=None,
    ):
        return build_fcn(
            stride,
            num_classes=num_classes,
            backbone=backbone,
            weights=weights,
            backbone_weights=backbone_weights,
            backbone_kwargs=backbone_kwargs,
            input_shape=input_shape,
            trainable_upsampling=trainable_upsampling,
            at_once=at_once,
            geometry=geometry,
            name=name,
        )

    builder.__name__ = builder.__qualname__ = function_name
    builder.__doc__ = _BUILDER_DOC.format(
        title=title,
        summary=summary,
        applications=", ".join(f"`{name}`" for name in APPLICATION_NAMES),
        default_name=f"fcn{stride}s{'_atonce' if at_once else ''}",
        function=function_name,
    )
    return builder


FCN32s = _builder("FCN32s", 32, False, "FCN-32s", "Scores the stride-32 features and upsamples them 32x.")
FCN16s = _builder(
    "FCN16s",
    16,
    False,
    "FCN-16s",
    "Fuses the 2x-upsampled stride-32 scores with scores of the stride-16 "
    "features (pool4), then upsamples 16x.",
)
FCN8s = _builder(
    "FCN8s",
    8,
    False,
    "FCN-8s",
    "Fuses scores of the stride-32, 16 (pool4) and 8 (pool3) features, then "
    "upsamples 8x. Train it in stages with `keras_fcn.upgrade`: "
    "FCN-32s -> FCN-16s -> FCN-8s.",
)
FCN8sAtOnce = _builder(
    "FCN8sAtOnce",
    8,
    True,
    "the at-once FCN-8s of the reference code",
    "FCN-8s trained in one stage: pool4 and pool3 are scaled by 0.01 and "
    "0.0001 (fixed) before their score layers.",
)
