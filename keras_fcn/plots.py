"""Pictures of results: the confusion matrix, the per-class IU and the training curves, as matplotlib figures.

Needs matplotlib, the optional extra `[plot]` (`pip install
"keras-fcn[plot]"`). The figures are drawn on matplotlib's non-interactive
Agg canvas without `pyplot`, so making them changes no global matplotlib
state and needs no display; `save` writes them as PNG.

Example:

>>> from keras_fcn import plots
>>> figures = keras_fcn.evaluate(model, val_dataset, class_names=CAMVID_CLASSES)
>>> plots.save_evaluation(figures, "plots")
['plots/confusion_matrix.png', 'plots/per_class_iou.png']
>>> plots.save(plots.training_curves(["runs/32s", "runs/16s", "runs/8s"]), "curves.png")
"""

import csv
import math
import os
import textwrap

import numpy as np

from keras_fcn.errors import InvalidArgumentError, InvalidDataError, MissingPackageError
from keras_fcn.files import save_atomically
from keras_fcn.metrics import class_keys

EXTRA = "plot"
LOG_FILE = "log.csv"
# What `training_curves` draws: a panel per quantity, from these columns of the Keras CSV log.
CURVES = (("loss", "loss"), ("mean IU", "mean_iou"))
# Cells of the confusion matrix are labelled with their values up to this many classes.
MAX_ANNOTATED_CLASSES = 30
# Characters of a title per inch of figure width, with room to spare (matplotlib's figure title font, 14.4 pt).
TITLE_CHARACTERS_PER_INCH = 7
# Inches per character of the longest class name, on the tick labels (10 pt).
NAME_INCHES_PER_CHARACTER = 0.085
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
PER_CLASS_IOU_FILE = "per_class_iou.png"


def ensure_matplotlib():
    """The `matplotlib` module with its figure and Agg canvas loaded.

    Returns:
        The `matplotlib` module.

    Raises:
        ImportError: naming the `[plot]` extra, when matplotlib is not
            installed.
    """
    try:
        import matplotlib
        import matplotlib.backends.backend_agg
        import matplotlib.figure
    except ImportError as error:
        raise MissingPackageError(
            f"Plotting needs matplotlib, the optional extra [{EXTRA}]: pip install 'keras-fcn[{EXTRA}]' "
            f"(or pip install matplotlib). ({error})"
        ) from None
    return matplotlib


def _figure(width, height):
    """A new figure of `width` x `height` inches on an Agg canvas."""
    matplotlib = ensure_matplotlib()
    figure = matplotlib.figure.Figure(figsize=(width, height), layout="constrained")
    matplotlib.backends.backend_agg.FigureCanvasAgg(figure)
    return figure


def _set_title(figure, title):
    """`title` over the whole figure, broken into lines that fit its width (a long one is otherwise cut)."""
    figure.suptitle(textwrap.fill(title, width=max(20, int(TITLE_CHARACTERS_PER_INCH * figure.get_figwidth()))))


