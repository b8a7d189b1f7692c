"""The zoo's entries: read from `manifest.json`, looked up by name or alias."""

import dataclasses
import json
import os
import re
from typing import Optional

from keras_fcn.errors import InvalidArgumentError, InvalidDataError

MANIFEST_PATH = os.path.join(os.path.dirname(__file__), "manifest.json")
BUNDLED_WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")
SOURCE_FORMATS = ("caffemodel", "keras")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def voc_palette(num_classes):
    """The PASCAL VOC colour map (VOCdevkit `labelcolormap`), for any number of classes.

    Class `i` gets the colour whose red, green and blue bits are the bits of
    `i` taken three at a time, most significant bit first: background is
    black, class 1 `(128, 0, 0)`, class 15 (person) `(192, 128, 128)`.

    Returns:
        A tuple of `num_classes` `(r, g, b)` tuples of ints in `[0, 255]`.
    """
    palette = []
    for index in range(num_classes):
        rgb, code = [0, 0, 0], index
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << bit
            code >>= 3
        palette.append(tuple(rgb))
    return tuple(palette)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """What the model does to its input before the first convolution.

    `output = (x[..., ::-1] if bgr else x) - mean) / std` per channel, as
    `keras_fcn.layers.InputNormalization(mean, std, bgr)` computes it.
    """

    mean: tuple
    std: tuple
    bgr: bool
    description: str

    def matches(self, normalization, tolerance=1e-3):
        """Whether a `(mean, std, bgr)` triple does the same, to `tolerance` (the authors round means)."""
        mean, std, bgr = normalization
        close = all(abs(a - b) <= tolerance for a, b in zip(self.mean + self.std, tuple(mean) + tuple(std)))
        return close and self.bgr == bgr

    def as_normalization(self):
        return self.mean, self.std, self.bgr


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One set of weights in the zoo, with what is needed to use and check it.

    Attributes:
        name: str, the entry's name, e.g. `"voc-fcn8s"` (the authors'
            folder names for their models).
        aliases: tuple of str, short names that select this entry among
            those of the same architecture, e.g. `"voc"`.
        architecture: str, the default name of the model the weights fit,
            e.g. `"fcn8s_vgg16_reference"` (what `keras_fcn.FCN8s(...,
            backbone="vgg16_reference")` builds).
        backbone: str, the backbone name in `keras_fcn.BACKBONES`.
        dataset: str, what the weights were trained on.
        outputs: tuple of `(output name, class names)`; the first is the
            model's main output.
        inputs: tuple of `(input name, Preprocessing)`.
        palette: tuple of `(r, g, b)`, one colour per class of the first
            output.
        urls: tuple of str, where to download the source file, mirrors
            after the first; empty for bundled weights.
        source_format: `"caffemodel"` (converted on first use) or
            `"keras"` (a `.weights.h5` file).
        source_sha256: str or None, the sha256 of the file at `urls`.
        weights_sha256: str or None, the sha256 of the Keras weights file
            (for `"keras"` sources, the same as `source_sha256`).
        licence: str.
        metrics: tuple of dicts with `split`, `metric`, `value`,
            `measured_by` (`"authors"` for published figures, `"keras-fcn"`
            for ours) and `source`.
        command: str, the command that produced the Keras weights file.
        notes: str.
        backbone_kwargs: dict, the backbone constructor's extra arguments
            the weights were trained with, e.g. `{"alpha": 0.25}`.
        bundled_file: str or None, the name of a `"keras"` weights file
            shipped inside the package (in `BUNDLED_WEIGHTS_DIR`), used
            without any download.
        geometry: str, the head geometry the weights were trained with
            (`keras_fcn.heads.ALIGNMENTS`): `"receptive_field"`, or
            `"pixel_blocks"` for weights trained with keras-fcn 0.1's heads.
    """

    name: str
    aliases: tuple
    architecture: str
    backbone: str
    dataset: str
    outputs: tuple
    inputs: tuple
    palette: tuple
    urls: tuple
    source_format: str
    source_sha256: Optional[str]
    weights_sha256: Optional[str]
    licence: str
    metrics: tuple
    command: str
    notes: str = ""
    backbone_kwargs: dict = dataclasses.field(default_factory=dict)
    bundled_file: Optional[str] = None
    geometry: str = "receptive_field"

    @property
    def num_classes(self):
        """int, the number of classes of the main output."""
        return len(self.outputs[0][1])

    @property
    def class_names(self):
        """tuple of str, the classes of the main output, index 0 first."""
        return self.outputs[0][1]

    @property
    def preprocessing(self):
        """`Preprocessing` of the first input."""
        return self.inputs[0][1]

    def __post_init__(self):
        problems = []
        if self.source_format not in SOURCE_FORMATS:
            problems.append(f"source format {self.source_format!r} is not one of {SOURCE_FORMATS}")
        if not all(url.startswith(("http://", "https://")) for url in self.urls) or not (
            self.urls or self.bundled_file
        ):
            problems.append(f"urls must be one or more http(s) URLs (or none, for bundled weights), not {self.urls!r}")
        if self.bundled_file is not None and (
            self.source_format != "keras" or self.weights_sha256 is None or os.path.basename(self.bundled_file) != self.bundled_file
        ):
            problems.append(
                f"a bundled file must be a plain file name of 'keras' weights with a sha256, not {self.bundled_file!r}"
            )
        for field in ("source_sha256", "weights_sha256"):
            value = getattr(self, field)
            if value is not None and not _SHA256.fullmatch(value):
                problems.append(f"{field} must be None or 64 lowercase hex digits, not {value!r}")
        if self.source_format == "keras" and self.weights_sha256 != self.source_sha256:
            problems.append("a 'keras' source is the weights file itself: its two sha256 values must agree")
        if len(self.palette) != self.num_classes:
            problems.append(f"the palette has {len(self.palette)} colours for {self.num_classes} classes")
        if problems:
            raise InvalidDataError(f"Invalid zoo entry '{self.name}': " + "; ".join(problems) + ".")


def _palette(record, palettes, num_classes):
    """The colours a record names: `"voc"` (the VOC colour map) or a key of the manifest's `palettes`."""
    if record["palette"] == "voc":
        return voc_palette(num_classes)
    if record["palette"] not in palettes:
        raise InvalidDataError(
            f"Entry '{record['name']}': unknown palette {record['palette']!r}; expected 'voc' or one of {sorted(palettes)}."
        )
    return tuple(tuple(colour) for colour in palettes[record["palette"]])


