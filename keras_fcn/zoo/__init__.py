"""The keras-fcn weight zoo: pretrained FCN weights by name, downloaded once, verified and cached.

Every entry of `manifest.json` (in this package) names the architecture its
weights fit, its classes, colour palette, input preprocessing, source URLs
with mirrors, sha256 where known, licence, published metrics and the command
that produced the Keras weights file:

>>> keras_fcn.zoo.available()
['voc-fcn32s', 'voc-fcn16s', 'voc-fcn8s', ...]
>>> keras_fcn.zoo.get("voc-fcn8s").class_names[:3]
('background', 'aeroplane', 'bicycle')

The builders take an entry's name or alias as `weights`:
`keras_fcn.FCN8s(weights="voc")` (the default backbone is `"vgg16_reference"`). Downloads go
to `$KERAS_HOME/keras_fcn` (default `~/.keras/keras_fcn`). The authors'
Caffe models are downloaded as `.caffemodel` files, converted once to
`<name>.weights.h5`, and the converted file's sha256 is recorded beside it
in `<name>.weights.h5.json`; later loads check that hash and use the
converted file without any network access.

Preprocessing travels with the model: every model takes images in
`[0, 255]` (RGB, or HHA for the NYUDv2 depth models) and its first layer,
`image_normalization`, converts them as its weights need (BGR minus the reference
mean for the paper's models). There is no separate `preprocess_input`.

The builders resolve `weights` through this package, so the parts that
need the builders (`keras_fcn.zoo.architectures`) or the Caffe reader
(`keras_fcn.caffe`) are imported when first used, not with the package.
"""

import json
import os

from keras_fcn.backbones import BACKBONES
from keras_fcn.errors import InvalidArgumentError
from keras_fcn.files import remove_if_exists, save_atomically, sha256_of, write_json_atomically
from keras_fcn.zoo import registry
from keras_fcn.zoo.cache import WeightsDownloadError, cache_dir, download
from keras_fcn.zoo.registry import REGISTRY, Preprocessing, ZooEntry, read_manifest, voc_palette

__all__ = [
    "Preprocessing",
    "WeightsDownloadError",
    "ZooEntry",
    "available",
    "cache_dir",
    "convert_caffemodel",
    "entry_for",
    "fetch",
    "get",
    "load_model",
    "read_manifest",
    "register",
    "resolve_weights",
    "voc_palette",
]

_URL_SCHEMES = ("http://", "https://")


def available(architecture=None):
    """Names of the zoo's entries, in manifest order.

    Args:
        architecture: optional str, e.g. `"fcn8s_vgg16_reference"`: only
            the entries whose weights fit that model.

    Returns:
        A list of str.
    """
    return REGISTRY.names(architecture)


def get(name):
    """The `ZooEntry` called `name`; an `InvalidArgumentError` (a `ValueError`) lists the valid names."""
    return REGISTRY.get(name)


def register(entry):
    """Adds a `ZooEntry` (e.g. weights published elsewhere); refuses a duplicate name or alias."""
    REGISTRY.register(entry)


def convert_caffemodel(entry, caffemodel, output):
    """Converts a caffemodel to a Keras weights file for `entry`'s architecture.

    The file is written under a temporary name and renamed onto `output`
    only once complete.

    Args:
        entry: `ZooEntry` or its name.
        caffemodel: path to the `.caffemodel` file.
        output: path of the weights file to write; must end in `.weights.h5`.

    Returns:
        The sha256 of the written file.

    Raises:
        keras_fcn.caffe.CaffeModelError: when the caffemodel does not fit.
    """
    from keras_fcn import caffe
    from keras_fcn.zoo import architectures

    entry = entry if isinstance(entry, ZooEntry) else get(entry)
    if not str(output).endswith(".weights.h5"):
        raise InvalidArgumentError(f"`output` must end in '.weights.h5'. Received output={output!r}")
    model = architectures.build(entry)
    caffe.load_caffemodel_weights(model, caffemodel)
    save_atomically(model.save_weights, os.fspath(output))
    return sha256_of(output)


def _recorded_sha256(record_path):
    """The sha256 recorded for a converted file, or None when there is no readable record."""
    try:
        with open(record_path, encoding="utf-8") as file:
            return json.load(file)["sha256"]
    except (OSError, ValueError, KeyError):
        return None


