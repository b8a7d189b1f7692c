"""Publishes a trained model to the zoo: names the file by its hash and adds its manifest entry.

Usage (weights served from a URL):
    python zoo/publish.py trained.weights.h5 --name voc-fcn8s-mobilenet \
        --architecture fcn8s_mobilenet --classes voc --dataset "PASCAL VOC 2011 + SBD train" \
        --url-base https://example.org/keras-fcn/ --metric "seg11valid:mean IU:61.2" \
        --training-command "python examples/train_voc.py --backbone mobilenet" \
        --licence Apache-2.0 --output-dir dist/

Usage (weights shipped inside the package, figures from `keras-fcn evaluate --json`):
    python zoo/publish.py best.weights.h5 --name camvid --architecture fcn8s_mobilenet \
        --backbone-kwargs alpha=0.25 --classes camvid --palette camvid --dataset "CamVid train" \
        --bundle --metrics-json val.json --metrics-split val \
        --training-command "bash zoo/train_camvid.sh ..." --licence CC-BY-NC-4.0

This checks that the weights load into the architecture (built with random
weights and the given backbone arguments) and, given a `.keras` model, that
the built model then computes what that model computes; it writes the
weights to `<name>-<first 8
hex digits of their sha256>.weights.h5` in `--output-dir` (with
`--bundle`: into the package, `keras_fcn/zoo/weights/`, where the builders
find them without any download), and appends an entry to the manifest (by
default keras_fcn/zoo/manifest.json) with the file's URL (`--url-base` + file
name) or bundled file name, sha256, metrics (marked as measured by
keras-fcn), the head geometry (read from a `.keras` model's record; for a
`.weights.h5` file `--geometry`, by default the builders') and the training
command. An entry of the same name is refused unless `--replace` is given,
which puts the new entry in its place and removes its bundled file. Upload a
served file to its URL before releasing the manifest.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import keras
import numpy as np

from keras_fcn import arguments
from keras_fcn.architecture import architecture_of
from keras_fcn.backbones import BACKBONES
from keras_fcn.heads import ALIGNMENTS
from keras_fcn.files import save_atomically, sha256_of, write_json_atomically
from keras_fcn.zoo import architectures, registry

HASH_PREFIX = 8
# A `.keras` model and the zoo architecture holding its weights must agree on this image to this tolerance.
CHECK_IMAGE_SIZE = (64, 96)
CHECK_TOLERANCE = 1e-4
# `keras-fcn evaluate --json` keys -> the manifest's metric names (the paper's section 5 figures).
EVALUATION_FIGURES = {
    "pixel_accuracy": "pixel accuracy",
    "mean_accuracy": "mean accuracy",
    "mean_iou": "mean IU",
    "frequency_weighted_iou": "f.w. IU",
}



class PublishError(Exception):
    """What is wrong with the arguments or files given: `main` prints it as `publish.py: error: ...`, status 2."""

def measured(split, metric, value, source):
    """A manifest metric measured by keras-fcn."""
    return {"split": split, "metric": metric, "value": value, "measured_by": "keras-fcn", "source": source}


def parse_metric(text):
    """`"split:metric:value"` -> a manifest metric measured by keras-fcn."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"a metric is 'split:metric:value'; received {text!r}")
    split, metric, value = parts
    return measured(split, metric, float(value), "zoo/publish.py")


def evaluation_metrics(path, split):
    """The figures of a `keras-fcn evaluate --json` file as manifest metrics, in percent to 2 decimals.

    Gives the paper's four figures and one `"IU <class>"` metric per class
    (classes absent from the split, null in the file, are left out).
    """
    try:
        with open(path, encoding="utf-8") as file:
            figures = json.load(file)
        items = [(name, figures[key]) for key, name in EVALUATION_FIGURES.items()]
        items += [(f"IU {name}", value) for name, value in figures["per_class_iou"].items() if value is not None]
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise PublishError(f"--metrics-json: {path}: expected the JSON that `keras-fcn evaluate --json` writes ({error!r})")
    source = f"keras-fcn evaluate --json ({os.path.basename(path)})"
    return [measured(split, name, round(100 * value, 2), source) for name, value in items]


