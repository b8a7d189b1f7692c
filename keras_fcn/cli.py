"""The `keras-fcn` command line (also `python -m keras_fcn`): train, evaluate, predict, export, plot, zoo.

Run `keras-fcn VERB --help` for each verb's options and examples. An error
caused by the input (a bad argument, a missing or malformed file, bad data:
`keras_fcn.errors.InputError`, an `OSError`) ends the command with one line
naming what is at fault and exit status 2 (`--debug` also prints its
traceback); any other error is a bug and ends it with a traceback and exit
status 1. Every output path is checked before any long work (`_check_output`);
the folders it lacks are made when it is written. A Python warning is shown as
one line, `keras-fcn VERB: warning: ...`.
"""

import argparse
import collections
import functools
import itertools
import json
import math
import os
import sys
import traceback
import warnings

import numpy as np

from keras_fcn import arguments, assets, data, plots, training, zoo
from keras_fcn.constants import CLASSES_FILE
from keras_fcn.errors import InvalidArgumentError, InvalidDataError, input_error_message
from keras_fcn.export import FORMATS, check_export, export
from keras_fcn.engines import ENGINES
from keras_fcn.inference import PRECISIONS, evaluate, predict, saved_model_source, source_function
from keras_fcn.metrics import FIGURES
from keras_fcn.training import options
from keras_fcn.visualize import class_shares, label_image, overlay
from keras_fcn.files import remove_if_exists, sha256_of, temporary_path, write_json_atomically

PROG = "keras-fcn"
FIGURE_TITLES = dict(
    zip(FIGURES, ("pixel accuracy", "mean accuracy", "mean IU", "frequency weighted IU"))
)
_EXPORT_SUFFIXES = {".tflite": "tflite", ".onnx": "onnx"}
TRAINING_CURVES_FILE = "training_curves.png"

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
  keras-fcn evaluate runs/cells/best.keras cells/val --label-map 255:1       # masks holding 0 and 255
  keras-fcn evaluate runs/streets/best.keras streets/val --color-map colors.txt
  keras-fcn evaluate runs/camvid/best.keras camvid --data-root data/camvid
  keras-fcn evaluate voc-fcn8s voc --data-root VOCdevkit"""
PREDICT_EXAMPLES = """examples:
  keras-fcn predict camvid                 # the bundled street scene, into predictions/
  keras-fcn predict runs/fcn8s/best.keras photos/ --output-dir segmented
  keras-fcn predict voc-fcn8s cat.jpg dog.jpg
