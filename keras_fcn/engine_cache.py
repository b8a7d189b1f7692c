"""Exported models cached on disk under the Keras cache folder, keyed by everything they depend on.

An entry is a folder `$KERAS_HOME/keras_fcn/engines/<engine>-<digest>/`
holding the exported files and `manifest.json` (its key and the sha256 of
each file). It is written under a temporary name and renamed into place
when complete, so a killed export leaves no entry. Before an entry is used
its manifest and every file's sha256 are checked: a corrupt entry (a file
missing, truncated or changed) or a stale one (a manifest made for another
key) is deleted and exported again, never used.
"""

import hashlib
import json
import os
import shutil
import warnings

import keras
import numpy as np

from keras_fcn.files import cache_dir, make_cache_folder, sha256_of, temporary_path, write_json_atomically

ENGINES_SUBDIR = "engines"
MANIFEST = "manifest.json"
DIGEST_CHARACTERS = 24


def weights_digest(model):
    """The sha256 of a model's weights: each weight's dtype, shape and bytes, in `model.weights` order.

    Args:
        model: a `keras.Model`.

    Returns:
        str, 64 hex digits.
    """
    digest = hashlib.sha256()
    for weight in model.weights:  # one at a time: a copy of one weight in memory, not of them all
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(memoryview(value).cast("B"))
    return digest.hexdigest()


def architecture_digest(model):
    """The sha256 of a model's architecture: its JSON config, sorted, without the model's own name.

    The model's name is left out because Keras numbers unnamed models in the
    order they are made ("functional_3"); layer names stay, as they wire the
    layers together.

    Args:
        model: a `keras.Model`.

    Returns:
        str, 64 hex digits.
    """
    config = json.loads(model.to_json())
    config.get("config", {}).pop("name", None)
    config.pop("name", None)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def entry_folder(key):
    """The cache folder of the entry for `key` (a dict with at least an `"engine"` field); it may not exist."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:DIGEST_CHARACTERS]
    return os.path.join(cache_dir(), ENGINES_SUBDIR, f"{key['engine']}-{digest}")


def _manifest(folder):
    """The manifest of an entry folder, or None when it is missing or unreadable."""
    try:
        with open(os.path.join(folder, MANIFEST), encoding="utf-8") as file:
            manifest = json.load(file)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def is_valid(folder, key):
    """Whether `folder` is a complete entry for `key`: its manifest names `key` and every file has its sha256."""
    manifest = _manifest(folder)
    if manifest is None or manifest.get("key") != key or not isinstance(manifest.get("files"), dict):
        return False
    names = set(os.listdir(folder)) - {MANIFEST}
    if names != set(manifest["files"]):
        return False
    return all(sha256_of(os.path.join(folder, name)) == sha256 for name, sha256 in manifest["files"].items())


def cached_export(key, export):
    """The folder of a valid cache entry for `key`, made by `export` when there is none.

    Args:
        key: a JSON-serializable dict of everything the exported files
            depend on (architecture, weights, precision, engine and its
            version, ...), with an `"engine"` field.
        export: a function of one argument, an empty folder, that writes the
            exported files into it; it may raise, and then nothing is cached.

    Returns:
        str, the entry's folder. `export` is called only when the entry is
        missing, corrupt or stale; such an entry is deleted first.
    """
    folder = entry_folder(key)
    if is_valid(folder, key):
        return folder
    if os.path.lexists(folder):
        warnings.warn(f"Exporting again: the cache entry {folder} is corrupt or stale.", RuntimeWarning, stacklevel=2)
        shutil.rmtree(folder)
    make_cache_folder(os.path.dirname(folder))
    partial = temporary_path(folder)
    os.makedirs(partial)
    try:
        export(partial)
        files = {name: sha256_of(os.path.join(partial, name)) for name in sorted(os.listdir(partial))}
        write_json_atomically(os.path.join(partial, MANIFEST), {"key": key, "files": files})
        try:
            os.replace(partial, folder)
        except OSError:
            # Another process put a complete entry in place first: use it.
            if not is_valid(folder, key):
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder
