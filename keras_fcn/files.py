"""Writing files so that a reader never sees one half-written: temporary name, then an atomic rename.

A file is written under a hidden temporary name beside its target and
renamed onto it (`os.replace`, atomic on POSIX and Windows) only once
complete; on any failure the temporary file is removed. Used by the zoo
(downloads, conversions, the manifest), the trainer (`classes.json`) and
the training callbacks (checkpoints, backups, logs).
"""

import hashlib
import json
import os
import uuid

CACHE_SUBDIR = "keras_fcn"


def cache_dir():
    """keras-fcn's cache folder, `$KERAS_HOME/keras_fcn`: downloaded and converted weights, exported engines.

    `KERAS_HOME` is read at each call (default `~/.keras`), so it can be
    changed after Keras is imported.
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, CACHE_SUBDIR)


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


def remove_if_exists(path):
    """Removes a file (or link) if there is one at `path`."""
    if os.path.lexists(path):
        os.remove(path)


def save_atomically(save, path):
    """Calls `save(temporary)` on a temporary name beside `path`, then renames it onto `path`.

    Args:
        save: a function writing a file to the path it gets, e.g.
            `model.save`; the temporary name ends like `path` (`.keras`,
            `.weights.h5`, ...) so Keras accepts it.
        path: str, the file to write; its folder is created if needed.
    """
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    name = os.path.basename(path)
    temporary = temporary_path(path, name[name.find(".") :] if "." in name else "")
    try:
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
