import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_fcn
from keras_fcn.inference import evaluate, predict, unpadded_sizes
from keras_fcn.precision import dtype_policies
from _inference_helpers import random_fcn8s

NUM_CLASSES = 3
# These tests are about what predict and evaluate compute, not the engine (tests/test_engines.py): the engine
# that runs the model in this process, without an export.
TF = "tensorflow"


class RedChannelOneHot(keras.layers.Layer):
    """Logits that are the one-hot of the red channel: the model predicts exactly `image[..., 0]`."""

    def call(self, images):
        return 10.0 * keras.ops.one_hot(keras.ops.cast(images[..., 0], "int32"), NUM_CLASSES)


def _oracle():
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, RedChannelOneHot()(inputs))


def _images(predicted):
    return np.repeat(predicted[..., None], 3, axis=-1).astype("uint8")


@pytest.mark.backend_agnostic
def test_evaluate_over_batches_of_different_sizes():
    # Two batches, 2x3 then 1x2. Class 2 is predicted once but never true (IU 0, no accuracy).
    labels_1 = np.array([[[0, 0, 1], [1, 255, 1]]])
    predicted_1 = np.array([[[0, 1, 1], [1, 0, 2]]])
    labels_2 = np.array([[[0, 1]]])
    predicted_2 = np.array([[[0, 1]]])
    dataset = [(_images(predicted_1), labels_1.astype("uint8")), (_images(predicted_2), labels_2.astype("uint8"))]
    figures = evaluate(_oracle(), dataset, class_names=["background", "cat", "dog"], engine=TF, verbose=0)
    # n = [[2, 1, 0], [0, 3, 1], [0, 0, 0]]; t = (3, 4, 0); predicted totals (2, 4, 1).
    assert figures["pixel_accuracy"] == pytest.approx(5 / 7)
    assert figures["mean_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    iou = {"background": 2 / 3, "cat": 3 / 5, "dog": 0.0}
    assert figures["per_class_iou"] == pytest.approx(iou)
    assert figures["mean_iou"] == pytest.approx(sum(iou.values()) / 3)
    assert figures["frequency_weighted_iou"] == pytest.approx((3 * 2 / 3 + 4 * 3 / 5) / 7)
    # Two classes of one name would share a key: one IU would be lost.
    with pytest.raises(ValueError, match=r"`class_names` must name each class differently; 'cat' names two"):
        evaluate(_oracle(), dataset, class_names=["background", "cat", "cat"], engine=TF, verbose=0)


@pytest.mark.backend_agnostic
def test_evaluate_ends_its_progress_line_whether_or_not_it_knows_the_number_of_batches(capsys):
    dataset = [(_images(np.array([[[0, 1]]])), np.array([[[0, 1]]]))] * 2
    for batches in (dataset, iter(dataset)):  # a list has a length; an iterator does not
        evaluate(_oracle(), batches, engine=TF, verbose=1)
        out = capsys.readouterr().out
        assert "mean_iou: 1.0000" in out and out.endswith("\n")
        assert out.count("\n") == 1  # one line, ended once (a log file shows each update of the bar)


@pytest.mark.backend_agnostic
def test_evaluate_defaults_and_checks():
    dataset = [(_images(np.array([[[0, 1]]])), np.array([[[0, 0]]]))]
    figures = evaluate(_oracle(), iter(dataset), engine=TF, verbose=0)
    assert figures["per_class_iou"] == pytest.approx({0: 0.5, 1: 0.0, 2: np.nan}, nan_ok=True)
    with pytest.raises(ValueError, match="scores 3 classes but `num_classes` is 4"):
        evaluate(_oracle(), dataset, num_classes=4, verbose=0)
    with pytest.raises(ValueError, match=r"one name per class, 3 names\. Received 2: "):
        evaluate(_oracle(), dataset, class_names=["a", "b"], num_classes=3, verbose=0)
    # Names are a list or tuple of distinct, non-blank str: a bare str, ints or an empty name are refused.
    for names in ("abc", [0, 1, 2], ["a", "", "c"], ["a ", "a", "b"], ["a", "b", "a"]):
        with pytest.raises(ValueError, match=r"`class_names` must (be a list, tuple|name each class differently)"):
            evaluate(_oracle(), dataset, class_names=names, verbose=0)
    figures = evaluate(_oracle(), iter(dataset), class_names=np.array(["a", "b", "c"]), engine=TF, verbose=0)
    assert list(figures["per_class_iou"]) == ["a", "b", "c"]
    # Without num_classes, the names' count is checked against the model's, and the message names them.
    with pytest.raises(ValueError, match=r"scores 3 classes but `class_names` names 2\. Received class_names=\['a', 'b'\]"):
        evaluate(_oracle(), dataset, class_names=["a", "b"], verbose=0)
    # A label that is neither a class nor the ignore label is a data error, not a pixel to drop.
    second = (_images(np.array([[[0, 1, 1]]])), np.array([[[0, 7, 255]]]))
    with pytest.raises(keras_fcn.errors.InvalidDataError, match=r"The masks of batch 2 hold labels \[7\] that are "
                       r"neither classes \(0 to 2\) nor the ignore label \(255\)"):
        evaluate(_oracle(), [*dataset, second], engine=TF, verbose=0)
    unbatched = (_images(np.array([[0, 1]])), np.array([[0, 1]]))
    with pytest.raises(ValueError, match=r"Batch 1 has images of shape \(1, 2, 3\) and masks of shape \(1, 2\)"):
        evaluate(_oracle(), [unbatched], engine=TF, verbose=0)
    wider_mask = (_images(np.array([[[0, 1]]])), np.array([[[0, 1, 1]]]))
    with pytest.raises(ValueError, match=r"Batch 1 has images of shape \(1, 1, 2, 3\) and masks of shape \(1, 1, 3\)"):
        evaluate(_oracle(), [wider_mask], engine=TF, verbose=0)
    with pytest.raises(ValueError, match=r"`images` must be a batch of shape \(batch, height, width, 3\), as the model "
                       r"takes them. Received shape \(1, 2, 3\)"):
        keras_fcn.inference_function(_oracle(), engine=TF)(_images(np.array([[0, 1]])))


@pytest.mark.backend_agnostic
def test_evaluate_takes_a_tf_dataset():
    images = _images(np.array([[[2, 1], [1, 1]]] * 3))
    masks = np.array([[[2, 1], [1, 255]]] * 3, "uint8")
    dataset = tf.data.Dataset.from_tensor_slices((images, masks)).batch(2)
    figures = evaluate(_oracle(), dataset, engine=TF, verbose=0)
    assert figures["pixel_accuracy"] == 1.0 and figures["mean_iou"] == 1.0


@pytest.mark.backend_agnostic
def test_predict_each_image_at_its_own_size():
    rng = np.random.default_rng(0)
    sizes = [(5, 7), (3, 3), (5, 7), (8, 2), (5, 7), (3, 3)]
    expected = [rng.integers(0, NUM_CLASSES, size) for size in sizes]
    images = [_images(labels) if i % 2 else _images(labels).astype("float32") for i, labels in enumerate(expected)]
    for batch_size in (1, 2):
        label_maps = predict(_oracle(), images, batch_size=batch_size, engine=TF)
        assert len(label_maps) == len(images)
        for label_map, labels in zip(label_maps, expected):
            assert label_map.dtype == np.uint8
            np.testing.assert_array_equal(label_map, labels)


@pytest.mark.backend_agnostic
def test_predict_checks():
    with pytest.raises(ValueError, match="batch_size=0"):
        predict(_oracle(), [], batch_size=0)
    with pytest.raises(ValueError, match=r"images\[1\] of shape \(4, 4\)"):
        predict(_oracle(), [np.zeros((4, 4, 3)), np.zeros((4, 4))])
    inputs = keras.Input((None, None, 3))
    halving = keras.Model(inputs, keras.layers.Conv2D(2, 1, strides=2)(inputs))
    with pytest.raises(ValueError, match="output scores at the size of its input"):
        predict(halving, [np.zeros((4, 4, 3))], engine=TF)


def test_predict_and_evaluate_fcn8s_on_odd_sizes():
    # Not rerun under JAX, which compiles the backbone once per image size (about a minute here).
    model = keras_fcn.FCN8s(
        num_classes=NUM_CLASSES, backbone="mobilenet", backbone_weights=None, backbone_kwargs={"alpha": 0.25}
    )
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (37, 45, 3)).astype("uint8"), rng.integers(0, 256, (50, 33, 3)).astype("uint8")]
    label_maps = predict(model, images, engine=TF)
    assert [m.shape for m in label_maps] == [(37, 45), (50, 33)]
    assert all(m.dtype == np.uint8 and m.max() < NUM_CLASSES for m in label_maps)
    pairs = [(image[None], label_map[None]) for image, label_map in zip(images, label_maps)]
    figures = evaluate(model, pairs, engine=TF, verbose=0)
    assert figures["pixel_accuracy"] == 1.0 and figures["mean_accuracy"] == 1.0


