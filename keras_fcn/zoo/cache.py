"""Verified downloads into the Keras cache, leaving nothing partial or unverified behind."""

import os

import keras

from keras_fcn.errors import InputError
from keras_fcn.files import cache_dir, make_cache_folder, remove_if_exists, sha256_of, temporary_path


class WeightsDownloadError(InputError, OSError):
    """No URL of a weights file gave a complete file with the expected sha256."""


def cached(path, sha256):
    """Whether `path` exists and, when `sha256` is known, has it; a file that does not is removed."""
    if not os.path.isfile(path):
        return False
    if sha256 is None or sha256_of(path) == sha256:
        return True
    os.remove(path)
    return False


def download(urls, fname, sha256=None):
    """Downloads a file once into `cache_dir()`, trying mirrors in turn.

    Each try goes through `keras.utils.get_file` into a temporary name beside
    the target, is checked against `sha256` when it is known, and is renamed
    onto the target only when complete; after any failure (network, HTTP
    error, truncated transfer, wrong hash, full disk) the temporary file is
    removed, so the cache never holds a partial or unverified file. A file
    already cached (with the right hash, when known) is returned without any
    network access; one with a wrong hash is replaced.

    Args:
        urls: sequence of str, the file's URL and its mirrors.
        fname: str, the file's name in the cache.
        sha256: str or None, the expected sha256.

    Returns:
        The path of the cached file.

    Raises:
        WeightsDownloadError: when every URL failed; the message lists each
            URL with its error, and where to put a file downloaded by hand.
    """
    directory = cache_dir()
    make_cache_folder(directory)
    target = os.path.join(directory, fname)
    if cached(target, sha256):
        return target
    failures = []
    for url in urls:
        partial = temporary_path(target)
        try:
            keras.utils.get_file(
                fname=os.path.basename(partial),
                origin=url,
                file_hash=sha256,
                hash_algorithm="sha256",
                cache_subdir=directory,
            )
            os.replace(partial, target)
            return target
        except Exception as error:
            failures.append(f"  {url}: {type(error).__name__}: {error}")
        finally:
            remove_if_exists(partial)
    expected = f" with sha256 {sha256}" if sha256 else ""
    raise WeightsDownloadError(
        f"Could not download '{fname}'{expected}:\n" + "\n".join(failures) + "\n"
        f"Without network access, download {urls[0]} elsewhere and copy it to {target}; "
        "it is then used without any download."
    )
