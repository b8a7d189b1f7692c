"""Weights and model files that do not fit, or cannot be read, are refused with the file named."""

import warnings

import numpy as np
import pytest

import keras_fcn
from keras_fcn import cli
from keras_fcn.errors import InvalidArgumentError, InvalidDataError
from _training_helpers import CHILD_ENV, TINY_MODEL, run_python, write_pairs


@pytest.fixture(scope="module")
def two_class_files(tmp_path_factory):
    """A 2-class FCN-8s saved as `.weights.h5` and as `.keras`."""
    folder = tmp_path_factory.mktemp("two")
    model = keras_fcn.FCN8s(2, **TINY_MODEL)
    model.save_weights(folder / "two.weights.h5")
    model.save(folder / "two.keras")
    # A run's checkpoint also holds the optimizer's state: arrays of every weight's shape, and scalars.
    model.compile(optimizer="adam", loss=keras_fcn.losses.SegmentationCrossEntropy())
    model.fit(np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32)), epochs=1, verbose=0)
    model.save(folder / "trained.keras")
    return str(folder / "two.weights.h5"), str(folder / "two.keras"), str(folder / "trained.keras")


@pytest.mark.parametrize("index", [0, 1, 2])
def test_weights_of_another_class_count_say_both_counts_and_the_file(two_class_files, index):
    path = two_class_files[index]
    with pytest.raises(InvalidDataError) as raised, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_fcn.FCN8s(3, weights=path, **TINY_MODEL)
    assert not [w for w in caught if "Skipping" in str(w.message)]
    message = str(raised.value)
    assert f"{path} holds a 2-class" in message and "has 3 classes" in message and "num_classes=2" in message
    assert len(message) < 300


def test_weights_of_another_backbone_are_refused_naming_the_file(two_class_files):
    path = two_class_files[0]
    with pytest.raises(InvalidDataError, match=f"{path} does not fit"):
        keras_fcn.FCN8s(2, **{**TINY_MODEL, "backbone_kwargs": {"alpha": 0.5}}, weights=path)


@pytest.mark.parametrize("name", ["corrupt.weights.h5", "corrupt.keras"])
def test_a_corrupt_weights_file_is_not_reported_as_missing(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"not weights at all\n" * 50)
    with pytest.raises(InvalidDataError, match=f"{path} is not a readable Keras weights file"):
        keras_fcn.FCN8s(2, weights=str(path), **TINY_MODEL)


