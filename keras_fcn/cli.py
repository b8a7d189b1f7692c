"""The `keras-fcn` command line (also `python -m keras_fcn`): train, evaluate, predict, export, zoo.

Run `keras-fcn VERB --help` for each verb's options and examples. Bad
arguments end the command with a one-line error naming the argument and
what it accepts, and exit status 2.
"""

import argparse
import json
import math
import os
import sys

import keras
import numpy as np
from PIL import Image

from keras_fcn import assets, data, training, zoo
from keras_fcn.backbones import BACKBONES
from keras_fcn.data.decode import IMAGE_EXTENSIONS
from keras_fcn.export import FORMATS, export
from keras_fcn.engines import ENGINES
from keras_fcn.inference import PRECISIONS, evaluate, predict
from keras_fcn.metrics import FIGURES
from keras_fcn.visualize import class_shares, label_image, overlay

PROG = "keras-fcn"
FIGURE_TITLES = dict(
    zip(FIGURES, ("pixel accuracy", "mean accuracy", "mean IU", "frequency weighted IU"))
)
_EXPORT_SUFFIXES = {".tflite": "tflite", ".onnx": "onnx"}

TRAIN_EXAMPLES = """examples:
  # a folder with images/ and masks/ (class-index PNGs), 3 classes, a small backbone
  keras-fcn train data/train --val-folder data/val --num-classes 3 --output-dir runs/fcn8s \\
      --backbone mobilenet --backbone-kwargs alpha=0.25 --crop-size 256x256 --epochs 20
  # the paper's recipe, staged: FCN-32s, then FCN-16s and FCN-8s from it
  keras-fcn train sbd --data-root datasets --model fcn32s --optimizer paper --batch-size 1 --output-dir runs/32s
  keras-fcn train sbd --data-root datasets --model fcn16s --optimizer paper --batch-size 1 \\
      --init-from runs/32s/best.keras --output-dir runs/16s
  # CamVid on every local GPU with mixed precision
  keras-fcn train camvid --data-root data/camvid --strategy mirrored --mixed-precision --output-dir runs/camvid
Run the same command again to resume after an interruption."""
EVALUATE_EXAMPLES = """examples:
  keras-fcn evaluate runs/fcn8s/best.keras data/val --json val.json
  keras-fcn evaluate runs/camvid/best.keras camvid --data-root data/camvid
  keras-fcn evaluate voc-fcn8s voc --data-root VOCdevkit"""
PREDICT_EXAMPLES = """examples:
  keras-fcn predict camvid                 # the bundled street scene, into predictions/
  keras-fcn predict runs/fcn8s/best.keras photos/ --output-dir segmented
  keras-fcn predict voc-fcn8s cat.jpg dog.jpg
writes <stem>.png (class ids, shown in the palette's colours) and <stem>_overlay.png per image."""
EXPORT_EXAMPLES = """examples:
  keras-fcn export runs/fcn8s/best.keras exported/fcn8s            # SavedModel, any input size
  keras-fcn export runs/fcn8s/best.keras fcn8s.tflite --input-size 360x480
  keras-fcn export runs/fcn8s/best.keras fcn8s.onnx                # pip install keras-fcn[onnx]"""
ZOO_EXAMPLES = """examples:
  keras-fcn zoo list
  keras-fcn zoo download voc-fcn8s
  keras-fcn zoo convert voc-fcn8s --caffemodel fcn8s-heavy-pascal.caffemodel --output voc-fcn8s.weights.h5"""


class CommandError(Exception):
    """A bad argument found while running a verb: reported on one line, exit status 2."""


def _size(text):
    """`HxW` or `H,W` -> `(H, W)`."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"must be HEIGHTxWIDTH in pixels, e.g. 360x480, not {text!r}")
    return int(parts[0]), int(parts[1])


def _positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return int(text)


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text!r}")
    return value


def _names(text):
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"must be class names separated by commas, not {text!r}")
    return names


def _keyword(text):
    """`KEY=VALUE` -> `(KEY, VALUE)`, the value read as JSON when it is JSON (0.25, true) and as text otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, e.g. alpha=0.25, not {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _backbone_weights(text):
    if text == "none":
        return None
    if text != "imagenet" and not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"must be 'imagenet', 'none' or an existing weights file, not {text!r}")
    return text


def _verbose(text):
    if text not in ("auto", "0", "1", "2"):
        raise argparse.ArgumentTypeError(f"must be one of auto, 0, 1, 2, not {text!r}")
    return text if text == "auto" else int(text)


def _add_class_options(parser):
    parser.add_argument("--num-classes", type=_positive_int, help="number of classes (default: the dataset's or model's)")
    parser.add_argument("--class-names", type=_names, help="class names separated by commas, class 0 first")


