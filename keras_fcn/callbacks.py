"""Training callbacks that survive a killed process: atomic checkpoints, backups and a resumable CSV log.

Keras writes checkpoints in place, so a process killed while saving leaves a
half-written file. These subclasses write every file under a temporary name
beside its target and rename it onto the target (`os.replace`, atomic on
POSIX and Windows) only once complete.

`keras.callbacks.BackupAndRestore` tells the others where a resumed run
starts by setting `model._initial_epoch` in `on_train_begin` (what
`model.fit` then starts from), so list it before them in `callbacks`.
"""

import csv
import json
import os

import keras

from keras_fcn.files import remove_if_exists, save_atomically, write_json_atomically


def _resumed_epoch(model):
    """The epoch `model.fit` starts from, as set by a `BackupAndRestore` that ran before."""
    return model._initial_epoch or 0


def _read_json(path):
    """A JSON file's content, or None when it does not exist."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        return json.load(file)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backup is never half-written.

    At each epoch end the weights (optimizer state included) go to
    `backup_dir/epoch-<n>.weights.h5`, written atomically, and then
    `training_metadata.json`, the commit point, is replaced atomically to
    name that file and the number of completed epochs; older weights files
    are removed after. A process killed at any moment leaves a metadata file
    naming complete weights of the epoch it records, and a run started again
    resumes after that epoch. The backup is kept after training, so running
    a finished run again trains nothing, and raising `epochs` continues it.

    Args:
        backup_dir: str, the folder of the backup (one per run and process).
    """

    def __init__(self, backup_dir):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=False)

    def on_train_begin(self, logs=None):
        metadata = _read_json(self._training_metadata_path)
        if metadata is not None:
            self._weights_path = os.path.join(self.backup_dir, metadata["weights"])
        super().on_train_begin(logs)

    def _save_model(self):
        name = f"epoch-{self._current_epoch}.weights.h5"
        save_atomically(self.model.save_weights, os.path.join(self.backup_dir, name))
        write_json_atomically(
            self._training_metadata_path, {"epoch": self._current_epoch, "batch": 0, "weights": name}
        )
        for other in os.listdir(self.backup_dir):
            if other.startswith("epoch-") and other.endswith(".weights.h5") and other != name:
                remove_if_exists(os.path.join(self.backup_dir, other))


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` that writes atomically and keeps its best value across resumes.

    With `save_best_only=True` it also writes `<filepath>.json` (the epoch,
    the monitored quantity and its value) after each save; when a resumed
    run starts (see `AtomicBackupAndRestore`) it reads the best value back,
    so a resumed run replaces the best checkpoint only with a better one.
    Takes the arguments of `keras.callbacks.ModelCheckpoint`.
    """

    def on_train_begin(self, logs=None):
        record = _read_json(self._record_path)
        if (
            self.save_best_only
            and record is not None
            and record["monitor"] == self.monitor
            and record["epoch"] <= _resumed_epoch(self.model)
        ):
            self.best = record["value"]

    @property
    def _record_path(self):
        return f"{self.filepath}.json"

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, batch, logs, filepath):
            return
        save_atomically(self.model.save_weights if self.save_weights_only else self.model.save, filepath)
        if self.save_best_only:
            write_json_atomically(
                self._record_path, {"epoch": epoch + 1, "monitor": self.monitor, "value": float(self.best)}
            )


class ResumableCSVLogger(keras.callbacks.CSVLogger):
    """`keras.callbacks.CSVLogger` that continues a log where a resumed run starts.

    At the start of training it keeps the rows of the epochs before the one
    training starts from (0 for a fresh run, the restored epoch for a
    resumed one) and appends after them, so the log numbers every epoch
    once: none repeated, none lost, whenever the previous run was killed.

    Args:
        filename: str, the CSV file.
        separator: str, the field separator.
    """

    def __init__(self, filename, separator=","):
        super().__init__(filename, separator=separator, append=True)

    def on_train_begin(self, logs=None):
        start = _resumed_epoch(self.model)
        if os.path.isfile(self.filename):
            with open(self.filename, newline="", encoding="utf-8") as file:
                rows = list(csv.reader(file, delimiter=self.sep))
            kept = [row for row in rows[1:] if row and int(row[0]) < start]

            def rewrite(path):
                with open(path, "w", newline="", encoding="utf-8") as file:
                    csv.writer(file, delimiter=self.sep).writerows(rows[:1] + kept)

            if kept:
                save_atomically(rewrite, self.filename)
            else:
                os.remove(self.filename)
        super().on_train_begin(logs)
