import keras
import numpy as np
import pytest

from keras_fcn import metrics
from keras_fcn.losses import SegmentationCrossEntropy

pytestmark = pytest.mark.backend_agnostic

SCALAR_METRICS = {
    "pixel_accuracy": metrics.PixelAccuracy,
    "mean_accuracy": metrics.MeanAccuracy,
    "mean_iou": metrics.MeanIoU,
    "frequency_weighted_iou": metrics.FrequencyWeightedIoU,
}


def _logits(predicted, num_classes):
    return np.eye(num_classes, dtype="float32")[predicted]


def _paper_figures(labels, predicted, num_classes):
    """Section 5 of the paper, in numpy: n_ij counted pixel by pixel, NaN-free means over defined classes."""
    n = np.zeros((num_classes, num_classes), np.int64)
    for t, p in zip(labels.ravel(), predicted.ravel()):
        if 0 <= t < num_classes:
            n[t, p] += 1
    t = n.sum(axis=1)
    union = t + n.sum(axis=0) - np.diag(n)
    iou = [n[i, i] / union[i] if union[i] else np.nan for i in range(num_classes)]
    accuracy = [n[i, i] / t[i] for i in range(num_classes) if t[i]]
    return {
        "pixel_accuracy": np.trace(n) / t.sum(),
        "mean_accuracy": np.mean(accuracy),
        "mean_iou": np.nanmean(iou),
        "frequency_weighted_iou": sum(t[i] * iou[i] for i in range(num_classes) if t[i]) / t.sum(),
        "per_class_iou": iou,
    }, n


