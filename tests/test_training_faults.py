"""Kills, full disks and wrong folders: a run refuses before writing, loses nothing, and repairs what a kill left."""

import csv
import errno
import json
import os
import resource
import signal
import socket

import keras
import numpy as np
import pytest

from keras_fcn import cli, training
from keras_fcn.callbacks import AtomicModelCheckpoint
from keras_fcn.training import run_folder
from _training_helpers import CHILD_ENV, NUM_CLASSES, TINY_CLI, TINY_MODEL, run_python, write_pairs

TINY_RUN = {**TINY_MODEL, "num_classes": NUM_CLASSES, "model": "fcn32s", "crop_size": (32, 32), "verbose": 0}


def _files(folder):
    """Every file under `folder` with its content."""
    return {
        os.path.relpath(os.path.join(root, name), folder): open(os.path.join(root, name), "rb").read()
        for root, _, names in os.walk(folder)
        for name in names
    }


def _logged_epochs(run):
    with open(run / "log.csv", newline="") as file:
        return [row["epoch"] for row in csv.DictReader(file)]


def _assert_same_weights(model, reference):
    for weight, expected in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(weight, expected)


class Killed(Exception):
    """Stands for the process being killed: nothing after it runs."""


@pytest.mark.parametrize("steps_per_epoch", [None, 2])
def test_a_batch_larger_than_the_data_is_refused_before_training_naming_both(tmp_path, steps_per_epoch):
    data = write_pairs(tmp_path / "train", 4)
    with pytest.raises(ValueError, match=r"`batch_size` must be at most the number of training pairs, 4, .*=8"):
        training.train(data, tmp_path / "run", **TINY_RUN, batch_size=8, steps_per_epoch=steps_per_epoch)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "recorded, message",
    [
        ({"classes.json": {"class_names": ["a", "b"]}}, r"holds a run of other classes, \['a', 'b'\] in classes.json; "
         r"this run's are \['0', '1', '2'\]"),
        ({"run.json": {"model": "fcn8s", "backbone": "mobilenet", "backbone_kwargs": {"alpha": 0.25}, "seed": 1}},
         r"holds a run with model='fcn8s' \(in run.json\), which this run would continue: give the same `model`"),
        ({"run.json": {"model": "fcn32s", "backbone": "mobilenet", "backbone_kwargs": {"alpha": 0.25}, "seed": 1}},
         r"holds a run with seed=1 .* Received seed=2"),
    ],
)
def test_a_folder_of_another_run_is_refused_before_anything_is_written(tmp_path, recorded, message):
    data = write_pairs(tmp_path / "train", 2)
    run = tmp_path / "run"
    os.makedirs(run / "backup")
    for name, content in recorded.items():
        (run / name).write_text(json.dumps(content))
    (run / "log.csv").write_text("epoch,loss\n0,1.0\n")
    before = _files(run)
    with pytest.raises(ValueError, match=message):
        training.train(data, run, **TINY_RUN, batch_size=2, seed=2)
    assert _files(run) == before


