"""The `loss` and `class_weights` training options, and flip test-time augmentation in `evaluate` and `predict`."""

import argparse
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_fcn
from keras_fcn import cli
from keras_fcn.errors import InvalidArgumentError
from keras_fcn.training import options as training_options
from keras_fcn.training.datasets import DatasetSplits
from keras_fcn.training.trainer import _validation_data
from _helpers import randomize
from _training_helpers import NUM_CLASSES, TINY_MODEL, write_pairs

SCORES = ["score_fr"]
QUICK = {**TINY_MODEL, "model": "fcn32s", "crop_size": (32, 32), "batch_size": 2, "epochs": 1, "verbose": 0}


def _masks(folder):
    names = sorted(os.listdir(os.path.join(folder, "masks")))
    return [np.asarray(keras.utils.load_img(os.path.join(folder, "masks", n), color_mode="grayscale")) for n in names]


def test_median_frequency_weights_are_eigen_and_fergus_over_the_training_masks(tmp_path):
    folder = write_pairs(tmp_path / "train", 4)
    model, _ = keras_fcn.train(folder, tmp_path / "run", num_classes=NUM_CLASSES, class_weights="median_frequency", **QUICK)
    # freq(c): pixels of c over all pixels of the images where c occurs; weight(c) = median(freq) / freq(c).
    masks = _masks(folder)
    freq = np.array(
        [sum((m == c).sum() for m in masks) / sum(m.size for m in masks if (m == c).any()) for c in range(NUM_CLASSES)]
    )
    np.testing.assert_allclose(model.loss.class_weights, np.median(freq) / freq, rtol=1e-6)


def test_given_class_weights_and_loss_reach_the_compiled_loss(tmp_path):
    folder = write_pairs(tmp_path / "train", 2)
    model, _ = keras_fcn.train(folder, tmp_path / "run", num_classes=NUM_CLASSES, loss="focal", class_weights=[1, 2, 0.5], **QUICK)
    assert isinstance(model.loss, keras_fcn.losses.SegmentationFocalLoss)
    assert model.loss.class_weights == (1.0, 2.0, 0.5) and model.loss.reduction == "mean"


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"class_weights": [1, 2]}, "one weight per class, 3; it has 2"),
        ({"class_weights": "inverse"}, 'must be "median_frequency" or a sequence'),
        ({"class_weights": [1, -2, 1]}, 'must be "median_frequency" or a sequence'),
        ({"class_weights": [0, 0, 0]}, "not all zero"),
        ({"loss": "dice", "optimizer": "paper"}, 'The "dice" loss does not go with the \'paper\''),
        ({"loss": "lovasz"}, "`loss` must be one of"),
    ],
)
def test_bad_loss_options_are_refused_before_anything_is_written(tmp_path, keywords, message):
    folder = write_pairs(tmp_path / "train", 2)
    with pytest.raises(InvalidArgumentError, match=message.replace("(", r"\(")):
        keras_fcn.train(folder, tmp_path / "run", num_classes=NUM_CLASSES, **{**QUICK, **keywords})
    assert not (tmp_path / "run").exists() or not os.listdir(tmp_path / "run")


@pytest.mark.parametrize("classes", [{"num_classes": NUM_CLASSES}, {"class_names": ["a", "b", "c"]}])
def test_a_class_weight_count_is_refused_before_any_pair_is_read(tmp_path, classes):
    folder = write_pairs(tmp_path / "train", 2)
    with open(os.path.join(folder, "images", "001.png"), "wb") as broken:  # reading the pairs would fail on it
        broken.write(b"not a png")
    with pytest.raises(InvalidArgumentError, match="one weight per class, 3; it has 4"):
        keras_fcn.train(folder, tmp_path / "run", class_weights=[1, 1, 1, 1], **{**QUICK, **classes})
    with pytest.raises(InvalidArgumentError, match="one weight per class, 11; it has 3"):
        keras_fcn.train("camvid", tmp_path / "run", data_root=str(tmp_path / "nowhere"), class_weights=[1, 1, 1], **QUICK)


