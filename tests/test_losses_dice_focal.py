"""Focal and Dice losses against numpy implementations of their papers' definitions, and the name lookup."""

import math

import keras
import numpy as np
import pytest

from keras_fcn import losses
from keras_fcn.losses import SegmentationCrossEntropy, SegmentationDiceLoss, SegmentationFocalLoss

pytestmark = pytest.mark.backend_agnostic

NUM_CLASSES = 4


def _softmax(logits):
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def _counted(labels, num_classes, sample_weight):
    """Per-pixel float64 weights: the sample weight (per image or per pixel) where the label is a class, else 0."""
    counted = (labels < num_classes).astype(np.float64)
    if sample_weight is None:
        return counted
    sample_weight = np.asarray(sample_weight, np.float64)
    return counted * sample_weight.reshape(sample_weight.shape + (1,) * (labels.ndim - sample_weight.ndim))


def numpy_focal(labels, logits, gamma, class_weights=None, sample_weight=None):
    """Lin et al. 2017, eq. 5 per pixel, alpha_t = class weight: `(terms, weights)` in float64, 0 where ignored."""
    labels = labels.astype(np.int64)
    safe = np.where(labels < logits.shape[-1], labels, 0)
    p_t = np.take_along_axis(_softmax(logits.astype(np.float64)), safe[..., None], -1)[..., 0]
    weights = _counted(labels, logits.shape[-1], sample_weight)
    if class_weights is not None:
        weights = weights * np.asarray(class_weights, np.float64)[safe]
    return -((1 - p_t) ** gamma) * np.log(p_t) * weights, weights


def numpy_dice(labels, logits, smooth, class_weights=None, sample_weight=None):
    """Per-class `w_c (1 - D_c)` with Milletari et al.'s squared soft Dice over every counted pixel of the batch."""
    num_classes = logits.shape[-1]
    probabilities = _softmax(logits.astype(np.float64))
    counted = _counted(labels, num_classes, sample_weight)
    class_weights = np.ones(num_classes) if class_weights is None else np.asarray(class_weights, np.float64)
    per_class = []
    for c in range(num_classes):
        p, g = probabilities[..., c], (labels == c).astype(np.float64)
        dice = (2 * np.sum(counted * p * g) + smooth) / (np.sum(counted * p**2) + np.sum(counted * g**2) + smooth)
        per_class.append(class_weights[c] * (1 - dice))
    return np.array(per_class), class_weights


@pytest.fixture
def batch():
    """Two images with different numbers of ignored pixels, so a per-image mean differs from the batch mean."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_CLASSES, (2, 5, 6)).astype("uint8")
    labels[0, 0, :] = 255
    labels[1, 1:5, 1:5] = 255
    logits = rng.normal(0, 2, (2, 5, 6, NUM_CLASSES)).astype("float32")
    return labels, logits


def _value(x):
    return keras.ops.convert_to_numpy(x)


def test_focal_hand_computed():
    # softmax([0, log 3]) = [1/4, 3/4]: the pixel of class 1 has p_t = 3/4, the 255 pixel is skipped.
    logits = np.array([[[[0.0, math.log(3.0)], [7.0, -2.0]]]], dtype="float32")
    labels = np.array([[[1, 255]]], dtype="uint8")
    want = -((1 / 4) ** 2) * math.log(3 / 4)
    assert float(_value(SegmentationFocalLoss(gamma=2)(labels, logits))) == pytest.approx(want, rel=1e-6)
    assert float(_value(SegmentationFocalLoss(gamma=0)(labels, logits))) == pytest.approx(-math.log(0.75), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_focal_against_numpy(batch, gamma):
    labels, logits = batch
    terms, weights = numpy_focal(labels, logits, gamma)
    mean = _value(SegmentationFocalLoss(gamma=gamma)(labels, logits))
    assert mean.dtype == np.float32 and mean.shape == ()
    np.testing.assert_allclose(mean, terms.sum() / weights.sum(), rtol=1e-5)
    # The mean is over the valid pixels of the whole batch, not the mean of the images' means.
    per_image = (terms.sum((1, 2)) / weights.sum((1, 2))).mean()
    assert abs(mean - per_image) > 1e-3
    total = _value(SegmentationFocalLoss(gamma=gamma, reduction="sum")(labels, logits))
    np.testing.assert_allclose(total, terms.sum(), rtol=1e-5)
    none = _value(SegmentationFocalLoss(gamma=gamma, reduction="none")(labels, logits))
    assert none.shape == labels.shape
    np.testing.assert_allclose(none, terms, rtol=1e-5, atol=1e-7)
    assert (none[labels == 255] == 0).all()


def _gradient(loss, labels, logits):
    """d loss / d logits, with the backend's own differentiation."""
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.grad(lambda x: loss(labels, x))(logits))
    import tensorflow as tf

    logits = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = loss(labels, logits)
    return tape.gradient(value, logits).numpy()


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_gradient_is_finite_where_a_pixel_is_certain(gamma):
    # The first pixel is right with p_t = 1 in float32; the second has p_t = 1/2.
    logits = np.array([[[[40.0, 0.0], [0.0, 0.0]]]], "float32")
    labels = np.array([[[0, 1]]], "uint8")
    gradient = _gradient(SegmentationFocalLoss(gamma=gamma, reduction="sum"), labels, logits)
    np.testing.assert_allclose(gradient[0, 0, 0], [0.0, 0.0], atol=1e-6)
    # FL = -(1 - p) ** gamma log p, dFL/dp = gamma (1 - p) ** (gamma - 1) log p - (1 - p) ** gamma / p and
    # dp/dz_1 = -dp/dz_0 = p (1 - p); at p = 1/2, dFL/dz_1 = -(1/2) ** (gamma + 1) (1 + gamma log 2).
    slope = 0.5 ** (gamma + 1) * (1 + gamma * math.log(2.0))
    np.testing.assert_allclose(gradient[0, 0, 1], [slope, -slope], rtol=1e-5)