def test_a_truncated_model_file_fails_the_command_in_one_line_naming_it(two_class_files, tmp_path, capsys):
    with open(two_class_files[1], "rb") as file:
        head = file.read(2000)
    path = tmp_path / "truncated.keras"
    path.write_bytes(head)
    data = write_pairs(tmp_path / "val", 1)
    assert cli.main(["evaluate", str(path), data]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"{path} is not a readable .keras model file" in error[0]


def test_a_staged_run_from_weights_of_another_class_count_is_refused_naming_them(two_class_files, tmp_path):
    data = write_pairs(tmp_path / "train", 2)
    with pytest.raises(InvalidDataError, match=f"`init_from`: {two_class_files[0]} holds a 2-class"):
        keras_fcn.train(
            data, tmp_path / "run", num_classes=3, model="fcn16s", init_from=two_class_files[0],
            init_from_model="fcn8s", epochs=1, batch_size=1, **TINY_MODEL,
        )


def test_backbone_arguments_the_constructor_refuses_are_an_argument_error_naming_them():
    cases = [
        ({"alpha": 0.25, "bogus": 1}, r"`backbone_kwargs`: 'mobilenet' takes no argument 'bogus'; the arguments it can be "
         r"given are alpha, depth_multiplier, dropout, name\. Received backbone_kwargs=\{'alpha': 0.25, 'bogus': 1\}"),
        ({"alpha": "abc"}, r"`backbone_kwargs`: alpha of 'mobilenet' must be a finite number \(its default is 1.0\). "
         r"Received backbone_kwargs=\{'alpha': 'abc'\}"),
        ({"depth_multiplier": True}, r"depth_multiplier of 'mobilenet' must be a finite number \(its default is 1\)"),
        ({"alpha": float("nan")}, r"alpha of 'mobilenet' must be a finite number \(its default is 1.0\)"),
        ({"name": 123}, r"Backbone 'mobilenet' cannot be built with `backbone_kwargs`: .*name.*\)\. Received "
         r"backbone_kwargs=\{'name': 123\}"),
        ({"input_shape": (64, 64, 3)}, r"`backbone_kwargs` cannot hold input_shape: .*unless the builder's `input_shape` fixes it\. "
         r"Received backbone_kwargs=\{'input_shape': \(64, 64, 3\)\}"),
        ({"pooling": "avg"}, r"`backbone_kwargs` cannot hold pooling: the trunk is built without its classifier"),
        ({"classes": 5}, r"`backbone_kwargs` cannot hold classes: .*`num_classes`\. "),
        ({"classifier_activation": None}, r"`backbone_kwargs` cannot hold classifier_activation: .*logits\. "),
        ({"include_top": True}, r"`backbone_kwargs` cannot hold include_top: the trunk is built without "
         r"its classifier; .*\. Received backbone_kwargs=\{'include_top': True\}"),
        ({"weights": "imagenet"}, r"cannot hold weights: choose the trunk's weights with `backbone_weights`\. "),
    ]
    for backbone_kwargs, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            keras_fcn.FCN8s(2, backbone="mobilenet", backbone_weights=None, backbone_kwargs=backbone_kwargs)
    # A keyword keras-fcn sets for the backbone's normalization: MobileNetV3 would normalize the image twice.
    with pytest.raises(InvalidArgumentError, match=r"`backbone_kwargs` cannot hold include_preprocessing: keras-fcn "
                       r"builds 'mobilenetv3small' with include_preprocessing=False"):
        keras_fcn.FCN8s(2, backbone="MobileNetV3Small", backbone_weights=None,
                        backbone_kwargs={"include_preprocessing": True})
    # The reference nets take no arguments: any is refused, not dropped (vgg16_reference is the default backbone).
    for backbone in ("vgg16_reference", "alexnet_reference"):
        with pytest.raises(InvalidArgumentError, match=rf"Backbone '{backbone}' is a reference net .* without arguments"):
            keras_fcn.FCN32s(2, backbone=backbone, backbone_weights=None, backbone_kwargs={"alpha": 0.25})


def test_imagenet_weights_that_cannot_be_downloaded_end_the_command_in_one_line(tmp_path):
    # Every download goes through a proxy on a closed local port: it fails at once, online or not.
    env = {**CHILD_ENV, "KERAS_HOME": str(tmp_path / "keras"), "no_proxy": "", "NO_PROXY": ""}
    env.update({name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")})
    data = write_pairs(tmp_path / "train", 2)
    result = run_python(
        ["-m", "keras_fcn", "train", data, "--num-classes", "3", "--backbone", "mobilenet", "--backbone-kwargs",
         "alpha=0.25", "--backbone-weights", "imagenet", "--epochs", "1", "--batch-size", "1", "--output-dir",
         str(tmp_path / "run")],
        timeout=120, env=env,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "Could not download the ImageNet weights of backbone 'mobilenet'" in last and "--backbone-weights none" in last
    assert "Traceback" not in result.stderr


def test_a_backbone_weights_file_of_another_backbone_is_an_argument_error_naming_it(tmp_path):
    other = keras_fcn.FCN32s(2, **TINY_MODEL)
    path = str(tmp_path / "not_resnet.weights.h5")
    other.save_weights(path)
    with pytest.raises(InvalidArgumentError, match=r"Backbone 'resnet50' cannot be built with `backbone_weights`"):
        keras_fcn.FCN32s(2, backbone="resnet50", backbone_weights=path)
