"""The paper's segmentation figures from a streaming confusion matrix (paper, section 5).

With `n_ij` the number of pixels of class `i` predicted as class `j` and
`t_i = sum_j n_ij` the number of pixels of class `i`:

- pixel accuracy: `sum_i n_ii / sum_i t_i`
- mean accuracy: `(1/n_cl) sum_i n_ii / t_i`
- mean IU: `(1/n_cl) sum_i n_ii / (t_i + sum_j n_ji - n_ii)`
- frequency-weighted IU: `(sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)`

The means are taken over the classes where the ratio is defined: a class
absent from both the labels and the predictions has no IU and is left out of
mean IU, and a class absent from the labels is left out of mean accuracy.
"""

import keras
import numpy as np
from keras import ops

from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.errors import InvalidArgumentError
from keras_fcn.losses import per_pixel, valid_pixels

FIGURES = ("pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou")
# The base of the two int32 words a streaming count is kept in (see `ConfusionMatrix`).
_COUNT_WORD = 2**24


def confusion_matrix(y_true, y_pred, num_classes, *, ignore_index=IGNORE_LABEL, sample_weight=None):
    """Counts the pixels of each (true class, predicted class) pair.

    Pixels labelled `ignore_index`, or with a label outside
    `[0, num_classes)`, or with a zero `sample_weight`, are not counted.

    Args:
        y_true: integer labels of shape `(batch, H, W)`, any integer or float
            dtype.
        y_pred: logits or scores of shape `(batch, H, W, num_classes)`; the
            prediction is their argmax.
        num_classes: int, the number of classes.
        ignore_index: int or None, the label of pixels to skip.
        sample_weight: optional mask broadcastable to `(batch, H, W)`; pixels
            whose weight is 0 are not counted, the others count once.

    Returns:
        An int32 tensor of shape `(num_classes, num_classes)`, rows indexed
        by the true class and columns by the predicted class.

    Example:

    >>> labels = np.array([[0, 1], [1, 255]])
    >>> logits = np.eye(2)[[[0, 0], [1, 1]]]
    >>> keras.ops.convert_to_numpy(keras_fcn.metrics.confusion_matrix(labels, logits, 2))
    array([[1, 0],
           [1, 1]], dtype=int32)
    """
    y_pred = ops.convert_to_tensor(y_pred)
    if y_pred.shape[-1] is not None and y_pred.shape[-1] != num_classes:
        raise ValueError(
            f"`y_pred` must hold one score per class, {num_classes} classes. "
            f"Received y_pred of shape {tuple(y_pred.shape)}"
        )
    labels = ops.reshape(ops.cast(ops.convert_to_tensor(y_true), "int32"), (-1,))
    predictions = ops.reshape(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), (-1,))
    counted = valid_pixels(labels, num_classes, ignore_index)
    if sample_weight is not None:
        weight = ops.broadcast_to(per_pixel(ops.convert_to_tensor(sample_weight)), ops.shape(y_pred)[:-1])
        counted = ops.logical_and(counted, ops.not_equal(ops.reshape(weight, (-1,)), 0))
    cells = ops.where(counted, labels * num_classes + predictions, 0)
    counts = ops.segment_sum(ops.cast(counted, "int32"), cells, num_segments=num_classes * num_classes)
    return ops.reshape(counts, (num_classes, num_classes))


def segmentation_figures(confusion):
    """The paper's four figures and the per-class IU of a confusion matrix.

    Args:
        confusion: a `(num_classes, num_classes)` tensor or array of pixel
            counts, rows indexed by the true class, columns by the predicted
            class (as returned by `confusion_matrix`).

    Returns:
        A dict of float32 tensors: `"pixel_accuracy"`, `"mean_accuracy"`,
        `"mean_iou"` and `"frequency_weighted_iou"` (scalars, fractions in
        `[0, 1]`) and `"per_class_iou"` (shape `(num_classes,)`, NaN for a
        class absent from both labels and predictions). A figure with no
        class to average over (no pixel counted) is NaN.

    Example:

    >>> figures = keras_fcn.metrics.segmentation_figures([[3, 1], [0, 4]])
    >>> round(float(figures["mean_iou"]), 4)  # (3/4 + 4/5) / 2
    0.775
    """
    confusion = ops.cast(ops.convert_to_tensor(confusion), "float32")
    correct = ops.diagonal(confusion)
    true_counts = ops.sum(confusion, axis=1)
    union = true_counts + ops.sum(confusion, axis=0) - correct
    iou = _ratio(correct, union)
    accuracy = _ratio(correct, true_counts)
    total = ops.sum(true_counts)
    return {
        "pixel_accuracy": ops.sum(correct) / total,
        "mean_accuracy": _nan_mean(accuracy),
        "mean_iou": _nan_mean(iou),
        "frequency_weighted_iou": ops.sum(true_counts * ops.where(union > 0, iou, 0.0)) / total,
        "per_class_iou": iou,
    }


