"""The atomic backup, checkpoint and CSV log callbacks, resumed in-process on a tiny model."""

import csv
import json
import os

import keras
import numpy as np
import pytest

from keras_fcn.callbacks import AtomicBackupAndRestore, AtomicModelCheckpoint, ResumableCSVLogger

pytestmark = pytest.mark.floor

X = np.linspace(-1, 1, 16, dtype="float32").reshape(8, 2)
Y = (X @ np.array([[2.0], [-1.0]], "float32")) + 0.5


def _model(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    return model


def _state(model):
    """The model's weights and its optimizer's variables (step count, learning rate, momentums), as numpy."""
    return [np.array(w) for w in model.get_weights()] + [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]


class _StateAtStart(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self, "state"):
            self.state = _state(self.model)


def _callbacks(run):
    dependents = [
        ResumableCSVLogger(run / "log.csv"),
        AtomicModelCheckpoint(run / "best.keras", monitor="loss", mode="min", save_best_only=True),
        AtomicModelCheckpoint(run / "last.weights.h5", save_weights_only=True),
    ]
    backup = AtomicBackupAndRestore(run / "backup", dependents=dependents)
    return backup, [backup, *dependents]


def _logged_epochs(run):
    with open(run / "log.csv", newline="") as file:
        return [row["epoch"] for row in csv.DictReader(file)]


def test_a_resumed_fit_continues_from_the_backup(tmp_path):
    first = _model(0)
    backup, callbacks = _callbacks(tmp_path)
    assert backup.initial_epoch == 0
    history = first.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text()) == {
        "epoch": 2, "batch": 0, "weights": "epoch-2.keras", "logs": {"loss": history.history["loss"][-1]}
    }
    assert sorted(os.listdir(tmp_path / "backup")) == ["epoch-2.keras", "training_metadata.json"]
    assert _logged_epochs(tmp_path) == ["0", "1"]
    record = json.loads((tmp_path / "best.keras.json").read_text())
    assert record["epoch"] in (1, 2) and record["monitor"] == "loss"
    # Nothing but the targets and their records: the temporary files were renamed or removed.
    assert sorted(name for name in os.listdir(tmp_path) if name != "backup") == [
        "best.keras", "best.keras.json", "last.weights.h5", "log.csv"
    ]
    trained = _state(first)

    # A killed run may have logged an epoch that its backup does not hold: that row is dropped and logged again.
    with open(tmp_path / "log.csv", "a", newline="") as file:
        file.write("2,99.0\n")
    # An unbeatable best value: the resumed run must not replace best.keras.
    (tmp_path / "best.keras.json").write_text(json.dumps({"epoch": 1, "monitor": "loss", "value": 0.0}))
    best_before = (tmp_path / "best.keras").read_bytes()

    resumed = _model(1)
    backup, callbacks = _callbacks(tmp_path)
    assert backup.initial_epoch == 2
    start = _StateAtStart()
    history = resumed.fit(
        X, Y, batch_size=4, epochs=3, initial_epoch=backup.initial_epoch, shuffle=False, verbose=0,
        callbacks=[*callbacks, start],
    )
    assert len(history.history["loss"]) == 1
    # Weights, momentums and step count (2 epochs of 2 steps) as the first run left them.
    assert len(start.state) == len(trained) == 2 + 4 and trained[2] == 4
    for restored, saved in zip(start.state, trained):
        np.testing.assert_array_equal(restored, saved)
    assert _logged_epochs(tmp_path) == ["0", "1", "2"]
    assert (tmp_path / "best.keras").read_bytes() == best_before
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 3

    # A finished run fitted again trains nothing and keeps its log.
    again = _model(2)
    backup, callbacks = _callbacks(tmp_path)
    again.fit(X, Y, epochs=3, initial_epoch=backup.initial_epoch, verbose=0, callbacks=callbacks)
    assert _logged_epochs(tmp_path) == ["0", "1", "2"]


class _Killed(Exception):
    """Stands for the process being killed: nothing after it runs."""


def test_a_kill_after_the_backup_loses_no_log_row_and_leaves_no_checkpoint_behind(tmp_path, monkeypatch):
    write_row = ResumableCSVLogger.on_epoch_end

    def killed_before_the_second_row(self, epoch, logs=None):
        if epoch == 1:
            raise _Killed
        write_row(self, epoch, logs)

    monkeypatch.setattr(ResumableCSVLogger, "on_epoch_end", killed_before_the_second_row)
    model = _model(0)
    _, callbacks = _callbacks(tmp_path)
    history = keras.callbacks.History()
    with pytest.raises(_Killed):
        model.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[history, *callbacks])
    monkeypatch.setattr(ResumableCSVLogger, "on_epoch_end", write_row)
    assert _logged_epochs(tmp_path) == ["0"]
    trained = _state(model)

    # Started again: nothing to train, but the row of epoch 1 and its checkpoints are written from the backup.
    backup, callbacks = _callbacks(tmp_path)
    _model(1).fit(X, Y, batch_size=4, epochs=2, initial_epoch=backup.initial_epoch, verbose=0, callbacks=callbacks)
    with open(tmp_path / "log.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert float(rows[1]["loss"]) == history.history["loss"][1]
    last = _model(2)
    last.optimizer.build(last.trainable_variables)
    last.load_weights(tmp_path / "last.weights.h5")
    for restored, saved in zip(_state(last)[:2], trained[:2]):
        np.testing.assert_array_equal(restored, saved)
    # The loss fell in epoch 1: the best checkpoint is epoch 1's too.
    assert history.history["loss"][1] < history.history["loss"][0]
    assert json.loads((tmp_path / "best.keras.json").read_text()) == {
        "epoch": 2, "monitor": "loss", "value": history.history["loss"][1]
    }
    best = keras.saving.load_model(tmp_path / "best.keras", compile=False)
    for restored, saved in zip(best.get_weights(), trained[:2]):
        np.testing.assert_array_equal(restored, saved)


def test_fit_must_start_where_the_backup_ends(tmp_path):
    backup, callbacks = _callbacks(tmp_path)
    _model(0).fit(X, Y, epochs=1, verbose=0, callbacks=callbacks)
    backup, callbacks = _callbacks(tmp_path)
    with pytest.raises(ValueError, match="holds 1 completed epochs.*initial_epoch=backup.initial_epoch.*initial_epoch=0"):
        _model(0).fit(X, Y, epochs=2, verbose=0, callbacks=callbacks)


def test_checkpoint_refuses_placeholders(tmp_path):
    with pytest.raises(ValueError, match="filepath="):
        AtomicModelCheckpoint(tmp_path / "model-{epoch:02d}.keras")