def test_hand_computed_two_classes():
    # 6 counted pixels and 2 ignored (255): class 0 has 3 pixels, 2 right and 1 taken
    # for class 1; class 1 has 3 pixels, all right.
    labels = np.array([[[0, 0, 0, 1], [1, 1, 255, 255]]])
    predicted = np.array([[[0, 0, 1, 1], [1, 1, 0, 1]]])
    metric = metrics.ConfusionMatrix(num_classes=2)
    metric.update_state(labels, _logits(predicted, 2))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(metric.result()), [[2, 1], [0, 3]])
    figures = metric.figures()
    # IU_0 = 2 / (3 + 2 - 2) = 2/3, IU_1 = 3 / (3 + 4 - 3) = 3/4.
    assert figures["pixel_accuracy"] == pytest.approx(5 / 6)
    assert figures["mean_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert figures["mean_iou"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert figures["frequency_weighted_iou"] == pytest.approx((3 * 2 / 3 + 3 * 3 / 4) / 6)
    assert figures["per_class_iou"] == pytest.approx({0: 2 / 3, 1: 3 / 4})


@pytest.mark.floor
def test_hand_computed_three_classes_with_an_absent_class():
    # n = [[1, 1, 0], [0, 0, 0], [0, 0, 2]]: class 1 is never true but predicted once,
    # so its IU is 0 and counts in mean IU, while it has no accuracy.
    labels = np.array([[[0, 0, 2, 2]]])
    predicted = np.array([[[0, 1, 2, 2]]])
    figures = metrics.segmentation_figures(metrics.confusion_matrix(labels, _logits(predicted, 3), 3))
    assert float(figures["pixel_accuracy"]) == pytest.approx(3 / 4)
    assert float(figures["mean_accuracy"]) == pytest.approx((1 / 2 + 1) / 2)
    assert float(figures["mean_iou"]) == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert float(figures["frequency_weighted_iou"]) == pytest.approx((2 * 1 / 2 + 2 * 1) / 4)
    # A class neither true nor predicted is left out of every mean, with a NaN IU.
    figures = metrics.segmentation_figures([[1, 0, 0], [0, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(np.isnan(keras.ops.convert_to_numpy(figures["per_class_iou"])), [0, 1, 0])
    assert float(figures["mean_iou"]) == 1.0 and float(figures["mean_accuracy"]) == 1.0


def test_against_paper_definitions_and_streaming():
    rng = np.random.default_rng(0)
    num_classes = 5
    batches = []
    for height, width in [(7, 9), (4, 4), (11, 3)]:
        labels = rng.integers(0, num_classes - 1, (2, height, width))  # class 4 is never true
        labels[rng.random(labels.shape) < 0.2] = 255
        labels[0, 0, 0] = 9  # outside [0, num_classes): skipped like 255
        predicted = np.where(rng.random(labels.shape) < 0.6, np.clip(labels, 0, 3), rng.integers(0, 4, labels.shape))
        batches.append((labels, predicted))
    streaming = metrics.ConfusionMatrix(num_classes)
    for labels, predicted in batches:
        streaming.update_state(labels, _logits(predicted, num_classes))
    all_labels = np.concatenate([b[0].ravel() for b in batches])
    all_predicted = np.concatenate([b[1].ravel() for b in batches])
    expected, n = _paper_figures(all_labels, all_predicted, num_classes)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(streaming.result()), n)
    one_shot = metrics.ConfusionMatrix(num_classes)
    one_shot.update_state(all_labels[None, None], _logits(all_predicted[None, None], num_classes))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(one_shot.result()), n)
    figures = streaming.figures(class_names=list("abcde"))
    for key in metrics.FIGURES:
        assert figures[key] == pytest.approx(expected[key], rel=1e-6)
    np.testing.assert_allclose(list(figures["per_class_iou"].values()), expected["per_class_iou"], rtol=1e-6)
    assert list(figures["per_class_iou"]) == list("abcde") and np.isnan(figures["per_class_iou"]["e"])
    for figure, cls in SCALAR_METRICS.items():
        metric = cls(num_classes)
        for labels, predicted in batches:
            metric.update_state(labels, _logits(predicted, num_classes))
        assert metric.name == figure
        assert float(keras.ops.convert_to_numpy(metric.result())) == pytest.approx(expected[figure], rel=1e-6)
        metric.reset_state()
        assert np.isnan(keras.ops.convert_to_numpy(metric.result()))


def test_ignored_pixels_are_not_counted():
    labels = np.array([[[0, 255, 1, 7]]], "uint8")
    metric = metrics.ConfusionMatrix(num_classes=2)
    for predicted in ([0, 0, 1, 0], [0, 1, 1, 1]):
        metric.update_state(labels, _logits(np.array([[predicted]]), 2))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(metric.result()), [[2, 0], [0, 2]])


def test_mean_iou_is_keras_mean_iou_with_ignore_class_255():
    # What MeanIoU's docstring says of Keras 3's metric: it skips label 255 and leaves absent classes out too.
    rng = np.random.default_rng(0)
    labels, predicted = rng.integers(0, 3, (2, 5, 6)), rng.integers(0, 3, (2, 5, 6))  # class 3 absent from both
    labels[0, 0] = 255
    expected = _paper_figures(labels, predicted, 4)[0]["mean_iou"]
    ours = metrics.MeanIoU(4)
    theirs = keras.metrics.MeanIoU(4, ignore_class=255, sparse_y_pred=False)
    for metric in (ours, theirs):
        metric.update_state(labels, _logits(predicted, 4))
        assert float(keras.ops.convert_to_numpy(metric.result())) == pytest.approx(expected, rel=1e-6)


def test_sample_weight_masks_pixels():
    labels = np.array([[[0, 1]], [[1, 1]]])
    predicted = np.array([[[0, 0]], [[1, 1]]])
    per_image = metrics.confusion_matrix(labels, _logits(predicted, 2), 2, sample_weight=np.array([0.0, 2.0]))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(per_image), [[0, 0], [0, 2]])
    per_pixel = metrics.confusion_matrix(labels, _logits(predicted, 2), 2, sample_weight=np.array([[[1, 0]], [[0, 1]]]))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(per_pixel), [[1, 0], [0, 1]])