def test_focal_class_weights_and_sample_weight(batch):
    labels, logits = batch
    class_weights = [0.5, 2.0, 0.0, 1.5]
    sample_weight = np.array([1.0, 3.0], "float32")
    terms, weights = numpy_focal(labels, logits, 2.0, class_weights, sample_weight)
    loss = SegmentationFocalLoss(class_weights=class_weights)
    np.testing.assert_allclose(
        _value(loss(labels, logits, sample_weight=sample_weight)), terms.sum() / weights.sum(), rtol=1e-5
    )
    pixel_weight = np.random.default_rng(3).uniform(0, 2, labels.shape).astype("float32")
    terms, weights = numpy_focal(labels, logits, 2.0, class_weights, pixel_weight)
    np.testing.assert_allclose(
        _value(loss(labels, logits, sample_weight=pixel_weight)), terms.sum() / weights.sum(), rtol=1e-5
    )


def test_dice_hand_computed():
    # Uniform logits: P = 1/2 for both classes at each of the three counted pixels.
    # Class 0 (two pixels): D = 2 * (2 * 1/2) / (3 * 1/4 + 2) = 8/11;
    # class 1 (one pixel): D = 2 * 1/2 / (3/4 + 1) = 4/7.
    labels = np.array([[[0, 0, 1, 255]]], dtype="uint8")
    logits = np.zeros((1, 1, 4, 2), "float32")
    want = 1 - (8 / 11 + 4 / 7) / 2
    assert float(_value(SegmentationDiceLoss(smooth=0)(labels, logits))) == pytest.approx(want, rel=1e-6)
    # smooth=1 adds 1 to each numerator and denominator: (2 + 1) / (2.75 + 1) and (1 + 1) / (1.75 + 1).
    want = 1 - (3 / 3.75 + 2 / 2.75) / 2
    assert float(_value(SegmentationDiceLoss()(labels, logits))) == pytest.approx(want, rel=1e-6)
    # Class weights 1 and 3: a weighted mean over the classes.
    want = 1 - (1 * 8 / 11 + 3 * 4 / 7) / 4
    weighted = SegmentationDiceLoss(smooth=0, class_weights=[1, 3])
    assert float(_value(weighted(labels, logits))) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("smooth", [0.0, 1.0, 10.0])
