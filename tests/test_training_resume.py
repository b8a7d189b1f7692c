"""Resuming is the uninterrupted run: each epoch's batches keyed by its number, killed runs resumed exactly."""

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_fcn import cli
from keras_fcn import data as fcn_data
from keras_fcn import training
from keras_fcn.training import TrainingOptions, run_folder
from keras_fcn.training.pipelines import training_batches, training_steps
from _training_helpers import CHILD_ENV, TINY_CLI, TINY_MODEL, run_python, write_pairs

EPOCHS = 4
DETERMINISTIC = {**CHILD_ENV, "TF_DETERMINISTIC_OPS": "1"}  # tf.config.experimental.enable_op_determinism()


def _batches(pairs, options, seed, first_epoch):
    steps, passes = training_steps(pairs, options.batch_size, options.steps_per_epoch)
    return [
        (images.numpy(), masks.numpy())
        for images, masks in training_batches(pairs, options, seed, first_epoch, steps, passes)
    ]


@pytest.mark.floor
@pytest.mark.parametrize("steps_per_epoch", [None, 3])
def test_each_epoch_reads_its_own_batches_whatever_epoch_a_run_starts_at(tmp_path, steps_per_epoch):
    folder = write_pairs(tmp_path / "train", 5)
    pairs = fcn_data.from_folders(f"{folder}/images", f"{folder}/masks", num_classes=3)
    options = TrainingOptions(batch_size=2, crop_size=(24, 24), epochs=3, steps_per_epoch=steps_per_epoch)
    steps = steps_per_epoch or 2  # 5 pairs: two full batches a pass

    keras.utils.set_random_seed(0)
    uninterrupted = _batches(pairs, options, seed=7, first_epoch=0)
    keras.utils.set_random_seed(1)  # another process's global seed: the batches depend on the run's seed only
    resumed = _batches(pairs, options, seed=7, first_epoch=1)

    assert len(uninterrupted) == 3 * steps and len(resumed) == 2 * steps
    for (images, masks), (expected_images, expected_masks) in zip(resumed, uninterrupted[steps:]):
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(masks, expected_masks)
    # A run stopped after every epoch reads a new order and new augmentations each epoch, not epoch 0's again.
    epochs = [np.concatenate([masks for _, masks in uninterrupted[e * steps : (e + 1) * steps]]) for e in range(3)]
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    # Another seed, other batches.
    other = _batches(pairs, options, seed=8, first_epoch=0)
    assert not np.array_equal(other[0][1], uninterrupted[0][1])


def test_killed_run_resumes_after_its_last_completed_epoch_and_ends_where_the_uninterrupted_run_ends(tmp_path, capsys):
    """A real kill (SIGKILL), in the middle of an epoch, with op determinism (as the issue measured it).

    Before each epoch's batches were keyed by its number, the resumed
    process replayed epoch 0's order and draws, and ended 1.5e-2 away from
    the uninterrupted run (`benchmarks/resume_exactness.py`).
    """
    data = write_pairs(tmp_path / "train", 4)
    run = tmp_path / "run"
    arguments = [
        "-m", "keras_fcn", "train", data, "--output-dir", str(run), "--num-classes", "3", *TINY_CLI,
        "--model", "fcn32s", "--crop-size", "32x32", "--batch-size", "2", "--epochs", str(EPOCHS), "--seed", "0",
        "--verbose", "2",
    ]
    metadata = run / "backup" / "training_metadata.json"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen([sys.executable, *arguments], stdout=log, stderr=subprocess.STDOUT, env=DETERMINISTIC)
        deadline = time.monotonic() + 150
        while not metadata.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # A second training into the same folder refuses at once, on one line naming the running one.
        status = cli.main(arguments[2:])
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]
    message = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(message) == 1, message
    assert f"is in use by another training (pid {first.pid} on host {socket.gethostname()}" in message[0]
    completed = json.loads(metadata.read_text())["epoch"]
    assert 1 <= completed < EPOCHS
    # The killed run's lock file is left: its lock, the operating system's, went with the process.
    assert json.loads((run / run_folder.LOCK_FILE).read_text())["pid"] == first.pid

    resumed = run_python(arguments, timeout=240, env=DETERMINISTIC)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    epochs_run = [int(n) for n in re.findall(rf"^Epoch (\d+)/{EPOCHS}$", resumed.stdout, re.MULTILINE)]
    assert epochs_run == list(range(completed + 1, EPOCHS + 1))
    with open(run / "log.csv", newline="") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == [str(e) for e in range(EPOCHS)]
    assert json.loads(metadata.read_text())["epoch"] == EPOCHS
    assert not (run / run_folder.LOCK_FILE).exists()

    # The same run uninterrupted, in another process: the killed and resumed run ends where it ends.
    uninterrupted = tmp_path / "uninterrupted"
    into_another_folder = [str(uninterrupted) if a == str(run) else a for a in arguments]
    complete = run_python(into_another_folder, timeout=240, env=DETERMINISTIC)
    assert complete.returncode == 0, complete.stdout[-3000:] + complete.stderr[-3000:]
    for name in ("last.keras", "best.keras"):
        expected = keras.saving.load_model(uninterrupted / name).get_weights()
        for weight, reference in zip(keras.saving.load_model(run / name).get_weights(), expected):
            np.testing.assert_array_equal(weight, reference)


