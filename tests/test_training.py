"""keras_fcn.train: run folder, checkpoints, presets, staged training, mixed precision, argument errors."""

import csv
import json
import os

import keras
import numpy as np
import pytest

import keras_fcn
from keras_fcn import training
from keras_fcn.optimizers import CaffeSGD
from _training_helpers import NUM_CLASSES, TINY_MODEL, write_pairs


def read_log(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.floor
def test_train_writes_logs_checkpoints_and_classes(tmp_path, capsys):
    data = write_pairs(tmp_path / "train", 4)
    val = write_pairs(tmp_path / "val", 2, seed=1)
    run = tmp_path / "run"
    model, history = training.train(
        data, run, validation=val, class_names=["a", "b", "c"], **TINY_MODEL,
        crop_size=(32, 32), batch_size=2, epochs=2, seed=0, verbose=0,
    )
    assert "Checking" not in capsys.readouterr().out  # verbose=0: the pairs are checked silently too
    rows = read_log(run / "log.csv")
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert [float(row["val_mean_iou"]) for row in rows] == pytest.approx(history.history["val_mean_iou"])
    best = json.loads((run / "best.keras.json").read_text())
    assert best["monitor"] == "val_mean_iou"
    assert best["value"] == pytest.approx(max(float(row["val_mean_iou"]) for row in rows))
    assert json.loads((run / "classes.json").read_text()) == {"class_names": ["a", "b", "c"]}
    assert any(files for _, _, files in os.walk(run / "tensorboard"))
    images = np.random.default_rng(0).uniform(0, 255, (1, 40, 48, 3)).astype("float32")
    last = keras.saving.load_model(run / "last.keras")
    np.testing.assert_allclose(last.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)
    assert keras.saving.load_model(run / "best.keras").output_shape[-1] == NUM_CLASSES
    # Two epochs of two batches of two pairs: four steps.
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4


def test_paper_preset_staged_from_fcn32s_in_mixed_bfloat16(tmp_path, rng):
    data = write_pairs(tmp_path / "train", 2)
    fcn32s = keras_fcn.FCN32s(NUM_CLASSES, **TINY_MODEL)
    score = fcn32s.get_layer("score_fr")
    score.set_weights([rng.normal(scale=0.1, size=w.shape).astype("float32") for w in score.get_weights()])
    fcn32s.save(tmp_path / "fcn32s.keras")
    model, _ = training.train(
        data, tmp_path / "run", model="fcn16s", init_from=str(tmp_path / "fcn32s.keras"), num_classes=NUM_CLASSES,
        optimizer="paper", mixed_precision="mixed_bfloat16", crop_size=(32, 32), batch_size=2, epochs=1, verbose=0,
    )
    assert keras.mixed_precision.global_policy().name == "float32"
    assert model.get_layer("score_pool4").compute_dtype == "bfloat16"
    assert model.get_layer("score_pool4").variable_dtype == "float32"
    optimizer = model.optimizer
    assert isinstance(optimizer, CaffeSGD) and optimizer.bias_learning_rate_multiplier == 2.0  # Caffe's lr_mult 2
    assert float(optimizer.momentum) == pytest.approx(0.99)
    assert float(optimizer.learning_rate) == pytest.approx(1e-12)
    assert model.loss.reduction == "sum"
    # Caffe's weight decay 5e-4: 5e-4 / 2 * sum of the squared trainable kernels, added to the loss.
    kernels = [layer.kernel for layer in model.layers if getattr(layer, "kernel", None) is not None and layer.kernel.trainable]
    expected = 5e-4 / 2 * sum(float(np.sum(np.square(k.numpy()))) for k in kernels)
    assert float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses)) == pytest.approx(expected, rel=1e-4)
    # At 1e-12 one step changes nothing visible: the FCN-16s still predicts what the FCN-32s did (paper, 4.2).
    images = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        model.predict(images, verbose=0).astype("float32"), fcn32s.predict(images, verbose=0), atol=0.05, rtol=0.05
    )