class CountingIdentity(keras.layers.Layer):
    """Passes its input through and counts the Python calls of `call`: one per trace in a compiled function."""

    calls = 0

    def call(self, x):
        CountingIdentity.calls += 1
        return x


def test_inference_function_is_traced_once_for_every_size_and_batch():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, RedChannelOneHot()(CountingIdentity()(inputs)))
    CountingIdentity.calls = 0  # building the model called it once
    for options in ({}, {"jit_compile": True}):
        run = keras_fcn.inference_function(model, engine=TF, **options)
        for shape in [(1, 5, 7), (2, 5, 7), (1, 9, 4), (3, 2, 2)]:
            labels = np.random.default_rng(sum(shape)).integers(0, NUM_CLASSES, shape)
            logits = run(_images(labels))
            assert logits.dtype == np.float32
            np.testing.assert_array_equal(logits, 10.0 * np.eye(NUM_CLASSES)[labels])
    assert CountingIdentity.calls == 2  # one trace per function


def test_bfloat16_inference_is_close_to_float32():
    model = keras_fcn.FCN8s(
        num_classes=NUM_CLASSES, backbone="mobilenet", backbone_weights=None, backbone_kwargs={"alpha": 0.25}
    )
    rng = np.random.default_rng(1)
    for layer in ("score_fr", "score_pool4", "score_pool3"):
        kernel, bias = model.get_layer(layer).get_weights()
        model.get_layer(layer).set_weights([rng.normal(size=kernel.shape).astype("float32"), bias])
    images = rng.uniform(0, 255, (2, 64, 96, 3)).astype("float32")
    exact = keras_fcn.inference_function(model, engine=TF)(images)
    approximate = keras_fcn.inference_function(model, engine=TF, precision="bfloat16")(images)
    assert approximate.dtype == np.float32
    # bfloat16 keeps 8 significant bits: logits within a few percent of their range.
    assert np.abs(approximate - exact).max() < 0.05 * np.abs(exact).max()
    assert np.mean(approximate.argmax(-1) == exact.argmax(-1)) > 0.95
    assert model.dtype_policy.name == "float32"  # the model itself is left as it was


