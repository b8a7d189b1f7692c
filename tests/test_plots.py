"""Pictures of results: figures checked as objects against hand-computed values, and the PNGs the CLI writes."""

import csv
import json
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_fcn import cli, plots
from _training_helpers import write_pairs

NAMES = ["sky", "road", "car"]


def read_png(path):
    """The decoded PNG as an RGB array, checked to be a picture: a plausible size and more than a few colours."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    height, width, _ = pixels.shape
    assert 200 <= width <= 3000 and 150 <= height <= 3000
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    return pixels


def tick_labels(axis):
    return [label.get_text() for label in axis.get_ticklabels()]


def write_log(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([header, *rows])
    return str(path)


def test_confusion_matrix_is_row_normalised_with_names_on_both_axes(tmp_path):
    confusion = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    figure = plots.confusion_matrix(confusion, NAMES)
    axes = figure.axes[0]
    shares = np.ma.filled(axes.images[0].get_array().astype(float), np.nan)
    want = [[5 / 6, 1 / 6, 0], [2 / 5, 3 / 5, 0], [np.nan] * 3]  # car has no pixel: a blank row
    np.testing.assert_allclose(shares, want)
    assert tick_labels(axes.xaxis) == NAMES and tick_labels(axes.yaxis) == NAMES
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted class", "true class")
    assert sorted(text.get_text() for text in axes.texts) == sorted(["0.83", "0.17", "0.00", "0.40", "0.60", "0.00"])
    read_png(plots.save(figure, str(tmp_path / "deep" / "confusion.png")))
    assert [path.name for path in (tmp_path / "deep").iterdir()] == ["confusion.png"]  # no temporary file left


def test_confusion_matrix_refuses_bad_input():
    with pytest.raises(ValueError, match=r"square matrix .* Received an array of shape \(2, 3\)"):
        plots.confusion_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError, match="one name per class, 3 names"):
        plots.confusion_matrix(np.ones((3, 3)), ["a", "b"])


def test_per_class_iou_has_a_bar_per_class_and_the_mean_iu_line(tmp_path):
    per_class = {"sky": 0.9, "road": 0.5, "car": float("nan"), "pole": 0.0, "sign": 0.25}
    figure = plots.per_class_iou(per_class)
    axes = figure.axes[0]
    assert len(axes.patches) == len(per_class)
    np.testing.assert_allclose([bar.get_height() for bar in axes.patches], [0.9, 0.5, 0.0, 0.0, 0.25])
    assert tick_labels(axes.xaxis) == list(per_class)
    assert [text.get_text() for text in axes.texts] == ["0.90", "0.50", "n/a", "0.00", "0.25"]
    # The mean over the classes with an IU, as mean IU is defined: (0.9 + 0.5 + 0 + 0.25) / 4.
    (mean_line,) = axes.lines
    np.testing.assert_allclose(mean_line.get_ydata(), [0.4125, 0.4125])
    read_png(plots.save(figure, str(tmp_path / "iou.png")))
    with pytest.raises(ValueError, match="IU in \\[0, 1\\] or NaN"):
        plots.per_class_iou({"sky": 1.5})


def test_training_curves_draw_each_stage_after_the_previous(tmp_path):
    header = ["epoch", "loss", "mean_iou", "pixel_accuracy", "val_loss", "val_mean_iou"]
    (tmp_path / "32s").mkdir()
    rows = [[0, 1.5, 0.2, 0.6, 1.6, 0.1], [1, 1.0, 0.4, 0.7, 1.2, 0.3], [2, 0.8, 0.5, 0.8, 1.0, "NA"]]
    write_log(tmp_path / "32s" / "log.csv", header, rows)
    # The second stage as a bare CSV file, without validation.
    second = write_log(tmp_path / "log-16s.csv", ["epoch", "loss", "mean_iou"], [[0, 0.7, 0.55], [1, 0.6, 0.6]])
    figure = plots.training_curves([tmp_path / "32s", second])
    loss, mean_iu = figure.axes
    assert (loss.get_ylabel(), mean_iu.get_ylabel()) == ("loss", "mean IU")
    for axes, column, values in ((loss, 1, [1.5, 1.0, 0.8, 1.6, 1.2, 1.0, 0.7, 0.6]), (mean_iu, 2, None)):
        curves = {line.get_label(): line for line in axes.lines if not line.get_label().startswith("_")}
        assert list(curves) == ["32s train", "32s val", "log-16s train"]
        np.testing.assert_array_equal(curves["32s train"].get_xdata(), [1, 2, 3])
        np.testing.assert_array_equal(curves["log-16s train"].get_xdata(), [4, 5])  # after the first stage
        (boundary,) = [line for line in axes.lines if line.get_label().startswith("_")]
        assert boundary.get_xdata()[0] == 3.5
        if values:
            np.testing.assert_allclose(np.concatenate([line.get_ydata() for line in curves.values()]), values)
    np.testing.assert_allclose(
        [line.get_ydata() for line in mean_iu.lines if line.get_label() == "32s val"][0], [0.1, 0.3, np.nan]
    )
    read_png(plots.save(figure, str(tmp_path / "curves.png")))


def test_training_curves_refuse_bad_logs(tmp_path):
    with pytest.raises(ValueError, match="missing: expected a run folder holding log.csv"):
        plots.training_curves([str(tmp_path / "missing")])
    bad = write_log(tmp_path / "bad.csv", ["epoch", "loss"], [[0, 1.0], [1, "oops"]])
    with pytest.raises(ValueError, match=r"bad.csv, line 3: column 'loss' holds 'oops', not a number"):
        plots.training_curves([bad])
    no_epoch = write_log(tmp_path / "no_epoch.csv", ["step", "loss"], [[0, 1.0]])
    with pytest.raises(ValueError, match="no_epoch.csv: expected a CSV log with an 'epoch' column"):
        plots.training_curves([no_epoch])
    other = write_log(tmp_path / "other.csv", ["epoch", "accuracy"], [[0, 1.0]])
    with pytest.raises(ValueError, match="none of the columns loss, mean_iou"):
        plots.training_curves([other])
    with pytest.raises(ValueError, match="one name per run, 1 names"):
        plots.training_curves([other], ["a", "b"])


@pytest.fixture
def saved_model(tmp_path):
    """A one-layer segmentation model with random weights, saved with its class names as `train` saves them."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same", kernel_initializer="he_normal")(inputs / 255))
    model.save(tmp_path / "best.keras")
    (tmp_path / "classes.json").write_text(json.dumps({"class_names": NAMES}))
    return model, str(tmp_path / "best.keras")