def test_the_command_line_names_the_flags_of_a_refused_option(tmp_path, capsys):
    folder = write_pairs(tmp_path / "train", 2)
    argv = ["train", folder, "--output-dir", str(tmp_path / "run"), "--num-classes", str(NUM_CLASSES)]
    assert cli.main([*argv, "--class-weights", "1,1,1,1"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "keras-fcn train: error: `--class-weights` must have one weight per class, 3; it has 4. "
        "Received --class-weights=[1.0, 1.0, 1.0, 1.0]"
    )


def test_the_command_line_reads_the_loss_options():
    parser = argparse.ArgumentParser()
    training_options.add_arguments(parser)
    args = parser.parse_args(["--loss", "dice", "--class-weights", "1,2.5,0"])
    assert (args.loss, args.class_weights) == ("dice", [1.0, 2.5, 0.0])
    assert parser.parse_args(["--class-weights", "median-frequency"]).class_weights == "median_frequency"
    with pytest.raises(SystemExit):
        parser.parse_args(["--class-weights", "1,x"])


def _numpy_dice_loss(logits, labels, num_classes, smooth=1.0):
    """One minus the mean over the classes of the soft Dice of one image (V-Net, with `smooth`), 255 skipped."""
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    counted = labels != 255
    dice = []
    for c in range(num_classes):
        p, g = probabilities[..., c][counted], (labels[counted] == c).astype(float)
        dice.append((2 * (p * g).sum() + smooth) / ((p**2).sum() + (g**2).sum() + smooth))
    return 1 - np.mean(dice)


def test_the_dice_validation_loss_is_the_mean_of_the_images_whatever_the_batch_size(rng):
    sizes = [(32, 32), (32, 32), (40, 24), (32, 32), (40, 24)]
    images = [rng.uniform(0, 255, size=(*s, 3)).astype("float32") for s in sizes]
    masks = [rng.integers(0, NUM_CLASSES, size=s).astype("uint8") for s in sizes]
    masks[1][:8] = 255
    pairs = tf.data.Dataset.from_generator(
        lambda: zip(images, masks),
        output_signature=(tf.TensorSpec((None, None, 3), tf.float32), tf.TensorSpec((None, None), tf.uint8)),
    )
    splits = DatasetSplits(pairs, pairs, NUM_CLASSES, [str(c) for c in range(NUM_CLASSES)])
    model = keras_fcn.FCN32s(NUM_CLASSES, **TINY_MODEL)
    randomize(model, SCORES, rng)
    model.compile(loss=keras_fcn.losses.SegmentationDiceLoss())
    logits = [model.predict_on_batch(image[None])[0] for image in images]
    expected = np.mean([_numpy_dice_loss(lg, m, NUM_CLASSES) for lg, m in zip(logits, masks)])
    for batch_size in (1, 3, 8):
        options = training_options.TrainingOptions(loss="dice", batch_size=batch_size)
        loss = model.evaluate(_validation_data(splits, options), verbose=0)
        np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_flipped_predictions_and_figures_are_mirror_symmetric(rng):
    # With flip averaging, mirroring the input mirrors the label map exactly; without it, in general it does not.
    # Any segmentation model will do; a lopsided convolution is far from mirror symmetric.
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, (3, 7), padding="same")(inputs))
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    images = [rng.uniform(0, 255, size=(77, 101, 3)).astype("float32"), rng.uniform(0, 255, size=(64, 45, 3))]
    mirrored = [image[:, ::-1] for image in images]
    flipped = keras_fcn.predict(model, images, flip=True, engine="tensorflow")
    flipped_of_mirrored = keras_fcn.predict(model, mirrored, flip=True, engine="tensorflow")
    for labels, labels_of_mirrored in zip(flipped, flipped_of_mirrored):
        np.testing.assert_array_equal(labels[:, ::-1], labels_of_mirrored)
    masks = [rng.integers(0, NUM_CLASSES, size=image.shape[:2]) for image in images]
    figures = keras_fcn.evaluate(model, [(image[None], mask[None]) for image, mask in zip(images, masks)], flip=True, verbose=0, engine="tensorflow")
    figures_of_mirrored = keras_fcn.evaluate(
        model, [(image[None, :, ::-1], mask[None, :, ::-1]) for image, mask in zip(images, masks)], flip=True, verbose=0, engine="tensorflow"
    )
    assert figures["mean_iou"] == pytest.approx(figures_of_mirrored["mean_iou"], abs=1e-12)
    plain = keras_fcn.predict(model, images, engine="tensorflow")
    plain_of_mirrored = keras_fcn.predict(model, mirrored, engine="tensorflow")
    assert any((a[:, ::-1] != b).any() for a, b in zip(plain, plain_of_mirrored))


def test_a_run_folder_is_not_continued_with_another_loss(tmp_path):
    folder = write_pairs(tmp_path / "train", 2)
    keras_fcn.train(folder, tmp_path / "run", num_classes=NUM_CLASSES, loss="focal", **QUICK)
    with pytest.raises(InvalidArgumentError, match="holds a run with loss='focal'"):
        keras_fcn.train(folder, tmp_path / "run", num_classes=NUM_CLASSES, loss="dice", **{**QUICK, "epochs": 2})


def test_backbone_names_in_any_case_are_one_option():
    parser = argparse.ArgumentParser()
    training_options.add_arguments(parser)
    given = training_options.from_arguments(parser.parse_args(["--backbone", "ResNet50"]))["backbone"]
    assert training_options.TrainingOptions(backbone=given).backbone == "resnet50"
    assert training_options.TrainingOptions(backbone="MobileNetV3Small").backbone == "mobilenetv3small"
    with pytest.raises(InvalidArgumentError, match="Unknown backbone"):
        training_options.TrainingOptions(backbone="ResNet51")


@pytest.mark.parametrize("flip", ["no", 1, None])
def test_flip_must_be_a_bool(flip):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, 1)(inputs))
    with pytest.raises(ValueError, match="`flip` must be True or False"):
        keras_fcn.predict(model, [np.zeros((8, 8, 3))], flip=flip)