def test_predict_reuses_the_models_function_which_reads_its_current_weights():
    inputs = keras.Input((None, None, 3))
    layer = keras.layers.Conv2D(2, 1, use_bias=False, kernel_initializer="ones")
    model = keras.Model(inputs, layer(CountingIdentity()(inputs)))
    CountingIdentity.calls = 0
    image = np.zeros((3, 4, 3), "float32")
    image[0, 0] = [1, 0, 0]
    assert predict(model, [image], engine=TF)[0][0, 0] == 0  # a tie: argmax takes class 0
    layer.kernel.assign(np.array([[[[0, 1], [0, 0], [0, 0]]]], "float32"))
    assert predict(model, [image, image[:2]], engine=TF)[0][0, 0] == 1
    assert keras_fcn.inference_function(model, engine=TF) is keras_fcn.inference_function(model, engine=TF)
    assert CountingIdentity.calls == 1


def test_a_function_in_another_precision_follows_the_weights():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, use_bias=False, kernel_initializer="ones")(inputs))
    copied = keras_fcn.inference_function(model, engine=TF, precision="bfloat16")  # runs a bfloat16 copy
    live = keras_fcn.inference_function(model, engine=TF)
    image = np.ones((1, 2, 2, 3), "float32")
    np.testing.assert_array_equal(copied(image), np.full((1, 2, 2, 2), 3.0))  # 3 and 6 are exact in bfloat16
    model.layers[-1].kernel.assign(np.full((1, 1, 3, 2), 2.0, "float32"))
    np.testing.assert_array_equal(copied(image), np.full((1, 2, 2, 2), 6.0))
    np.testing.assert_array_equal(live(image), np.full((1, 2, 2, 2), 6.0))


