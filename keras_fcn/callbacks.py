"""Training callbacks that survive a killed process: atomic checkpoints, backups and a resumable CSV log.

Keras writes checkpoints in place, so a process killed while saving leaves a
half-written file. These callbacks write every file under a temporary name
beside its target and rename it onto the target (`os.replace`, atomic on
POSIX and Windows) only once complete.

The backup is a run's commit point: at each epoch end it is written first,
with the epoch's logs, and the log and the checkpoints after it. A process
killed between the two leaves them one epoch behind the backup: when the
run starts again, the backup hands the end of the epoch it holds to the
callbacks given as its `dependents`, which write what they missed, even
when nothing is left to train.

A resumed run starts from the epoch its backup holds: pass
`initial_epoch=backup.initial_epoch` to `model.fit`
(`keras.callbacks.BackupAndRestore` moves the start through a private
attribute of the model instead, which no public API offers). The log and
the checkpoints learn where a run starts from the first epoch they see.

>>> log = ResumableCSVLogger("run/log.csv")
>>> backup = AtomicBackupAndRestore("run/backup", dependents=[log])
>>> model.fit(data, epochs=10, initial_epoch=backup.initial_epoch,
...           callbacks=[backup, log])
"""

import csv
import json
import os
import re

import keras

from keras_fcn.files import remove_if_exists, save_atomically, temporary_path, write_json_atomically, writing

# The files of a backup: the current one's, and those of older formats and epochs, removed once replaced.
_BACKUP_FILE = re.compile(r"^epoch-\d+\.(keras|weights\.h5)$")