def test_a_resumed_run_reads_no_initial_backbone_weights(tmp_path):
    """Its backup holds every weight: a run started offline from random weights resumes with any backbone_weights."""
    data = write_pairs(tmp_path / "train", 2)
    options = {**TINY_MODEL, "num_classes": 3, "crop_size": (32, 32), "batch_size": 2, "seed": 0, "verbose": 0}
    training.train(data, tmp_path / "run", epochs=1, **options)
    unreadable = tmp_path / "not_weights.h5"
    unreadable.write_bytes(b"not an HDF5 file")
    options["backbone_weights"] = str(unreadable)
    model, history = training.train(data, tmp_path / "run", epochs=2, **options)
    assert history.epoch == [1]
    with pytest.raises(ValueError, match="not_weights.h5"):  # read by a run that does not resume
        training.train(data, tmp_path / "other", epochs=1, **options)


def test_a_finished_run_started_again_says_that_nothing_is_left_to_train(tmp_path, capsys):
    data = write_pairs(tmp_path / "train", 2)
    options = {**TINY_MODEL, "num_classes": 3, "crop_size": (32, 32), "batch_size": 2, "seed": 0}
    training.train(data, tmp_path / "run", epochs=1, verbose=0, **options)
    capsys.readouterr()
    _, history = training.train(data, tmp_path / "run", epochs=1, verbose=2, **options)
    assert history.epoch == []
    assert (
        f"Nothing is left to train: the run in {tmp_path / 'run'} has trained its epochs (trained: 1, asked for: 1). "
        "Ask for more epochs to train on." in capsys.readouterr().out
    )


def test_a_run_started_again_with_other_augmentation_is_refused_naming_it(tmp_path):
    # A resumed run reads the batches of the uninterrupted run: other augmentation would read others.
    data = write_pairs(tmp_path / "train", 2)
    options = {**TINY_MODEL, "num_classes": 3, "crop_size": (32, 32), "batch_size": 2, "seed": 0, "verbose": 0}
    training.train(data, tmp_path / "run", epochs=1, scale_range=(0.75, 1.5), jitter=0.2, **options)
    assert json.loads((tmp_path / "run" / run_folder.RUN_FILE).read_text())["scale_range"] == [0.75, 1.5]
    for changed, message in [
        ({"scale_range": (0.5, 2.0), "jitter": 0.2}, r"holds a run with scale_range=\[0.75, 1.5\] .*Received "
         r"scale_range=\[0.5, 2.0\]"),
        ({"scale_range": (0.75, 1.5)}, r"holds a run with jitter=0.2 .*Received jitter=0.0"),
    ]:
        with pytest.raises(ValueError, match=message):
            training.train(data, tmp_path / "run", epochs=2, **changed, **options)
    _, history = training.train(data, tmp_path / "run", epochs=2, scale_range=[0.75, 1.5], jitter=0.2, **options)
    assert history.epoch == [1]