writes <stem>.png (class ids, shown in the palette's colours) and <stem>_overlay.png per image; where two
images share a stem (a.jpg, a.png) or <stem>.png is an input, <stem>_<extension>.png (a_jpg.png, a_png.png).
Unreadable images are skipped and named; the exit status is then 2."""
EXPORT_EXAMPLES = """examples:
  keras-fcn export runs/fcn8s/best.keras exported/fcn8s            # SavedModel, any input size
  keras-fcn export runs/fcn8s/best.keras fcn8s.tflite --input-size 360x480
  keras-fcn export runs/fcn8s/best.keras fcn8s.onnx                # pip install keras-fcn[onnx]"""
PLOT_EXAMPLES = """examples:
  keras-fcn plot runs/fcn8s                                  # writes runs/fcn8s/training_curves.png
  keras-fcn plot runs/32s runs/16s runs/8s --labels FCN-32s,FCN-16s,FCN-8s --output curves.png"""
ZOO_EXAMPLES = """examples:
  keras-fcn zoo list
  keras-fcn zoo list --architecture fcn8s_vgg16_reference --markdown   # with sources and published metrics
  keras-fcn zoo download voc-fcn8s        # downloads and converts once; prints the file and its sha256
  keras-fcn zoo convert voc-fcn8s --caffemodel fcn8s-heavy-pascal.caffemodel --output voc-fcn8s.weights.h5"""
# Who measured a manifest metric, as the Markdown table says it.
_MEASURED_BY = {"authors": "theirs", "keras-fcn": "ours"}


class CommandError(InvalidArgumentError):
    """A bad argument found while running a verb: reported on one line, exit status 2."""


def _check_output(argument, path, folder=False):
    """Refuses an output path that cannot be written, before any long work (loading a model, training).

    The path (a file, or a folder when `folder`) may be missing, and so may
    folders above it: those are made when it is written, not here, so that
    a command failing before then leaves nothing behind. Refused: a folder
    where a file is needed and the reverse, a file where a folder above it
    should be, and a folder that this user cannot write to.

    Args:
        argument: str, the argument as the user knows it, e.g. `"--json"`.
        path: str, the path it was given.
        folder: bool, whether the path is a folder to write into.

    Raises:
        CommandError: naming `argument` and `path`.
    """
    if folder and os.path.exists(path) and not os.path.isdir(path):
        raise CommandError(f"argument {argument}: must be a folder; received {path!r}, which is a file")
    if not folder and os.path.isdir(path):
        raise CommandError(f"argument {argument}: must be a file name; received {path!r}, which is a folder")
    existing = path if folder else os.path.dirname(path)
    while existing and not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    existing = existing or os.curdir
    if not os.path.isdir(existing):
        raise CommandError(
            f"argument {argument}: cannot be written; received {path!r}, where {existing!r} is a file, not a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(
            f"argument {argument}: cannot be written; received {path!r}, and the folder {existing!r} is not writable"
        )


def _verb_parser(verbs, name, **kwargs):
    """A verb's parser, with its examples shown as written and a `--debug` flag."""
    parser = verbs.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    _add_debug(parser, default=argparse.SUPPRESS)
    return parser


def _add_debug(parser, default):
    # Verbs default to SUPPRESS, so that a `--debug` given before the verb is not reset by the verb's parser.
    parser.add_argument(
        "--debug", action="store_true", default=default, help="print the traceback of an error, not only its line"
    )


def _train_parser(verbs):
    parser = _verb_parser(
        verbs,
        "train",
        help="train an FCN (resumes an interrupted run)",
        description="Train an FCN with logs (log.csv, tensorboard/), checkpoints (best.keras by validation "
        "mean IU, last.keras) and a backup to resume from, all in --output-dir.",
        epilog=TRAIN_EXAMPLES,
    )
    parser.add_argument(
        "dataset", help=f"one of {', '.join(training.NAMED_DATASETS)}, or a folder holding images/ and masks/"
    )
    parser.add_argument("--output-dir", required=True, help="the run folder (made with its parents if missing)")
    options.add_arguments(parser)
    flags = {**parser.get_default("option_flags"), "output_dir": "--output-dir"}  # train's own argument, too
    parser.set_defaults(run=_train, option_flags=flags)


def _train(args):
    _check_output("--output-dir", args.output_dir, folder=True)
    training.train(args.dataset, args.output_dir, **options.from_arguments(args))
    print(f"Run folder: {args.output_dir} (best.keras, last.keras, log.csv, tensorboard/)")


def _saved_model(name):
    """`(load, source, class names or None, palette or None)` of a saved model file or a zoo entry.

    `load()` loads the Keras model; `source` identifies what it holds for the
    engines' cache (`keras_fcn.inference.source_function`), or is None.
    """
    if not os.path.exists(name) and name not in zoo.available():
        missing = "no such file; it " if os.sep in name or os.path.splitext(name)[1] else ""
        raise CommandError(
            f"argument model: {missing}must be a saved model file (.keras) or a zoo entry, one of "
            f"{', '.join(zoo.available())}; received {name!r}"
        )
    load, source = saved_model_source(name)  # refuses a folder, or a file that is not a .keras model
    known, palette = None, None
    if not os.path.exists(name):  # a zoo entry
        entry = zoo.get(name)
        known, palette = entry.class_names, entry.palette
    elif os.path.isfile(classes := os.path.join(os.path.dirname(name), CLASSES_FILE)):
        with open(classes, encoding="utf-8") as file:
            try:
                known = list(json.load(file)["class_names"])
            except (ValueError, TypeError, KeyError) as error:
                raise InvalidDataError(
                    f'{classes}: expected JSON {{"class_names": [...]}} beside the model ({error!r})'
                ) from None
    return load, source, known, palette


def _model_classes(saved):
    """`(number of classes, saved)` of what `_saved_model` gave, to use from then on.

    The number is that of the class names saved with the model, or else the
    model's own: it is then loaded once, and handed on in the `saved` returned.
    """
    load, _, known, _ = saved
    if known is not None:
        return len(known), saved
    model = load()
    num_classes, saved = model.output_shape[-1], ([model].pop, *saved[1:])  # the function alone keeps it
    del model
    return num_classes, saved


def _inference_function(args, saved=None):
    """`(InferenceFunction, class names or None, palette or None)` of `args.model` with `args`' engine and precision.

    A model whose export is cached is not loaded (`source_function`); else
    the model is loaded and only the function is kept, so that an exported
    engine's copy of the weights is the only one in memory. `saved`: what
    `_saved_model(args.model)` gave, when the caller has it.
    """
    load, source, known, palette = saved or _saved_model(args.model)
    settings = {"engine": args.engine, "precision": args.precision}
    run = source_function(source, load, **settings)
    print(f"Running {args.model} on {run.engine} in {run.precision}")
    return run, known, palette


def _class_names(args, model, known):
    """The class names: `--class-names`, else those saved with the model, else the indices.

    `model`: anything with the model's `output_shape` (a Keras model, an `InferenceFunction`).
    """
    num_classes = model.output_shape[-1]
    _check_class_names(args, num_classes)
    names = args.class_names or known or [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise CommandError(f"The model scores {num_classes} classes, but {len(names)} class names were saved with it")
    return list(names)


def _check_class_names(args, num_classes):
    """Refuses `--class-names` that do not name each of the model's `num_classes` classes."""
    if args.class_names and len(args.class_names) != num_classes:
        raise CommandError(
            f"argument --class-names: the model scores {num_classes} classes; "
            f"received {len(args.class_names)}: {','.join(args.class_names)}"
        )


def _add_inference_arguments(parser):
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
        "--flip",
        action="store_true",
        help="test-time augmentation: average each image's class probabilities with its left-right mirror's "
        "(twice the time)",
    )
    parser.add_argument(
        "--scales",
        type=arguments.scales,
        default=(1.0,),
        metavar="S,S,...",
        help="test-time augmentation: average each image's class probabilities over copies resized by these "
        "factors, e.g. 1,1.25,1.5 (the time of each is its factor squared; default: 1)",
    )


def _evaluate_parser(verbs):
    parser = _verb_parser(
        verbs,
        "evaluate",
        help="pixel accuracy, mean accuracy, mean IU, frequency weighted IU and per-class IU",
        description="Evaluate a model on a dataset's validation split or on a folder holding images/ and masks/; "
        "prints the paper's four figures and the per-class IU, and writes them as JSON with --json.",
        epilog=EVALUATE_EXAMPLES,
    )
    parser.add_argument("model", help="a .keras file (class names from classes.json beside it) or a zoo entry")
    parser.add_argument("dataset", help=f"one of {', '.join(training.NAMED_DATASETS)}, or a folder holding images/ and masks/")
    options.add_arguments(parser, ("data_root", "class_names", "label_map", "color_map", "mask_threshold"))
    parser.add_argument("--batch-size", type=arguments.positive_int, default=1, help="images per batch (default: 1)")
    parser.add_argument("--json", help="write the figures to this JSON file (missing folders are made)")
    parser.add_argument(
        "--plot", metavar="DIR", help="write confusion_matrix.png and per_class_iou.png to DIR (made if missing; needs matplotlib)"
    )
    _add_inference_arguments(parser)
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
    if args.json:
        _check_output("--json", args.json)
    if args.plot:
        _check_output("--plot", args.plot, folder=True)
        plots.ensure_matplotlib()
    num_classes, saved = _model_classes(_saved_model(args.model))
    _check_class_names(args, num_classes)
    known = saved[2]
    class_names = args.class_names or known
    if args.dataset in training.NAMED_DATASETS:
        own_classes, _ = training.datasets.dataset_classes(args.dataset)
        if own_classes != num_classes:
            raise CommandError(
                f"The model scores {num_classes} classes, but dataset {args.dataset!r} has {own_classes}: evaluate "
                f"a model of its classes. Received model={args.model!r}"
            )
    splits = training.load_dataset(  # every pair is checked before the model is exported
        args.dataset,
        data_root=args.data_root,
        num_classes=num_classes,
        class_names=class_names,
        label_map=args.label_map,
        color_map=args.color_map,
        mask_threshold=args.mask_threshold,
        training_split=False,
    )
    run, _, _ = _inference_function(args, saved)
    names = _class_names(args, run, splits.class_names)
    pairs = splits.validation if splits.validation is not None else splits.train
    figures = evaluate(
        run, data.batch_by_size(pairs, args.batch_size), class_names=names, flip=args.flip, scales=args.scales
    )
    print(_figures_table(figures))
    if args.json:
        record = {
            "model": args.model, "dataset": args.dataset, "flip": args.flip, "scales": list(args.scales),
            **_json_safe(figures),
        }
        write_json_atomically(args.json, record)  # making the folders it lacks
        print(f"Wrote {args.json}")
    if args.plot:
        title = f"{args.model} on {args.dataset}{_augmentation_words(args)}"
        print(f"Wrote {', '.join(plots.save_evaluation(figures, args.plot, title=title))}")


def _augmentation_words(args):
    """The test-time augmentation of `evaluate`, in words for a title: "" or " (flip; scales 1, 1.25)"."""
    words = ["flip"] if args.flip else []
    if args.scales != (1.0,):
        words.append("scales " + ", ".join(f"{scale:g}" for scale in args.scales))
    return f" ({'; '.join(words)})" if words else ""


def _predict_parser(verbs):
    parser = _verb_parser(
        verbs,
        "predict",
        help="segment images: class-index PNGs and colour overlays with a legend",
        description="Segment image files (or every image in folders), each at its own size; with no images, "
        "a street scene that ships with keras-fcn (a drawing in the style of CamVid, 360x480).",
        epilog=PREDICT_EXAMPLES,
    )
    parser.add_argument("model", help="a .keras file (class names from classes.json beside it) or a zoo entry")
    parser.add_argument("inputs", nargs="*", help="image files or folders of images (default: the bundled street scene)")
    parser.add_argument("--output-dir", default="predictions", help="where to write the PNGs, made if missing (default: predictions)")
    options.add_arguments(parser, ("class_names",))
    parser.add_argument("--alpha", type=arguments.non_negative_float, default=0.5, help="overlay opacity in [0, 1] (default: 0.5)")
    _add_inference_arguments(parser)
    parser.set_defaults(run=_predict)


def _image_files(inputs, output_dir):
    """The image files named by `inputs`, each once: files as given, and the image files of folders (hidden ones skipped).

    An input folder may not be `output_dir`: a later run would take the
    outputs of this one for images to segment.
    """
    files = []
    for path in inputs:
        if os.path.isdir(path):
            if os.path.realpath(path) == os.path.realpath(output_dir):
                raise CommandError(
                    f"argument --output-dir: must not be an input folder, whose images it would mix with the "
                    f"outputs; received {output_dir!r} for the input folder {path!r}"
                )
            files += data.list_image_files(path)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise CommandError(f"argument inputs: must be image files or folders; {path!r} does not exist")
    if not files:
        raise CommandError(f"argument inputs: found no images ({', '.join(data.IMAGE_EXTENSIONS)}) in {inputs}")
    # An image named twice (a.png and ./a.png, or a file and its folder) is segmented once.
    unique = {}
    for path in files:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


OUTPUT_SUFFIXES = (".png", "_overlay.png")


def _output_stems(files, output_dir):
    """A name for each input's outputs (`<name>.png`, `<name>_overlay.png`), overwriting no input and no other output.

    The name is the input's stem; `<stem>_<extension>` for inputs sharing a
    stem (a.jpg, a.png) or whose outputs would replace an input (photo.png
    in the output folder); then `_2`, `_3`, ... until free. Names are
    compared without case, as on macOS and Windows file systems.
    """

    def key(path):
        return os.path.realpath(path).casefold()

    taken = {key(path) for path in files}
    split = [os.path.splitext(os.path.basename(path)) for path in files]
    stem_counts = collections.Counter(stem.casefold() for stem, _ in split)
    stems = []
    for stem, extension in split:
        own = f"{stem}_{extension[1:]}" if extension else stem
        candidates = itertools.chain(
            [stem] if stem_counts[stem.casefold()] == 1 else [], [own], (f"{own}_{n}" for n in itertools.count(2))
        )
        for candidate in candidates:
            outputs = {key(os.path.join(output_dir, candidate + suffix)) for suffix in OUTPUT_SUFFIXES}
            if not outputs & taken:
                break
        taken |= outputs
        stems.append(candidate)
    return stems


def _save_png(image, path):
    """Saves a PIL image as PNG under a temporary name, then renames it onto `path`."""
    temporary = temporary_path(path, ".png")
    try:
        image.save(temporary, format="PNG")
        os.replace(temporary, path)
    finally:
        remove_if_exists(temporary)


def _predict(args):
    if args.alpha > 1:
        raise CommandError(f"argument --alpha: must be in [0, 1]; received {args.alpha}")
    _check_output("--output-dir", args.output_dir, folder=True)
    saved = _saved_model(args.model)
    if args.class_names:  # checked against the model before any engine is made
        num_classes, saved = _model_classes(saved)
        _check_class_names(args, num_classes)
    if args.inputs:
        files = _image_files(args.inputs, args.output_dir)
    else:
        files = [assets.sample_image_path()]
        print(f"No images given: segmenting the bundled sample street scene {files[0]}")
    run, known, palette = _inference_function(args, saved)
    names = _class_names(args, run, known)
    palette = palette or zoo.voc_palette(len(names))
    readable, skipped = [], []
    for path, stem in zip(files, _output_stems(files, args.output_dir)):
        try:
            readable.append((path, stem, data.read_image(path)))
        except ValueError as error:
            skipped.append(path)
            print(f"{PROG} predict: skipping {path}: {error}", file=sys.stderr)
    if not readable:
        raise CommandError(f"no image could be read ({len(files)} given): {', '.join(skipped)}")
    os.makedirs(args.output_dir, exist_ok=True)
    images = [image for _, _, image in readable]
    labels_of_images = predict(run, images, flip=args.flip, scales=args.scales)
    for (path, stem, image), labels in zip(readable, labels_of_images):
        output = os.path.join(args.output_dir, stem)
        _save_png(label_image(labels, palette), f"{output}{OUTPUT_SUFFIXES[0]}")
        _save_png(overlay(image, labels, palette, names, alpha=args.alpha), f"{output}{OUTPUT_SUFFIXES[1]}")
        shares = class_shares(labels, len(names))
        order = np.argsort(-shares, kind="stable")
        print(f"{path}: " + ", ".join(f"{names[c]} {100 * shares[c]:.1f}%" for c in order if shares[c] > 0))
    print(f"Wrote {2 * len(readable)} PNGs to {args.output_dir}")
    if skipped:
        raise CommandError(
            f"{len(skipped)} of {len(files)} images could not be read and were skipped: {', '.join(skipped)}"
        )


def _export_parser(verbs):
    parser = _verb_parser(
        verbs,
        "export",
        help="export a model as a SavedModel, TFLite or ONNX",
        description="Export a model for serving. The exported model takes RGB images in [0, 255] and returns "
        "logits, like the Keras model.",
        epilog=EXPORT_EXAMPLES,
    )
    parser.add_argument("model", help="a .keras file or a zoo entry")
    parser.add_argument("output", help="a folder (SavedModel) or a .tflite / .onnx file (missing folders are made)")
    parser.add_argument("--format", choices=FORMATS, help="default: from the output's extension, else savedmodel")
    parser.add_argument("--input-size", type=arguments.size, metavar="HxW", help="fixed input size (required for tflite)")
    parser.set_defaults(run=_export)


def _export(args):
    format = args.format or _EXPORT_SUFFIXES.get(os.path.splitext(args.output)[1].lower(), "savedmodel")
    if format == "tflite" and args.input_size is None:
        raise CommandError("argument --input-size: required for tflite, e.g. --input-size 360x480")
    check_export(args.output, format, args.input_size)
    _check_output("output", args.output, folder=format == "savedmodel")
    load, _, _, _ = _saved_model(args.model)
    model = load()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    export(model, args.output, format, input_size=args.input_size)
    print(f"Wrote {format} to {args.output}")


def _plot_parser(verbs):
    parser = verbs.add_parser(
        "plot",
        help="training curves (loss, mean IU per epoch) of runs, stage after stage, as a PNG",
        description="Draw the loss and the mean IU per epoch, training and validation, from each run's log.csv; "
        "several runs (staged training: 32s, 16s, 8s) are drawn one after another. Needs matplotlib "
        "(pip install 'keras-fcn[plot]').",
        epilog=PLOT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders holding log.csv (or CSV logs)")
    parser.add_argument("--labels", type=arguments.names, help="a name per run separated by commas (default: the folder names)")
    parser.add_argument(
        "--output", metavar="PNG", help=f"the PNG to write (default: {TRAINING_CURVES_FILE} in the last run folder)"
    )
    parser.set_defaults(run=_plot)


def _plot(args):
    last = args.runs[-1]
    output = args.output or os.path.join(last if os.path.isdir(last) else os.path.dirname(last), TRAINING_CURVES_FILE)
    _check_output("--output", output)
    plots.save(plots.training_curves(args.runs, args.labels), output)
    print(f"Wrote {output}")


def _zoo_parser(verbs):
    parser = _verb_parser(
        verbs,
        "zoo",
        help="list, download or convert pretrained weights",
        description="The weight zoo: the authors' models and others, downloaded once into $KERAS_HOME/keras_fcn.",
        epilog=ZOO_EXAMPLES,
    )
    actions = parser.add_subparsers(dest="action", metavar="{list,download,convert}", required=True)
    listing = _verb_parser(actions, "list", help="list the entries")
    listing.add_argument("--architecture", help="only the entries of this architecture, e.g. fcn8s_vgg16_reference")
    listing.add_argument(
        "--markdown", action="store_true", help="a Markdown table with inputs, sources and published metrics"
    )
    download = _verb_parser(
        actions, "download", help="download (and convert) an entry's weights; prints the path and sha256"
    )
    download.add_argument("name", choices=zoo.available(), metavar="NAME", help="an entry, e.g. voc-fcn8s")
    convert = _verb_parser(actions, "convert", help="convert a local caffemodel without network access")
    convert.add_argument("name", choices=zoo.available(), metavar="NAME", help="an entry, e.g. voc-fcn8s")
    convert.add_argument("--caffemodel", required=True, help="the .caffemodel file")
    convert.add_argument("--output", required=True, help="the .weights.h5 file to write")
    parser.set_defaults(run=_zoo)


def _metric(metric):
    by = _MEASURED_BY[metric["measured_by"]]
    return f"{metric['metric']} {metric['value']} on {metric['split']} ({by}, {metric['source']})"


def _zoo_table(names):
    """The entries as a Markdown table; metrics measured by the authors are marked "theirs", ours "ours"."""
    rows = [
        "| entry | alias | architecture | classes | input | source | published metrics |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        entry = zoo.get(name)
        classes = " + ".join(str(len(class_names)) for _, class_names in entry.outputs)
        inputs = ", ".join(f"{key}: {pre.description.rsplit(' (', 1)[0]}" for key, pre in entry.inputs)
        source = f"[{entry.source_format}]({entry.urls[0]})" if entry.urls else f"{entry.source_format} (in the package)"
        metrics = "; ".join(map(_metric, entry.metrics)) or "none published"
        aliases = ", ".join(entry.aliases) or "-"
        rows.append(f"| {name} | {aliases} | {entry.architecture} | {classes} | {inputs} | {source} | {metrics} |")
    return "\n".join(rows)


def _zoo(args):
    if args.action == "list" and args.markdown:
        print(_zoo_table(zoo.available(args.architecture)))
    elif args.action == "list":
        for name in zoo.available(args.architecture):
            entry = zoo.get(name)
            aliases = f" (alias {', '.join(entry.aliases)})" if entry.aliases else ""
            print(f"{name}{aliases}: {entry.architecture}, {entry.num_classes} classes, {entry.dataset}")
    elif args.action == "download":
        path = zoo.fetch(args.name)
        print(f"{path}\nsha256 {sha256_of(path)}")
    else:
        _check_output("--output", args.output)
        print(f"{args.output}\nsha256 {zoo.convert_caffemodel(args.name, args.caffemodel, args.output)}")


def _show_warning(verb, message, category, filename, lineno, file=None, line=None):
    """`warnings.showwarning` for the command line: `keras-fcn VERB: warning: <message>`, on one line."""
    text = " ".join(str(message).split())
    try:
        print(f"{PROG} {verb}: warning: {text}", file=sys.stderr if file is None else file)
    except OSError:  # as Python's own: a closed or broken standard error loses the warning
        pass


def build_parser():
    """The `keras-fcn` argument parser, one subparser per verb."""
    parser = arguments.Parser(
        prog=PROG,
        subcommand_dest="verb",
        description="Fully Convolutional Networks for semantic segmentation (Long, Shelhamer and Darrell, CVPR 2015).",
        epilog="Run 'keras-fcn VERB --help' for a verb's options and examples.",
    )
    _add_debug(parser, default=False)
    verbs = parser.add_subparsers(dest="verb", metavar="{train,evaluate,predict,export,plot,zoo}", required=True)
    for add in (_train_parser, _evaluate_parser, _predict_parser, _export_parser, _plot_parser, _zoo_parser):
        add(verbs)
    return parser


def main(argv=None):
    """Runs the `keras-fcn` command line.

    Args:
        argv: list of str, the arguments after the program name; defaults to
            `sys.argv[1:]`.

    Returns:
        int, the exit status: 0 on success, 2 for an error caused by the
        input (after its message on standard error: one line, or a line
        and a list such as every bad image/mask pair; and its traceback
        with `--debug`). Argument parsing errors exit through
        `SystemExit(2)` as argparse does.

    Raises:
        Exception: any other error, a bug, as it was raised (Python prints
            its traceback and exits with status 1).
    """
    args = build_parser().parse_args(argv)
    shown = warnings.showwarning
    warnings.showwarning = functools.partial(_show_warning, args.verb)
    try:
        args.run(args)
    except Exception as error:
        message = input_error_message(error)
        if message is None:
            raise
        if args.debug:
            traceback.print_exc()
        message = options.with_flags(message, getattr(args, "option_flags", {}))  # the verb's flags, not keywords
        lines = [" ".join(line.split()) for line in message.splitlines() if line.strip()]
        print(f"{PROG} {args.verb}: error: " + "\n".join(lines), file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown
    return 0