def _read_json(path):
    """A JSON file's content, or None when it does not exist."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _numbers(logs):
    """The entries of an epoch's `logs` that are numbers, as floats (for JSON)."""
    numbers = {}
    for key, value in (logs or {}).items():
        try:
            numbers[key] = float(value)
        except (TypeError, ValueError):
            continue
    return numbers


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """A backup of the training state that is never half-written, for resuming killed runs.

    At each epoch end the model, its weights and optimizer state, goes to
    `backup_dir/epoch-<n>.keras` (`model.save`), written atomically, and
    then `training_metadata.json`, the commit point, is replaced atomically
    to name that file, the number `n` of completed epochs and the epoch's
    logs; older backup files are removed after. A process killed at any
    moment leaves a metadata file naming a complete backup of the epoch it
    records. At the start of training the weights it names are loaded, and
    each of `dependents` catches up with the end of that epoch (its
    `catch_up(epochs, logs)`). The backup is kept after training, so running
    a finished run again trains nothing (but the catching up), and raising
    `epochs` continues it.

    The backup is a `.keras` file, which Keras writes through Python's
    `zipfile` with the HDF5 weights in memory, so that a full disk is an
    `OSError` naming the file: h5py writing a `.weights.h5` file directly
    leaves HDF5 in a state that crashes the process (a segmentation fault)
    when a write fails. Backups of `.weights.h5` files are still read.

    Pass `initial_epoch=backup.initial_epoch` to `model.fit`: once a
    backup is restored, training refuses to start from another epoch than
    the backup's.

    Args:
        backup_dir: str, the folder of the backup (one per run and process).
        dependents: callbacks that write at each epoch end after this one
            (later in the callbacks of `fit`) and have a `catch_up(epochs,
            logs)` method: `ResumableCSVLogger`, `AtomicModelCheckpoint`.
    """

    def __init__(self, backup_dir, dependents=()):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self.metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self.dependents = tuple(dependents)
        self.restored_epoch = None

    @property
    def initial_epoch(self):
        """int, the number of epochs the backup holds (0 without one): where a resumed `fit` starts."""
        metadata = _read_json(self.metadata_path)
        return 0 if metadata is None else metadata["epoch"]

    def on_train_begin(self, logs=None):
        metadata = _read_json(self.metadata_path)
        self.restored_epoch = None
        if metadata is None:
            return
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            # Without a tf.distribute strategy Keras builds the optimizer in the first step, after this
            # callback: built now, its state (momentum, step count) is restored, not skipped with a warning.
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
        self.restored_epoch = metadata["epoch"]
        if "logs" in metadata:  # backups written before the logs were recorded have nothing to catch up with
            for dependent in self.dependents:
                dependent.catch_up(metadata["epoch"], metadata["logs"])

    def on_epoch_begin(self, epoch, logs=None):
        if self.restored_epoch is not None and epoch != self.restored_epoch:
            raise ValueError(
                f"The backup in '{self.backup_dir}' holds {self.restored_epoch} completed epochs, but "
                f"`model.fit` started at epoch {epoch}: pass `initial_epoch=backup.initial_epoch` to `fit`. "
                f"Received initial_epoch={epoch}"
            )
        self.restored_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch-{epoch + 1}.keras"
        save_atomically(self.model.save, os.path.join(self.backup_dir, name))
        write_json_atomically(
            self.metadata_path, {"epoch": epoch + 1, "batch": 0, "weights": name, "logs": _numbers(logs)}
        )
        for other in os.listdir(self.backup_dir):
            if _BACKUP_FILE.match(other) and other != name:
                remove_if_exists(os.path.join(self.backup_dir, other))


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` that writes atomically and keeps its best value across resumes.

    Keras saves each epoch's checkpoint under a temporary name beside
    `filepath`, which is then renamed onto `filepath`. With
    `save_best_only=True` it also writes `<filepath>.json` (the epoch, the
    monitored quantity and its value) after each save; when a resumed run
    starts (see `AtomicBackupAndRestore`) it reads the best value back, so
    a resumed run replaces the best checkpoint only with a better one. As a
    dependent of the backup it first saves what the end of the backup's
    last epoch should have, if a kill prevented it (`catch_up`).

    Args:
        filepath: str, the `.keras` file (`.weights.h5` with
            `save_weights_only=True`); a fixed name, without `{epoch}`
            placeholders.
        monitor, mode, save_best_only, save_weights_only, verbose,
            initial_value_threshold: as for
            `keras.callbacks.ModelCheckpoint`, which saves once per epoch.

    Raises:
        ValueError: for a `filepath` with placeholders.
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        mode="auto",
        save_best_only=False,
        save_weights_only=False,
        verbose=0,
        initial_value_threshold=None,
    ):
        filepath = os.fspath(filepath)
        if "{" in filepath:
            raise ValueError(f"`filepath` must be a fixed file name, without placeholders. Received filepath={filepath!r}")
        extension = ".weights.h5" if filepath.endswith(".weights.h5") else os.path.splitext(filepath)[1]
        super().__init__(
            temporary_path(filepath, extension),
            monitor=monitor,
            mode=mode,
            save_best_only=save_best_only,
            save_weights_only=save_weights_only,
            verbose=verbose,
            initial_value_threshold=initial_value_threshold,
        )
        self.target = filepath
        self.started = False

    @property
    def record_path(self):
        """str, the JSON file recording the epoch and value of the best checkpoint."""
        return f"{self.target}.json"

    def _read_best(self, epoch):
        """Takes the best value from the record, if it records this monitor at `epoch` completed epochs or before."""
        record = _read_json(self.record_path) if self.save_best_only else None
        if record is not None and record["monitor"] == self.monitor and record["epoch"] <= epoch:
            self.best = record["value"]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.started = False

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        if not self.started:
            self.started = True
            self._read_best(epoch)

    def on_epoch_end(self, epoch, logs=None):
        try:
            with writing(self.target):
                super().on_epoch_end(epoch, logs)
                saved = os.path.exists(self.filepath)
                if saved:
                    os.replace(self.filepath, self.target)
            if saved and self.save_best_only:
                write_json_atomically(
                    self.record_path, {"epoch": epoch + 1, "monitor": self.monitor, "value": float(self.best)}
                )
        finally:
            remove_if_exists(self.filepath)

    def catch_up(self, epochs, logs):
        """Saves the model as the end of epoch `epochs - 1`, with its `logs`, would have (`AtomicBackupAndRestore`).

        The last checkpoint is saved again; the best one only if the epoch's
        monitored value beats the recorded best (which a run killed after
        its backup may not have saved). Without the monitored value in
        `logs`, the best checkpoint is left as it is.

        Args:
            epochs: int, the number of completed epochs restored.
            logs: dict, the logs of the last of them.
        """
        if self.save_best_only and self.monitor not in logs:
            return
        self._read_best(epochs)
        self.on_epoch_end(epochs - 1, logs)


class ResumableCSVLogger(keras.callbacks.CSVLogger):
    """`keras.callbacks.CSVLogger` that continues a log where a resumed run starts.

    At the first epoch of training it keeps the rows of the epochs before
    it (0 for a fresh run, the restored epoch for a resumed one) and
    appends after them, so the log numbers every epoch once: none repeated,
    none lost, whenever the previous run was killed (with
    `AtomicBackupAndRestore`, which hands it the row of its last epoch).

    Args:
        filename: str, the CSV file.
        separator: str, the field separator.
    """

    def __init__(self, filename, separator=","):
        super().__init__(filename, separator=separator, append=True)
        self.csv_file = None  # older Keras versions set it in `on_train_begin` only
        self.started = False

    def _start(self, epoch):
        """Keeps the rows of the epochs before `epoch` and opens the file to append after them."""
        if self.csv_file is not None:
            self.csv_file.close()
        if os.path.isfile(self.filename):
            with open(self.filename, newline="", encoding="utf-8") as file:
                rows = list(csv.reader(file, delimiter=self.sep))
            kept = [row for row in rows[1:] if row and int(row[0]) < epoch]

            def rewrite(path):
                with open(path, "w", newline="", encoding="utf-8") as file:
                    csv.writer(file, delimiter=self.sep).writerows(rows[:1] + kept)

            if kept:
                save_atomically(rewrite, self.filename)
            else:
                os.remove(self.filename)
        self.writer, self.keys = None, None
        super().on_train_begin()

    def on_train_begin(self, logs=None):
        # The file is opened at the first epoch, once the epoch training starts from is known.
        self.started = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self.started:
            self.started = True
            self._start(epoch)

    def on_epoch_end(self, epoch, logs=None):
        with writing(self.filename):
            super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        if self.started:
            super().on_train_end(logs)

    def catch_up(self, epochs, logs):
        """Makes the row of epoch `epochs - 1`, from its `logs`, the log's last (`AtomicBackupAndRestore`).

        Args:
            epochs: int, the number of completed epochs restored.
            logs: dict, the logs of the last of them.
        """
        self._start(epochs - 1)
        self.on_epoch_end(epochs - 1, logs)
        self.csv_file.close()