def test_evaluate_plot_writes_the_confusion_matrix_and_per_class_iou(saved_model, tmp_path, capsys):
    model, path = saved_model
    data = write_pairs(tmp_path / "val", 3, size=(40, 48))
    out = tmp_path / "plots"
    assert cli.main(["evaluate", path, data, "--plot", str(out), "--json", str(tmp_path / "figures.json")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["confusion_matrix.png", "per_class_iou.png"]
    for png in out.iterdir():
        read_png(png)
    assert f"Wrote {out / 'confusion_matrix.png'}, {out / 'per_class_iou.png'}" in capsys.readouterr().out
    # The confusion matrix that evaluate now returns (and --json writes), against numpy counts.
    confusion = np.zeros((3, 3), int)
    for index in range(3):
        image = np.asarray(Image.open(f"{data}/images/{index:03d}.png"))[None].astype("float32")
        labels = np.asarray(Image.open(f"{data}/masks/{index:03d}.png"))
        np.add.at(confusion, (labels.ravel(), model.predict(image, verbose=0)[0].argmax(-1).ravel()), 1)
    assert json.loads((tmp_path / "figures.json").read_text())["confusion_matrix"] == confusion.tolist()


def test_plot_verb_writes_the_training_curves(tmp_path, capsys):
    header = ["epoch", "loss", "mean_iou", "val_loss", "val_mean_iou"]
    runs = []
    for stage in ("32s", "16s"):
        (tmp_path / stage).mkdir()
        write_log(tmp_path / stage / "log.csv", header, [[0, 1.0, 0.3, 1.1, 0.2], [1, 0.8, 0.4, 0.9, 0.35]])
        runs.append(str(tmp_path / stage))
    assert cli.main(["plot", *runs]) == 0
    read_png(tmp_path / "16s" / "training_curves.png")
    assert cli.main(["plot", *runs, "--labels", "FCN-32s,FCN-16s", "--output", str(tmp_path / "c.png")]) == 0
    read_png(tmp_path / "c.png")
    capsys.readouterr()
    assert cli.main(["plot", *runs, "--labels", "one"]) == 2
    assert "keras-fcn plot: error: `labels` must hold one name per run, 2 names" in capsys.readouterr().err


def test_without_matplotlib_the_error_names_the_extra(saved_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'keras-fcn\[plot\]'"):
        plots.per_class_iou({"sky": 0.5})
    write_log(tmp_path / "log.csv", ["epoch", "loss"], [[0, 1.0]])
    assert cli.main(["plot", str(tmp_path)]) == 2
    assert "keras-fcn[plot]" in capsys.readouterr().err
    # evaluate --plot refuses before it loads the model or runs it.
    assert cli.main(["evaluate", "no-such-model", str(tmp_path), "--plot", str(tmp_path / "plots")]) == 2
    assert "keras-fcn[plot]" in capsys.readouterr().err
    assert not (tmp_path / "plots").exists()


def test_long_titles_and_class_names_fit_the_figure(tmp_path):
    title = ("runs/a_very_long_folder_name_for_testing_whether_titles_get_cut_off/fcn8s_best.keras on streets/validation "
             "(flip; scales 0.75, 1, 1.25, 1.5, 1.75)")
    names = ["background", "a_rather_long_class_name", "green"]
    for figure in (plots.per_class_iou(dict(zip(names, (0.5, 0.25, 0.75))), title=title),
                   plots.confusion_matrix(np.ones((3, 3)), names, title=title)):
        (text,) = [text for text in figure.texts if "\n" in text.get_text()]  # the figure's title, on lines
        assert "".join(text.get_text().split()) == "".join(title.split())
        pixels = read_png(plots.save(figure, str(tmp_path / "long.png")))
        # Nothing drawn is cut at the picture's edges: a margin of background all round.
        for border in (pixels[:3], pixels[-3:], pixels[:, :3], pixels[:, -3:]):
            assert (border == 255).all()
