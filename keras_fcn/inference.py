"""Evaluating and applying a segmentation model on images of any size, fast."""

from collections import defaultdict
import functools
import os
import warnings

import keras
import numpy as np

from keras_fcn import zoo
from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.cpu import host_cpu
from keras_fcn.engines import (
    ENGINES,
    ExportCheckError,
    InferenceFunction,
    auto_engines,
    cached_source_function,
    exported_function,
    remember_source,
    unavailable_reason,
)
from keras_fcn.errors import InvalidArgumentError, InvalidDataError, release_pipelines_on_error
from keras_fcn.files import sha256_of
from keras_fcn.metrics import ConfusionMatrix, class_keys, validate_class_names
from keras_fcn.precision import dtype_policies, with_dtype_policy
from keras_fcn.test_time import augmented_inference, validate_augmentation
from keras_fcn.weights_files import check_model_path, load_model_file

MAX_UINT8_CLASSES = 256
# `precision` argument -> the Keras dtype policy the model computes under.
PRECISION_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
PRECISIONS = ("auto", *PRECISION_POLICIES)
# The model attribute holding its float32 inference functions, by `jit_compile`.
LIVE_FUNCTIONS_ATTRIBUTE = "_keras_fcn_inference_functions"


def resolve_precision(precision):
    """The precision `precision` stands for: `"auto"` is bfloat16 where the CPU computes it natively, else float32.

    Args:
        precision: one of `PRECISIONS`.

    Returns:
        `"float32"`, `"bfloat16"` or `"float16"`.

    Raises:
        ValueError: for any other value.
    """
    if precision not in PRECISIONS:
        raise InvalidArgumentError(f"`precision` must be one of {list(PRECISIONS)}. Received precision={precision!r}")
    if precision == "auto":
        return "bfloat16" if host_cpu().native_bfloat16 else "float32"
    return precision


def _check_engine(engine):
    if engine not in ("auto", *ENGINES):
        raise InvalidArgumentError(f"`engine` must be one of {['auto', *ENGINES]}. Received engine={engine!r}")


def engines_to_try(model, engine, precision, *, jit_compile=False):
    """The engines `engine` stands for, in the order to try them: `"auto"` is `keras_fcn.engines.auto_engines`.

    `jit_compile` is a TensorFlow option, so with it `"auto"` is
    `"tensorflow"`.

    Args:
        model: a `keras.Model`, or None to check only the host and precision.
        engine: `"auto"` or one of `keras_fcn.engines.ENGINES`.
        precision: `"float32"`, `"bfloat16"` or `"float16"` (resolved).
        jit_compile: bool, the TensorFlow option asked for.

    Returns:
        A tuple of `keras_fcn.engines.ENGINES`: the engine asked for, or
        those `"auto"` tries, fastest first, ending with `"tensorflow"`.

    Raises:
        ValueError: for an unknown engine, or `jit_compile` with another engine or backend.
    """
    _check_engine(engine)
    if jit_compile and keras.backend.backend() != "tensorflow":
        raise InvalidArgumentError(f"`jit_compile=True` needs the TensorFlow backend; this is {keras.backend.backend()!r}.")
    if jit_compile and engine not in ("auto", "tensorflow"):
        raise InvalidArgumentError(f'`jit_compile=True` is a TensorFlow option. Received engine={engine!r}; use engine="tensorflow"')
    if engine != "auto":
        return (engine,)
    return ("tensorflow",) if jit_compile else auto_engines(model, precision)