def _train_parser(verbs):
    parser = verbs.add_parser(
        "train",
        help="train an FCN (resumes an interrupted run)",
        description="Train an FCN with logs (log.csv, tensorboard/), checkpoints (best.keras by validation "
        "mean IU, last.keras) and a backup to resume from, all in --output-dir.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "dataset", help=f"one of {', '.join(training.NAMED_DATASETS)}, or a folder holding images/ and masks/"
    )
    parser.add_argument("--output-dir", required=True, help="the run folder")
    parser.add_argument("--model", choices=sorted(training.MODELS), default="fcn8s")
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="vgg16_reference")
    parser.add_argument(
        "--backbone-weights", type=_backbone_weights, default="imagenet", help="imagenet (default), none, or a file"
    )
    parser.add_argument(
        "--backbone-kwargs", type=_keyword, nargs="+", default=[], metavar="KEY=VALUE", help="e.g. alpha=0.25"
    )
    parser.add_argument("--weights", help="a zoo entry or weights file of this same architecture to start from")
    parser.add_argument("--init-from", help="staged training: a .keras (or .weights.h5) file of a coarser stage")
    parser.add_argument(
        "--init-from-model",
        choices=sorted(training.MODELS),
        help="the architecture of a .weights.h5 --init-from (default: the previous stage)",
    )
    parser.add_argument("--data-root", help="where a named dataset lives (for sbd: holding benchmark_RELEASE/ and VOCdevkit/)")
    parser.add_argument("--val-folder", help="a validation folder holding images/ and masks/")
    _add_class_options(parser)
    parser.add_argument("--crop-size", type=_size, metavar="HxW", help="training crop, e.g. 360x480 (default: whole images)")
    parser.add_argument("--batch-size", type=_positive_int, default=8, help="global batch size (default: 8)")
    parser.add_argument("--epochs", type=_positive_int, default=10, help="total epochs of the run (default: 10)")
    parser.add_argument("--steps-per-epoch", type=_positive_int, help="default: one pass over the data")
    parser.add_argument("--validation-steps", type=_positive_int, help="default: the whole validation set")
    parser.add_argument(
        "--optimizer",
        choices=sorted(training.PRESETS),
        default="adam",
        help="paper: SGD momentum 0.99, summed loss, fixed tiny rate; sgd / adam: mean loss, poly decay (default: adam)",
    )
    parser.add_argument("--learning-rate", type=_non_negative_float, help="default: the preset's")
    parser.add_argument("--weight-decay", type=_non_negative_float, help="default: the preset's (0 for none)")
    parser.add_argument(
        "--mixed-precision",
        nargs="?",
        const="auto",
        choices=training.MIXED_PRECISION,
        help="alone: mixed_float16 on GPU, mixed_bfloat16 on CPU",
    )
    parser.add_argument("--strategy", choices=training.STRATEGIES, default="default")
    parser.add_argument("--no-augment", action="store_true", help="no random scaling and mirroring")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--verbose", type=_verbose, default="auto", help="auto, 0, 1 (progress bar) or 2")
    parser.set_defaults(run=_train)


def _train(args):
    training.train(
        args.dataset,
        args.output_dir,
        model=args.model,
        backbone=args.backbone,
        backbone_weights=args.backbone_weights,
        backbone_kwargs=dict(args.backbone_kwargs),
        weights=args.weights,
        init_from=args.init_from,
        init_from_model=args.init_from_model,
        data_root=args.data_root,
        validation=args.val_folder,
        num_classes=args.num_classes,
        class_names=args.class_names,
        crop_size=args.crop_size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        validation_steps=args.validation_steps,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        mixed_precision=args.mixed_precision,
        strategy=args.strategy,
        augment=not args.no_augment,
        seed=args.seed,
        verbose=args.verbose,
    )
    print(f"Run folder: {args.output_dir} (best.keras, last.keras, log.csv, tensorboard/)")


def _load_model(name):
    """`(model, class names or None, palette or None)` of a saved model file or a zoo entry."""
    if os.path.isfile(name):
        model = keras.saving.load_model(name, compile=False)
        classes = os.path.join(os.path.dirname(name), training.CLASSES_FILE)
        if not os.path.isfile(classes):
            return model, None, None
        with open(classes, encoding="utf-8") as file:
            try:
                return model, list(json.load(file)["class_names"]), None
            except (ValueError, TypeError, KeyError) as error:
                raise CommandError(
                    f'{classes}: expected JSON {{"class_names": [...]}} beside the model ({error!r})'
                ) from None
    if name in zoo.available():
        entry = zoo.get(name)
        return zoo.load_model(name), entry.class_names, entry.palette
    raise CommandError(
        f"argument model: must be a saved model file (.keras) or a zoo entry, one of {', '.join(zoo.available())}; "
        f"received {name!r}"
    )