def validate_class_names(class_names, name="class_names"):
    """Refuses class names that are not a list, tuple or 1-D array of distinct, non-blank str (one per class).

    A per-class dict keyed by two equal names would keep one of them; a bare
    str would be read as one name a character.

    Raises:
        keras_fcn.errors.InvalidArgumentError: (a `ValueError`) naming
            `name`, the names and what is wrong with them.
    """
    sequence = isinstance(class_names, (list, tuple)) or (isinstance(class_names, np.ndarray) and class_names.ndim == 1)
    if not sequence or not all(
        isinstance(class_name, str) and class_name.strip() == class_name != "" for class_name in class_names
    ):
        raise InvalidArgumentError(
            f"`{name}` must be a list, tuple or 1-D array of class names: str, not blank, without spaces around "
            f"them, one per class. Received {name}={class_names!r}"
        )
    seen = set()
    for class_name in class_names:
        if class_name in seen:
            raise InvalidArgumentError(
                f"`{name}` must name each class differently; {class_name!r} names two. Received {name}={class_names!r}"
            )
        seen.add(class_name)


def class_keys(class_names, num_classes):
    """The keys of a per-class dict: `class_names`, checked to name every class once, or else the indices."""
    if class_names is None:
        return list(range(num_classes))
    validate_class_names(class_names)
    names = list(class_names)
    if len(names) != num_classes:
        raise ValueError(
            f"`class_names` must hold one name per class, {num_classes} names. "
            f"Received {len(names)}: class_names={class_names!r}"
        )
    return names


def _ratio(numerator, denominator):
    """`numerator / denominator`, NaN where the denominator is 0."""
    defined = denominator > 0
    return ops.where(defined, numerator / ops.where(defined, denominator, 1.0), float("nan"))


def _nan_mean(values):
    defined = ops.logical_not(ops.isnan(values))
    count = ops.sum(ops.cast(defined, "float32"))
    return ops.sum(ops.where(defined, values, 0.0)) / count


@keras.saving.register_keras_serializable(package="keras_fcn")
class ConfusionMatrix(keras.metrics.Metric):
    """Streaming confusion matrix of a segmentation model.

    Accumulates `confusion_matrix` over batches; `result()` returns the
    matrix (float32 counts, as `counts()`) and `figures()` the paper's four
    figures and per-class IU. For
    `model.compile(metrics=...)` use the subclasses that report one figure:
    `PixelAccuracy`, `MeanAccuracy`, `MeanIoU` and `FrequencyWeightedIoU`.
    Counts are exact up to 2**55 pixels per cell: each cell is kept as two
    int32 words, `high * 2**24 + low` (`low < 2**24` per replica, so that
    the replicas' sum of `low` fits in int32 for up to 128 replicas), since
    one int32 would wrap past 2**31 - 1 pixels (a Cityscapes-sized epoch
    has 2.3e9 pixels of road) and int64 needs JAX's x64 mode.

    Args:
        num_classes: int, the number of classes.
        ignore_index: int or None, the label of pixels to skip. Defaults to
            255. Labels outside `[0, num_classes)` are skipped too.
        name: str, the metric's name.
        dtype: the dtype of the figures reported by the subclasses.

    Call arguments (`update_state`):
        y_true: integer labels of shape `(batch, H, W)`.
        y_pred: logits of shape `(batch, H, W, num_classes)`.
        sample_weight: optional mask broadcastable to `(batch, H, W)`; pixels
            whose weight is 0 are not counted, the others count once.

    Example:

    >>> metric = keras_fcn.metrics.ConfusionMatrix(num_classes=2)
    >>> metric.update_state(np.array([[[0, 1, 255]]]), np.eye(2)[[[[1, 1, 0]]]])
    >>> metric.figures(class_names=["background", "cat"])["per_class_iou"]
    {'background': 0.0, 'cat': 0.5}
    """

    def __init__(self, num_classes, *, ignore_index=IGNORE_LABEL, name="confusion_matrix", dtype=None):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"`num_classes` must be a positive int. Received num_classes={num_classes!r}")
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise ValueError(f"`ignore_index` must be an int or None. Received ignore_index={ignore_index!r}")
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        shape = (num_classes, num_classes)
        self.confusion_high = self.add_variable(shape=shape, initializer="zeros", dtype="int32", name="confusion_high")
        self.confusion_low = self.add_variable(shape=shape, initializer="zeros", dtype="int32", name="confusion_low")

    def update_state(self, y_true, y_pred, sample_weight=None):
        counts = confusion_matrix(
            y_true, y_pred, self.num_classes, ignore_index=self.ignore_index, sample_weight=sample_weight
        )
        low = self.confusion_low.value + counts % _COUNT_WORD
        self.confusion_high.assign_add(counts // _COUNT_WORD + low // _COUNT_WORD)
        self.confusion_low.assign(low % _COUNT_WORD)

    def counts(self):
        """The confusion matrix so far, float32 `(num_classes, num_classes)` pixel counts (rows: true class).

        Exact up to 2**24 pixels a cell; above, within float32's relative precision (6e-8).
        """
        high = ops.cast(self.confusion_high.value, "float32")
        return high * float(_COUNT_WORD) + ops.cast(self.confusion_low.value, "float32")

    def result(self):
        return self.counts()

    def figures(self, class_names=None):
        """The four figures and the per-class IU of the counts so far, as Python floats (eager only).

        Args:
            class_names: None or a sequence of `num_classes` names to key the
                per-class IU by; defaults to the class indices.

        Returns:
            A dict: `"pixel_accuracy"`, `"mean_accuracy"`, `"mean_iou"`,
            `"frequency_weighted_iou"` (floats in `[0, 1]`) and
            `"per_class_iou"` (a dict from class name to float, NaN for a
            class absent from both labels and predictions).
        """
        names = class_keys(class_names, self.num_classes)
        figures = {key: ops.convert_to_numpy(value) for key, value in segmentation_figures(self.counts()).items()}
        per_class = dict(zip(names, figures.pop("per_class_iou").tolist()))
        return {**{key: float(value) for key, value in figures.items()}, "per_class_iou": per_class}

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "ignore_index": self.ignore_index}