def confusion_matrix(confusion, class_names=None, *, title=None):
    """The confusion matrix, each row divided by its sum, as a heat map with the class names on both axes.

    Cell `(i, j)` shows the share of the pixels of true class `i` that were
    predicted as class `j`, so each row sums to 1 and the diagonal is the
    per-class accuracy; a class with no pixel has a grey row.

    Args:
        confusion: `(num_classes, num_classes)` array of pixel counts, rows
            indexed by the true class and columns by the predicted class, as
            `keras_fcn.evaluate(...)["confusion_matrix"]` or
            `keras_fcn.metrics.ConfusionMatrix.result()`.
        class_names: None or a sequence of `num_classes` names; defaults to
            the class indices.
        title: str or None, the figure's title.

    Returns:
        A `matplotlib.figure.Figure` with one image axis and a colour bar.

    Raises:
        ValueError: if `confusion` is not square or has negative counts, or
            `class_names` has another length.
        ImportError: when matplotlib is not installed.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or (confusion < 0).any():
        raise InvalidArgumentError(
            "`confusion` must be a square matrix of non-negative pixel counts. "
            f"Received an array of shape {confusion.shape}"
        )
    names = [str(name) for name in class_keys(class_names, len(confusion))]
    totals = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(confusion, totals, out=np.full(confusion.shape, np.nan), where=totals > 0)
    side = 2.5 + 0.45 * len(names)
    labels = NAME_INCHES_PER_CHARACTER * max(len(name) for name in names)  # y labels beside, x labels below (45°)
    figure = _figure(side + 1.8 + labels, side + 0.7 * labels)
    axes = figure.add_subplot()
    colours = ensure_matplotlib().colormaps["Blues"].with_extremes(bad="0.85")
    image = axes.imshow(shares, cmap=colours, vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(names)), labels=names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(len(names)), labels=names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if len(names) <= MAX_ANNOTATED_CLASSES:
        for (row, column), share in np.ndenumerate(shares):
            if not math.isnan(share):
                colour = "white" if share > 0.5 else "black"
                axes.text(column, row, f"{share:.2f}", ha="center", va="center", fontsize=7, color=colour)
    figure.colorbar(image, ax=axes, label="share of the true class's pixels")
    _set_title(figure, title or "Confusion matrix (each row sums to 1)")
    return figure


def per_class_iou(per_class, *, title=None):
    """The IU of each class as a bar chart, with the mean IU as a dashed line.

    Args:
        per_class: dict from class name to IU in `[0, 1]` (NaN for a class
            absent from both labels and predictions), in class order, as
            `keras_fcn.evaluate(...)["per_class_iou"]`.
        title: str or None, the figure's title.

    Returns:
        A `matplotlib.figure.Figure` with one axis holding one bar per class
        (height 0 and the label "n/a" for a NaN) and the mean IU line, the
        mean over the classes with an IU as in `keras_fcn.metrics`.

    Raises:
        ValueError: if `per_class` is empty or has a value outside `[0, 1]`.
        ImportError: when matplotlib is not installed.
    """
    names = [str(name) for name in per_class]
    values = np.array([float(value) for value in per_class.values()])
    defined = ~np.isnan(values)
    if not names or not ((values[defined] >= 0) & (values[defined] <= 1)).all():
        raise InvalidArgumentError(f"`per_class` must map class names to IU in [0, 1] or NaN. Received {dict(per_class)!r}")
    figure = _figure(max(5.0, 1.5 + 0.45 * len(names)), 4.0)
    axes = figure.add_subplot()
    bars = axes.bar(range(len(names)), np.where(defined, values, 0.0), color="tab:blue")
    axes.bar_label(bars, labels=[f"{v:.2f}" if ok else "n/a" for v, ok in zip(values, defined)], fontsize=7)
    if defined.any():
        mean = values[defined].mean()
        axes.axhline(mean, color="tab:red", linestyle="--", label=f"mean IU {mean:.3f}")
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.set_xticks(range(len(names)), labels=names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_ylim(0.0, 1.08)
    axes.set_ylabel("IU (intersection over union)")
    _set_title(figure, title or "Per-class IU")
    return figure


def read_log(path):
    """The columns of a training log written by `keras.callbacks.CSVLogger` (a run's `log.csv`).

    Args:
        path: str, a run folder holding `log.csv`, or the CSV file itself.

    Returns:
        A dict from column name (`"epoch"`, `"loss"`, `"val_mean_iou"`, ...)
        to a float64 array, one entry per epoch; missing values ("NA",
        empty) are NaN.

    Raises:
        ValueError: naming the file, if it does not exist, has no `epoch`
            column or no row, or holds a value that is not a number.
    """
    file = os.path.join(path, LOG_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise InvalidDataError(f"{path}: expected a run folder holding {LOG_FILE} or a CSV log file; found neither")
    with open(file, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "epoch" not in rows[0]:
        raise InvalidDataError(f"{file}: expected a CSV log with an 'epoch' column and one row per epoch")
    columns = {name: np.empty(len(rows)) for name in rows[0]}
    for line, row in enumerate(rows, 2):
        for name, text in row.items():
            try:
                columns[name][line - 2] = math.nan if text in ("", "NA", None) else float(text)
            except (TypeError, ValueError):
                raise InvalidDataError(f"{file}, line {line}: column {name!r} holds {text!r}, not a number") from None
    return columns


def training_curves(runs, labels=None, *, title=None):
    """The loss and the mean IU per epoch, training and validation, of one run or of stages run one after another.

    Each run is drawn in its own colour, after the epochs of the runs
    before it (staged training: FCN-32s, then FCN-16s, then FCN-8s), with a
    dotted line where a stage starts; training curves are solid, validation
    curves dashed. A column missing from a log is not drawn.

    Args:
        runs: a sequence of run folders (holding `log.csv`) or CSV log
            files, in the order they were trained.
        labels: None or one name per run; defaults to each folder's name,
            or each file's name without `.csv`.
        title: str or None, the figure's title.

    Returns:
        A `matplotlib.figure.Figure` with one axis per quantity of `CURVES`
        (loss, mean IU), epochs on the x-axis counted from 1.

    Raises:
        ValueError: if `runs` is empty, `labels` has another length, a log
            cannot be read (see `read_log`), or no log has a column of
            `CURVES`.
        ImportError: when matplotlib is not installed.
    """
    runs = [os.fspath(run) for run in runs]
    if not runs:
        raise InvalidArgumentError("`runs` must name at least one run folder or CSV log. Received none")
    if labels is None:
        labels = [os.path.splitext(os.path.basename(os.path.normpath(run)))[0] for run in runs]
    if len(labels) != len(runs):
        raise InvalidArgumentError(f"`labels` must hold one name per run, {len(runs)} names. Received {list(labels)!r}")
    logs = [read_log(run) for run in runs]
    if not any(column in log for log in logs for _, column in CURVES):
        raise InvalidDataError(f"The logs {runs} have none of the columns {', '.join(c for _, c in CURVES)}")
    figure = _figure(11.0, 4.0)
    panels = figure.subplots(1, len(CURVES), squeeze=False)[0]
    start = 0
    for stage, (label, log) in enumerate(zip(labels, logs)):
        epochs = start + log["epoch"] + 1
        colour = f"C{stage % 10}"
        for axes, (_, column) in zip(panels, CURVES):
            if stage:
                axes.axvline(start + 0.5, color="0.6", linestyle=":")
            for prefix, style, kind in (("", "-", "train"), ("val_", "--", "val")):
                if prefix + column in log:
                    axes.plot(epochs, log[prefix + column], style, color=colour, label=f"{label} {kind}")
        start = int(epochs.max())
    for axes, (quantity, _) in zip(panels, CURVES):
        axes.set_xlabel("epoch")
        axes.set_ylabel(quantity)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    if title:
        _set_title(figure, title)
    return figure


def save(figure, path, *, dpi=100):
    """Writes a figure as a PNG, atomically (a temporary file beside `path`, renamed when complete).

    Args:
        figure: a `matplotlib.figure.Figure`.
        path: str, the `.png` file to write; its folder is created.
        dpi: int, pixels per inch: the PNG is about `figsize * dpi` pixels,
            cut or widened to what the figure draws (nothing is cut off).

    Returns:
        `path`.
    """
    save_atomically(
        lambda temporary: figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.1), path
    )
    return path


def save_evaluation(figures, directory, *, title=None):
    """Writes the confusion matrix and the per-class IU of an evaluation as PNGs.

    Args:
        figures: the dict `keras_fcn.evaluate` returns, with
            `"per_class_iou"`, `"confusion_matrix"` (class order taken from
            `"per_class_iou"`).
        directory: str, the folder to write `confusion_matrix.png` and
            `per_class_iou.png` to (created).
        title: str or None, prefixed to both figures' titles, e.g. the
            model and dataset.

    Returns:
        The list of the two paths written.

    Raises:
        ImportError: when matplotlib is not installed.
    """
    prefix = f"{title}: " if title else ""
    names = list(figures["per_class_iou"])
    matrix = confusion_matrix(
        figures["confusion_matrix"], names, title=f"{prefix}confusion matrix (each row sums to 1)"
    )
    bars = per_class_iou(figures["per_class_iou"], title=f"{prefix}per-class IU")
    return [
        save(matrix, os.path.join(directory, CONFUSION_MATRIX_FILE)),
        save(bars, os.path.join(directory, PER_CLASS_IOU_FILE)),
    ]