def inference_function(model, *, engine="auto", precision="float32", jit_compile=False):
    """A function that runs `model` on batches of images of any size, compiled once.

    Engines (see `keras_fcn.engines`):

    - `"tensorflow"`: under the TensorFlow backend the model runs in a
      `tf.function` whose input signature leaves batch, height and width
      open, so it is traced once for every image size (Keras's
      `predict_on_batch` traces per shape until it relaxes). Under other
      backends it is `model.predict_on_batch` (compiled per shape).
    - `"openvino"` and `"onnxruntime"`: the model exported by
      `model.export` (OpenVINO IR, ONNX), with dynamic batch, height and
      width, checked against the Keras model and cached on disk under
      `$KERAS_HOME/keras_fcn/engines` (`keras_fcn.engine_cache`): the first
      call for a model pays the export (seconds), later ones, in any
      process, load it. Install them with `pip install keras-fcn[openvino]`
      or `keras-fcn[onnx]`.
    - `"auto"` (default): the fastest of these measured on this kind of
      host that is installed and can run the model in `precision`, else
      `"tensorflow"`.

    Every function computes with the model's weights as they are at each
    call, as `model.predict` does, whatever the engine: after `fit`,
    `load_weights` or an `assign`, the same function gives the new
    weights' outputs. A float32 TensorFlow function of a model computing in
    float32 reads the weights itself, and is made once per model and kept
    on it: calling `keras_fcn.predict` again does not trace again. Every
    other function runs a copy of the model (an export, or a copy in
    another precision): it holds the model, compares a fingerprint of its
    weights at each call (`keras_fcn.weights_fingerprint.weights_fingerprint`;
    1.4 to 3 ms for the bundled camvid net on a 2-core CPU) and, when
    they changed, makes its copy again first (an export: seconds, or a
    cache hit). `run.as_of_now()` compares once and gives a function that
    compares nothing, for loops in which nothing changes the weights
    (`predict` and `evaluate` given a function use it; given a model, they
    make its function with the weights as they are, comparing nothing). A
    function made from a file or a zoo name holds no model that could
    change, and compares nothing.

    Given the path of a `.keras` file rather than a model, the exported
    engines' cache is looked up by the file's sha256 first: when the file's
    model was exported before (by any process, for this engine, precision
    and host), its export runs without the Keras model being loaded at all,
    which saves the time and memory of building it (the reference VGG16
    FCN-8s: 1.7 GB of peak memory); otherwise the model is loaded, exported
    and the export recorded for the file.

    Args:
        model: a single-input Keras model taking `(batch, H, W, C)` images,
            the path (str or path-like) of a `.keras` file of one, or the
            name of a `keras_fcn.zoo` entry (e.g. `"camvid"`).
        engine: `"auto"` (default), `"tensorflow"`, `"openvino"` or
            `"onnxruntime"`.
        precision: `"float32"` (default: every layer computes in float32,
            whatever policy the model was trained or saved with; the
            engines give the TensorFlow float32 logits to 1e-4 of their
            largest magnitude), `"auto"` (`"bfloat16"` where the CPU
            computes it natively, AMX or AVX512-BF16 as `/proc/cpuinfo`
            lists them, else `"float32"`), `"bfloat16"` (logits within
            about 1% of their range; faster only on such CPUs) or
            `"float16"` (TensorFlow only, `mixed_float16`, for GPUs).
        jit_compile: bool, TensorFlow only: compile with XLA (once per input
            shape); see `benchmarks/inference.py`.

    Returns:
        An `InferenceFunction`: a function from a `(batch, H, W, C)` array
        (any real dtype, as the model takes it) to the model's float32
        outputs as numpy arrays (a dict of them for a TensorFlow model with
        several outputs), with the `engine` and `precision` it runs in.

    Raises:
        keras_fcn.errors.InvalidDataError: for a str that is neither a
            readable `.keras` file nor a zoo entry (naming it).
        ValueError: for a bad `engine` or `precision`, `jit_compile` with
            another engine, or an engine that cannot run the model
            (not installed, precision, several outputs); the message says
            which.
        keras_fcn.engines.ExportCheckError: when the model exported for an
            explicitly chosen engine does not compute the model's logits, or
            does not run in it (`"auto"` then warns and tries the next
            engine, down to TensorFlow).

    Example:

    >>> run = keras_fcn.inference_function(model)
    >>> run(np.zeros((1, 360, 480, 3))).shape, run(np.zeros((2, 500, 375, 3))).shape
    ((1, 360, 480, 11), (2, 500, 375, 11))
    >>> keras_fcn.inference_function("fcn8s.keras").engine
    'onnxruntime'
    """
    if isinstance(model, (str, os.PathLike)):
        load, source = saved_model_source(model)
        return source_function(source, load, engine, precision, jit_compile)
    make = functools.partial(_model_function, engine=engine, precision=resolve_precision(precision), jit_compile=jit_compile)
    function = make(model)
    if function in getattr(model, LIVE_FUNCTIONS_ATTRIBUTE, {}).values():
        return function  # it reads the model's weights at each call
    return function.follow(model, make)