def entry_from_dict(record, class_names, preprocessing, palettes):
    """Builds a `ZooEntry` from its manifest record, resolving shared class lists, preprocessings and palettes."""
    outputs = tuple((output["name"], tuple(class_names[output["classes"]])) for output in record["outputs"])
    source = record["source"]
    return ZooEntry(
        name=record["name"],
        aliases=tuple(record["aliases"]),
        architecture=record["architecture"],
        backbone=record["backbone"],
        dataset=record["dataset"],
        outputs=outputs,
        inputs=tuple((item["name"], preprocessing[item["preprocessing"]]) for item in record["inputs"]),
        palette=_palette(record, palettes, len(outputs[0][1])),
        urls=tuple(source["urls"]),
        source_format=source["format"],
        source_sha256=source["sha256"],
        weights_sha256=record["weights_sha256"],
        licence=record["licence"],
        metrics=tuple(record["metrics"]),
        command=record["command"],
        notes=record.get("notes", ""),
        backbone_kwargs=dict(record.get("backbone_kwargs", {})),
        bundled_file=source.get("bundled_file"),
        geometry=record.get("geometry", "receptive_field"),
    )


def read_manifest(path=MANIFEST_PATH):
    """Reads a manifest file into a list of `ZooEntry`, in file order."""
    with open(path, encoding="utf-8") as file:
        return parse_manifest(json.load(file))


def parse_manifest(manifest):
    """The `ZooEntry` list, in order, of a manifest's JSON object (as in `manifest.json`)."""
    preprocessing = {
        key: Preprocessing(tuple(value["mean"]), tuple(value["std"]), value["bgr"], value["description"])
        for key, value in manifest["preprocessing"].items()
    }
    palettes = manifest.get("palettes", {})
    return [
        entry_from_dict(record, manifest["class_names"], preprocessing, palettes) for record in manifest["entries"]
    ]


class Registry:
    """The entries by name; refuses a second entry of a name, or an alias used twice for one architecture."""

    def __init__(self, entries=()):
        self._entries = {}
        for entry in entries:
            self.register(entry)

    def register(self, entry):
        if entry.name in self._entries:
            raise InvalidArgumentError(f"A zoo entry named '{entry.name}' already exists.")
        for alias in entry.aliases:
            for other in self._entries.values():
                if alias in other.aliases and other.architecture == entry.architecture:
                    raise InvalidArgumentError(
                        f"Alias '{alias}' of zoo entry '{entry.name}' already names '{other.name}' "
                        f"for architecture '{entry.architecture}'."
                    )
        self._entries[entry.name] = entry

    def names(self, architecture=None):
        return [name for name, entry in self._entries.items() if architecture in (None, entry.architecture)]

    def get(self, name):
        if name not in self._entries:
            raise InvalidArgumentError(f"Unknown zoo entry. Expected one of {self.names()}. Received name={name!r}")
        return self._entries[name]

    def find(self, name_or_alias, architecture):
        """The entry called `name_or_alias`, or the one of `architecture` with that alias; None if neither."""
        if name_or_alias in self._entries:
            return self._entries[name_or_alias]
        matches = [entry for entry in self._entries.values() if name_or_alias in entry.aliases]
        return next((entry for entry in matches if entry.architecture == architecture), None)

    def with_alias(self, alias):
        return [entry for entry in self._entries.values() if alias in entry.aliases]


REGISTRY = Registry(read_manifest())