def _class_names(args, model, known):
    """The class names: `--class-names`, else those saved with the model, else the indices."""
    num_classes = model.output_shape[-1]
    names = args.class_names or known or [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise CommandError(f"argument --class-names: the model scores {num_classes} classes; received {len(names)} names")
    return list(names)


def _add_speed_arguments(parser):
    parser.add_argument(
        "--engine",
        choices=("auto", *ENGINES),
        default="auto",
        help="auto (default: the fastest installed for this CPU), tensorflow, openvino or onnxruntime",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="float32 (default, exact), auto (bfloat16 where the CPU has it natively), bfloat16 or float16 (GPUs)",
    )
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="fold the weights into the compiled graph: slower to start, faster per image (big nets, bfloat16)",
    )


def _evaluate_parser(verbs):
    parser = verbs.add_parser(
        "evaluate",
        help="pixel accuracy, mean accuracy, mean IU, frequency weighted IU and per-class IU",
        description="Evaluate a model on a dataset's validation split or on a folder holding images/ and masks/; "
        "prints the paper's four figures and the per-class IU, and writes them as JSON with --json.",
        epilog=EVALUATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="a .keras file (class names from classes.json beside it) or a zoo entry")
    parser.add_argument("dataset", help=f"one of {', '.join(training.NAMED_DATASETS)}, or a folder holding images/ and masks/")
    parser.add_argument("--data-root", help="where a named dataset lives")
    parser.add_argument("--class-names", type=_names, help="class names separated by commas, class 0 first")
    parser.add_argument("--batch-size", type=_positive_int, default=1, help="images per batch (default: 1)")
    parser.add_argument("--json", help="write the figures to this JSON file")
    _add_speed_arguments(parser)
    parser.set_defaults(run=_evaluate)


def _figures_table(figures):
    width = max(len(title) for title in FIGURE_TITLES.values())
    width = max([width, *(len(str(name)) for name in figures["per_class_iou"])])
    lines = [f"{title:<{width}}  {figures[key]:.4f}" for key, title in FIGURE_TITLES.items()]
    lines += ["", f"{'class':<{width}}  IoU"]
    lines += [f"{str(name):<{width}}  {iou:.4f}" for name, iou in figures["per_class_iou"].items()]
    return "\n".join(lines)