def weights_file(model_path, directory):
    """`(path of a .weights.h5 file, the loaded model or None)` of the trained model at `model_path`.

    A `.weights.h5` file is its own path (no model); a `.keras` file is
    loaded and its weights saved into `directory`.
    """
    if not model_path.endswith(".keras"):
        return model_path, None
    path = os.path.join(directory, "weights.weights.h5")
    model = keras.saving.load_model(model_path, compile=False)
    model.save_weights(path)
    return path, model


def check_same_outputs(model_path, model, built):
    """Exits unless `built` (the zoo architecture with the published weights) computes what `model` does."""
    image = np.random.default_rng(0).uniform(0, 255, (1, *CHECK_IMAGE_SIZE, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(image, training=False))
    difference = np.abs(keras.ops.convert_to_numpy(built(image, training=False)) - expected).max()
    if not difference <= CHECK_TOLERANCE * max(1.0, np.abs(expected).max()):
        raise PublishError(f"{model_path}: the zoo architecture with these weights computes other outputs (max abs difference {difference})")


def head_geometry(args, trained):
    """The head geometry of the published weights: the `.keras` model's record, else `--geometry`, else the default."""
    if trained is None:
        return args.geometry or registry.ZooEntry.geometry
    recorded = architecture_of(trained).head_geometry.alignment
    if args.geometry not in (None, recorded):
        raise PublishError(
            f"--geometry {args.geometry} disagrees with {args.weights}, a model built with the {recorded!r} geometry"
        )
    return recorded


def place_entry(manifest, record, replace):
    """Adds `record` to the manifest's entries, or puts it in place of the entry of its name with `replace`.

    Returns the replaced entry's record, or None.
    """
    names = [entry["name"] for entry in manifest["entries"]]
    if record["name"] not in names:
        manifest["entries"].append(record)
        return None
    if not replace:
        raise PublishError(f"the manifest has an entry named {record['name']!r}: give --replace to replace it")
    index = names.index(record["name"])
    old, manifest["entries"][index] = manifest["entries"][index], record
    return old


def new_record(args, file_name, digest, preprocessing_key, classes_key):
    source = {"format": "keras", "urls": [] if args.bundle else [args.url_base + file_name], "sha256": digest}
    if args.bundle:
        source["bundled_file"] = file_name
    record = {
        "name": args.name,
        "aliases": args.alias,
        "architecture": args.architecture,
        "backbone": args.backbone,
        "dataset": args.dataset,
        "outputs": [{"name": "score", "classes": classes_key}],
        "inputs": [{"name": "image", "preprocessing": preprocessing_key}],
        "palette": args.palette,
        "source": source,
        "weights_sha256": digest,
        "licence": args.licence,
        "metrics": args.metric,
        "command": args.training_command,
    }
    if args.backbone_kwargs:
        record["backbone_kwargs"] = args.backbone_kwargs
    return record


def publish(args):
    """Validates and writes the file and the manifest entry; returns the published file's path."""
    call = architectures.builder_call(args.architecture)
    if call is None:
        raise PublishError(
            f"--architecture must be one the builders make, e.g. fcn8s_vgg16; received {args.architecture!r}"
        )
    if args.bundle == (args.url_base is not None):
        raise PublishError("give exactly one of --url-base (a served file) and --bundle (a file in the package)")
    if args.metrics_json:
        args.metric += evaluation_metrics(args.metrics_json, args.metrics_split)
    args.backbone = call[1]
    with open(args.manifest, encoding="utf-8") as file:
        manifest = json.load(file)
    classes_key = args.classes
    if os.path.isfile(args.classes):
        with open(args.classes, encoding="utf-8") as file:
            manifest["class_names"][args.name] = [line.strip() for line in file if line.strip()]
        classes_key = args.name
    elif args.classes not in manifest["class_names"]:
        raise PublishError(
            f"--classes must be one of {sorted(manifest['class_names'])} or a file; received {args.classes!r}"
        )
    preprocessing_key = f"backbone:{args.backbone}"
    mean, std, bgr = BACKBONES[args.backbone].normalization
    manifest["preprocessing"].setdefault(
        preprocessing_key,
        {
            "mean": list(mean),
            "std": list(std),
            "bgr": bgr,
            "description": f"the '{args.backbone}' backbone's normalization",
        },
    )
    with tempfile.TemporaryDirectory() as directory:
        weights, trained = weights_file(args.weights, directory)
        digest = sha256_of(weights)
        file_name = f"{args.name}-{digest[:HASH_PREFIX]}.weights.h5"
        record = new_record(args, file_name, digest, preprocessing_key, classes_key)
        record["geometry"] = head_geometry(args, trained)
        replaced = place_entry(manifest, record, args.replace)
        entries = registry.parse_manifest(manifest)
        registry.Registry(entries)
        built = architectures.build(next(entry for entry in entries if entry.name == args.name))
        built.load_weights(weights)
        if trained is not None:
            check_same_outputs(args.weights, trained, built)
        output_dir = registry.BUNDLED_WEIGHTS_DIR if args.bundle else args.output_dir
        output = os.path.join(output_dir, file_name)
        save_atomically(lambda temporary: shutil.copyfile(weights, temporary), output)
    write_json_atomically(args.manifest, manifest)
    old_file = (replaced or {}).get("source", {}).get("bundled_file")
    if old_file not in (None, file_name):
        os.remove(os.path.join(registry.BUNDLED_WEIGHTS_DIR, old_file))
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="publish.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", help="the trained model: a .keras file, or its .weights.h5 file")
    parser.add_argument("--name", required=True)
    parser.add_argument("--alias", action="append", default=[], help="e.g. voc (repeatable)")
    parser.add_argument(
        "--architecture", required=True, help="the builder's default model name, e.g. fcn8s_vgg16"
    )
    parser.add_argument(
        "--backbone-kwargs", nargs="+", default={}, type=arguments.keyword, action=arguments.KeywordArguments,
        metavar="KEY=VALUE",
        help="the backbone arguments the model was built with, e.g. alpha=0.25",
    )
    parser.add_argument(
        "--classes", required=True, help="a class list of the manifest (voc, camvid, ...) or a file, one name a line"
    )
    parser.add_argument("--palette", default="voc", help="voc (default) or a palette of the manifest, e.g. camvid")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--url-base", help="where the file will be served, ending in /")
    parser.add_argument("--bundle", action="store_true", help="ship the file inside the package instead")
    parser.add_argument(
        "--metric", action="append", default=[], type=parse_metric, help="split:metric:value (repeatable)"
    )
    parser.add_argument("--metrics-json", help="figures written by `keras-fcn evaluate --json`")
    parser.add_argument("--metrics-split", default="val", help="the split --metrics-json measured (default: val)")
    parser.add_argument("--training-command", required=True, help="the command that trained the model")
    parser.add_argument("--licence", required=True)
    parser.add_argument("--output-dir", help="where to write a served file")
    parser.add_argument("--manifest", default=registry.MANIFEST_PATH)
    parser.add_argument(
        "--geometry", choices=ALIGNMENTS, help="the head geometry of a .weights.h5 file (a .keras model records its own)"
    )
    parser.add_argument("--replace", action="store_true", help="replace the manifest's entry of the same name")
    args = parser.parse_args(argv)
    if args.url_base is not None and args.output_dir is None:
        parser.error("--url-base needs --output-dir")
    try:
        print(publish(args))
    except PublishError as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