class _Figure(ConfusionMatrix):
    """A confusion matrix reporting one of the paper's figures as its result."""

    def __init__(self, num_classes, *, ignore_index=IGNORE_LABEL, name=None, dtype=None):
        super().__init__(num_classes, ignore_index=ignore_index, name=name or self.figure, dtype=dtype)

    def result(self):
        return ops.cast(segmentation_figures(self.counts())[self.figure], self.dtype)


_FIGURE_DOC = """Streaming {title} of a segmentation model (paper, section 5).

{formula} Pixels labelled `ignore_index`, or with a label outside
`[0, num_classes)`, are not counted; {absent}

Args:
    num_classes: int, the number of classes.
    ignore_index: int or None, the label of pixels to skip. Defaults to 255.
    name: str, the metric's name. Defaults to `"{figure}"`.
    dtype: the dtype of the result. Defaults to float32.

Call arguments (`update_state`):
    y_true: integer labels of shape `(batch, H, W)`.
    y_pred: logits of shape `(batch, H, W, num_classes)`.
    sample_weight: optional mask broadcastable to `(batch, H, W)`; pixels
        whose weight is 0 are not counted, the others count once.

Returns (`result`):
    A scalar, a fraction in `[0, 1]`; NaN before any pixel is counted.

Example:

>>> model.compile(optimizer="sgd",
...               loss=keras_fcn.losses.SegmentationCrossEntropy(),
...               metrics=[keras_fcn.metrics.{cls}(num_classes=21)])
"""


def _document(figure, title, formula, absent):
    """Gives a one-figure metric its docstring."""

    def decorate(cls):
        cls.figure = figure
        cls.__doc__ = _FIGURE_DOC.format(title=title, formula=formula, absent=absent, figure=figure, cls=cls.__name__)
        return cls

    return decorate


@keras.saving.register_keras_serializable(package="keras_fcn")
@_document(
    "pixel_accuracy",
    "pixel accuracy",
    "The fraction of counted pixels predicted right: `sum_i n_ii / sum_i t_i`.",
    "every class counts in proportion to its pixels.",
)
class PixelAccuracy(_Figure):
    pass


@keras.saving.register_keras_serializable(package="keras_fcn")
@_document(
    "mean_accuracy",
    "mean accuracy",
    "The per-class accuracy averaged over classes: `(1/n_cl) sum_i n_ii / t_i`.",
    "classes absent from the labels are left out of the mean.",
)
class MeanAccuracy(_Figure):
    pass


@keras.saving.register_keras_serializable(package="keras_fcn")
@_document(
    "mean_iou",
    "mean intersection over union (mean IU)",
    "The per-class IU averaged over classes: `(1/n_cl) sum_i n_ii / (t_i + sum_j n_ji - n_ii)`.",
    "classes absent from both labels and predictions are left out of the mean. In Keras 3.15, "
    "`keras.metrics.MeanIoU(num_classes, ignore_class=255, sparse_y_pred=False)` gives the same value "
    "on logits (it skips those pixels and leaves those classes out too); this one shares its confusion "
    "matrix code with the paper's three other figures and `keras_fcn.evaluate`.",
)
class MeanIoU(_Figure):
    pass


@keras.saving.register_keras_serializable(package="keras_fcn")
@_document(
    "frequency_weighted_iou",
    "frequency-weighted intersection over union",
    "The per-class IU weighted by the classes' pixel counts: "
    "`(sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)`.",
    "a class absent from the labels has weight 0.",
)
class FrequencyWeightedIoU(_Figure):
    pass