def _fetch_converted(entry):
    """The cached conversion of a caffemodel entry, downloading and converting it if needed."""
    target = os.path.join(cache_dir(), f"{entry.name}.weights.h5")
    record_path = f"{target}.json"
    if os.path.isfile(target):
        expected = entry.weights_sha256 or _recorded_sha256(record_path)
        if expected is not None and sha256_of(target) == expected:
            return target
    remove_if_exists(target)
    remove_if_exists(record_path)
    from keras_fcn.caffe import CaffeModelError

    caffemodel = download(entry.urls, f"{entry.name}.caffemodel", entry.source_sha256)
    try:
        source_sha256 = entry.source_sha256 or sha256_of(caffemodel)
        digest = convert_caffemodel(entry, caffemodel, target)
    except CaffeModelError as error:
        raise WeightsDownloadError(
            f"The caffemodel downloaded for '{entry.name}' from {entry.urls} could not be converted "
            f"(it was deleted; a truncated download looks like this): {error}"
        ) from error
    finally:
        remove_if_exists(caffemodel)
    if entry.weights_sha256 is not None and digest != entry.weights_sha256:
        remove_if_exists(target)
        raise WeightsDownloadError(
            f"The conversion of '{entry.name}' has sha256 {digest}, not the published {entry.weights_sha256}."
        )
    write_json_atomically(
        record_path,
        {
            "entry": entry.name,
            "sha256": digest,
            "source_urls": list(entry.urls),
            "source_sha256": source_sha256,
        },
    )
    return target


def _bundled(entry):
    """The verified path of weights shipped inside the package."""
    path = os.path.join(registry.BUNDLED_WEIGHTS_DIR, entry.bundled_file)
    digest = sha256_of(path) if os.path.isfile(path) else None
    if digest != entry.weights_sha256:
        found = "is missing" if digest is None else f"has sha256 {digest}"
        raise WeightsDownloadError(
            f"The weights of zoo entry '{entry.name}', shipped in the package as {path}, {found}, not the "
            f"published {entry.weights_sha256}: the installation is damaged; reinstall keras-fcn."
        )
    return path


def fetch(name):
    """The local path of an entry's Keras weights file, downloading (and converting) it once.

    Weights shipped inside the package (`entry.bundled_file`) need no
    download; their sha256 is checked on every call.

    Args:
        name: str, an entry's name (see `available()`).

    Returns:
        The path of a verified `.weights.h5` file in `cache_dir()` or in the
        package.

    Raises:
        WeightsDownloadError: when no URL gives a valid file (the message
            names the URLs and the path where a file downloaded by hand can
            be put), or a bundled file is missing or damaged.
    """
    entry = get(name)
    if entry.bundled_file is not None:
        return _bundled(entry)
    if entry.source_format == "caffemodel":
        return _fetch_converted(entry)
    return download(entry.urls, f"{entry.name}.weights.h5", entry.weights_sha256)


def _builder_hint(entry):
    from keras_fcn.zoo import architectures

    call = architectures.builder_call(entry.architecture)
    if call is None or not entry.preprocessing.matches(BACKBONES[call[1]].normalization):
        return f"keras_fcn.zoo.load_model({entry.name!r})"
    return f"keras_fcn.{call[0]}(backbone={call[1]!r}, weights={entry.name!r})"


def _check_fits(entry, architecture, num_classes, backbone_kwargs):
    if entry.architecture != architecture:
        raise InvalidArgumentError(
            f"Weights '{entry.name}' are for architecture '{entry.architecture}', not '{architecture}'. "
            f"Use {_builder_hint(entry)}."
        )
    if num_classes != entry.num_classes:
        raise InvalidArgumentError(
            f"Weights '{entry.name}' have {entry.num_classes} classes ({entry.dataset}); "
            f"received num_classes={num_classes!r}. Pass num_classes={entry.num_classes}, or leave it out."
        )
    if dict(backbone_kwargs or {}) != entry.backbone_kwargs:
        raise InvalidArgumentError(
            f"Weights '{entry.name}' fit a '{entry.backbone}' backbone built with backbone_kwargs="
            f"{entry.backbone_kwargs!r}; received backbone_kwargs={backbone_kwargs!r}. Leave backbone_kwargs out."
        )
    backbone = BACKBONES[entry.backbone]
    if not entry.preprocessing.matches(backbone.normalization):
        raise InvalidArgumentError(
            f"Weights '{entry.name}' expect inputs converted as: {entry.preprocessing.description}; "
            f"the '{entry.backbone}' builders normalize with mean {backbone.normalization[0]} "
            f"(bgr={backbone.normalization[2]}). Use {_builder_hint(entry)}, which builds the model "
            "with its own preprocessing."
        )


