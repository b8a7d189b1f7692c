import math

import keras
import numpy as np
import pytest

from keras_fcn.losses import SegmentationCrossEntropy

pytestmark = [pytest.mark.backend_agnostic, pytest.mark.floor]

NUM_CLASSES = 4


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _nll(labels, logits):
    """-log softmax(logits)[label] per pixel, 0 where the label is not a class (numpy reference)."""
    valid = labels < logits.shape[-1]
    picked = np.take_along_axis(_log_softmax(logits.astype("float64")), np.where(valid, labels, 0)[..., None], -1)
    return np.where(valid, -picked[..., 0], 0.0), valid


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_CLASSES, (2, 5, 6)).astype("uint8")
    labels[0, 0, :] = 255
    labels[1, 2:4, 1:3] = 255
    logits = rng.normal(0, 2, (2, 5, 6, NUM_CLASSES)).astype("float32")
    return labels, logits


def _value(x):
    return keras.ops.convert_to_numpy(x)


def test_hand_computed():
    logits = np.array([[[[0.0, math.log(3.0)], [7.0, -2.0]]]], dtype="float32")
    labels = np.array([[[1, 255]]], dtype="uint8")
    # softmax([0, log 3]) = [1/4, 3/4]; the second pixel is ignored.
    assert float(_value(SegmentationCrossEntropy()(labels, logits))) == pytest.approx(-math.log(0.75), rel=1e-6)
    uniform = np.zeros((1, 2, 3, 5), "float32")
    assert float(_value(SegmentationCrossEntropy()(np.zeros((1, 2, 3), "uint8"), uniform))) == pytest.approx(
        math.log(5.0), rel=1e-6
    )
    assert float(
        _value(SegmentationCrossEntropy(reduction="sum")(np.zeros((1, 2, 3), "uint8"), uniform))
    ) == pytest.approx(6 * math.log(5.0), rel=1e-6)


def test_mean_sum_none_against_numpy(batch):
    labels, logits = batch
    nll, valid = _nll(labels, logits)
    mean = _value(SegmentationCrossEntropy()(labels, logits))
    total = _value(SegmentationCrossEntropy(reduction="sum")(labels, logits))
    per_pixel = _value(SegmentationCrossEntropy(reduction="none")(labels, logits))
    assert mean.dtype == np.float32 and mean.shape == ()
    np.testing.assert_allclose(mean, nll.sum() / valid.sum(), rtol=1e-5)
    np.testing.assert_allclose(total, nll.sum(), rtol=1e-5)
    np.testing.assert_allclose(per_pixel, nll, rtol=1e-5, atol=1e-6)
    assert (per_pixel[~valid] == 0).all()


def test_ignored_pixels_have_no_effect(batch):
    labels, logits = batch
    changed = logits.copy()
    changed[labels == 255] = np.random.default_rng(1).normal(0, 50, (int((labels == 255).sum()), NUM_CLASSES))
    loss = SegmentationCrossEntropy()
    np.testing.assert_allclose(_value(loss(labels, changed)), _value(loss(labels, logits)), rtol=1e-6)
    # Another label outside [0, num_classes) is skipped too, and ignore_index is configurable.
    np.testing.assert_allclose(
        _value(SegmentationCrossEntropy(ignore_index=None)(labels, logits)), _value(loss(labels, logits)), rtol=1e-6
    )
    nll, _ = _nll(labels, logits)
    no_class_0 = (labels != 0) & (labels != 255)
    np.testing.assert_allclose(
        _value(SegmentationCrossEntropy(ignore_index=0)(labels, logits)),
        nll[no_class_0].sum() / no_class_0.sum(),
        rtol=1e-5,
    )


def test_all_pixels_ignored_gives_zero():
    loss = SegmentationCrossEntropy()(np.full((1, 2, 2), 255, "uint8"), np.ones((1, 2, 2, 3), "float32"))
    assert float(_value(loss)) == 0.0


def test_class_weights_and_sample_weight(batch):
    labels, logits = batch
    nll, valid = _nll(labels, logits)
    class_weights = np.array([0.5, 2.0, 1.0, 3.0])
    pixel_weights = np.where(valid, class_weights[np.where(valid, labels, 0)], 0.0)
    loss = SegmentationCrossEntropy(class_weights=class_weights)
    np.testing.assert_allclose(
        _value(loss(labels, logits)), (pixel_weights * nll).sum() / pixel_weights.sum(), rtol=1e-5
    )
    image_weights = np.array([1.0, 4.0], "float32")
    weights = pixel_weights * image_weights[:, None, None]
    np.testing.assert_allclose(
        _value(loss(labels, logits, sample_weight=image_weights)), (weights * nll).sum() / weights.sum(), rtol=1e-5
    )
    summed = SegmentationCrossEntropy(class_weights=class_weights, reduction="sum")
    np.testing.assert_allclose(
        _value(summed(labels, logits, sample_weight=image_weights)), (weights * nll).sum(), rtol=1e-5
    )


def test_low_precision_logits_and_uint8_labels(batch):
    labels, logits = batch
    rounded = keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.cast(logits, "bfloat16"), "float32"))
    loss = SegmentationCrossEntropy()(labels, keras.ops.cast(logits, "bfloat16"))
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    nll, valid = _nll(labels, rounded)
    np.testing.assert_allclose(_value(loss), nll.sum() / valid.sum(), rtol=1e-5)


