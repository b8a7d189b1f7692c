"""The README's own-data walkthroughs (0/255 binary masks, colour-coded masks) run as written on tiny datasets."""

import json
import os
import pathlib
import re
import shlex

import numpy as np
import pytest
from PIL import Image

from keras_fcn import cli

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
# Appended to each README `train` command (argparse keeps an option's last value): a tiny, fast run.
TINY_RUN = [
    "--backbone-weights", "none", "--epochs", "1", "--crop-size", "32x32",
    "--batch-size", "2", "--steps-per-epoch", "1", "--validation-steps", "1",
]


def own_data_subsections():
    """`{subsection title: its text}` of the README's "Train on your own data" section."""
    text = README.read_text()
    section = text[text.index("## Train on your own data") : text.index("\n## Data\n")]
    parts = re.split(r"^### (.+)$", section, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def commands(text):
    """The shell commands of a subsection's bash blocks, continuation lines joined, comments dropped."""
    lines = " ".join(blocks(text, "bash")).replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def run_commands(text, capsys):
    printed = []
    for argv in commands(text):
        assert argv[0] == "keras-fcn"
        argv = argv[1:] + (TINY_RUN if argv[1] == "train" else [])
        assert cli.main(argv) == 0, argv
        printed.append(capsys.readouterr().out)
    return printed


def save(path, array, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def blobs(rng, shape=(40, 48)):
    """A boolean mask of a few random squares."""
    mask = np.zeros(shape, bool)
    for top, left in rng.integers(0, 30, (3, 2)):
        mask[top : top + 12, left : left + 12] = True
    return mask


def test_binary_mask_walkthrough(tmp_path, monkeypatch, capsys):
    text = own_data_subsections()["Binary masks holding 0 and 255"]
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("val", 2), ("new", 2)):
        for index in range(count):
            cell = blobs(rng)
            scan = np.where(cell, 50000, 8000) + rng.integers(0, 4000, cell.shape)
            folder = f"cells/{split}" if split == "new" else f"cells/{split}/images"
            save(f"{folder}/{index}.tif", scan.astype(np.uint16))  # 16-bit grey, Pillow mode I;16
            if split != "new":
                save(f"cells/{split}/masks/{index}.png", np.where(cell, 255, 0).astype(np.uint8))

    printed = run_commands(text, capsys)

    assert json.loads(pathlib.Path("runs/cells/classes.json").read_text())["class_names"] == ["background", "cell"]
    assert re.search(r"^cell\s+\d\.\d{4}$", printed[1], re.M)
    for index in range(2):
        labels = Image.open(f"cells/predicted/{index}.png")
        assert labels.size == (48, 40) and np.asarray(labels).max() <= 1
        assert os.path.isfile(f"cells/predicted/{index}_overlay.png")


def test_colour_coded_mask_walkthrough(tmp_path, monkeypatch, capsys):
    text = own_data_subsections()["Colour-coded masks"]
    monkeypatch.chdir(tmp_path)
    (color_map,) = blocks(text, "text")
    pathlib.Path("colors.txt").write_text(color_map)
    lines = [line.split() for line in color_map.splitlines() if line and not line.startswith("#")]
    colours = np.array([[int(v) for v in line[:3]] for line in lines], np.uint8)
    rng = np.random.default_rng(1)
    for split, count in (("train", 3), ("val", 2), ("new", 2)):
        for index in range(count):
            which = rng.integers(0, len(colours), (5, 6)).repeat(8, 0).repeat(8, 1)
            image = (colours[which] * 0.8 + rng.integers(0, 40, (*which.shape, 3))).astype(np.uint8)
            folder = f"streets/{split}" if split == "new" else f"streets/{split}/images"
            save(f"{folder}/{index}.jpg", image, quality=90)
            if split != "new":
                save(f"streets/{split}/masks/{index}.png", colours[which])

    printed = run_commands(text, capsys)

    names = [line[3] for line in lines if line[3] != "ignore"]
    assert json.loads(pathlib.Path("runs/streets/classes.json").read_text())["class_names"] == names
    for name in names:
        assert re.search(rf"^{name}\s+(\d\.\d{{4}}|nan)$", printed[1], re.M)
    for index in range(2):
        labels = Image.open(f"streets/predicted/{index}.png")
        assert labels.size == (48, 40) and np.asarray(labels).max() < len(names)


def test_the_readme_states_what_the_options_do():
    subsections = own_data_subsections()
    assert "--mask-threshold 128" in subsections["Binary masks holding 0 and 255"]
    assert "a line named `ignore`" in subsections["Colour-coded masks"]
    save_load = README.read_text().split("## Save, load, export")[1]
    assert save_load.index("import keras_fcn") < save_load.index("keras.saving.load_model")


@pytest.mark.parametrize("title", ["Binary masks holding 0 and 255", "Colour-coded masks"])
def test_walkthroughs_train_evaluate_and_predict(title):
    verbs = [argv[1] for argv in commands(own_data_subsections()[title])]
    assert verbs == ["train", "evaluate", "predict"]
