"""Writing files so that a reader never sees one half-written: temporary name, then an atomic rename.

A file is written under a hidden temporary name beside its target and
renamed onto it (`os.replace`, atomic on POSIX and Windows) only once
complete; on any failure the temporary file is removed, and an error of the
system (a full disk) is reported naming the file. A process killed while
writing leaves its temporary file behind: `remove_temporaries` clears a
folder of them. Used by
the zoo (downloads, conversions, the manifest), the trainer (`classes.json`,
`run.json`) and the training callbacks (checkpoints, backups, logs).
"""

import contextlib
import hashlib
import json
import os
import re
import uuid

from keras_fcn.errors import InvalidDataError

CACHE_SUBDIR = "keras_fcn"


def cache_dir():
    """keras-fcn's cache folder, `$KERAS_HOME/keras_fcn`: downloaded and converted weights, exported engines.

    `KERAS_HOME` is read at each call (default `~/.keras`), so it can be
    changed after Keras is imported.
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, CACHE_SUBDIR)


def make_cache_folder(folder):
    """Makes `folder`, a folder of `cache_dir()`, and its parents, as needed.

    Raises:
        keras_fcn.errors.InvalidDataError: when it cannot be made (e.g.
            `KERAS_HOME` is a file, or read-only), naming it and
            `KERAS_HOME`.
    """
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise InvalidDataError(
            f"keras-fcn's cache folder {folder} cannot be made ({error.strerror}: {error.filename}). It is under "
            f"KERAS_HOME={os.environ.get('KERAS_HOME', '(unset: ~/.keras)')}: set KERAS_HOME to a folder you can write to."
        ) from error


def sha256_of(path):
    """The sha256 of a file, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def temporary_path(path, suffix=""):
    """A unique hidden name beside `path` ending in `suffix`, so that `os.replace` onto `path` is atomic."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{uuid.uuid4().hex}.part{suffix}")


_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{32}\.part")


def remove_temporaries(folder):
    """Removes the temporary files (`temporary_path`) that killed processes left in `folder` (not in subfolders).

    Only safe when no other process is writing in `folder`.

    Args:
        folder: str, an existing folder.

    Returns:
        list of str, the names of the files removed.
    """
    names = sorted(name for name in os.listdir(folder) if _TEMPORARY.match(name))
    for name in names:
        remove_if_exists(os.path.join(folder, name))
    return names


def remove_if_exists(path):
    """Removes a file (or link) if there is one at `path`."""
    if os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def writing(path):
    """Reports an error of the system (errno set: a full disk, a quota) in the `with` block as writing `path` failing.

    Raises:
        OSError: of the same errno, e.g. `"[Errno 28] No space left on
            device while writing <path>"`, from the original.
    """
    try:
        yield
    except OSError as error:
        if error.errno is None:
            raise
        raise OSError(error.errno, f"{os.strerror(error.errno)} while writing {path}") from error


def save_atomically(save, path):
    """Calls `save(temporary)` on a temporary name beside `path`, then renames it onto `path`.

    Args:
        save: a function writing a file to the path it gets, e.g.
            `model.save`; the temporary name ends like `path` (`.keras`,
            `.weights.h5`, ...) so Keras accepts it.
        path: str, the file to write; its folder is created if needed.

    Raises:
        OSError: when `save` or the rename fail with an error of the system,
            naming `path` (see `writing`); other errors as raised.
    """
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    name = os.path.basename(path)
    temporary = temporary_path(path, name[name.find(".") :] if "." in name else "")
    try:
        with writing(path):
            save(temporary)
            os.replace(temporary, path)
    finally:
        remove_if_exists(temporary)


def write_json_atomically(path, record):
    """Writes `record` as indented JSON (and a final newline) to `path`, atomically."""

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(record, file, indent=1)
            file.write("\n")

    save_atomically(write, path)
