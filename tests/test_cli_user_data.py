"""The command line on users' own data: bad pairs refused at once, mask options, predict that loses nothing."""

import json
import os

import numpy as np
import pytest
from PIL import ExifTags, Image

import keras_fcn
from keras_fcn import cli
from _training_helpers import TINY_CLI, TINY_MODEL, run_python

BAD_PAIRS = 40


def save(path, array, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def write_narrow_masks(folder, rng, size):
    """`BAD_PAIRS` random images of `size` whose masks are 1 pixel narrower."""
    for index in range(BAD_PAIRS):
        save(f"{folder}/images/{index:03d}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        save(f"{folder}/masks/{index:03d}.png", rng.integers(0, 3, (size[0], size[1] - 1), dtype=np.uint8))
    return str(folder)


def assert_lists_every_narrow_mask(stderr, verb, size):
    assert "Traceback" not in stderr
    assert f"keras-fcn {verb}: error: {BAD_PAIRS} of {BAD_PAIRS} image/mask pairs cannot be used:" in stderr
    for index in range(BAD_PAIRS):
        assert f"masks/{index:03d}.png' is {size[0]}x{size[1] - 1}" in stderr


def test_train_with_bad_pairs_exits_2_at_once_listing_them_all(tmp_path, rng):
    # Before the up-front check, this run hung for good after the first bad pair (a tf.data iterator stuck).
    data = write_narrow_masks(tmp_path / "data", rng, (32, 32))
    argv = ["-m", "keras_fcn", "train", data, "--num-classes", "3", "--output-dir", str(tmp_path / "run"), *TINY_CLI]
    result = run_python([*argv, "--crop-size", "16x16", "--batch-size", "2", "--epochs", "1"], timeout=150)
    assert result.returncode == 2
    assert_lists_every_narrow_mask(result.stderr, "train", (32, 32))
    assert not os.path.exists(tmp_path / "run")  # refused before the model or the run folder existed


@pytest.fixture(scope="module")
def binary_model(tmp_path_factory):
    """A tiny 2-class FCN-8s with random score layers, saved as `keras-fcn train` saves it."""
    folder = tmp_path_factory.mktemp("binary_model")
    rng = np.random.default_rng(0)
    model = keras_fcn.FCN8s(2, **TINY_MODEL)
    for name in ("score_fr", "score_pool4", "score_pool3"):
        layer = model.get_layer(name)
        layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()])
    model.save(folder / "best.keras")
    (folder / "classes.json").write_text(json.dumps({"class_names": ["background", "cell"]}))
    return model, str(folder / "best.keras")


def test_evaluate_with_bad_pairs_exits_2_at_once_listing_them_all(binary_model, tmp_path, rng):
    # Before the up-front check, evaluate hung for good on these (360x480 images; smaller ones ended in a traceback).
    data = write_narrow_masks(tmp_path / "data", rng, (360, 480))
    result = run_python(["-m", "keras_fcn", "evaluate", binary_model[1], data], timeout=150)
    assert result.returncode == 2
    assert_lists_every_narrow_mask(result.stderr, "evaluate", (360, 480))


def disc(size, radius, centre):
    y, x = np.mgrid[:size, :size]
    return (x - centre[1]) ** 2 + (y - centre[0]) ** 2 <= radius**2


def write_cells(folder, seed, mask_format="png"):
    """Grey 'microscopy' images with bright discs, masks 0 (background) / 255 (cell); returns the truth, 0/1."""
    rng = np.random.default_rng(seed)
    truth = []
    for index in range(2):
        cell = disc(32, 9, rng.integers(10, 22, 2))
        image = np.where(cell, 200, 40) + rng.integers(0, 30, (32, 32))
        save(f"{folder}/images/{index}.png", image.astype(np.uint8))
        save(f"{folder}/masks/{index}.{mask_format}", np.where(cell, 255, 0).astype(np.uint8), quality=95)
        truth.append((np.repeat(image.astype(np.uint8)[..., None], 3, -1), cell.astype(np.int64)))
    return str(folder), truth


def reference_mean_iou(model, truth):
    """Mean IU (paper, section 5) from a confusion matrix computed here with numpy."""
    confusion = np.zeros((2, 2))
    for image, labels in truth:
        predicted = model.predict(image[None].astype("float32"), verbose=0)[0].argmax(-1)
        np.add.at(confusion, (labels.ravel(), predicted.ravel()), 1)
    diagonal = np.diag(confusion)
    iou = diagonal / (confusion.sum(0) + confusion.sum(1) - diagonal)
    return np.nanmean(iou)