def test_low_precision_logits():
    labels = np.array([[[0, 1, 2]]], "uint8")
    logits = keras.ops.cast(_logits(np.array([[[0, 2, 2]]]), 3), "bfloat16")
    metric = metrics.MeanIoU(3)
    metric.update_state(labels, logits)
    assert float(keras.ops.convert_to_numpy(metric.result())) == pytest.approx((1 + 0 + 1 / 2) / 3)


def test_config_round_trip():
    for cls in (metrics.ConfusionMatrix, *SCALAR_METRICS.values()):
        metric = cls(7, ignore_index=None)
        revived = keras.metrics.deserialize(keras.metrics.serialize(metric))
        assert type(revived) is cls
        assert revived.get_config() == metric.get_config()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="num_classes=0"):
        metrics.MeanIoU(0)
    with pytest.raises(ValueError, match="ignore_index='void'"):
        metrics.ConfusionMatrix(3, ignore_index="void")
    with pytest.raises(ValueError, match=r"Received y_pred of shape \(1, 1, 2, 4\)"):
        metrics.confusion_matrix(np.zeros((1, 1, 2)), np.zeros((1, 1, 2, 4)), 3)
    metric = metrics.ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"one name per class, 3 names\. Received 2: class_names=\['a', 'b'\]"):
        metric.figures(class_names=["a", "b"])


@pytest.mark.floor
def test_compile_and_fit_report_the_paper_figures():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (4, 6, 8, 3)).astype("float32")
    labels = rng.integers(0, 3, (4, 6, 8)).astype("uint8")
    labels[:, 0] = 255
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(3, 3, padding="same")(keras.layers.Conv2D(4, 3, padding="same")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss=SegmentationCrossEntropy(),
        metrics=[cls(3) for cls in SCALAR_METRICS.values()],
        jit_compile=True,
    )
    history = model.fit(images, labels, batch_size=2, epochs=2, verbose=0)
    assert set(SCALAR_METRICS) <= set(history.history)
    reported = model.evaluate(images, labels, batch_size=2, verbose=0, return_dict=True)
    predicted = np.argmax(keras.ops.convert_to_numpy(model(images)), axis=-1)
    expected, _ = _paper_figures(labels, predicted, 3)
    for figure in SCALAR_METRICS:
        assert reported[figure] == pytest.approx(expected[figure], rel=1e-5)


def test_counts_past_the_int32_limit_do_not_wrap():
    # A cell one pixel short of the first word's carry, with 127 carries already: one more pixel makes it 2**31, one
    # past int32's largest value, which a single int32 count wraps to -2**31.
    metric = metrics.ConfusionMatrix(2)
    metric.confusion_high.assign(np.array([[127, 0], [0, 0]], np.int32))
    metric.confusion_low.assign(np.array([[2**24 - 1, 0], [0, 0]], np.int32))
    metric.update_state(np.array([[[0, 1, 1]]]), _logits(np.array([[[0, 1, 0]]]), 2))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(metric.result()), [[2**31, 0], [1, 1]])
    figures = metric.figures()
    # numpy in float64: class 0 has 2**31 right and 1 false positive; class 1 has 1 right and 1 missed.
    assert figures["per_class_iou"] == pytest.approx({0: 2**31 / (2**31 + 1), 1: 0.5})
    assert figures["pixel_accuracy"] == pytest.approx((2**31 + 1) / (2**31 + 2))
    # Further updates carry into the high word and keep the low word below it.
    for _ in range(3):
        metric.update_state(np.zeros((1, 1, 5)), _logits(np.zeros((1, 1, 5), int), 2))
    high, low = (int(keras.ops.convert_to_numpy(word.value)[0, 0]) for word in (metric.confusion_high, metric.confusion_low))
    assert (high, low) == (128, 15)  # 128 * 2**24 + 15 = 2**31 + 15, exact
    assert float(keras.ops.convert_to_numpy(metric.result())[0, 0]) == pytest.approx(2**31 + 15, rel=6e-8)
