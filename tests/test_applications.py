"""Any classifier of keras.applications, or a keras.Model, as an FCN backbone."""

import pathlib

import keras
import numpy as np
import pytest

import keras_fcn
from keras_fcn import backbones
from keras_fcn.layers import InputNormalization
from _helpers import run as _run
from _receptive_field_probe import measure

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
ODD_SIZES = ((33, 47), (65, 31))
# The smallest width multipliers the constructors allow without ImageNet weights: the builds stay cheap.
SMALL_KWARGS = {"mobilenet": {"alpha": 0.25}, "mobilenetv2": {"alpha": 0.35}}
# Networks whose graph depends on the input size (NASNet's cells compare their inputs' static shapes).
FIXED_SIZE = {"nasnetmobile", "nasnetlarge"}
# Seconds to build one FCN-8s and run it on both sizes, measured on 2 shared cores; the slow ones (over 20 s)
# are left to `pytest -m slow`.
SLOW = {
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtXLarge", "DenseNet169", "DenseNet201",
    "EfficientNetB3", "EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7", "EfficientNetV2B3",
    "EfficientNetV2L", "EfficientNetV2M", "EfficientNetV2S", "InceptionResNetV2", "NASNetLarge", "NASNetMobile",
    "ResNet101", "ResNet101V2", "ResNet152", "ResNet152V2",
}  # fmt: skip


def test_every_keras_applications_classifier_is_supported():
    assert set(backbones.APPLICATION_NAMES) == {name for name in dir(keras.applications) if name[:1].isupper()}
    assert backbones.get_backbone("densenet121") is backbones.get_backbone("DenseNet121")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in backbones.APPLICATION_NAMES]
)
def test_every_classifier_builds_an_fcn8s_whose_output_has_the_image_size(rng, name):
    kwargs = {"backbone_kwargs": SMALL_KWARGS.get(name.lower()), "backbone_weights": None}
    fixed = name.lower() in FIXED_SIZE
    for size in ODD_SIZES:
        if fixed or size == ODD_SIZES[0]:
            model = keras_fcn.FCN8s(2, backbone=name, input_shape=(*size, 3) if fixed else (None, None, 3), **kwargs)
        out = _run(model, rng.uniform(0, 255, size=(1, *size, 3)).astype("float32"))
        assert out.shape == (1, *size, 2) and np.all(np.isfinite(out))


def test_a_net_that_needs_a_fixed_input_size_says_what_to_pass():
    message = r"Backbone 'nasnetmobile' cannot take images of any size.*pass input_shape=\(height, width, 3\)"
    with pytest.raises(ValueError, match=message):
        keras_fcn.FCN8s(2, backbone="NASNetMobile", backbone_weights=None)


def test_unknown_names_are_refused_with_the_list():
    with pytest.raises(ValueError, match=r"\(any case\) \[.*'DenseNet121'.*\]. Received backbone='RegNetX002'"):
        keras_fcn.FCN8s(2, backbone="RegNetX002", backbone_weights=None)


def test_skip_layers_are_the_last_stage_outputs():
    # Keras Applications' own stage names: ResNet50's conv3, conv4 and conv5 stages end with blocks 4, 6 and 3;
    # VGG16's stride-16 stage is block 5 (before block5_pool), its stride-8 stage block 4.
    assert backbones.skip_layer_names("ResNet50") == {8: "conv3_block4_out", 16: "conv4_block6_out", 32: "conv5_block3_out"}
    assert backbones.skip_layer_names("vgg16") == {8: "block4_conv3", 16: "block5_conv3", 32: "block5_pool"}
    assert backbones.skip_layer_names("vgg16_reference") == {8: "pool3", 16: "pool4", 32: "pool5"}