@pytest.mark.backend_agnostic
def test_inference_function_checks_its_arguments():
    with pytest.raises(
        ValueError, match=r"`precision` must be one of \['auto', 'float32', 'bfloat16', 'float16'\]. Received precision='int8'"
    ):
        keras_fcn.inference_function(_oracle(), precision="int8")
    with pytest.raises(ValueError, match=r"`engine` must be one of \['auto', 'tensorflow', 'openvino', 'onnxruntime'\]"):
        keras_fcn.inference_function(_oracle(), engine="tensorrt")
    if keras.backend.backend() == "tensorflow":
        with pytest.raises(ValueError, match="`jit_compile=True` is a TensorFlow option. Received engine='openvino'"):
            keras_fcn.inference_function(_oracle(), engine="openvino", jit_compile=True)
    else:
        with pytest.raises(ValueError, match="`jit_compile=True` needs the TensorFlow backend"):
            keras_fcn.inference_function(_oracle(), jit_compile=True)


def _numpy_figures(pairs, num_classes):
    """Mean IU and pixel accuracy from `(labels, predicted)` pairs, as the paper defines them (numpy only)."""
    confusion = np.zeros((num_classes, num_classes))
    for labels, predicted in pairs:
        valid = labels != 255
        confusion += np.bincount(
            num_classes * labels[valid].astype(int) + predicted[valid], minlength=num_classes**2
        ).reshape(num_classes, num_classes)
    with np.errstate(invalid="ignore"):  # a class absent from labels and predictions: NaN, left out of the mean
        iu = np.diag(confusion) / (confusion.sum(0) + confusion.sum(1) - np.diag(confusion))
    return np.nanmean(iu), np.diag(confusion).sum() / confusion.sum()


def test_evaluate_scores_each_image_at_its_own_size_for_any_batch_size(rng):
    # The bundled camvid model on crops of mixed sizes of the sample street (two sizes repeated), masks its own
    # predictions at a shifted position with 10% void: batched by keras_fcn.data.batch, padded with the mean
    # (masks with 255). Padding seen by the model changes its predictions near the edges.
    model = keras_fcn.zoo.load_model("camvid")
    street = np.asarray(Image.open(keras_fcn.assets.sample_image_path()).convert("RGB"))
    boxes = [(0, 0, 96, 128), (40, 200, 150, 96), (100, 100, 96, 128), (200, 0, 72, 160),
             (150, 300, 110, 110), (0, 350, 150, 96), (250, 150, 64, 180), (20, 60, 120, 90)]
    images = [street[top : top + height, left : left + width] for top, left, height, width in boxes]
    run = keras_fcn.inference_function(model, engine=TF)
    predictions = [run(image[None])[0].argmax(-1) for image in images]
    masks = [np.where(rng.random(p.shape) < 0.1, 255, np.roll(p, 3, axis=1)).astype("uint8") for p in predictions]
    expected_iou, expected_accuracy = _numpy_figures(zip(masks, predictions), model.output_shape[-1])
    pairs = tf.data.Dataset.from_generator(
        lambda: zip(images, masks),
        output_signature=(tf.TensorSpec((None, None, 3), tf.uint8), tf.TensorSpec((None, None), tf.uint8)),
    )
    for batch_size in (1, 3, 8):
        figures = evaluate(model, keras_fcn.data.batch(pairs, batch_size), engine=TF, verbose=0)
        assert figures["mean_iou"] == pytest.approx(expected_iou, rel=1e-6), batch_size
        assert figures["pixel_accuracy"] == pytest.approx(expected_accuracy, rel=1e-6), batch_size
    # With test-time augmentation too: each image alone, mirrored and enlarged 1.5 times, whatever the batches.
    augmented = keras_fcn.test_time.augmented_inference(run, scales=(1.0, 1.5), flip=True)
    predictions = [augmented(image[None])[0].argmax(-1) for image in images]
    expected_iou, expected_accuracy = _numpy_figures(zip(masks, predictions), model.output_shape[-1])
    for batch_size in (1, 8):
        batches = keras_fcn.data.batch(pairs, batch_size)
        figures = evaluate(model, batches, engine=TF, flip=True, scales=(1.0, 1.5), verbose=0)
        assert figures["mean_iou"] == pytest.approx(expected_iou, rel=1e-6), batch_size
        assert figures["pixel_accuracy"] == pytest.approx(expected_accuracy, rel=1e-6), batch_size


