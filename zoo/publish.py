"""Publishes a trained model to the zoo: names the file by its hash and adds its manifest entry.

Usage:
    python zoo/publish.py trained.weights.h5 --name voc-fcn8s-mobilenet \
        --architecture fcn8s_mobilenet --classes voc --dataset "PASCAL VOC 2011 + SBD train" \
        --url-base https://example.org/keras-fcn/ --metric "seg11valid:mean IU:61.2" \
        --training-command "python examples/train_voc.py --backbone mobilenet" \
        --licence Apache-2.0 --output-dir dist/

This checks that the weights load into the architecture (built with random
weights), copies them to `<output-dir>/<name>-<first 8 hex digits of their
sha256>.weights.h5`, and appends an entry to the manifest (by default
keras_fcn/zoo/manifest.json) with the file's URL (`--url-base` + file name),
sha256, metrics (marked as measured by keras-fcn) and the training command.
Upload the file to that URL before releasing the manifest.
"""

import argparse
import json
import os
import shutil
import sys

from keras_fcn.backbones import BACKBONES
from keras_fcn.zoo import architectures, registry
from keras_fcn.zoo.cache import sha256_of, temporary_path, write_json_atomically

HASH_PREFIX = 8


def parse_metric(text):
    """`"split:metric:value"` -> a manifest metric measured by keras-fcn."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"a metric is 'split:metric:value'; received {text!r}")
    split, metric, value = parts
    return {
        "split": split,
        "metric": metric,
        "value": float(value),
        "measured_by": "keras-fcn",
        "source": "zoo/publish.py",
    }


def new_record(args, file_name, digest, preprocessing_key, classes_key):
    return {
        "name": args.name,
        "aliases": args.alias,
        "architecture": args.architecture,
        "backbone": args.backbone,
        "dataset": args.dataset,
        "outputs": [{"name": "score", "classes": classes_key}],
        "inputs": [{"name": "image", "preprocessing": preprocessing_key}],
        "palette": "voc",
        "source": {"format": "keras", "urls": [args.url_base + file_name], "sha256": digest},
        "weights_sha256": digest,
        "licence": args.licence,
        "metrics": args.metric,
        "command": args.training_command,
    }


def publish(args):
    """Validates and writes the file and the manifest entry; returns the published file's path."""
    call = architectures.builder_call(args.architecture)
    if call is None:
        raise SystemExit(
            f"--architecture must be one the builders make, e.g. fcn8s_vgg16; received {args.architecture!r}"
        )
    args.backbone = call[1]
    with open(args.manifest, encoding="utf-8") as file:
        manifest = json.load(file)
    classes_key = args.classes
    if os.path.isfile(args.classes):
        with open(args.classes, encoding="utf-8") as file:
            manifest["class_names"][args.name] = [line.strip() for line in file if line.strip()]
        classes_key = args.name
    elif args.classes not in manifest["class_names"]:
        raise SystemExit(
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
    digest = sha256_of(args.weights)
    file_name = f"{args.name}-{digest[:HASH_PREFIX]}.weights.h5"
    record = new_record(args, file_name, digest, preprocessing_key, classes_key)
    preprocessing = {
        key: registry.Preprocessing(tuple(v["mean"]), tuple(v["std"]), v["bgr"], v["description"])
        for key, v in manifest["preprocessing"].items()
    }
    entry = registry.entry_from_dict(record, manifest["class_names"], preprocessing)
    registry.Registry(registry.read_manifest(args.manifest)).register(entry)
    architectures.build(entry).load_weights(args.weights)
    os.makedirs(args.output_dir, exist_ok=True)
    output = os.path.join(args.output_dir, file_name)
    temporary = temporary_path(output, ".weights.h5")
    shutil.copyfile(args.weights, temporary)
    os.replace(temporary, output)
    manifest["entries"].append(record)
    write_json_atomically(args.manifest, manifest)
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", help="the trained model's .weights.h5 file")
    parser.add_argument("--name", required=True)
    parser.add_argument("--alias", action="append", default=[], help="e.g. voc (repeatable)")
    parser.add_argument(
        "--architecture", required=True, help="the builder's default model name, e.g. fcn8s_vgg16"
    )
    parser.add_argument(
        "--classes", required=True, help="a class list of the manifest (voc, ...) or a file, one name a line"
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--url-base", required=True, help="where the file will be served, ending in /")
    parser.add_argument(
        "--metric", action="append", default=[], type=parse_metric, help="split:metric:value (repeatable)"
    )
    parser.add_argument("--training-command", required=True, help="the command that trained the model")
    parser.add_argument("--licence", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--manifest", default=registry.MANIFEST_PATH)
    output = publish(parser.parse_args(argv))
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