def test_sampling_keeps_terms_scaled_by_one_over_p(batch):
    labels, logits = batch
    nll, valid = _nll(labels, logits)
    p = 0.25
    loss = SegmentationCrossEntropy(reduction="none", keep_probability=p, seed=3)
    kept_fractions = []
    for _ in range(20):
        sampled = _value(loss(labels, logits))
        kept = sampled != 0
        np.testing.assert_allclose(sampled[kept], nll[kept] / p, rtol=1e-5)
        assert not kept[~valid].any()
        kept_fractions.append(kept[valid].mean())
    assert np.mean(kept_fractions) == pytest.approx(p, abs=0.05)


def test_sampling_expectation_equals_full_loss(batch):
    labels, logits = batch
    full = _value(SegmentationCrossEntropy()(labels, logits))
    sampled = SegmentationCrossEntropy(keep_probability=0.5, seed=7)
    draws = np.array([_value(sampled(labels, logits)) for _ in range(400)])
    assert len(np.unique(draws)) > 300
    # The mean's denominator stays the number of valid pixels, so the average is unbiased.
    assert draws.mean() == pytest.approx(full, rel=0.03)
    again = SegmentationCrossEntropy(keep_probability=0.5, seed=7)
    np.testing.assert_allclose([_value(again(labels, logits)) for _ in range(3)], draws[:3], rtol=1e-6)


def test_config_round_trip():
    loss = SegmentationCrossEntropy(
        ignore_index=0, reduction="sum", class_weights=[1, 2.5], keep_probability=0.5, seed=4, name="ce"
    )
    revived = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(revived) is SegmentationCrossEntropy
    assert revived.get_config() == loss.get_config()
    assert revived.get_config()["class_weights"] == (1.0, 2.5)


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"reduction": "sum_over_batch_size"}, "reduction='sum_over_batch_size'"),
        ({"ignore_index": 2.5}, "ignore_index=2.5"),
        ({"class_weights": [1, -1]}, "class_weights=[1, -1]"),
        ({"class_weights": []}, "class_weights=[]"),
        ({"class_weights": "1,2"}, "class_weights='1,2'"),
        ({"class_weights": [True, 1]}, "class_weights=[True, 1]"),
        ({"class_weights": [1, float("nan")]}, "class_weights=[1, nan]"),
        ({"class_weights": [0, 0.0]}, "class_weights=[0, 0.0]"),
        ({"keep_probability": 0}, "keep_probability=0"),
        ({"keep_probability": 1.5}, "keep_probability=1.5"),
        ({"seed": "x"}, "seed='x'"),
    ],
)
def test_invalid_arguments(kwargs, received):
    with pytest.raises(ValueError, match=received.replace("[", r"\[").replace("]", r"\]")):
        SegmentationCrossEntropy(**kwargs)


def test_class_weights_may_be_any_sequence_of_real_numbers():
    for weights in (np.array([0.5, 2], "float32"), (1, 0), [np.float64(3), 1]):
        assert SegmentationCrossEntropy(class_weights=weights).class_weights == tuple(float(w) for w in weights)


def test_class_weights_must_match_classes(batch):
    labels, logits = batch
    with pytest.raises(ValueError, match="3 entries but the logits have 4 classes"):
        SegmentationCrossEntropy(class_weights=[1, 1, 1])(labels, logits)


def _tiny_model():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, 1)(x))


def test_compile_evaluate_reports_the_exact_mean(batch):
    labels, _ = batch
    images = np.random.default_rng(2).uniform(0, 1, labels.shape + (3,)).astype("float32")
    model = _tiny_model()
    model.compile(optimizer="sgd", loss=SegmentationCrossEntropy())
    reported = model.evaluate(images, labels, batch_size=2, verbose=0)
    nll, valid = _nll(labels, _value(model(images)))
    assert reported == pytest.approx(nll.sum() / valid.sum(), rel=1e-5)


def test_fit_with_sampling_draws_a_new_mask_each_step(batch):
    labels, _ = batch
    images = np.random.default_rng(2).uniform(0, 1, labels.shape + (3,)).astype("float32")
    model = _tiny_model()
    loss = SegmentationCrossEntropy(keep_probability=0.5, seed=1)
    model.loss_seed_generator = loss.seed_generator
    model.compile(optimizer="sgd", loss=loss)
    state = _value(loss.seed_generator.state).copy()
    history = model.fit(images, labels, batch_size=1, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.array_equal(_value(loss.seed_generator.state), state)


def test_sampling_with_an_untracked_seed_advances_it_or_is_refused_under_jax(batch):
    """Stateless (JAX) training steps would lose the seed's updates, so they refuse; TensorFlow keeps them."""
    labels, _ = batch
    model = _tiny_model()
    loss = SegmentationCrossEntropy(keep_probability=0.5, seed=1)
    model.compile(optimizer="sgd", loss=loss)
    images = np.zeros(labels.shape + (3,), "float32")
    if keras.backend.backend() == "jax":
        with pytest.raises(RuntimeError, match="model.loss_seed_generator = loss.seed_generator"):
            model.fit(images, labels, verbose=0)
    else:
        state = _value(loss.seed_generator.state).copy()
        model.fit(images, labels, batch_size=1, epochs=1, verbose=0)
        assert not np.array_equal(_value(loss.seed_generator.state), state)