def _json_safe(value):
    """NaN -> None, recursively, as JSON has no NaN."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def _evaluate(args):
    model, known, _ = _load_model(args.model)
    names = _class_names(args, model, known)
    splits = training.load_dataset(args.dataset, data_root=args.data_root, num_classes=len(names))
    pairs = splits.validation if splits.validation is not None else splits.train
    figures = evaluate(
        model,
        data.batch(pairs, args.batch_size),
        class_names=names,
        engine=args.engine,
        precision=args.precision,
        freeze=args.freeze,
    )
    print(_figures_table(figures))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"model": args.model, "dataset": args.dataset, **_json_safe(figures)}, file, indent=1)
        print(f"Wrote {args.json}")


def _predict_parser(verbs):
    parser = verbs.add_parser(
        "predict",
        help="segment images: class-index PNGs and colour overlays with a legend",
        description="Segment image files (or every image in folders), each at its own size; with no images, "
        "a street scene that ships with keras-fcn (a drawing in the style of CamVid, 360x480).",
        epilog=PREDICT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="a .keras file (class names from classes.json beside it) or a zoo entry")
    parser.add_argument("inputs", nargs="*", help="image files or folders of images (default: the bundled street scene)")
    parser.add_argument("--output-dir", default="predictions", help="where to write the PNGs (default: predictions)")
    parser.add_argument("--class-names", type=_names, help="class names separated by commas, class 0 first")
    parser.add_argument("--alpha", type=_non_negative_float, default=0.5, help="overlay opacity in [0, 1] (default: 0.5)")
    _add_speed_arguments(parser)
    parser.set_defaults(run=_predict)


def _image_files(inputs):
    files = []
    for path in inputs:
        if os.path.isdir(path):
            files += sorted(
                os.path.join(path, name)
                for name in os.listdir(path)
                if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
            )
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise CommandError(f"argument inputs: must be image files or folders; {path!r} does not exist")
    if not files:
        raise CommandError(f"argument inputs: found no images ({', '.join(IMAGE_EXTENSIONS)}) in {inputs}")
    return files


def _predict(args):
    if args.alpha > 1:
        raise CommandError(f"argument --alpha: must be in [0, 1]; received {args.alpha}")
    if args.inputs:
        files = _image_files(args.inputs)
    else:
        files = [assets.sample_image_path()]
        print(f"No images given: segmenting the bundled sample street scene {files[0]}")
    model, known, palette = _load_model(args.model)
    names = _class_names(args, model, known)
    palette = palette or zoo.voc_palette(len(names))
    images = [np.asarray(Image.open(path).convert("RGB")) for path in files]
    os.makedirs(args.output_dir, exist_ok=True)
    for path, image, labels in zip(files, images, predict(model, images, engine=args.engine, precision=args.precision, freeze=args.freeze)):
        stem = os.path.splitext(os.path.basename(path))[0]
        label_image(labels, palette).save(os.path.join(args.output_dir, f"{stem}.png"))
        overlay(image, labels, palette, names, alpha=args.alpha).save(os.path.join(args.output_dir, f"{stem}_overlay.png"))
        shares = class_shares(labels, len(names))
        order = np.argsort(-shares, kind="stable")
        print(f"{path}: " + ", ".join(f"{names[c]} {100 * shares[c]:.1f}%" for c in order if shares[c] > 0))
    print(f"Wrote {2 * len(files)} PNGs to {args.output_dir}")


def _export_parser(verbs):
    parser = verbs.add_parser(
        "export",
        help="export a model as a SavedModel, TFLite or ONNX",
        description="Export a model for serving. The exported model takes RGB images in [0, 255] and returns "
        "logits, like the Keras model.",
        epilog=EXPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="a .keras file or a zoo entry")
    parser.add_argument("output", help="a folder (SavedModel) or a .tflite / .onnx file")
    parser.add_argument("--format", choices=FORMATS, help="default: from the output's extension, else savedmodel")
    parser.add_argument("--input-size", type=_size, metavar="HxW", help="fixed input size (required for tflite)")
    parser.set_defaults(run=_export)


def _export(args):
    format = args.format or _EXPORT_SUFFIXES.get(os.path.splitext(args.output)[1].lower(), "savedmodel")
    if format == "tflite" and args.input_size is None:
        raise CommandError("argument --input-size: required for tflite, e.g. --input-size 360x480")
    model, _, _ = _load_model(args.model)
    export(model, args.output, format, input_size=args.input_size)
    print(f"Wrote {format} to {args.output}")


def _zoo_parser(verbs):
    parser = verbs.add_parser(
        "zoo",
        help="list, download or convert pretrained weights",
        description="The weight zoo: the authors' models and others, downloaded once into $KERAS_HOME/keras_fcn.",
        epilog=ZOO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="{list,download,convert}", required=True)
    listing = actions.add_parser("list", help="list the entries")
    listing.add_argument("--architecture", help="only the entries of this architecture, e.g. fcn8s_vgg16_reference")
    download = actions.add_parser("download", help="download (and convert) an entry's weights; prints the path")
    download.add_argument("name", choices=zoo.available(), metavar="NAME", help="an entry, e.g. voc-fcn8s")
    convert = actions.add_parser("convert", help="convert a local caffemodel without network access")
    convert.add_argument("name", choices=zoo.available(), metavar="NAME", help="an entry, e.g. voc-fcn8s")
    convert.add_argument("--caffemodel", required=True, help="the .caffemodel file")
    convert.add_argument("--output", required=True, help="the .weights.h5 file to write")
    parser.set_defaults(run=_zoo)


def _zoo(args):
    if args.action == "list":
        for name in zoo.available(args.architecture):
            entry = zoo.get(name)
            aliases = f" (alias {', '.join(entry.aliases)})" if entry.aliases else ""
            print(f"{name}{aliases}: {entry.architecture}, {entry.num_classes} classes, {entry.dataset}")
    elif args.action == "download":
        print(zoo.fetch(args.name))
    else:
        print(f"{args.output}\nsha256 {zoo.convert_caffemodel(args.name, args.caffemodel, args.output)}")


def build_parser():
    """The `keras-fcn` argument parser, one subparser per verb."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fully Convolutional Networks for semantic segmentation (Long, Shelhamer and Darrell, CVPR 2015).",
        epilog="Run 'keras-fcn VERB --help' for a verb's options and examples.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="{train,evaluate,predict,export,zoo}", required=True)
    for add in (_train_parser, _evaluate_parser, _predict_parser, _export_parser, _zoo_parser):
        add(verbs)
    return parser


def main(argv=None):
    """Runs the `keras-fcn` command line.

    Args:
        argv: list of str, the arguments after the program name; defaults to
            `sys.argv[1:]`.

    Returns:
        int, the exit status: 0 on success, 2 for a bad argument (after a
        one-line message on standard error). Argument parsing errors exit
        through `SystemExit(2)` as argparse does.
    """
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (CommandError, ValueError, ImportError, zoo.WeightsDownloadError) as error:
        message = " ".join(str(error).split())
        print(f"{PROG} {args.verb}: error: {message}", file=sys.stderr)
        return 2
    return 0