def test_evaluate_reads_binary_masks_with_label_map_or_threshold(binary_model, tmp_path, capsys):
    model, path = binary_model
    cells, truth = write_cells(tmp_path / "cells", seed=0)
    assert cli.main(["evaluate", path, cells]) == 2
    err = capsys.readouterr().err
    assert "hold no pixel of class 1" in err and "--label-map 255:1" in err and "--mask-threshold 128" in err

    expected = reference_mean_iou(model, truth)
    assert cli.main(["evaluate", path, cells, "--label-map", "255:1", "--json", str(tmp_path / "png.json")]) == 0
    assert json.loads((tmp_path / "png.json").read_text())["mean_iou"] == pytest.approx(expected)

    jpeg_cells, _ = write_cells(tmp_path / "jpeg_cells", seed=0, mask_format="jpg")  # the same cells, JPEG masks
    assert cli.main(["evaluate", path, jpeg_cells]) == 2
    assert "is a JPEG file" in capsys.readouterr().err
    assert cli.main(["evaluate", path, jpeg_cells, "--mask-threshold", "128", "--json", str(tmp_path / "jpg.json")]) == 0
    assert json.loads((tmp_path / "jpg.json").read_text())["mean_iou"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--label-map", "255"], "argument --label-map: must be RAW:CLASS pairs separated by commas, e.g. 255:1, not '255'"),
        (["--label-map", "255:1", "--mask-threshold", "128"], "argument --mask-threshold: not allowed with argument --label-map"),
        (["--mask-threshold", "x"], "argument --mask-threshold: must be a positive integer, not 'x'"),
    ],
)
def test_bad_mask_options_exit_2_naming_them(options, message, capsys):
    for argv in (["train", "d", "--output-dir", "o"], ["evaluate", "m.keras", "d"]):
        with pytest.raises(SystemExit) as exit:
            cli.main([*argv, *options])
        assert exit.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == f"keras-fcn {argv[0]}: error: {message}"


def labels_of(model, image):
    return model.predict(image[None].astype("float32"), verbose=0)[0].argmax(-1)


def test_predict_never_overwrites_an_input_or_another_output(binary_model, tmp_path, rng):
    model, path = binary_model
    images = {name: rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for name in ("a.jpg", "a.png", "photo.png")}
    for name, image in images.items():
        save(str(tmp_path / name), image, quality=95)
    inputs = {name: (tmp_path / name).read_bytes() for name in images}

    # The files named one by one (an input folder may not be the output folder), written beside them.
    assert cli.main(["predict", path, *(str(tmp_path / name) for name in images), "--output-dir", str(tmp_path)]) == 0

    for name, content in inputs.items():
        assert (tmp_path / name).read_bytes() == content
    decoded = {name: np.asarray(Image.open(tmp_path / name).convert("RGB")) for name in images}
    for name, output in (("a.jpg", "a_jpg"), ("a.png", "a_png"), ("photo.png", "photo_png")):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"{output}.png")), labels_of(model, decoded[name]))
        assert (tmp_path / f"{output}_overlay.png").is_file()
    assert sorted(os.listdir(tmp_path)) == sorted(
        [*images, "a_jpg.png", "a_jpg_overlay.png", "a_png.png", "a_png_overlay.png", "photo_png.png", "photo_png_overlay.png"]
    )


def test_predict_skips_and_names_unreadable_files_and_finishes_the_others(binary_model, tmp_path, rng, capsys):
    model, path = binary_model
    good = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    save(str(tmp_path / "in" / "good.png"), good)
    save(str(tmp_path / "in" / "cut.jpg"), good)
    whole = (tmp_path / "in" / "cut.jpg").read_bytes()
    (tmp_path / "in" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "in" / "noise.png").write_bytes(b"not an image")
    (tmp_path / "in" / "._good.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / "in" / ".hidden.png").write_bytes(b"not an image either")
    out = tmp_path / "out"

    assert cli.main(["predict", path, str(tmp_path / "in"), "--output-dir", str(out)]) == 2

    err = capsys.readouterr().err
    assert "skipping" in err and "cut.jpg" in err and "noise.png" in err
    assert err.strip().splitlines()[-1].startswith("keras-fcn predict: error: 2 of 3 images could not be read")
    assert "._good" not in err and ".hidden" not in err
    assert sorted(os.listdir(out)) == ["good.png", "good_overlay.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "good.png")), labels_of(model, good))
    # None readable: one error, and no output folder made.
    assert cli.main(["predict", path, str(tmp_path / "in" / "noise.png"), "--output-dir", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"keras-fcn predict: error: no image could be read (1 given): {tmp_path / 'in' / 'noise.png'}"
    )
    assert not (tmp_path / "none").exists()


def test_predict_turns_phone_photos_upright_and_reads_16_bit_tiff(binary_model, tmp_path, rng):
    model, path = binary_model
    stored = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # turn 90 degrees clockwise to view
    save(str(tmp_path / "in" / "phone.jpg"), stored, exif=exif.tobytes(), quality=95)
    with Image.open(tmp_path / "in" / "phone.jpg") as image:
        upright = np.rot90(np.asarray(image.convert("RGB")), k=-1)
    scan = (rng.integers(0, 65536, (20, 28))).astype(np.uint16)
    save(str(tmp_path / "in" / "scan.tif"), scan)
    scan_rgb = np.repeat(np.round(scan * 255 / 65535).astype(np.uint8)[..., None], 3, -1)

    assert cli.main(["predict", path, str(tmp_path / "in"), "--output-dir", str(tmp_path / "out")]) == 0

    phone = np.asarray(Image.open(tmp_path / "out" / "phone.png"))
    assert phone.shape == (24, 16)
    np.testing.assert_array_equal(phone, labels_of(model, upright))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "scan.png")), labels_of(model, scan_rgb))


def test_output_names_never_name_an_input_or_each_other(tmp_path):
    out = str(tmp_path / "out")
    files = [f"{out}/a.jpg", f"{out}/a.png", f"{out}/a_png.png", f"{tmp_path}/x/b.png", f"{tmp_path}/y/b.png", "c.PNG"]
    assert cli._output_stems(files, out) == ["a_jpg", "a_png_2", "a_png_png", "b_png", "b_png_2", "c"]