def entry_for(weights, architecture):
    """The zoo entry a builder's `weights` argument names, or None (for None, paths and URLs).

    Args:
        weights: a builder's `weights` argument.
        architecture: str, the builder's default model name; picks among
            the entries of an alias.

    Returns:
        A `ZooEntry` or None.
    """
    if not isinstance(weights, str) or os.path.isfile(weights) or weights.startswith(_URL_SCHEMES):
        return None
    return REGISTRY.find(weights, architecture)


def resolve_weights(weights, *, architecture, num_classes, backbone_kwargs=None):
    """Turns a builder's `weights` argument into a local weights file.

    Args:
        weights: `None`; a zoo entry's name (`"voc-fcn8s"`) or an alias
            (`"voc"`: the entry of that alias whose architecture is
            `architecture`); the path of an existing weights file; or an
            `http(s)://` URL of a `.weights.h5` file, downloaded once into
            `cache_dir()` (unverified: a URL carries no hash).
        architecture: str, the builder's default model name, e.g.
            `"fcn8s_vgg16_reference"`.
        num_classes: int, the builder's number of classes.
        backbone_kwargs: None or dict, the builder's backbone arguments; a
            zoo entry's weights need those they were trained with.

    Returns:
        A path, or `None` when `weights` is `None`.

    Raises:
        keras_fcn.errors.InvalidArgumentError: (a `ValueError`) for an unknown name (listing the valid ones), or zoo
            weights of another architecture, class count, backbone
            arguments or input preprocessing (saying which and what to
            call instead).
        WeightsDownloadError: when a download fails.
    """
    if weights is None:
        return None
    if isinstance(weights, os.PathLike) or (isinstance(weights, str) and os.path.isfile(weights)):
        return os.fspath(weights)
    if isinstance(weights, str) and weights.startswith(_URL_SCHEMES):
        fname = os.path.basename(weights.split("?", 1)[0])
        if not fname.endswith(".weights.h5"):
            raise InvalidArgumentError(
                "A `weights` URL must point to a Keras '.weights.h5' file (convert a caffemodel with "
                f"`keras-fcn zoo convert` first). Received weights={weights!r}"
            )
        return download([weights], fname)
    entry = entry_for(weights, architecture)
    if entry is None:
        others = (
            [f"'{e.name}' ({e.architecture})" for e in REGISTRY.with_alias(weights)]
            if isinstance(weights, str)
            else []
        )
        elsewhere = (
            f" Alias '{weights}' names weights for other architectures only: {', '.join(others)}."
            if others
            else ""
        )
        raise InvalidArgumentError(
            "`weights` must be None, the path of an existing weights file, an http(s) URL, or the name or "
            f"alias of a zoo entry. Entries for '{architecture}': {available(architecture)}; all entries: "
            f"{available()}.{elsewhere} Received weights={weights!r}"
        )
    _check_fits(entry, architecture, num_classes, backbone_kwargs)
    return fetch(entry.name)


def load_model(name):
    """Builds the model of a zoo entry and loads its weights (downloading them once).

    The model includes the entry's own input preprocessing, so this also
    serves the entries the builders cannot take because their inputs are
    normalized differently (NYUDv2 colour and HHA) or their nets differ
    (SIFT Flow's two heads, NYUDv2's colour-HHA late fusion).

    Args:
        name: str, an entry's name.

    Returns:
        A `keras.Model` mapping `(batch, H, W, 3)` inputs in `[0, 255]` to
        `(batch, H, W, num_classes)` float32 logits. An entry with several
        outputs gives a dict of logits keyed by output name, e.g.
        `model(images)["score_geo"]` for `"siftflow-fcn8s"` (`(batch, H, W,
        33)` under `"score_sem"`, `(batch, H, W, 3)` under `"score_geo"`);
        one with several inputs takes a dict of images keyed by input name,
        e.g. `model({"color": rgb, "hha": hha})` for
        `"nyud-fcn32s-color-hha"`.
    """
    from keras_fcn.zoo import architectures

    entry = get(name)
    model = architectures.build(entry)
    model.load_weights(fetch(entry.name))
    return model