def test_dice_against_numpy(batch, smooth):
    labels, logits = batch
    per_class, class_weights = numpy_dice(labels, logits, smooth)
    mean = _value(SegmentationDiceLoss(smooth=smooth)(labels, logits))
    assert mean.dtype == np.float32 and mean.shape == ()
    np.testing.assert_allclose(mean, per_class.sum() / class_weights.sum(), rtol=1e-5)
    total = _value(SegmentationDiceLoss(smooth=smooth, reduction="sum")(labels, logits))
    np.testing.assert_allclose(total, per_class.sum(), rtol=1e-5)
    none = _value(SegmentationDiceLoss(smooth=smooth, reduction="none")(labels, logits))
    np.testing.assert_allclose(none, per_class, rtol=1e-5)


def test_dice_class_weights_and_sample_weight(batch):
    labels, logits = batch
    class_weights = [0.5, 2.0, 0.0, 1.5]
    pixel_weight = np.random.default_rng(3).uniform(0, 2, labels.shape).astype("float32")
    per_class, weights = numpy_dice(labels, logits, 1.0, class_weights, pixel_weight)
    loss = SegmentationDiceLoss(class_weights=class_weights)
    np.testing.assert_allclose(
        _value(loss(labels, logits, sample_weight=pixel_weight)), per_class.sum() / weights.sum(), rtol=1e-5
    )
    image_weight = np.array([1.0, 3.0], "float32")
    per_class, weights = numpy_dice(labels, logits, 1.0, class_weights, image_weight)
    np.testing.assert_allclose(
        _value(loss(labels, logits, sample_weight=image_weight)), per_class.sum() / weights.sum(), rtol=1e-5
    )


def test_dice_of_a_class_absent_from_the_labels():
    """smooth=0 (V-Net) gives an absent class Dice 0 whatever the prediction; smooth=1 gives 1 - 1/(1 + sum P^2)."""
    labels = np.zeros((1, 2, 2), "uint8")
    logits = np.zeros((1, 2, 2, 2), "float32")
    logits[..., 1] = math.log(3.0)  # P = (1/4, 3/4) at each of the 4 pixels
    per_class = _value(SegmentationDiceLoss(smooth=0, reduction="none")(labels, logits))
    # Class 0: 2 * 4 * 1/4 / (4/16 + 4) = 2/4.25.
    np.testing.assert_allclose(per_class, [1 - 2 / 4.25, 1.0], rtol=1e-6)
    per_class = _value(SegmentationDiceLoss(smooth=1, reduction="none")(labels, logits))
    np.testing.assert_allclose(per_class, [1 - 3 / 5.25, 1 - 1 / (1 + 4 * 9 / 16)], rtol=1e-6)


@pytest.mark.parametrize("loss", [SegmentationFocalLoss(), SegmentationDiceLoss(), SegmentationDiceLoss(smooth=0)])
def test_ignored_pixels_have_no_effect(batch, loss):
    labels, logits = batch
    changed = logits.copy()
    changed[labels == 255] = np.random.default_rng(1).normal(0, 50, (int((labels == 255).sum()), NUM_CLASSES))
    np.testing.assert_allclose(_value(loss(labels, changed)), _value(loss(labels, logits)), rtol=1e-6)
    # A label outside [0, num_classes) is skipped like 255.
    other = np.where(labels == 255, 7, labels).astype("uint8")
    np.testing.assert_allclose(_value(loss(other, logits)), _value(loss(labels, logits)), rtol=1e-6)


@pytest.mark.parametrize("loss", [SegmentationFocalLoss(), SegmentationDiceLoss(), SegmentationDiceLoss(smooth=0)])
def test_all_pixels_ignored_gives_zero(loss):
    labels = np.full((1, 3, 3), 255, "uint8")
    logits = np.random.default_rng(0).normal(size=(1, 3, 3, 3)).astype("float32")
    assert float(_value(loss(labels, logits))) == 0.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_logits_give_float32(batch, dtype):
    labels, logits = batch
    low = keras.ops.cast(logits, dtype)
    exact = _value(keras.ops.cast(low, "float32"))
    terms, weights = numpy_focal(labels, exact, 2.0)
    focal = _value(SegmentationFocalLoss()(labels, low))
    assert focal.dtype == np.float32
    np.testing.assert_allclose(focal, terms.sum() / weights.sum(), rtol=1e-5)
    per_class, class_weights = numpy_dice(labels, exact, 1.0)
    dice = _value(SegmentationDiceLoss()(labels, low))
    assert dice.dtype == np.float32
    np.testing.assert_allclose(dice, per_class.sum() / class_weights.sum(), rtol=1e-5)