def test_a_run_started_again_with_other_batches_or_steps_is_refused_naming_the_option(tmp_path):
    # Each of these changes the batches or the steps that the uninterrupted run would take.
    data = write_pairs(tmp_path / "train", 2)
    options = {**TINY_MODEL, "num_classes": 3, "crop_size": (32, 32), "batch_size": 2, "seed": 0, "verbose": 0}
    training.train(data, tmp_path / "run", epochs=1, **options)
    for changed, message in [
        ({"batch_size": 1}, r"holds a run with batch_size=2 .*Received batch_size=1"),
        ({"crop_size": (24, 24)}, r"holds a run with crop_size=\[32, 32\] .*Received crop_size=\[24, 24\]"),
        ({"crop_size": None}, r"holds a run with crop_size=\[32, 32\] .*Received crop_size=None"),
        ({"steps_per_epoch": 1}, r"holds a run with steps_per_epoch=None .*Received steps_per_epoch=1"),
        ({"optimizer": "sgd"}, r"holds a run with optimizer='adam' .*Received optimizer='sgd'"),
        ({"learning_rate": 0.1}, r"holds a run with learning_rate=None .*Received learning_rate=0.1"),
        ({"weight_decay": 0.0}, r"holds a run with weight_decay=None .*Received weight_decay=0.0"),
        ({"mixed_precision": "float32"}, r"holds a run with mixed_precision=None .*Received mixed_precision='float32'"),
    ]:
        with pytest.raises(ValueError, match=message):
            training.train(data, tmp_path / "run", epochs=2, **{**options, **changed})
    _, history = training.train(data, tmp_path / "run", epochs=2, **options)
    assert history.epoch == [1]


def test_a_run_started_again_reading_its_masks_otherwise_is_refused(tmp_path):
    # Another label map trains on other masks. The map is recorded as sorted [raw, class] pairs (JSON keys cannot
    # be ints), so the same map with numpy keys is the same run.
    data = write_pairs(tmp_path / "train", 2)
    options = {**TINY_MODEL, "num_classes": 3, "crop_size": (32, 32), "batch_size": 2, "seed": 0, "verbose": 0}
    training.train(data, tmp_path / "run", epochs=1, label_map={2: 255, 1: 1}, **options)
    assert json.loads((tmp_path / "run" / run_folder.RUN_FILE).read_text())["label_map"] == [[1, 1], [2, 255]]
    for label_map, received in [({2: 1}, r"\[\[2, 1\]\]"), (None, "None")]:
        with pytest.raises(ValueError, match=rf"holds a run with label_map=\[\[1, 1\], \[2, 255\]\] .*Received "
                           rf"label_map={received}"):
            training.train(data, tmp_path / "run", epochs=2, label_map=label_map, **options)
    _, history = training.train(data, tmp_path / "run", epochs=2, label_map={np.int64(1): 1, 2: 255}, **options)
    assert history.epoch == [1]


def test_a_run_started_again_with_or_without_no_augment_is_refused_saying_which(tmp_path, capsys):
    data = write_pairs(tmp_path / "train", 2)
    command = ["train", data, "--output-dir", str(tmp_path / "run"), "--num-classes", "3", *TINY_CLI, "--model",
               "fcn32s", "--crop-size", "32x32", "--batch-size", "2", "--epochs", "1", "--seed", "0", "--verbose", "0"]
    assert cli.main(command) == 0
    assert cli.main([*command, "--no-augment"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"keras-fcn train: error: The run folder {str(tmp_path / 'run')!r} holds a run with no --no-augment (in "
        "run.json), which this run would continue: give the same `--no-augment`, or another `--output-dir`. "
        "Received --no-augment"
    )
