"""The run folder: one training at a time, the same run when started again, nothing left behind by kills.

- `locked`: a training holds its folder (`training.lock`, naming its pid,
  host and start time) until it ends; another training started into it
  refuses at once, naming the holder. The lock is the operating system's
  (`fcntl.flock`, POSIX), which it releases when the holder dies however it
  is killed, so the lock file a killed run left is taken over. Where there
  is no `fcntl` (Windows), the folder is not locked and there is no file.
- `prepare`: before anything is written, checks that a folder holding an
  earlier run holds this run (its classes, `classes.json`; its model and
  seed, `run.json`), removes the temporary files that killed processes left,
  and returns the run's seed: given, recorded, or drawn once.
- `record`: writes `classes.json` and `run.json`.
"""

import contextlib
import datetime
import json
import os
import secrets
import socket

from keras_fcn.constants import CLASSES_FILE
from keras_fcn.errors import InvalidArgumentError
from keras_fcn.files import remove_temporaries, write_json_atomically

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = "training.lock"
RUN_FILE = "run.json"
BACKUP_FOLDER = "backup"
# The options a resumed run must share with the run it continues: those of the model its backup holds, and those that
# choose its batches (a function of the seed and the epoch's number: the masks' reading, augmentation, crops, batch
# size) and each step (the loss, optimizer and precision), so that it ends where the uninterrupted run ends.
# `epochs` may grow: a finished run trains on.
RECORDED_OPTIONS = (
    "model", "backbone", "backbone_kwargs", "label_map", "color_map", "mask_threshold", "loss", "class_weights",
    "augment", "scale_range", "jitter", "crop_size", "batch_size", "steps_per_epoch", "optimizer", "learning_rate",
    "weight_decay", "mixed_precision",
)
# Seeds drawn for runs started without one: the range `keras.utils.set_random_seed` takes (numpy's).
SEED_RANGE = 2**32


def _plain(value):
    """A numpy scalar or array as Python numbers (for `json.dumps`)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{value!r} is not JSON serializable")


def _recorded(name, value):
    """An option's value as run.json holds it: JSON's form (tuples as lists), a mask-reading map as sorted pairs.

    `label_map` `{raw: class}` becomes `[[raw, class], ...]` and a `color_map` given as colours `[[[r, g, b],
    class], ...]` (JSON keys cannot be ints or tuples); a colour map file is its path.
    """
    if value is not None and name == "label_map":
        value = sorted([int(raw), int(class_id)] for raw, class_id in value.items())
    elif value is not None and name == "color_map":
        if isinstance(value, (str, os.PathLike)):
            value = os.fspath(value)
        else:
            pairs = value.items() if isinstance(value, dict) else ((color, index) for index, color in enumerate(value))
            value = sorted([[int(channel) for channel in color], int(class_id)] for color, class_id in pairs)
    return json.loads(json.dumps(value, default=_plain))


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def _holder(path):
    """The training that holds the lock at `path`, in words."""
    holder = _read_json(path)
    if not isinstance(holder, dict):
        return "another training, just starting"
    return f"another training (pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')})"


def _acquire(path, output_dir):
    """Locks `path` (created), writes this process into it, and returns its file descriptor (None without `fcntl`)."""
    if fcntl is None:
        return None
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise InvalidArgumentError(
                f"The run folder {output_dir!r} is in use by {_holder(path)}: wait for it to end, or give another "
                f"`output_dir`. Received output_dir={output_dir!r}"
            ) from None
        # A holder ending meanwhile removed the file it held: lock the file now at `path`.
        try:
            if os.path.samestat(os.fstat(descriptor), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(descriptor)
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    os.ftruncate(descriptor, 0)
    os.write(descriptor, (json.dumps(holder) + "\n").encode())
    return descriptor


@contextlib.contextmanager
def locked(run_dir):
    """Holds `run_dir` for one training: created if needed (with its parents), and removed again if left empty.

    Args:
        run_dir: str, the run folder.

    Raises:
        keras_fcn.errors.InvalidArgumentError: when another training holds
            it, naming its pid, host and start time.
    """
    created = _missing_folders(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, LOCK_FILE)
    descriptor = _acquire(path, run_dir)
    try:
        yield
    finally:
        if descriptor is not None:
            os.remove(path)  # while locked: a training starting meanwhile locks a file that is gone, and tries again
            os.close(descriptor)
        for folder in created:  # the deepest first: a failed training leaves no empty folders of its own
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)


def _missing_folders(path):
    """`path` and those of its parents that do not exist, the deepest first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def prepare(run_dir, class_names, options):
    """Checks that `run_dir` holds no other run, removes what killed processes left, and returns the seed.

    Writes nothing: `record` does, once training is ready to start.

    Args:
        run_dir: str, the run folder, held (`locked`).
        class_names: tuple of str, this run's classes.
        options: the run's `keras_fcn.training.TrainingOptions`.

    Returns:
        int, the run's seed: `options.seed`, else the one recorded by the
        run started earlier in this folder, else a new one.

    Raises:
        keras_fcn.errors.InvalidArgumentError: when the folder holds a run
            of other classes, seed or `RECORDED_OPTIONS` (model, backbone,
            mask reading, loss, class weights, augmentation, crops, batches, optimizer,
            learning rate, weight decay, precision), naming both.
    """
    recorded_classes = _read_json(os.path.join(run_dir, CLASSES_FILE))
    if recorded_classes is not None and tuple(recorded_classes.get("class_names", ())) != tuple(class_names):
        raise InvalidArgumentError(
            f"The run folder {run_dir!r} holds a run of other classes, {recorded_classes.get('class_names')} "
            f"in {CLASSES_FILE}; this run's are {list(class_names)}: give another `output_dir`. "
            f"Received output_dir={run_dir!r}"
        )
    run = _read_json(os.path.join(run_dir, RUN_FILE)) or {}
    for name in RECORDED_OPTIONS + ("seed",):
        given = _recorded(name, getattr(options, name))
        if name in run and given != run[name] and not (name == "seed" and given is None):
            raise InvalidArgumentError(
                f"The run folder {run_dir!r} holds a run with {name}={run[name]!r} (in {RUN_FILE}), which this run "
                f"would continue: give the same `{name}`, or another `output_dir`. Received {name}={given!r}"
            )
    for folder in (run_dir, os.path.join(run_dir, BACKUP_FOLDER)):
        if os.path.isdir(folder):
            remove_temporaries(folder)
    if options.seed is not None:
        return options.seed
    return run.get("seed", secrets.randbelow(SEED_RANGE))


def record(run_dir, class_names, options, seed):
    """Writes the run's `classes.json` and `run.json` (its model options and `seed`) into `run_dir`."""
    write_json_atomically(os.path.join(run_dir, CLASSES_FILE), {"class_names": list(class_names)})
    run = {name: _recorded(name, getattr(options, name)) for name in RECORDED_OPTIONS}
    write_json_atomically(os.path.join(run_dir, RUN_FILE), {**run, "seed": seed})