def test_init_from_a_finer_stage_is_an_error_naming_both(tmp_path):
    data = write_pairs(tmp_path / "train", 2)
    keras_fcn.FCN8s(NUM_CLASSES, **TINY_MODEL).save(tmp_path / "fcn8s.keras")
    with pytest.raises(ValueError, match=r"FCN-8s .*cannot start an FCN-16s \(model='fcn16s'\)"):
        training.train(data, tmp_path / "run", model="fcn16s", init_from=str(tmp_path / "fcn8s.keras"), num_classes=3, batch_size=2)
    with pytest.raises(ValueError, match="fcn8s_atonce is trained in one stage"):
        training.train(data, tmp_path / "run", model="fcn8s_atonce", init_from=str(tmp_path / "fcn8s.keras"), num_classes=3, batch_size=2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "fcn4s"}, r"`model` must be one of \['fcn16s', 'fcn32s', 'fcn8s', 'fcn8s_atonce'\]"),
        ({"optimizer": "rmsprop"}, r"`optimizer` must be one of \['adam', 'paper', 'sgd'\]"),
        ({"strategy": "tpu"}, r"`strategy` must be one of \('default', 'mirrored', 'multi-worker'\)"),
        ({"mixed_precision": "fp8"}, r"`mixed_precision` must be one of \('auto', "),
        ({"epochs": 0}, r"`epochs` must be a positive int. Received epochs=0"),
        ({"crop_size": (32,)}, r"`crop_size` must be a \(height, width\) pair"),
        ({"num_classes": None}, r"A folder dataset needs `num_classes`"),
        ({"class_names": ["a", "b"], "num_classes": 3}, r"`class_names` must name every class, 3 names"),
        ({"backbone": "vgg99"}, r"Unknown backbone.*'vgg16_reference'.*'ResNet50'.*Received backbone='vgg99'"),
        ({"learning_rate": -1.0}, r"`learning_rate` must be a number >= 0. Received learning_rate=-1.0"),
        ({"validation_steps": 0}, r"`validation_steps` must be a positive int. Received validation_steps=0"),
        ({"verbose": True}, r"`verbose` must be one of \['auto', 0, 1, 2\]. Received verbose=True"),
        ({"augment": "no"}, r"`augment` must be True or False. Received augment='no'"),
        ({"class_names": 3}, r"`class_names` must be a list, tuple or 1-D array of class names: str, not blank, "
         r"without spaces around them, one per class. "
         r"Received class_names=3"),
        ({"class_names": ["a", "b", " "]}, r"one per class. Received class_names=\['a', 'b', ' '\]"),
        ({"class_names": ["a", "b", b"c"]}, r"one per class. Received class_names=\['a', 'b', b'c'\]"),
        ({"class_names": "abc"}, r"Received class_names='abc'"),
        ({"class_names": ["a", "b", "a"]}, r"`class_names` must name each class differently; 'a' names two. "
         r"Received class_names=\['a', 'b', 'a'\]"),
        ({"scale_range": (2.0, 1.0)}, r"`scale_range` must be \(min, max\) scaling factors with 0.1 <= min <= max "
         r"<= 4. Received scale_range=\(2.0, 1.0\)"),
        ({"scale_range": (1e-9, 1.0)}, r"Received scale_range=\(1e-09, 1.0\)"),
        ({"scale_range": (1.0, 1e6)}, r"Received scale_range=\(1.0, 1000000.0\)"),
        ({"scale_range": 2.0}, r"Received scale_range=2.0"),
        ({"jitter": 1.0}, r"`jitter` must be a number in \[0, 1\). Received jitter=1.0"),
        ({"jitter": 0.2, "augment": False}, r"`jitter` needs the augmentation that `augment` turns off: give one or "
         r"the other. Received jitter=0.2 with augment=False"),
        ({"jitter": 0, "augment": False}, r"Received jitter=0 with augment=False"),  # as given, if the default
        ({"scale_range": (0.5, 2), "augment": False}, r"Received scale_range=\(0.5, 2\) with augment=False"),
        ({"backbone_kwargs": [("alpha", 0.25)]}, r"`backbone_kwargs` must be None or a dict of the backbone "
         r"constructor's keyword arguments, such as \{'alpha': 0.25\}. Received backbone_kwargs=\[\('alpha', 0.25\)\]"),
    ],
)
def test_bad_arguments_name_the_argument(tmp_path, kwargs, message):
    data = write_pairs(tmp_path / "train", 1)
    with pytest.raises(ValueError, match=message):
        training.train(data, tmp_path / "run", **{"num_classes": 3, **kwargs})
    if "num_classes" not in kwargs and "class_names" not in kwargs:  # refused before any data is read
        with pytest.raises(ValueError, match=message):
            training.train(str(tmp_path / "nowhere"), tmp_path / "run", **{"num_classes": 3, **kwargs})