@pytest.mark.parametrize(
    "loss",
    [
        SegmentationFocalLoss(gamma=1.5, ignore_index=0, reduction="sum", class_weights=[1, 2.5], name="focal"),
        SegmentationDiceLoss(smooth=0.5, ignore_index=None, reduction="none", class_weights=[1, 2.5], name="dice"),
    ],
)
def test_config_round_trip(loss):
    revived = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(revived) is type(loss)
    assert revived.get_config() == loss.get_config()
    assert revived.get_config()["class_weights"] == (1.0, 2.5)


@pytest.mark.parametrize(
    "cls, kwargs, received",
    [
        (SegmentationFocalLoss, {"gamma": -1}, "gamma=-1"),
        (SegmentationFocalLoss, {"gamma": float("nan")}, "gamma=nan"),
        (SegmentationFocalLoss, {"reduction": "sum_over_batch_size"}, "reduction='sum_over_batch_size'"),
        (SegmentationFocalLoss, {"class_weights": [1, -1]}, r"class_weights=\[1, -1\]"),
        (SegmentationDiceLoss, {"smooth": -0.5}, "smooth=-0.5"),
        (SegmentationDiceLoss, {"ignore_index": 2.5}, "ignore_index=2.5"),
        (SegmentationDiceLoss, {"class_weights": [0, 0]}, r"not all zero. Received class_weights=\[0, 0\]"),
        (SegmentationFocalLoss, {"class_weights": [0, 0]}, r"not all zero. Received class_weights=\[0, 0\]"),
    ],
)
def test_invalid_arguments(cls, kwargs, received):
    with pytest.raises(ValueError, match=received):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [SegmentationFocalLoss, SegmentationDiceLoss])
def test_class_weights_must_match_classes(batch, cls):
    labels, logits = batch
    with pytest.raises(ValueError, match="3 entries but the logits have 4 classes"):
        cls(class_weights=[1, 1, 1])(labels, logits)


def test_get_by_name():
    assert list(losses.LOSSES) == ["cross_entropy", "dice", "focal"]
    cross_entropy = losses.get("cross_entropy", reduction="sum", class_weights=[1, 2])
    assert type(cross_entropy) is SegmentationCrossEntropy
    assert (cross_entropy.reduction, cross_entropy.class_weights) == ("sum", (1.0, 2.0))
    dice = losses.get("dice", smooth=0, class_weights=[1, 2])
    assert type(dice) is SegmentationDiceLoss and (dice.smooth, dice.class_weights) == (0.0, (1.0, 2.0))
    focal = losses.get("focal", gamma=3)
    assert type(focal) is SegmentationFocalLoss and focal.gamma == 3.0
    assert losses.get("focal") is not losses.get("focal")
    with pytest.raises(ValueError, match="one of cross_entropy, dice, focal. Received name='tversky'"):
        losses.get("tversky")
    with pytest.raises(ValueError, match="'dice' loss takes the arguments smooth, .*Received keep_probability"):
        losses.get("dice", keep_probability=0.5)


def _tiny_model():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, 1)(x))


@pytest.mark.parametrize("name", ["focal", "dice"])
def test_compile_evaluate_and_fit(batch, name):
    """`model.evaluate` reports the numpy value of the batch; a few steps of `fit` lower the loss."""
    labels, _ = batch
    images = np.random.default_rng(2).uniform(0, 1, labels.shape + (3,)).astype("float32")
    keras.utils.set_random_seed(0)
    model = _tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=losses.get(name))
    reported = model.evaluate(images, labels, batch_size=2, verbose=0)
    logits = _value(model(images))
    if name == "focal":
        terms, weights = numpy_focal(labels, logits, 2.0)
        want = terms.sum() / weights.sum()
    else:
        per_class, class_weights = numpy_dice(labels, logits, 1.0)
        want = per_class.sum() / class_weights.sum()
    assert reported == pytest.approx(want, rel=1e-5)
    history = model.fit(images, labels, batch_size=2, epochs=20, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < 0.9 * history.history["loss"][0]