def test_unpadded_sizes_finds_the_padding_at_the_bottom_and_right():
    images = np.full((4, 4, 5, 3), 7.0)
    masks = np.full((4, 4, 5), 255)
    masks[0, :2, :3] = 1  # a 2x3 image padded to 4x5
    masks[1, 0, 0] = 1  # unlabelled last row and column, but neither all of the padding value: 4x5, unpadded
    images[1, -1, 1] = images[1, 0, -1] = 0.0
    masks[2] = 0  # a full 4x5 image of one colour
    # images[3]: all padding
    assert unpadded_sizes(images, masks) == [(2, 3), (4, 5), (4, 5), (0, 0)]
    assert unpadded_sizes(images, masks, ignore_index=None) == [(4, 5)] * 4


def _reloaded_and_float32_copy(policy, rng, tmp_path):
    """A model trained under `policy`, saved and reloaded, and a float32 FCN-8s built with the same weights."""
    random_fcn8s(rng, NUM_CLASSES, policy).save(tmp_path / "mixed.keras")
    reloaded = keras.saving.load_model(tmp_path / "mixed.keras", compile=False)
    # It reloads with each layer's policy but a float32 model policy.
    assert policy in dtype_policies(reloaded) and reloaded.dtype_policy.name == "float32"
    float32 = keras_fcn.FCN8s(
        num_classes=NUM_CLASSES, backbone="mobilenet", backbone_weights=None, backbone_kwargs={"alpha": 0.25}
    )
    float32.set_weights(reloaded.get_weights())
    assert dtype_policies(float32) == {"float32"}
    return reloaded, float32


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_float32_means_float32_in_every_layer_of_a_reloaded_mixed_precision_model(policy, rng, tmp_path):
    reloaded, float32 = _reloaded_and_float32_copy(policy, rng, tmp_path)
    images = rng.uniform(0, 255, (2, 64, 96, 3)).astype("float32")
    expected = float32.predict(images, verbose=0)
    logits = keras_fcn.inference_function(reloaded, engine=TF, precision="float32")(images)
    assert np.abs(logits - expected).max() <= 1e-5 * np.abs(expected).max()


def test_predict_and_evaluate_of_a_mixed_precision_model_are_exact_by_default(rng, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # the default engine may cache an export
    reloaded, float32 = _reloaded_and_float32_copy("mixed_bfloat16", rng, tmp_path)
    images = rng.uniform(0, 255, (2, 64, 96, 3)).astype("float32")
    logits = float32.predict(images, verbose=0)
    # The function predict and evaluate run by default: the engines' float32 tolerance (bfloat16 is 1e-2 away).
    assert np.abs(keras_fcn.inference_function(reloaded)(images) - logits).max() <= 1e-4 * np.abs(logits).max()
    expected = logits.argmax(-1)
    np.testing.assert_array_equal(np.stack(predict(reloaded, list(images))), expected)
    figures = evaluate(reloaded, [(images, expected)], verbose=0)
    assert figures["pixel_accuracy"] == 1.0 and figures["mean_iou"] == 1.0


def test_a_saved_sequential_model_is_run_as_a_functional_one(rng, tmp_path):
    # A reloaded Sequential model has an input shape but, in Keras 3.15, no `model.input` until it is called.
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(NUM_CLASSES, 3, padding="same")])
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    model.save(tmp_path / "sequential.keras")
    images = [rng.uniform(0, 255, (9, 13, 3)).astype("float32"), rng.uniform(0, 255, (6, 5, 3)).astype("float32")]
    labels = keras_fcn.predict(str(tmp_path / "sequential.keras"), images, engine=TF)
    for image, label_map in zip(images, labels):
        np.testing.assert_array_equal(label_map, model.predict(image[None], verbose=0)[0].argmax(-1))