def test_named_datasets_need_their_root_and_class_count(tmp_path):
    with pytest.raises(ValueError, match="Dataset 'camvid' needs `data_root`"):
        training.load_dataset("camvid")
    with pytest.raises(ValueError, match="`dataset` must be one of .*'camvid', 'voc', 'sbd'"):
        training.load_dataset(str(tmp_path / "missing"), num_classes=3)
    camvid = tmp_path / "camvid"
    write_pairs(camvid / "train", 1)
    write_pairs(camvid / "val", 1)
    splits = training.load_dataset("camvid", data_root=str(camvid))
    assert splits.num_classes == 11 and splits.class_names[0] == "sky" and splits.validation is not None
    with pytest.raises(ValueError, match="Dataset 'camvid' has 11 classes. Received num_classes=3"):
        training.load_dataset("camvid", data_root=str(camvid), num_classes=3)
    # A folder of splits given as the dataset: the error names the splits to give instead.
    with pytest.raises(ValueError) as error:
        training.load_dataset(str(camvid), num_classes=3)
    assert str(error.value) == (
        f"A folder dataset holds images/ and masks/; {str(camvid)!r} has no images/ and no masks/. It holds the "
        f"splits train/, val/: give one of them (e.g. {str(camvid / 'train')!r}), and another as the validation "
        f"folder. Received dataset={str(camvid)!r}"
    )
    # A validation folder that does not exist, or a file, is refused naming the argument (was a bare OSError).
    train = str(camvid / "train")
    for validation, what in [(str(tmp_path / "nowhere"), "does not exist"),
                             (str(camvid / "val" / "images" / "000.png"), "is not a folder")]:
        with pytest.raises(ValueError) as error:
            training.load_dataset(train, num_classes=3, validation=validation)
        assert str(error.value) == (
            f"A folder dataset is a folder holding images/ and masks/; {validation!r} {what}. "
            f"Received validation={validation!r}"
        )
    only_val = training.load_dataset("camvid", data_root=str(camvid), training_split=False)
    assert only_val.train is None and only_val.validation is not None


def test_an_unknown_option_is_a_type_error_listing_the_options(tmp_path):
    with pytest.raises(TypeError, match=r"train\(\) got unexpected keyword arguments \['lr'\]; its options are .*'learning_rate'"):
        training.train("data", tmp_path / "run", lr=0.1)


def test_presets_take_named_fields_only_and_the_paper_trains_biases_at_twice_the_rate():
    with pytest.raises(TypeError):
        training.Preset("sgd", "sgd", {}, "mean", 1e-4, False, True)
    # The reference solvers: lr_mult 2 on every bias, momentum 0.99, the summed loss, weight_decay 5e-4.
    paper = training.PRESETS["paper"]
    assert (paper.bias_learning_rate_multiplier, paper.momentum, paper.loss_reduction) == (2.0, 0.99, "sum")
    assert "biases at 2x" in paper.summary and "twice the learning rate" in training.presets.__doc__