# keras.applications.<family>.preprocess_input for the families that have one.
PREPROCESS_FAMILIES = {
    "vgg16": "VGG16", "resnet": "ResNet50", "resnet_v2": "ResNet50V2", "densenet": "DenseNet121",
    "inception_v3": "InceptionV3", "inception_resnet_v2": "InceptionResNetV2", "xception": "Xception",
    "mobilenet": "MobileNet", "mobilenet_v2": "MobileNetV2", "nasnet": "NASNetMobile",
}  # fmt: skip


@pytest.mark.parametrize("family", sorted(PREPROCESS_FAMILIES))
def test_input_conversion_is_the_familys_preprocess_input(rng, family):
    images = rng.uniform(0, 255, size=(2, 5, 4, 3))
    expected = getattr(keras.applications, family).preprocess_input(images.copy())
    mean, std, bgr = backbones.get_backbone(PREPROCESS_FAMILIES[family]).normalization
    out = keras.ops.convert_to_numpy(InputNormalization(mean, std, bgr, dtype="float64")(images))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ["MobileNetV3Small", "EfficientNetV2B0", "EfficientNetV2S", "ConvNeXtTiny"])
def test_input_conversion_is_what_the_network_would_do_inside(rng, name):
    """Families that normalize inside: their layers before the first convolution do what keras-fcn does instead."""
    with keras.StatelessScope():
        model = getattr(keras.applications, name)(include_top=False, weights=None)
    prefix = []
    for layer in model.layers[1:]:
        if isinstance(layer, (keras.layers.Conv2D, keras.Model)):
            break
        prefix.append(layer)
    assert prefix and "include_preprocessing" in backbones.get_backbone(name).application_kwargs
    images = rng.uniform(0, 255, size=(2, 5, 4, 3)).astype("float32")
    expected = images
    for layer in prefix:
        expected = layer(expected)
    mean, std, bgr = backbones.get_backbone(name).normalization
    out = InputNormalization(mean, std, bgr)(images)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), keras.ops.convert_to_numpy(expected), rtol=1e-5, atol=1e-4)


def _tiny_classifier():
    """Five stride-2 stages, strided convolutions padded "same" (the split depends on the input size), a classifier top."""
    x = keras.Input((64, 64, 3), name="pixels")
    h = keras.layers.Rescaling(1 / 255)(x)
    for stage in range(5):
        h = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name=f"down{stage}")(h)
        branch = keras.layers.Conv2D(4, 3, padding="same", name=f"branch{stage}")(h)
        h = keras.layers.Add(name=f"stage{stage}")([h, branch])
    top = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(h))
    return keras.Model(x, top, name="tiny")


def test_a_keras_model_is_a_backbone_with_its_own_weights(rng):
    classifier = _tiny_classifier()
    model = keras_fcn.FCN8s(3, backbone=classifier)
    architecture = keras_fcn.architecture_of(model)
    assert architecture.backbone == "tiny" and architecture.skip_layers == ("stage2", "stage3", "stage4")
    np.testing.assert_array_equal(model.get_layer("branch3").get_weights()[0], classifier.get_layer("branch3").get_weights()[0])
    for size in ODD_SIZES:
        assert _run(model, rng.uniform(0, 255, size=(1, *size, 3)).astype("float32")).shape == (1, *size, 3)
    for stride, field_centre, placed in measure(model):
        assert abs(placed - field_centre) <= 0.5, (stride, field_centre, placed)
    with pytest.raises(ValueError, match="keras.Model backbone brings its own weights"):
        keras_fcn.FCN8s(3, backbone=classifier, backbone_kwargs={"alpha": 1.0})


def test_a_net_that_never_reaches_stride_32_is_refused_by_name():
    x = keras.Input((None, None, 3))
    shallow = keras.Model(x, keras.layers.Conv2D(4, 3, strides=16, padding="same")(x), name="shallow")
    with pytest.raises(ValueError, match=r"Model 'shallow' never reaches stride 32.*pass a backbone that downsamples 32 times"):
        keras_fcn.FCN8s(3, backbone=shallow)


def test_readme_lists_every_backbone_as_the_code_does():
    assert backbones.markdown_table() in README.read_text()
