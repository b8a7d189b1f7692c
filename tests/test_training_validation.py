"""Validation sees each image at its own size: the same figures for any batch size, as numpy computes them per image."""

import csv
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_fcn import training
from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.losses import SegmentationCrossEntropy
from keras_fcn.metrics import MeanIoU, PixelAccuracy
from keras_fcn.training.pipelines import validation_batches
from _training_helpers import NUM_CLASSES, TINY_MODEL, write_pairs

# Mixed sizes, repeated and not, as in VOC; one mask wholly ignored, the others partly.
SIZES = [(32, 32), (40, 48), (32, 32), (48, 40), (32, 64), (40, 48), (24, 40), (32, 32), (56, 24)]
UNLABELLED = 4


def _pairs(rng):
    items = []
    for index, (height, width) in enumerate(SIZES):
        mask = rng.integers(0, NUM_CLASSES, (height // 8, width // 8)).repeat(8, 0).repeat(8, 1).astype("uint8")
        mask[rng.random((height, width)) < 0.1] = IGNORE_LABEL
        if index == UNLABELLED:
            mask[:] = IGNORE_LABEL
        image = (np.minimum(mask, 2)[..., None] * 90 + rng.integers(0, 60, (height, width, 3))).astype("uint8")
        items.append((image, mask))
    return items


def _dataset(items):
    return tf.data.Dataset.from_generator(
        lambda: iter(items),
        output_signature=(tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([None, None], tf.uint8)),
    )


def _reference(predict, items, reduction):
    """Numpy: each image's loss (mean or sum over its labelled pixels), averaged over images; pooled confusion."""
    losses, confusion = [], np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for image, mask in items:
        logits = predict(image).astype(np.float64)
        shifted = logits - logits.max(-1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        labelled = mask < NUM_CLASSES
        terms = -np.take_along_axis(log_probabilities, np.where(labelled, mask, 0)[..., None].astype(int), -1)[..., 0]
        total = terms[labelled].sum()
        losses.append(total if reduction == "sum" else total / max(labelled.sum(), 1))
        predicted = logits.argmax(-1)
        np.add.at(confusion, (mask[labelled].astype(int), predicted[labelled]), 1)
    true, predicted, hits = confusion.sum(1), confusion.sum(0), np.diag(confusion)
    union = true + predicted - hits
    return {
        "loss": np.mean(losses),
        "mean_iou": np.mean(hits[union > 0] / union[union > 0]),  # paper, section 5; classes seen only
        "pixel_accuracy": hits.sum() / true.sum(),
    }


def _context_model():
    """Two 'same' 5x5 convolutions: predictions near the bottom and right edges change if the image is padded."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(8, 5, padding="same", activation="relu"),
            keras.layers.Conv2D(NUM_CLASSES, 5, padding="same"),
        ]
    )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_validation_figures_are_those_of_each_image_whatever_the_batch_size(rng, reduction):
    items = _pairs(rng)
    model = _context_model()
    metrics = [MeanIoU(NUM_CLASSES), PixelAccuracy(NUM_CLASSES)]
    model.compile(loss=SegmentationCrossEntropy(reduction=reduction), metrics=metrics)
    expected = _reference(lambda image: model.predict(image[None].astype("float32"), verbose=0)[0], items, reduction)
    for batch_size in (1, 3, 8):
        batches = validation_batches(_dataset(items), batch_size, NUM_CLASSES, reduction)
        assert int(batches.cardinality()) == len(list(batches))
        figures = model.evaluate(batches, return_dict=True, verbose=0)
        assert figures == pytest.approx(expected, rel=1e-5), batch_size


def test_train_logs_the_validation_figures_of_each_image_at_its_own_size(tmp_path, rng):
    data = write_pairs(tmp_path / "train", 6)
    val = tmp_path / "val"
    items = _pairs(rng)
    for folder in ("images", "masks"):
        os.makedirs(val / folder)
    for index, (image, mask) in enumerate(items):
        Image.fromarray(image).save(val / "images" / f"{index:03d}.png")
        Image.fromarray(mask).save(val / "masks" / f"{index:03d}.png")
    run = tmp_path / "run"
    training.train(
        data, run, validation=str(val), num_classes=NUM_CLASSES, **TINY_MODEL, model="fcn32s",
        crop_size=(32, 32), batch_size=3, epochs=1, seed=0, verbose=0,
    )
    with open(run / "log.csv", newline="") as file:
        (row,) = csv.DictReader(file)
    model = keras.saving.load_model(run / "last.keras")  # the weights validated at the end of the epoch
    expected = _reference(lambda image: model.predict(image[None].astype("float32"), verbose=0)[0], items, "mean")
    logged = {name: float(row[f"val_{name}"]) for name in expected}
    assert logged == pytest.approx(expected, rel=1e-5)
