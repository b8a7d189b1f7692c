"""Models know what they are: the Architecture record survives saving, cloning and export; nothing reads layer names."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_fcn
from keras_fcn import zoo
from keras_fcn.precision import with_dtype_policy
from keras_fcn.zoo import architectures, registry
from _helpers import randomize as _randomize
from _helpers import run as _run
from _training_helpers import write_pairs

SMALL = {"backbone": "mobilenet", "backbone_weights": None, "backbone_kwargs": {"alpha": 0.25}}
# MobileNet's stage outputs at strides 8, 16 and 32 (the last pointwise block before each stride-2 one).
MOBILENET_SKIPS = ("conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu")


@pytest.fixture(scope="module")
def fcn16s():
    model = keras_fcn.FCN16s(3, **SMALL)
    _randomize(model, ["score_fr", "score_pool4"], np.random.default_rng(7), scale=0.5)
    return model


def _renamed(model):
    """A copy of `model` (same weights) with every layer renamed."""

    def rename(layer):
        return layer.__class__.from_config({**layer.get_config(), "name": f"renamed_{layer.name}"})

    copy = keras.models.clone_model(model, clone_function=rename)
    copy.set_weights(model.get_weights())
    return copy


def test_the_record_says_what_the_model_is(fcn16s):
    architecture = keras_fcn.architecture_of(fcn16s)
    assert isinstance(architecture, keras_fcn.Architecture)
    assert (architecture.name, architecture.stride, architecture.at_once) == ("fcn16s", 16, False)
    assert (architecture.backbone, architecture.backbone_kwargs, architecture.num_classes) == ("mobilenet", {"alpha": 0.25}, 3)
    assert architecture.skip_layers == MOBILENET_SKIPS
    assert architecture.head_geometry.alignment == "receptive_field"
    with pytest.raises(AttributeError):
        architecture.stride = 8
    assert keras_fcn.architecture_of(keras_fcn.FCN8sAtOnce(3, **SMALL)).at_once


@pytest.mark.floor
def test_the_record_survives_keras_files_and_clones(fcn16s, tmp_path, rng):
    path = tmp_path / "fcn16s.keras"
    fcn16s.save(path)
    image = rng.uniform(0, 255, size=(1, 37, 45, 3)).astype("float32")
    expected = keras_fcn.architecture_of(fcn16s)
    for copy in (keras.saving.load_model(path), keras.models.clone_model(fcn16s), with_dtype_policy(fcn16s, "mixed_bfloat16")):
        assert keras_fcn.architecture_of(copy) == expected
    mixed = with_dtype_policy(fcn16s, "mixed_bfloat16")
    expected = _run(fcn16s, image)
    np.testing.assert_allclose(_run(mixed, image).astype("float32"), expected, atol=0.05 * np.abs(expected).max())


def test_the_model_exports_with_its_record(fcn16s, tmp_path, rng):
    fcn16s.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    image = rng.uniform(0, 255, size=(1, 37, 45, 3)).astype("float32")
    served = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(served.serve(tf.constant(image)).numpy(), _run(fcn16s, image), rtol=1e-5, atol=1e-5)


@pytest.mark.floor
def test_upgrade_reads_the_record_not_the_layer_names(fcn16s, rng):
    renamed = _renamed(fcn16s)
    assert not {layer.name for layer in renamed.layers} & {"score_fr", "score_pool4", "fuse_pool4", *MOBILENET_SKIPS}
    assert keras_fcn.architecture_of(renamed).skip_layers == tuple(f"renamed_{name}" for name in MOBILENET_SKIPS)
    image = rng.uniform(0, 255, size=(2, 50, 39, 3)).astype("float32")
    fcn8s = keras_fcn.upgrade(renamed)
    assert fcn8s.name == "fcn8s_mobilenet" and keras_fcn.architecture_of(fcn8s).stride == 8
    np.testing.assert_allclose(_run(fcn8s, image), _run(fcn16s, image), rtol=1e-5, atol=1e-4)


def test_the_trainer_starts_a_stage_from_a_renamed_model(fcn16s, tmp_path, rng):
    _renamed(fcn16s).save(tmp_path / "renamed.keras")
    data = write_pairs(tmp_path / "train", 2)
    model, _ = keras_fcn.train(
        data, tmp_path / "run", model="fcn8s", init_from=str(tmp_path / "renamed.keras"), num_classes=3,
        optimizer="paper", crop_size=(32, 32), batch_size=2, epochs=1, verbose=0,
    )
    architecture = keras_fcn.architecture_of(model)
    assert architecture.stride == 8 and architecture.skip_layers == tuple(f"renamed_{name}" for name in MOBILENET_SKIPS)
    # At the paper's rate 1e-14 the step changes no weight visibly, only BatchNorm's moving statistics (momentum
    # 0.99): the FCN-8s computes about what the FCN-16s did.
    image = rng.uniform(0, 255, size=(1, 50, 39, 3)).astype("float32")
    expected = _run(fcn16s, image)
    np.testing.assert_allclose(_run(model, image), expected, atol=0.1 * np.abs(expected).max())


def test_the_zoo_builds_its_nets_on_renamed_models(small_reference, monkeypatch, rng):
    """SIFT Flow's two heads and NYUDv2's late fusion find the trunk's tensors through the record.

    Each net built on renamed trunks, given the weights of the one built on
    the plain trunks, computes the same scores.
    """
    image = rng.uniform(0, 255, size=(1, 30, 34, 3)).astype("float32")
    entries = {"siftflow-fcn16s": image, "nyud-fcn32s-color-hha": {"color": image, "hha": image / 2}}
    plain = {name: architectures.build(zoo.get(name)) for name in entries}
    for model in plain.values():  # scores that are not zero (the score layers start at zero)
        model.set_weights([rng.normal(scale=0.1, size=w.shape).astype("float32") for w in model.get_weights()])
    build_random_fcn = architectures._random_fcn
    monkeypatch.setattr(architectures, "_random_fcn", lambda *args: _renamed(build_random_fcn(*args)))
    for name, inputs in entries.items():
        renamed = architectures.build(zoo.get(name))
        assert any(layer.name.startswith("renamed_") for layer in renamed.layers)
        renamed.set_weights(plain[name].get_weights())
        expected, actual = plain[name](inputs), renamed(inputs)
        assert all(np.std(np.asarray(x)) > 0 for x in keras.tree.flatten(expected))
        assert keras.tree.map_structure(lambda x: tuple(x.shape), actual) == keras.tree.map_structure(
            lambda x: tuple(x.shape), expected
        )
        keras.tree.map_structure(
            lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-4), actual, expected
        )
    assert tuple(plain["nyud-fcn32s-color-hha"](entries["nyud-fcn32s-color-hha"]).shape) == (1, 30, 34, 40)
    assert {k: tuple(v.shape) for k, v in plain["siftflow-fcn16s"](image).items()} == {
        "score_sem": (1, 30, 34, 33),
        "score_geo": (1, 30, 34, 3),
    }


def test_other_models_are_refused_by_name():
    inputs = keras.Input((None, None, 3))
    with pytest.raises(ValueError, match="Model 'plain' is not a keras-fcn FCN"):
        keras_fcn.architecture_of(keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs), name="plain"))


def test_weights_keep_the_geometry_they_were_trained_with(monkeypatch):
    """keras-fcn 0.1's placement: cells assumed on their pixel blocks, kernels 4, crops -1, -3 and 31, no padding."""
    monkeypatch.setattr(zoo, "REGISTRY", registry.Registry(registry.read_manifest()))
    zoo.register(dataclasses.replace(zoo.get("camvid"), name="camvid-0.1", geometry="pixel_blocks"))
    message = r"'camvid-0.1' were trained with the 'pixel_blocks' head geometry.*geometry='receptive_field'"
    with pytest.raises(ValueError, match=message):
        keras_fcn.FCN8s(weights="camvid-0.1", backbone="mobilenet", geometry="receptive_field")
    with keras.StatelessScope():
        legacy = keras_fcn.FCN8s(11, geometry="pixel_blocks", **SMALL)
    geometry = keras_fcn.architecture_of(legacy).head_geometry
    assert geometry.input_padding == ((0, 0), (0, 0)) and geometry.skip_offsets == ((-1, -1), (-3, -3))
    assert geometry.final(8) == (((2, (4, 4)),) * 3, (31, 31)) and geometry.skip_kernels == ((4, 4), (4, 4))