def _model_function(model, engine, precision, jit_compile):
    """`inference_function` of a Keras model with its weights as they are now, `precision` resolved."""
    for chosen in engines_to_try(model, engine, precision, jit_compile=jit_compile):
        if chosen == "tensorflow":
            break
        try:
            return exported_function(model, chosen, precision)
        except ExportCheckError as error:
            if engine != "auto":
                raise
            warnings.warn(f'{error} Leaving {chosen} out of engine="auto".', RuntimeWarning, stacklevel=3)
    return _tensorflow_inference_function(model, precision, jit_compile)


def saved_model_source(model):
    """`(load, source)` of a saved model: a `.keras` file's path or a zoo entry's name.

    Args:
        model: str or path-like: the path of a `.keras` file, else the name
            of a `keras_fcn.zoo` entry (e.g. `"camvid"`).

    Returns:
        `load`, a function of no argument loading the Keras model, and
        `source`, what identifies the model for the engines' cache
        (`source_function`): the file's sha256, or the entry's name and
        weights sha256 (None for an entry whose weights have none).

    Raises:
        keras_fcn.errors.InvalidDataError: when `model` is neither a
            `.keras` file nor a zoo entry, naming it (and the entries).
    """
    name = os.fspath(model)
    if os.path.exists(name):
        check_model_path(name)
        return (lambda: load_model_file(name)), {"file_sha256": sha256_of(name)}
    if name in zoo.available():
        entry = zoo.get(name)
        source = None if entry.weights_sha256 is None else {"zoo": name, "weights_sha256": entry.weights_sha256}
        return (lambda: zoo.load_model(name)), source
    raise InvalidDataError(
        f"`model`: {name} is neither a file nor a zoo entry (one of {', '.join(zoo.available())}). Received model={model!r}"
    )


def source_function(source, load, engine="auto", precision="float32", jit_compile=False):
    """`inference_function` of the model a saved source holds, from the engines' cache when it can.

    Args:
        source: a JSON-serializable identity of the saved model, which
            changes whenever what it holds changes, e.g.
            `{"file_sha256": ...}` or a zoo entry's name and weights sha256;
            or None (the model is loaded, nothing looked up or recorded).
        load: a function of no argument loading the Keras model.
        engine, precision, jit_compile: as for `inference_function`.

    Returns:
        An `InferenceFunction`. When an export of the source's model is
        recorded for `engine` (for `"auto"`: the engine it took then, e.g.
        OpenVINO for a model that ONNX cannot hold), it is loaded and `load`
        is not called; otherwise the model is loaded, passed to
        `inference_function` and its export recorded for `source` and
        `engine`.
    """
    precision = resolve_precision(precision)
    _check_engine(engine)
    exported = engine == "auto" or (engine != "tensorflow" and unavailable_reason(engine, None, precision) is None)
    if source is not None and exported and not jit_compile:
        cached = cached_source_function(source, engine, precision)
        if cached is not None:
            return cached
    # Only the function holds the model: it cannot change, so the function does not follow its weights.
    function = _model_function(load(), engine, precision, jit_compile)
    if source is not None and function.cache_key is not None:
        remember_source(source, engine, function)
    return function