def test_a_second_training_into_a_held_folder_refuses_on_one_line_naming_the_first(tmp_path, capsys):
    data = write_pairs(tmp_path / "train", 2)
    run = tmp_path / "run"
    arguments = ["train", data, "--output-dir", str(run), "--num-classes", "3", *TINY_CLI, "--batch-size", "2"]
    with run_folder.locked(str(run)):
        holder = json.loads((run / run_folder.LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert cli.main(arguments) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"is in use by another training (pid {os.getpid()} on host {socket.gethostname()}, started " in line
    assert f"started {holder['started']})" in line
    # Released, the folder (created by the lock and left empty) is gone.
    assert not run.exists()


def test_a_training_refused_for_its_data_leaves_no_folders_it_made(tmp_path):
    data = write_pairs(tmp_path / "train", 2)
    with open(os.path.join(data, "images", "001.png"), "wb") as broken:
        broken.write(b"not a png")
    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match="001.png"):
        training.train(data, tmp_path / "runs" / "deep" / "c", **TINY_RUN, batch_size=2)
    assert os.listdir(tmp_path / "runs") == []  # neither c nor deep; runs was there before


def test_a_kill_while_the_last_checkpoints_are_written_is_repaired_by_the_next_start(tmp_path, monkeypatch):
    data = write_pairs(tmp_path / "train", 4)
    val = write_pairs(tmp_path / "val", 2, seed=1)
    run = tmp_path / "run"
    save_checkpoint = AtomicModelCheckpoint.on_epoch_end

    def killed_while_saving(self, epoch, logs=None):
        if epoch == 1:  # the last epoch: its backup and log row are written, best.keras is being written
            with open(self.filepath, "wb") as file:
                file.write(b"half a model")
            raise Killed
        save_checkpoint(self, epoch, logs)

    # No seed: one is drawn, recorded, and read again by the next start.
    monkeypatch.setattr(AtomicModelCheckpoint, "on_epoch_end", killed_while_saving)
    with pytest.raises(Killed):
        training.train(data, run, validation=val, **TINY_RUN, batch_size=2, epochs=2)
    monkeypatch.setattr(AtomicModelCheckpoint, "on_epoch_end", save_checkpoint)
    seed = json.loads((run / "run.json").read_text())["seed"]
    assert [name for name in os.listdir(run) if name.startswith(".best.keras.")], "the kill left a temporary file"
    assert json.loads((run / "best.keras.json").read_text())["epoch"] == 1
    best_before = (run / "best.keras").read_bytes()
    backup = keras.saving.load_model(run / "backup" / "epoch-2.keras")

    _, history = training.train(data, run, validation=val, **TINY_RUN, batch_size=2, epochs=2)
    assert history.epoch == []  # nothing left to train
    assert json.loads((run / "run.json").read_text())["seed"] == seed
    assert _logged_epochs(run) == ["0", "1"]
    # last.keras is the last epoch's model; best.keras too if that epoch's mean IU beat the first's, else kept.
    _assert_same_weights(keras.saving.load_model(run / "last.keras"), backup)
    with open(run / "log.csv", newline="") as file:
        values = [float(row["val_mean_iou"]) for row in csv.DictReader(file)]
    best = json.loads((run / "best.keras.json").read_text())
    assert best["epoch"] == (2 if values[1] > values[0] else 1) and best["value"] == pytest.approx(max(values))
    if best["epoch"] == 2:
        _assert_same_weights(keras.saving.load_model(run / "best.keras"), backup)
    else:
        assert (run / "best.keras").read_bytes() == best_before
    # The temporary files that kills left are gone; so is the lock.
    assert sorted(name for name in os.listdir(run) if name.startswith(".")) == []
    assert sorted(os.listdir(run / "backup")) == ["epoch-2.keras", "training_metadata.json"]


def test_a_full_disk_while_the_backup_is_written_ends_on_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys):
    data = write_pairs(tmp_path / "train", 4)
    run = tmp_path / "run"
    arguments = [
        "train", data, "--output-dir", str(run), "--num-classes", "3", *TINY_CLI, "--model", "fcn32s",
        "--crop-size", "32x32", "--batch-size", "2", "--epochs", "2", "--seed", "0", "--verbose", "0",
    ]
    save = keras.Model.save

    def disk_full_at_the_second_backup(model, path, *args, **kwargs):
        if os.path.basename(path).startswith(".epoch-2.keras."):
            with open(path, "wb") as file:
                file.write(b"part of a model")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(model, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", disk_full_at_the_second_backup)
    assert cli.main(arguments) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    target = os.path.join(run, "backup", "epoch-2.keras")
    assert line == f"keras-fcn train: error: [Errno 28] No space left on device while writing {target}"
    # Nothing lost: the first epoch's backup, log row and checkpoints, and no temporary file.
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert sorted(os.listdir(run / "backup")) == ["epoch-1.keras", "training_metadata.json"]
    assert _logged_epochs(run) == ["0"]
    assert json.loads((run / "best.keras.json").read_text())["epoch"] == 1

    monkeypatch.setattr(keras.Model, "save", save)
    assert cli.main(arguments) == 0
    assert _logged_epochs(run) == ["0", "1"]


def test_a_write_the_system_refuses_is_an_error_naming_the_file_not_a_crash(tmp_path):
    """A real failing write: a file size limit (EFBIG), as a full disk fails the write (ENOSPC).

    HDF5 files written by h5py directly (the backups were `.weights.h5`)
    crashed the process when a write failed: with this limit, exit status
    -11 (139 in a shell), a segmentation fault.
    """
    data = write_pairs(tmp_path / "train", 2)
    run = tmp_path / "run"
    arguments = [
        "-m", "keras_fcn", "train", data, "--output-dir", str(run), "--num-classes", "3", *TINY_CLI,
        "--model", "fcn32s", "--crop-size", "32x32", "--batch-size", "2", "--epochs", "1", "--verbose", "0",
    ]

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, resource.RLIM_INFINITY))

    result = run_python(arguments, timeout=300, env={**CHILD_ENV, "PYTHONDONTWRITEBYTECODE": "1"},
                        preexec_fn=limit_file_size)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    backup = os.path.join(run, "backup", "epoch-1.keras")
    assert lines[-1] == f"keras-fcn train: error: [Errno 27] File too large while writing {backup}"
    assert not (run / "backup" / "training_metadata.json").exists()
    assert [name for name in os.listdir(run / "backup") if name.startswith(".")] == []


HANGING_RUN = """
import sys
import keras_fcn
data = keras_fcn.data.from_folders(sys.argv[1] + "/images", sys.argv[1] + "/masks", num_classes=3, check=False)
keras_fcn.train(data, sys.argv[2], num_classes=3, backbone="mobilenet", backbone_weights=None,
                backbone_kwargs={"alpha": 0.25}, crop_size=(16, 16), batch_size=4, epochs=1, verbose=0)
"""


def test_an_uncaught_data_error_inside_fit_ends_the_process_instead_of_hanging(tmp_path):
    # Pairs that break while training reads them (checks skipped), and a script that does not catch the error: the
    # tf.data iterator Keras's loop held used to be collected at interpreter exit, waiting forever for its workers.
    data = write_pairs(tmp_path / "train", 40)
    for name in os.listdir(os.path.join(data, "masks")):
        keras.utils.save_img(os.path.join(data, "masks", name), np.zeros((32, 31, 1), np.uint8), scale=False)
    result = run_python(["-c", HANGING_RUN, data, str(tmp_path / "run")], timeout=180)
    assert result.returncode == 1
    assert "differ in size" in result.stderr
