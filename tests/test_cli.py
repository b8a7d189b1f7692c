"""The keras-fcn command line: train options, evaluate, predict, export, zoo, help, and errors."""

import dataclasses
import importlib.util
import inspect
import json
import os
import pathlib
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_fcn
from keras_fcn import cli, training
from keras_fcn.training import options
from keras_fcn.assets import sample_image_path
from _training_helpers import NUM_CLASSES, TINY_MODEL, run_python, write_pairs

NAMES = ["sky", "road", "car"]
# The PASCAL VOC colours of classes 0, 1, 2 (VOCdevkit labelcolormap).
VOC_COLOURS = np.array([(0, 0, 0), (128, 0, 0), (0, 128, 0)])
DRAW_STREET = pathlib.Path(__file__).resolve().parent.parent / "examples" / "draw_street.py"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny FCN-8s with random score layers, saved with its class names as `keras-fcn train` saves them."""
    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(0)
    model = keras_fcn.FCN8s(NUM_CLASSES, **TINY_MODEL)
    for name in ("score_fr", "score_pool4", "score_pool3"):
        layer = model.get_layer(name)
        layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()])
    model.save(folder / "best.keras")
    (folder / "classes.json").write_text(json.dumps({"class_names": NAMES}))
    return model, str(folder / "best.keras")


def _softmax(logits):
    exponentials = np.exp(logits - logits.max(-1, keepdims=True))
    return exponentials / exponentials.sum(-1, keepdims=True)


def test_evaluate_with_flip_scores_the_mean_of_image_and_mirror_probabilities(tmp_path):
    # A lopsided convolution, far from mirror symmetric, so that flipping changes the labels.
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, (3, 7), padding="same")(inputs))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.05, size=w.shape).astype("float32") for w in model.get_weights()])
    path = str(tmp_path / "lopsided.keras")
    model.save(path)
    data = write_pairs(tmp_path / "val", 2, size=(40, 48), seed=3)
    assert cli.main(["evaluate", path, data, "--flip", "--json", str(tmp_path / "figures.json")]) == 0
    correct = total = changed = 0
    for index in range(2):
        image = read_rgb(f"{data}/images/{index:03d}.png")[None].astype("float32")
        labels = np.asarray(Image.open(f"{data}/masks/{index:03d}.png"))
        mirrored = _softmax(model.predict(image[:, :, ::-1], verbose=0))[:, :, ::-1]
        predicted = (_softmax(model.predict(image, verbose=0)) + mirrored)[0].argmax(-1)
        correct, total = correct + (predicted == labels).sum(), total + labels.size
        unflipped = model.predict(image, verbose=0)[0].argmax(-1)
        changed = changed + (unflipped != predicted).sum()
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["pixel_accuracy"] == pytest.approx(correct / total) and figures["flip"] is True
    assert changed > 0


def test_evaluate_with_scales_scores_the_mean_of_the_rescaled_images_probabilities(tmp_path):
    # A convolution of 9x9 pixels sees a different scene at each scale, so the labels change with the scales.
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, 9, padding="same")(inputs))
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(scale=0.05, size=w.shape).astype("float32") for w in model.get_weights()])
    path = str(tmp_path / "wide.keras")
    model.save(path)
    data = write_pairs(tmp_path / "val", 2, size=(40, 48), seed=3)
    argv = ["evaluate", path, data, "--scales", "1,1.5", "--json", str(tmp_path / "figures.json"), "--plot", str(tmp_path)]
    assert cli.main(argv) == 0
    correct = total = changed = 0
    for index in range(2):
        image = read_rgb(f"{data}/images/{index:03d}.png")[None].astype("float32")
        labels = np.asarray(Image.open(f"{data}/masks/{index:03d}.png"))
        larger = model.predict(tf.image.resize(image, (60, 72)).numpy(), verbose=0)
        larger = _softmax(tf.image.resize(larger, (40, 48)).numpy())
        predicted = (_softmax(model.predict(image, verbose=0)) + larger)[0].argmax(-1)
        correct, total = correct + (predicted == labels).sum(), total + labels.size
        changed = changed + (model.predict(image, verbose=0)[0].argmax(-1) != predicted).sum()
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["pixel_accuracy"] == pytest.approx(correct / total) and figures["scales"] == [1.0, 1.5]
    assert figures["flip"] is False and changed > 0


def test_evaluate_of_a_named_dataset_reads_only_its_validation_split(tmp_path):
    # CamVid's val alone: no train folder, which `keras-fcn train` would need and evaluate must not read.
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(11, 1)(inputs))
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(scale=0.05, size=w.shape).astype("float32") for w in model.get_weights()])
    path = str(tmp_path / "camvid11.keras")
    model.save(path)
    val = write_pairs(tmp_path / "camvid" / "val", 2, size=(24, 32), seed=5)
    command = ["evaluate", path, "camvid", "--data-root", str(tmp_path / "camvid"), "--engine", "tensorflow"]
    assert cli.main([*command, "--json", str(tmp_path / "figures.json")]) == 0
    correct = total = 0
    for index in range(2):
        image = read_rgb(f"{val}/images/{index:03d}.png")[None].astype("float32")
        labels = np.asarray(Image.open(f"{val}/masks/{index:03d}.png"))
        correct += (model.predict(image, verbose=0)[0].argmax(-1) == labels).sum()
        total += labels.size
    assert json.loads((tmp_path / "figures.json").read_text())["pixel_accuracy"] == pytest.approx(correct / total)


def test_evaluate_refuses_class_counts_that_disagree_with_the_model_naming_both(tmp_path, capsys):
    # A 3-class model on CamVid (11 classes), or with 2 names: the counts are named, not the masks' labels.
    inputs = keras.Input((None, None, 3))
    path = str(tmp_path / "three.keras")
    keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs)).save(path)
    write_pairs(tmp_path / "camvid" / "val", 1, size=(24, 32))
    data = write_pairs(tmp_path / "val", 1, size=(24, 32))
    cases = [
        (["evaluate", path, "camvid", "--data-root", str(tmp_path / "camvid")],
         f"The model scores 3 classes, but dataset 'camvid' has 11: evaluate a model of its classes. Received "
         f"model={path!r}"),
        (["evaluate", path, data, "--class-names", "a,b"],
         "argument --class-names: the model scores 3 classes; received 2: a,b"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2
        assert capsys.readouterr().err.strip() == f"keras-fcn evaluate: error: {message}"
    # predict refuses them before any engine is made, from a zoo entry's classes or the model's own.
    for model, count in (("camvid", 11), (path, 3)):
        assert cli.main(["predict", model, "--class-names", "a,b", "--output-dir", str(tmp_path / "out")]) == 2
        captured = capsys.readouterr()
        assert captured.err.strip() == (
            f"keras-fcn predict: error: argument --class-names: the model scores {count} classes; received 2: a,b"
        )
        assert "Running" not in captured.out


def read_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_evaluate_prints_and_writes_the_paper_figures(saved_model, tmp_path, capsys):
    model, path = saved_model
    data = write_pairs(tmp_path / "val", 3, size=(40, 48))
    assert cli.main(["evaluate", path, data, "--json", str(tmp_path / "figures.json")]) == 0
    confusion = np.zeros((3, 3))
    for index in range(3):
        image = read_rgb(f"{data}/images/{index:03d}.png")[None].astype("float32")
        labels = np.asarray(Image.open(f"{data}/masks/{index:03d}.png"))
        predicted = model.predict(image, verbose=0)[0].argmax(-1)
        np.add.at(confusion, (labels.ravel(), predicted.ravel()), 1)
    diagonal, truth, predicted_counts = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    iou = diagonal / (truth + predicted_counts - diagonal)
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["pixel_accuracy"] == pytest.approx(diagonal.sum() / confusion.sum())
    assert figures["mean_accuracy"] == pytest.approx(np.mean(diagonal / truth))
    assert figures["mean_iou"] == pytest.approx(np.mean(iou))
    assert figures["frequency_weighted_iou"] == pytest.approx((truth * iou).sum() / truth.sum())
    assert list(figures["per_class_iou"]) == NAMES
    assert [figures["per_class_iou"][n] for n in NAMES] == pytest.approx(iou)
    out = capsys.readouterr().out
    assert re.search(rf"^mean IU\s+{np.mean(iou):.4f}$", out, re.MULTILINE)
    for name, value in zip(NAMES, iou):
        assert re.search(rf"^{name}\s+{value:.4f}$", out, re.MULTILINE)


def test_predict_writes_class_index_pngs_and_overlays_with_a_legend(saved_model, tmp_path, capsys):
    model, path = saved_model
    data = write_pairs(tmp_path / "photos", 2, size=(40, 56))
    out = tmp_path / "out"
    assert cli.main(["predict", path, f"{data}/images", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    for index in range(2):
        image = read_rgb(f"{data}/images/{index:03d}.png")
        expected = model.predict(image[None].astype("float32"), verbose=0)[0].argmax(-1)
        labels = Image.open(out / f"{index:03d}.png")
        assert labels.mode == "P"
        np.testing.assert_array_equal(np.asarray(labels), expected)
        assert labels.getpalette()[:9] == VOC_COLOURS.ravel().tolist()
        overlay = read_rgb(out / f"{index:03d}_overlay.png")
        assert overlay.shape[0] >= 40 and overlay.shape[1] > 56
        blend = np.round(0.5 * image + 0.5 * VOC_COLOURS[expected])
        np.testing.assert_allclose(overlay[:40, :56], blend, atol=1)
        legend = overlay[:, 56:]
        for c in np.unique(expected):
            # Each predicted class has a swatch of its colour in the legend.
            assert (legend == VOC_COLOURS[c]).all(-1).sum() >= 100
        shares = np.bincount(expected.ravel(), minlength=3) / expected.size
        line = next(l for l in printed.splitlines() if l.startswith(f"{data}/images/{index:03d}.png"))
        for c in np.flatnonzero(shares):
            assert f"{NAMES[c]} {100 * shares[c]:.1f}%" in line


def test_predict_segments_an_image_named_twice_once(saved_model, tmp_path, capsys):
    _, path = saved_model
    photos = write_pairs(tmp_path / "photos", 2, size=(40, 56)) + "/images"
    out = tmp_path / "out"
    inputs = [f"{photos}/000.png", f"{photos}/./000.png", photos]  # 000.png three times, 001.png once
    assert cli.main(["predict", path, *inputs, "--output-dir", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["000.png", "000_overlay.png", "001.png", "001_overlay.png"]
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(photos)]
    assert [line.split(":")[0] for line in printed] == [f"{photos}/000.png", f"{photos}/001.png"]


def test_predict_refuses_to_write_into_an_input_folder(saved_model, tmp_path, capsys):
    _, path = saved_model
    photos = write_pairs(tmp_path / "photos", 2, size=(40, 56)) + "/images"
    before = sorted(os.listdir(photos))
    assert cli.main(["predict", path, photos, "--output-dir", photos + "/."]) == 2
    assert capsys.readouterr().err.strip() == (
        f"keras-fcn predict: error: argument --output-dir: must not be an input folder, whose images it would mix "
        f"with the outputs; received {photos + '/.'!r} for the input folder {photos!r}"
    )
    assert sorted(os.listdir(photos)) == before


def test_an_engine_that_cannot_run_the_precision_asked_for_is_a_one_line_error(saved_model, tmp_path, capsys):
    _, path = saved_model
    photos = write_pairs(tmp_path / "photos", 1, size=(40, 56)) + "/images"
    command = ["predict", path, photos, "--output-dir", str(tmp_path / "out"), "--engine", "onnxruntime"]
    assert cli.main([*command, "--precision", "bfloat16"]) == 2
    assert capsys.readouterr().err.strip() == (
        'keras-fcn predict: error: engine="onnxruntime" cannot run this model in bfloat16: onnxruntime computes in '
        "float32, not bfloat16."
    )


def test_predict_without_inputs_segments_the_bundled_street_into_predictions(saved_model, tmp_path, monkeypatch, capsys):
    _, path = saved_model
    monkeypatch.chdir(tmp_path)
    assert cli.main(["predict", path]) == 0
    printed = capsys.readouterr().out
    labels = Image.open(tmp_path / "predictions" / "street.png")
    assert labels.mode == "P" and labels.size == (480, 360)
    assert np.asarray(labels).max() < NUM_CLASSES
    overlay = read_rgb(tmp_path / "predictions" / "street_overlay.png")
    assert overlay.shape[0] >= 360 and overlay.shape[1] > 480
    assert f"bundled sample street scene {sample_image_path()}" in printed
    shares = next(line for line in printed.splitlines() if line.startswith(f"{sample_image_path()}: "))
    assert shares.endswith("%") and any(name in shares for name in NAMES)


def test_predict_and_evaluate_in_bfloat16(saved_model, tmp_path, capsys):
    model, path = saved_model
    data = write_pairs(tmp_path / "photos", 1, size=(40, 56))
    out = tmp_path / "out"
    assert cli.main(["predict", path, f"{data}/images", "--output-dir", str(out), "--precision", "bfloat16"]) == 0
    expected = model.predict(read_rgb(f"{data}/images/000.png")[None].astype("float32"), verbose=0)[0].argmax(-1)
    # bfloat16 may flip near-ties; most pixels keep their class.
    assert np.mean(np.asarray(Image.open(out / "000.png")) == expected) > 0.9
    assert cli.main(["evaluate", path, str(data), "--precision", "bfloat16"]) == 0
    assert "mean IU" in capsys.readouterr().out
    with pytest.raises(SystemExit) as error:
        cli.main(["predict", path, "--precision", "int8"])
    assert error.value.code == 2
    assert "argument --precision: invalid choice: 'int8'" in capsys.readouterr().err


def test_sample_image_is_a_360x480_rgb_street_in_the_package():
    path = sample_image_path()
    assert os.path.isabs(path) and pathlib.Path(path).parent == pathlib.Path(keras_fcn.__file__).parent / "assets"
    image = Image.open(path)
    assert image.format == "JPEG" and image.mode == "RGB" and image.size == (480, 360)


def test_sample_image_is_the_one_examples_draw_street_draws(tmp_path):
    spec = importlib.util.spec_from_file_location("draw_street", DRAW_STREET)
    draw_street = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draw_street)
    draw_street.draw(tmp_path / "street.jpg")
    # JPEG decoders may round differently across versions: compare pixels, not bytes.
    difference = read_rgb(tmp_path / "street.jpg").astype(float) - read_rgb(sample_image_path())
    assert np.abs(difference).mean() < 1


def test_export_tflite_matches_the_model_and_savedmodel_serves_any_size(saved_model, tmp_path):
    model, path = saved_model
    # ai_edge_litert, of the `test` extra, imported here: the floors CI job collects this module without it.
    from ai_edge_litert.interpreter import Interpreter

    assert cli.main(["export", path, str(tmp_path / "fcn.tflite"), "--input-size", "40x48"]) == 0
    interpreter = Interpreter(str(tmp_path / "fcn.tflite"))
    interpreter.allocate_tensors()
    images = np.random.default_rng(1).uniform(0, 255, (1, 40, 48, 3)).astype("float32")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(output, model.predict(images, verbose=0), atol=1e-3)

    assert cli.main(["export", path, str(tmp_path / "saved")]) == 0
    served = tf.saved_model.load(str(tmp_path / "saved"))
    other = np.random.default_rng(2).uniform(0, 255, (2, 33, 70, 3)).astype("float32")
    np.testing.assert_allclose(served.serve(other).numpy(), model.predict(other, verbose=0), atol=1e-4)


def test_zoo_list_prints_every_entry(capsys):
    assert cli.main(["zoo", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0].rstrip(":") for line in lines] == keras_fcn.zoo.available()
    voc8s = next(line for line in lines if line.startswith("voc-fcn8s"))
    assert "fcn8s_vgg16_reference, 21 classes" in voc8s


@pytest.mark.parametrize("verb", ["train", "evaluate", "predict", "export", "zoo"])
def test_each_verb_has_help_with_examples(verb, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main([verb, "--help"])
    assert exit.value.code == 0
    assert f"keras-fcn {verb}" in capsys.readouterr().out.split("examples:")[1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "d", "--output-dir", "o", "--optimizer", "rmsprop"],
         "argument --optimizer: invalid choice: 'rmsprop' (choose from 'adam', 'paper', 'sgd')"),
        (["train", "d", "--output-dir", "o", "--crop-size", "360"],
         "argument --crop-size: must be HEIGHTxWIDTH in pixels, e.g. 360x480, not '360'"),
        (["train", "d", "--output-dir", "o", "--strategy", "tpu"],
         "argument --strategy: invalid choice: 'tpu' (choose from 'default', 'mirrored', 'multi-worker')"),
        (["train", "d", "--output-dir", "o", "--backbone-kwargs", "alpha"],
         "argument --backbone-kwargs: must be KEY=VALUE, e.g. alpha=0.25, not 'alpha'"),
        (["train", "d", "--output-dir", "o", "--backbone-kwargs", "alpha=0.25", "alpha=0.5"],
         "argument --backbone-kwargs: gives alpha twice; give each keyword once"),
        (["train", "d", "--output-dir", "o", "--backbone-kwargs", "alpha=0.25", "--backbone-kwargs", "alpha=0.5"],
         "argument --backbone-kwargs: gives alpha twice; give each keyword once"),
        (["train", "d", "--output-dir", "o", "--scale-range", "-1,2"],
         "argument --scale-range: must be MIN,MAX scaling factors with 0.1 <= MIN <= MAX <= 4, e.g. 0.5,2, not '-1,2'"),
        (["evaluate", "m.keras", "d", "--scales", "-.5"],
         "argument --scales: must be scaling factors from 0.1 to 4 separated by commas, e.g. 1,1.25,1.5, not '-.5'"),
        (["evaluate", "m.keras"], "the following arguments are required: dataset"),
        (["train", "d", "--output-dir", "o", "--scale-range", "-inf,2"],
         "argument --scale-range: must be MIN,MAX scaling factors with 0.1 <= MIN <= MAX <= 4, e.g. 0.5,2, not '-inf,2'"),
        (["train", "d", "--output-dir", "o", "--backbone-kwargs", "name=a,name=b"],
         "argument --backbone-kwargs: must be KEY=VALUE arguments separated by spaces, e.g. alpha=0.25 dropout=0.1, "
         "not 'name=a,name=b'"),
        (["train", "d", "--output-dir", "o", "--backbone-weights", "nowhere.h5"],
         "argument --backbone-weights: must be 'imagenet', 'none' or an existing weights file, not 'nowhere.h5'"),
        (["train", "d", "--output-dir", "o", "--epochs", "0"], "argument --epochs: must be a positive integer, not '0'"),
        (["train", "d", "--output-dir", "o", "--scale-range", "2,0.5"],
         "argument --scale-range: must be MIN,MAX scaling factors with 0.1 <= MIN <= MAX <= 4, e.g. 0.5,2, not '2,0.5'"),
        (["train", "d", "--output-dir", "o", "--scale-range", "1.5"],
         "argument --scale-range: must be MIN,MAX scaling factors with 0.1 <= MIN <= MAX <= 4, e.g. 0.5,2, not '1.5'"),
        (["train", "d", "--output-dir", "o", "--scale-range", "1e-9,1"],
         "argument --scale-range: must be MIN,MAX scaling factors with 0.1 <= MIN <= MAX <= 4, e.g. 0.5,2, not "
         "'1e-9,1'"),
        (["train", "d", "--output-dir", "o", "--jitter", "-0.1"],
         "argument --jitter: must be a number from 0 to less than 1, e.g. 0.2, not '-0.1'"),
        (["train", "d", "--output-dir", "o", "--jitter", "1.5"],
         "argument --jitter: must be a number from 0 to less than 1, e.g. 0.2, not '1.5'"),
        (["evaluate", "m.keras", "d", "--class-names", "road, sky,road"],
         "argument --class-names: must name each class differently; 'road' names two in 'road, sky,road'"),
        (["evaluate", "m.keras", "d", "--scales", "1,0"],
         "argument --scales: must be scaling factors from 0.1 to 4 separated by commas, e.g. 1,1.25,1.5, not '1,0'"),
        (["evaluate", "m.keras", "d", "--scales", "1,125"],
         "argument --scales: must be scaling factors from 0.1 to 4 separated by commas, e.g. 1,1.25,1.5, not '1,125'"),
        (["predict", "m.keras", "--scales", "1,1.0"], "argument --scales: gives a scaling factor twice: give each once, "
         "not '1,1.0'"),
        (["predict", "m.keras", "--scales", "1,x"],
         "argument --scales: must be scaling factors from 0.1 to 4 separated by commas, e.g. 1,1.25,1.5, not '1,x'"),
        (["export", "m.keras", "out", "--format", "coreml"],
         "argument --format: invalid choice: 'coreml' (choose from 'savedmodel', 'tflite', 'onnx')"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_naming_them(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"keras-fcn {argv[0]}: error: {message}"]


def test_an_unknown_flag_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["evaluate", "m.keras", "d", "--bogus"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["keras-fcn evaluate: error: unrecognized arguments: --bogus"]


def test_backbone_kwargs_given_in_several_flags_are_merged():
    args = cli.build_parser().parse_args(
        ["train", "d", "--output-dir", "o", "--backbone-kwargs", "alpha=0.25", "--backbone-kwargs", "dropout=0.1"]
    )
    assert args.backbone_kwargs == {"alpha": 0.25, "dropout": 0.1}


def test_errors_found_while_running_are_one_line(saved_model, tmp_path, capsys):
    _, path = saved_model
    cases = [
        (["predict", "nowhere.keras", path, "--output-dir", str(tmp_path)],
         "keras-fcn predict: error: argument model: no such file; it must be a saved model file (.keras) or a zoo "
         "entry, one of voc-fcn32s"),
        (["predict", "camvidd", path, "--output-dir", str(tmp_path)],
         "keras-fcn predict: error: argument model: must be a saved model file (.keras) or a zoo entry, one of voc-fcn32s"),
        (["export", path, str(tmp_path / "fcn.tflite")],
         "keras-fcn export: error: argument --input-size: required for tflite, e.g. --input-size 360x480"),
        (["evaluate", path, str(tmp_path / "missing")],
         "keras-fcn evaluate: error: `dataset` must be one of ['camvid', 'voc', 'sbd', 'oxford_iiit_pet', "
         "'scene_parse150'], a folder holding images/ and masks/, or a tf.data.Dataset; no file or folder has that "
         "name"),
    ]
    missing = [name for name in ("tf2onnx", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        cases.append(
            (["export", path, str(tmp_path / "fcn.onnx")],
             f"keras-fcn export: error: ONNX export needs the packages {', '.join(missing)}, which are not installed: "
             "pip install tf2onnx onnx")
        )
    (tmp_path / "model.keras").mkdir()
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    cases += [
        (["predict", str(tmp_path / "model.keras")],
         f"keras-fcn predict: error: `model`: {tmp_path / 'model.keras'} is a folder, not a .keras model file"),
        (["predict", str(tmp_path / "table.csv")],
         f"keras-fcn predict: error: `model`: {tmp_path / 'table.csv'} is not a .keras model file (one written by "
         "`model.save('name.keras')`); received a .csv file"),
        (["evaluate", str(tmp_path / "table.csv"), str(tmp_path)], "keras-fcn evaluate: error: `model`: "),
    ]
    for argv, start in cases:
        assert cli.main(argv) == 2
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert err.startswith(start) and "\n" not in err
        assert "No images given" not in captured.out  # the model is refused before anything else is said


def test_malformed_class_names_file_is_named(saved_model, tmp_path, capsys):
    model, _ = saved_model
    model.save(tmp_path / "best.keras")
    (tmp_path / "classes.json").write_text('["background", "cat"]')
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(image)
    assert cli.main(["predict", str(tmp_path / "best.keras"), str(image), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"keras-fcn predict: error: {tmp_path / 'classes.json'}: expected JSON") and "\n" not in err


def test_python_m_keras_fcn_reports_errors_without_a_traceback(tmp_path):
    result = run_python(["-m", "keras_fcn", "train", str(tmp_path / "missing"), "--output-dir", str(tmp_path)], 120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("keras-fcn train: error: `dataset` must be one of")


def test_train_flags_are_the_training_options_with_the_same_defaults():
    args = cli.build_parser().parse_args(["train", "data", "--output-dir", "run"])
    fields = dataclasses.fields(training.TrainingOptions)
    assert list(inspect.signature(keras_fcn.train).parameters) == ["dataset", "output_dir", *(f.name for f in fields)]
    assert options.from_arguments(args) == {field.name: field.default for field in fields}


def test_train_flags_reach_train_as_its_keyword_arguments(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: calls.append((args, kwargs)))
    argv = ["train", "data", "--output-dir", "run", "--backbone-kwargs", "alpha=0.25", "depth_multiplier=1"]
    argv += ["--no-augment", "--mixed-precision", "--val-folder", "val", "--class-names", "a, b", "--crop-size", "9x7"]
    argv += ["--verbose", "2", "--learning-rate", "1e-3", "--scale-range", "0.75,1.5", "--jitter", "0.2"]
    assert cli.main(argv) == 0
    ((positional, keywords),) = calls
    assert positional == ("data", "run")
    assert keywords["backbone_kwargs"] == {"alpha": 0.25, "depth_multiplier": 1}
    assert keywords["augment"] is False and keywords["mixed_precision"] == "auto" and keywords["validation"] == "val"
    assert keywords["class_names"] == ["a", "b"] and keywords["crop_size"] == (9, 7) and keywords["verbose"] == 2
    assert keywords["learning_rate"] == 1e-3 and keywords["epochs"] == 10
    assert keywords["scale_range"] == (0.75, 1.5) and keywords["jitter"] == 0.2
    assert "Run folder: run" in capsys.readouterr().out


def test_an_internal_error_is_raised_with_its_traceback_not_reported_as_a_bad_argument(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")  # a bug, not the user's input

    monkeypatch.setattr(training, "train", broken)
    with pytest.raises(ValueError, match="could not be broadcast"):
        cli.main(["train", "data", "--output-dir", "run"])
    assert capsys.readouterr().err == ""


def test_python_m_keras_fcn_shows_the_traceback_of_a_bug_with_exit_status_1(tmp_path):
    code = (
        "import sys\n"
        "from keras_fcn import cli, training\n"
        "def broken(*args, **kwargs):\n"
        "    raise KeyError('internal')\n"
        "training.train = broken\n"
        f"sys.exit(cli.main(['train', 'data', '--output-dir', {str(tmp_path)!r}]))\n"
    )
    result = run_python(["-c", code], 120)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "KeyError: 'internal'" in result.stderr


def test_debug_prints_the_traceback_of_an_input_error_and_still_exits_2(tmp_path, capsys):
    missing = str(tmp_path / "missing")
    for argv in (["--debug", "train", missing, "--output-dir", "run"], ["train", missing, "--output-dir", "run", "--debug"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "keras_fcn.errors.InvalidArgumentError" in err
        assert err.strip().splitlines()[-1].startswith("keras-fcn train: error: `dataset` must be one of")


def test_bad_mask_values_are_reported_naming_the_file_without_a_traceback(saved_model, tmp_path, capsys):
    _, path = saved_model
    data = write_pairs(tmp_path / "val", 2, size=(16, 16))
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(f"{data}/masks/001.png")
    assert cli.main(["evaluate", path, data]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-2] == "keras-fcn evaluate: error: 1 of 2 image/mask pairs cannot be used:"
    assert lines[-1].startswith(f"- Mask '{data}/masks/001.png' has values [7] that are neither")


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    """The quickest model to export: one 1x1 convolution scoring 3 classes."""
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, 1)(inputs))
    path = tmp_path_factory.mktemp("conv") / "conv.keras"
    model.save(path)
    return str(path)


def _files_under(folder):
    walk = os.walk(folder)
    return sorted(os.path.relpath(os.path.join(root, name), folder) for root, _, names in walk for name in names)


def test_evaluate_writes_json_and_plots_into_folders_it_makes(conv_model, tmp_path, capsys):
    data = write_pairs(tmp_path / "val", 1, size=(16, 16))
    json_path, plot = tmp_path / "a" / "b" / "figures.json", tmp_path / "p" / "q"
    assert cli.main(["evaluate", conv_model, data, "--json", str(json_path), "--plot", str(plot)]) == 0
    assert set(json.loads(json_path.read_text())) >= {"model", "mean_iou", "per_class_iou"}
    assert os.listdir(json_path.parent) == ["figures.json"]  # no temporary file left
    assert sorted(os.listdir(plot)) == ["confusion_matrix.png", "per_class_iou.png"]


def test_export_writes_into_folders_it_makes(conv_model, tmp_path):
    assert cli.main(["export", conv_model, str(tmp_path / "nodir" / "sub" / "conv.onnx")]) == 0
    assert os.listdir(tmp_path / "nodir" / "sub") == ["conv.onnx"]


# Each output path that cannot be used is refused before any work: the model ("nowhere.keras", which would fail
# otherwise), the data and the run folders are not read.
_SAVEDMODEL_REFUSES = (
    "A SavedModel is written as a folder of its own: '{0}' is a file or a folder holding other files. Give a new or "
    "empty folder (or a .onnx / .tflite file name). Received path='{0}'"
)
_UNUSABLE_OUTPUTS = [
    pytest.param(
        ["evaluate", "nowhere.keras", "val", "--json", "{folder}"],
        "argument --json: must be a file name; received '{folder}', which is a folder",
        id="evaluate-json-folder",
    ),
    pytest.param(
        ["evaluate", "nowhere.keras", "val", "--json", "{file}/x.json"],
        "argument --json: cannot be written; received '{file}/x.json', where '{file}' is a file, not a folder",
        id="evaluate-json-under-file",
    ),
    pytest.param(
        ["evaluate", "nowhere.keras", "val", "--plot", "{file}"],
        "argument --plot: must be a folder; received '{file}', which is a file",
        id="evaluate-plot-file",
    ),
    pytest.param(
        ["predict", "nowhere.keras", "{folder}", "--output-dir", "{folder}/x.png"],
        "argument --output-dir: must be a folder; received '{folder}/x.png', which is a file",
        id="predict-output-dir-file",
    ),
    pytest.param(
        ["predict", "nowhere.keras", "--output-dir", "{file}/a/b"],
        "argument --output-dir: cannot be written; received '{file}/a/b', where '{file}' is a file, not a folder",
        id="predict-output-dir-under-file",
    ),
    pytest.param(
        ["export", "nowhere.keras", "{file}/sub/m.onnx"],
        "argument output: cannot be written; received '{file}/sub/m.onnx', where '{file}' is a file, not a folder",
        id="export-under-file",
    ),
    pytest.param(
        ["export", "nowhere.keras", "{folder}", "--format", "onnx"],
        "argument output: must be a file name; received '{folder}', which is a folder",
        id="export-onnx-folder",
    ),
    pytest.param(["export", "nowhere.keras", "{file}"], _SAVEDMODEL_REFUSES.format("{file}"), id="export-savedmodel-file"),
    pytest.param(["export", "nowhere.keras", "{folder}"], _SAVEDMODEL_REFUSES.format("{folder}"), id="export-savedmodel-in"),
    pytest.param(
        ["train", "missing", "--output-dir", "{file}"],
        "argument --output-dir: must be a folder; received '{file}', which is a file",
        id="train-output-dir-file",
    ),
    pytest.param(
        ["plot", "missing", "--output", "{folder}"],
        "argument --output: must be a file name; received '{folder}', which is a folder",
        id="plot-output-folder",
    ),
    pytest.param(
        ["zoo", "convert", "voc-fcn8s", "--caffemodel", "missing", "--output", "{file}/x.weights.h5"],
        "argument --output: cannot be written; received '{file}/x.weights.h5', where '{file}' is a file, not a folder",
        id="zoo-convert-under-file",
    ),
]


@pytest.mark.parametrize("argv, message", _UNUSABLE_OUTPUTS)
def test_an_output_path_that_cannot_be_used_is_refused_before_any_work(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    os.makedirs("in")
    Image.new("RGB", (8, 8)).save("in/x.png")
    paths = {"folder": "in", "file": "in/x.png"}
    before = _files_under(tmp_path)
    assert cli.main([part.format(**paths) for part in argv]) == 2
    assert capsys.readouterr().err.strip() == f"keras-fcn {argv[0]}: error: {message.format(**paths)}"
    assert _files_under(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["in"]


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    # Tests may run as root, who may write anywhere: this user's permissions are those `os.access` reports.
    locked = str(tmp_path / "locked")
    os.makedirs(locked)
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: path != locked and access(path, mode, **kwargs))
    assert cli.main(["evaluate", "nowhere.keras", "val", "--json", f"{locked}/new/x.json"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"keras-fcn evaluate: error: argument --json: cannot be written; received '{locked}/new/x.json', and the "
        f"folder {locked!r} is not writable"
    )
    assert os.listdir(locked) == []


def test_python_warnings_are_one_line_naming_the_verb(monkeypatch, capsys):
    def warn(*args, **kwargs):
        warnings.warn("Exporting again: the cache entry\n  /cache/x is corrupt or stale.", RuntimeWarning)

    monkeypatch.setattr(training, "train", warn)
    shown = warnings.showwarning
    assert cli.main(["train", "data", "--output-dir", "run"]) == 0
    expected = "keras-fcn train: warning: Exporting again: the cache entry /cache/x is corrupt or stale.\n"
    assert capsys.readouterr().err == expected
    assert warnings.showwarning is shown


@pytest.mark.parametrize("with_names", [True, False])
def test_evaluate_checks_every_pair_before_the_model_is_run(conv_model, tmp_path, monkeypatch, capsys, with_names):
    model_path = tmp_path / "m" / "conv.keras"
    model_path.parent.mkdir()
    model_path.write_bytes(pathlib.Path(conv_model).read_bytes())
    if with_names:  # the classes are known without the model: it is not even read
        (model_path.parent / "classes.json").write_text(json.dumps({"class_names": ["a", "b", "c"]}))
        model_path.write_bytes(b"not a .keras file")
    data = write_pairs(tmp_path / "val", 2, size=(16, 16))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(os.path.join(data, "masks", "001.png"))  # not its image's size
    made = []
    monkeypatch.setattr(cli, "source_function", lambda *args, **kwargs: made.append(args))
    monkeypatch.setattr(cli.training, "load_dataset", _recording(cli.training.load_dataset, made))
    assert cli.main(["evaluate", str(model_path), data]) == 2
    assert "001.png" in capsys.readouterr().err
    assert made == ["load_dataset"]  # refused by the pair check; no engine was made


def _recording(function, calls):
    def recorded(*args, **kwargs):
        calls.append(function.__name__)
        return function(*args, **kwargs)

    return recorded


def test_errors_name_the_flags_of_the_verb_not_python_keywords():
    flags = {"label_map": "--label-map", "data_root": "--data-root", "loss": "--loss"}
    message = (
        "Mask 'data/label_map/data_root.png' has values [7]: pass label_map, or `loss`, e.g. label_map={7: 255}. "
        "Received data_root=None"
    )
    assert options.with_flags(message, flags) == (
        "Mask 'data/label_map/data_root.png' has values [7]: pass --label-map, or `--loss`, e.g. label_map={7: 255}. "
        "Received --data-root=None"
    )
    assert options.with_flags("the loss of label_map", {}) == "the loss of label_map"  # a verb without these options
    # A flag that turns an option off stands for its value: given is False, not given True.
    message = "holds a run with augment=True (in run.json): give the same `augment`. Received augment=False"
    assert options.with_flags(message, {"augment": "--no-augment"}) == (
        "holds a run with no --no-augment (in run.json): give the same `--no-augment`. Received --no-augment"
    )


def test_evaluate_names_its_flags_in_errors(tmp_path, capsys):
    assert cli.main(["evaluate", "camvid", "camvid"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "keras-fcn evaluate: error: Dataset 'camvid' needs `--data-root`, the folder holding it. Received --data-root=None"
    )
    folder = write_pairs(tmp_path / "pairs", 2)
    mask = os.path.join(folder, "masks", sorted(os.listdir(os.path.join(folder, "masks")))[0])
    Image.fromarray(np.full((32, 32), 7, np.uint8)).save(mask)
    assert cli.main(["train", folder, "--num-classes", str(NUM_CLASSES), "--output-dir", str(tmp_path / "run")]) == 2
    assert "Remap them, e.g. --label-map 7:255 (label_map={7: 255})." in capsys.readouterr().err