def _tensorflow_inference_function(model, precision, jit_compile):
    """The TensorFlow engine's `InferenceFunction` of `model`: kept on the model when it computes in `precision`."""
    if precision == "bfloat16" and not host_cpu().native_bfloat16 and not _has_gpu():
        warnings.warn(
            "This CPU has no native bfloat16 (AMX or AVX512-BF16): TensorFlow emulates it, slower than float32. "
            'precision="auto" computes float32 here.',
            RuntimeWarning,
            stacklevel=4,
        )
    policy = PRECISION_POLICIES[precision]
    same_precision = dtype_policies(model) == {policy}
    if same_precision and jit_compile in getattr(model, LIVE_FUNCTIONS_ATTRIBUTE, {}):
        return getattr(model, LIVE_FUNCTIONS_ATTRIBUTE)[jit_compile]
    compute = model if same_precision else with_dtype_policy(model, policy)
    if keras.backend.backend() == "tensorflow":
        run = _tensorflow_function(compute, jit_compile)
    else:
        run = _backend_function(compute)
    run = InferenceFunction(run, "tensorflow", precision, model.input_shape, model.output_shape)
    if same_precision:
        # Kept on the model, as Keras keeps `predict_function`; plain attribute setting would track it as state.
        object.__setattr__(model, LIVE_FUNCTIONS_ATTRIBUTE, {**getattr(model, LIVE_FUNCTIONS_ATTRIBUTE, {}), jit_compile: run})
    return run


