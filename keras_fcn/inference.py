"""Evaluating and applying a segmentation model on images of any size."""

from collections import defaultdict

import keras
import numpy as np

from keras_fcn.metrics import ConfusionMatrix, class_keys

MAX_UINT8_CLASSES = 256


def _output_classes(model):
    return model.output_shape[-1]


def evaluate(model, dataset, *, num_classes=None, class_names=None, ignore_index=255, verbose=1):
    """The paper's four figures and per-class IU of a model on a dataset.

    Runs the model batch by batch (`model.predict_on_batch`, so each batch
    may have its own image size) and accumulates one confusion matrix; see
    `keras_fcn.metrics` for the definitions.

    Args:
        model: a Keras model mapping `(batch, H, W, 3)` images to
            `(batch, H, W, num_classes)` logits.
        dataset: an iterable of `(images, masks)` batches, e.g. a
            `tf.data.Dataset` or a list of tuples: images of shape
            `(batch, H, W, 3)`, float or uint8, as the model takes them
            (RGB in `[0, 255]` for the `keras_fcn` builders); masks of shape
            `(batch, H, W)`, integer labels. `H` and `W` may change from
            batch to batch.
        num_classes: int, the number of classes; defaults to
            `len(class_names)` or else the model's number of outputs.
        class_names: None or a sequence of `num_classes` names, the keys of
            the per-class IU; defaults to the class indices.
        ignore_index: int or None, the label of pixels to skip. Defaults to
            255 (the VOC "void" border).
        verbose: 0 (silent) or 1 (a progress bar with the running mean IU).

    Returns:
        A dict: `"pixel_accuracy"`, `"mean_accuracy"`, `"mean_iou"`,
        `"frequency_weighted_iou"` (floats, fractions in `[0, 1]`) and
        `"per_class_iou"` (a dict from class name, or index, to float; NaN
        for a class absent from both masks and predictions).

    Example:

    >>> figures = keras_fcn.evaluate(model, val_dataset, class_names=VOC_CLASSES)
    >>> figures["mean_iou"], figures["per_class_iou"]["cat"]
    """
    if num_classes is None:
        num_classes = len(class_names) if class_names is not None else _output_classes(model)
    if _output_classes(model) not in (None, num_classes):
        raise ValueError(
            f"The model scores {_output_classes(model)} classes but `num_classes` is {num_classes}. "
            f"Received num_classes={num_classes!r}, class_names={class_names!r}"
        )
    class_keys(class_names, num_classes)
    metric = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    progbar = keras.utils.Progbar(_length(dataset), verbose=verbose, stateful_metrics=["mean_iou"], unit_name="batch")
    for step, (images, masks) in enumerate(dataset, 1):
        metric.update_state(np.asarray(masks), model.predict_on_batch(np.asarray(images, dtype="float32")))
        progbar.update(step, values=[("mean_iou", metric.figures()["mean_iou"])] if verbose else None)
    return metric.figures(class_names)


def _length(dataset):
    """The number of batches, or None when the dataset does not know it."""
    try:
        return len(dataset)
    except TypeError:
        return None


def predict(model, images, *, batch_size=1, verbose=0):
    """Segments images of different sizes, each at its own size.

    Images of the same size are batched together, up to `batch_size`, and
    run with `model.predict_on_batch`; under the TensorFlow backend its
    compiled function relaxes to dynamic sizes after a few, so new sizes do
    not retrace. The label maps come back in the order of `images`.

    Args:
        model: a Keras model mapping `(batch, H, W, 3)` images to
            `(batch, H, W, num_classes)` logits, `num_classes <= 256`.
        images: a sequence of arrays of shape `(H, W, 3)`, each its own
            size, uint8 or float, as the model takes them (RGB in `[0, 255]`
            for the `keras_fcn` builders).
        batch_size: int, the most images run at once.
        verbose: 0 (silent, default) or 1 (a progress bar over the images).

    Returns:
        A list of uint8 arrays, the label map of each image, of shape
        `(H, W)` for an `(H, W, 3)` image.

    Example:

    >>> model = keras_fcn.FCN8s(num_classes=21, backbone="mobilenetv2", backbone_weights=None)
    >>> [m.shape for m in keras_fcn.predict(model, [np.zeros((333, 500, 3)), np.zeros((500, 375, 3))])]
    [(333, 500), (500, 375)]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received batch_size={batch_size!r}")
    if _output_classes(model) is not None and _output_classes(model) > MAX_UINT8_CLASSES:
        raise ValueError(
            f"Label maps are uint8, so the model may score at most {MAX_UINT8_CLASSES} classes. "
            f"Received a model with output shape {model.output_shape}"
        )
    images = [np.asarray(image) for image in images]
    by_size = defaultdict(list)
    for index, image in enumerate(images):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"Each image must have shape (height, width, 3). Received images[{index}] of shape {image.shape}"
            )
        by_size[image.shape].append(index)
    labels = [None] * len(images)
    progbar = keras.utils.Progbar(len(images), verbose=verbose, unit_name="image")
    for size, indices in by_size.items():
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            logits = model.predict_on_batch(np.stack([images[i] for i in batch]).astype("float32"))
            if logits.shape[1:3] != size[:2]:
                raise ValueError(
                    "The model must output scores at the size of its input. "
                    f"Received input of size {size[:2]} and output of shape {logits.shape}"
                )
            for index, label_map in zip(batch, np.argmax(logits, axis=-1).astype("uint8")):
                labels[index] = label_map
            progbar.add(len(batch))
    return labels