def _has_gpu():
    """Whether TensorFlow sees a GPU (which computes bfloat16 natively)."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _backend_function(model):
    """`inference_function` under backends other than TensorFlow: `predict_on_batch`, outputs as float32 numpy."""

    def run(images):
        outputs = model.predict_on_batch(np.asarray(images, dtype="float32"))
        return keras.tree.map_structure(lambda x: np.asarray(x, dtype="float32"), outputs)

    return run


def _tensorflow_function(model, jit_compile):
    """`inference_function` under the TensorFlow backend: one `tf.function` for every batch and image size."""
    import tensorflow as tf

    @tf.function(
        input_signature=[tf.TensorSpec((None, None, None, model.input_shape[-1]), tf.float32)],
        jit_compile=jit_compile,
    )
    def logits(images):
        return keras.tree.map_structure(lambda x: tf.cast(x, tf.float32), model(images, training=False))

    def run(images):
        outputs = logits(tf.convert_to_tensor(np.asarray(images, dtype="float32")))
        return keras.tree.map_structure(lambda x: x.numpy(), outputs)

    return run


def _runner(model, engine, precision, flip, scales):
    """The `InferenceFunction` that `predict` and `evaluate` run (test-time augmented by `flip`, `scales`), of the weights now."""
    scales = validate_augmentation(scales, flip)
    if isinstance(model, InferenceFunction):
        if (engine, precision) != ("auto", "float32"):
            raise InvalidArgumentError(
                f"`model` is an InferenceFunction, which runs on engine {model.engine!r} in {model.precision!r}: "
                "pass `engine` and `precision` to `inference_function` instead. "
                f"Received engine={engine!r}, precision={precision!r}"
            )
        run = model.as_of_now()
    elif isinstance(model, (str, os.PathLike)):
        run = inference_function(model, engine=engine, precision=precision)
    else:  # the weights as they are now: nothing to follow, so no fingerprint
        run = _model_function(model, engine=engine, precision=resolve_precision(precision), jit_compile=False)
    if not flip and scales == (1.0,):
        return run
    augmented = augmented_inference(run, scales=scales, flip=flip)
    return InferenceFunction(augmented, run.engine, run.precision, run.input_shape, run.output_shape)


def _output_classes(run):
    return run.output_shape[-1]


@release_pipelines_on_error
def evaluate(
    model,
    dataset,
    *,
    num_classes=None,
    class_names=None,
    ignore_index=IGNORE_LABEL,
    engine="auto",
    precision="float32",
    flip=False,
    scales=(1.0,),
    verbose=1,
):
    """The paper's four figures and per-class IU of a model on a dataset.

    Every image is scored at its own size, as the reference code does
    (`score.py` of fcn.berkeleyvision.org runs one image at a time), so the
    figures do not depend on how the images are batched. A batch of images
    of different sizes is padded (e.g. by `keras_fcn.data.batch` or
    `tf.data.Dataset.padded_batch`), and padding seen by the model changes
    its predictions near the edges; so each image is first cropped to its
    own extent, found from the batch itself: padding is the bottom rows and
    right columns whose labels are all `ignore_index` and whose pixels all
    equal the bottom-right pixel (the padding value). Images of the same
    extent run together. An unpadded image whose own last rows (or
    columns) are both unlabelled and of one colour is indistinguishable
    from padding and is scored without them (their pixels carry no labels;
    only the predictions next to them may change); without an
    `ignore_index` nothing is taken for padding.

    Args:
        model: a Keras model mapping `(batch, H, W, 3)` images to
            `(batch, H, W, num_classes)` logits, the path of a `.keras`
            file of one, or an `InferenceFunction` of one (then `engine`
            and `precision` are its own: leave them at their defaults).
        dataset: an iterable of `(images, masks)` batches, e.g. a
            `tf.data.Dataset` or a list of tuples: images of shape
            `(batch, H, W, 3)`, float or uint8, as the model takes them
            (RGB in `[0, 255]` for the `keras_fcn` builders); masks of shape
            `(batch, H, W)`, integer labels. `H` and `W` may change from
            batch to batch, and images may be padded as above.
        num_classes: int, the number of classes; defaults to
            `len(class_names)` or else the model's number of outputs.
        class_names: None or a list, tuple or 1-D array of `num_classes`
            distinct str, the keys of the per-class IU; defaults to the
            class indices.
        ignore_index: int or None, the label of pixels to skip (and of
            padding). Defaults to 255 (the VOC "void" border).
        engine: `"auto"` (default), `"tensorflow"`, `"openvino"` or
            `"onnxruntime"`; see `inference_function`.
        precision: `"float32"` (default, so that the figures are the
            model's on any host), `"auto"`, `"bfloat16"` or `"float16"`; see
            `inference_function`.
        flip: bool, test-time augmentation: True scores each image by the
            mean of its class probabilities and those of its left-right
            mirror (mirrored back); see `keras_fcn.test_time`.
        scales: sequence of floats from 0.1 to 4, test-time augmentation:
            each image is also scored resized by each factor, and its class
            probabilities (resized back) averaged, e.g. `(1.0, 1.25, 1.5)`;
            `(1.0,)` (default) scores the images as they are. The figures
            are reported as the model's own only without `flip` and
            `scales`.
        verbose: 0 (silent) or 1 (a progress bar with the running mean IU).

    Returns:
        A dict: `"pixel_accuracy"`, `"mean_accuracy"`, `"mean_iou"`,
        `"frequency_weighted_iou"` (floats, fractions in `[0, 1]`),
        `"per_class_iou"` (a dict from class name, or index, to float; NaN
        for a class absent from both masks and predictions) and
        `"confusion_matrix"` (the pixel counts as nested lists of ints, rows
        indexed by the true class, columns by the predicted class).

    Raises:
        keras_fcn.errors.InvalidDataError: for masks holding a label that is
            neither a class nor `ignore_index` (the reference `score.py`
            would drop such pixels silently), naming the batch.
        ValueError: for a bad argument, or a model and `num_classes` (or
            the number of `class_names`) that disagree.

    Example:

    >>> figures = keras_fcn.evaluate(model, val_dataset, class_names=VOC_CLASSES)
    >>> figures["mean_iou"], figures["per_class_iou"]["cat"]
    """
    run = _runner(model, engine, precision, flip, scales)
    if class_names is not None:
        validate_class_names(class_names)
    model_classes = _output_classes(run)
    if num_classes is not None and model_classes not in (None, num_classes):
        raise InvalidArgumentError(
            f"The model scores {model_classes} classes but `num_classes` is {num_classes}. "
            f"Received num_classes={num_classes!r}, class_names={class_names!r}"
        )
    if num_classes is None and class_names is not None and model_classes not in (None, len(class_names)):
        raise InvalidArgumentError(
            f"The model scores {model_classes} classes but `class_names` names {len(class_names)}. "
            f"Received class_names={class_names!r}"
        )
    if num_classes is None:
        num_classes = len(class_names) if class_names is not None else model_classes
    class_keys(class_names, num_classes)
    metric = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    progbar = keras.utils.Progbar(_length(dataset), verbose=verbose, stateful_metrics=["mean_iou"], unit_name="batch")
    step = 0
    for step, (images, masks) in enumerate(dataset, 1):
        images, masks = np.asarray(images), np.asarray(masks)
        _check_batch(images, masks, step)
        _check_labels(masks, num_classes, ignore_index, step)
        by_extent = defaultdict(list)
        for index, extent in enumerate(unpadded_sizes(images, masks, ignore_index)):
            if min(extent) > 0:
                by_extent[extent].append(index)
        for (height, width), indices in by_extent.items():
            metric.update_state(masks[indices, :height, :width], run(images[indices, :height, :width]))
        progbar.update(step, values=[("mean_iou", metric.figures()["mean_iou"])] if verbose else None)
    if step != progbar.target:  # the bar's last update ended its line only if it reached a known length
        progbar.update(step, finalize=True)
    return {**metric.figures(class_names), "confusion_matrix": keras.ops.convert_to_numpy(metric.result()).tolist()}


def _check_batch(images, masks, step):
    """Refuses a dataset element that is not a batch of images `(batch, H, W, C)` and their masks `(batch, H, W)`."""
    if images.ndim != 4 or masks.shape != images.shape[:3]:
        raise InvalidArgumentError(
            f"`dataset` must yield batches: images of shape (batch, height, width, channels) and masks of shape "
            f"(batch, height, width), the same batch, height and width. Batch {step} has images of shape "
            f"{images.shape} and masks of shape {masks.shape} (batch pairs with `keras_fcn.data.batch_by_size`)."
        )


def _check_labels(masks, num_classes, ignore_index, step):
    """Refuses masks holding a label that is neither a class (`0` to `num_classes - 1`) nor `ignore_index`."""
    labels = np.unique(masks)
    unknown = labels[((labels < 0) | (labels >= num_classes)) & (labels != ignore_index)]
    if unknown.size:
        raise InvalidDataError(
            f"The masks of batch {step} hold labels {unknown.tolist()[:10]} that are neither classes (0 to "
            f"{num_classes - 1}) nor the ignore label ({ignore_index}): a mask of another dataset, or another "
            "label encoding (see the data loaders' `label_map`)."
        )


def unpadded_sizes(images, masks, ignore_index=IGNORE_LABEL):
    """The size of each image of a padded batch: its extent without the padding at the bottom and right.

    Padding is the bottom rows and right columns in which every label is
    `ignore_index` and every pixel equals the image's bottom-right pixel
    (the padding value, e.g. the mean of `keras_fcn.data.batch` or the zero
    of `tf.data.Dataset.padded_batch`).

    Args:
        images: array `(batch, H, W, channels)`.
        masks: integer array `(batch, H, W)`.
        ignore_index: int or None, the label of padding; None: no padding.

    Returns:
        A list of `(height, width)`, one per image; `(0, 0)` for an image
        that is all padding.
    """
    batch, height, width = masks.shape
    if ignore_index is None:
        return [(height, width)] * batch
    sizes = []
    for image, mask in zip(images, masks):
        padding = (mask == ignore_index) & np.all(image == image[-1, -1], axis=-1)
        rows = _trailing_true(np.all(padding, axis=1))
        columns = _trailing_true(np.all(padding, axis=0))
        sizes.append((0, 0) if rows == height else (height - rows, width - columns))
    return sizes


def _trailing_true(flags):
    """The number of True values at the end of a 1-D boolean array."""
    return len(flags) - (np.flatnonzero(~flags)[-1] + 1) if not flags.all() else len(flags)


def _length(dataset):
    """The number of batches, or None when the dataset does not know it."""
    try:
        return len(dataset)
    except TypeError:
        return None


@release_pipelines_on_error
def predict(
    model, images, *, batch_size=1, engine="auto", precision="float32", flip=False, scales=(1.0,), verbose=0
):
    """Segments images of different sizes, each at its own size.

    Images of the same size are batched together, up to `batch_size`, and
    run through `inference_function` (under the TensorFlow backend, one
    compiled function for every size). The label maps come back in the
    order of `images`.

    Args:
        model: a Keras model mapping `(batch, H, W, 3)` images to
            `(batch, H, W, num_classes)` logits, `num_classes <= 256`; the
            path of a `.keras` file of one; or an `InferenceFunction` of one
            (then `engine` and `precision` are its own: leave them at their
            defaults). With a path or an `InferenceFunction` of an exported
            engine, no Keras model need be in memory (see
            `inference_function`).
        images: a sequence of arrays of shape `(H, W, 3)`, each its own
            size, uint8 or float, as the model takes them (RGB in `[0, 255]`
            for the `keras_fcn` builders).
        batch_size: int, the most images run at once.
        engine: `"auto"` (default), `"tensorflow"`, `"openvino"` or
            `"onnxruntime"`; see `inference_function`.
        precision: `"float32"` (default, exact), `"auto"`, `"bfloat16"`
            (faster on CPUs with AMX; a few pixels on class boundaries may
            change) or `"float16"`; see `inference_function`.
        flip: bool, test-time augmentation: True labels each pixel by the
            mean of the class probabilities of the image and of its
            left-right mirror; see `keras_fcn.test_time`.
        scales: sequence of floats from 0.1 to 4, test-time augmentation:
            also average the class probabilities of the image resized by each
            factor (resized back), e.g. `(1.0, 1.25)`; default `(1.0,)`.
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
        raise InvalidArgumentError(f"`batch_size` must be a positive int. Received batch_size={batch_size!r}")
    run = _runner(model, engine, precision, flip, scales)
    if _output_classes(run) is not None and _output_classes(run) > MAX_UINT8_CLASSES:
        raise InvalidArgumentError(
            f"Label maps are uint8, so the model may score at most {MAX_UINT8_CLASSES} classes. "
            f"Received a model with output shape {run.output_shape}"
        )
    images = [np.asarray(image) for image in images]
    by_size = defaultdict(list)
    for index, image in enumerate(images):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise InvalidArgumentError(
                f"Each image must have shape (height, width, 3). Received images[{index}] of shape {image.shape}"
            )
        by_size[image.shape].append(index)
    labels = [None] * len(images)
    progbar = keras.utils.Progbar(len(images), verbose=verbose, unit_name="image")
    for size, indices in by_size.items():
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            logits = run(np.stack([images[i] for i in batch]))
            if logits.shape[1:3] != size[:2]:
                raise InvalidArgumentError(
                    "The model must output scores at the size of its input. "
                    f"Received input of size {size[:2]} and output of shape {logits.shape}"
                )
            for index, label_map in zip(batch, np.argmax(logits, axis=-1).astype("uint8")):
                labels[index] = label_map
            progbar.add(len(batch))
    return labels
