"""Exporting a trained FCN for serving: TensorFlow SavedModel, TFLite (LiteRT) and ONNX."""

import contextlib
import importlib.util
import logging
import os
import tempfile
import warnings

import keras

from keras_fcn.data.transforms import validate_size
from keras_fcn.errors import InvalidArgumentError, MissingPackageError, UnsupportedModelError
from keras_fcn.exported_graphs import group_onnx_transposed_convolutions, inputs_used
from keras_fcn.precision import as_float32

FORMATS = ("savedmodel", "tflite", "onnx")
# What `model.export` calls each format.
_KERAS_FORMATS = {"savedmodel": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}
ONNX_PACKAGES = ("tf2onnx", "onnx")
# The largest ONNX file protobuf can write; larger models keep their weights in a separate file.
ONNX_FILE_LIMIT_BYTES = 2**31 - 2**24
# The names of the converted graph's output and of its open dimensions (tf2onnx writes "Identity:0", "unk__12").
OUTPUT_NAME = "logits"
INPUT_DIMENSIONS = ("batch", "height", "width", None)
OUTPUT_DIMENSIONS = ("batch", "logits_height", "logits_width", None)
# The name of each weight input of the converted graph: its index in trainable + non-trainable variables.
WEIGHT_INPUT = "weight_{}"


class ConversionError(UnsupportedModelError):
    """A model the ONNX converter cannot convert into a valid, self-contained graph (the message says what is left)."""


class _WeightsAsInputs(keras.Model):
    """A float32 model as a function of `[images, *weights]`: what it computes, with none of its weights held.

    Its weights are `model.trainable_variables + model.non_trainable_variables`,
    given in that order after the images, and run with `model.stateless_call`.
    """

    def __init__(self, model):
        super().__init__(name=f"{model.name}_weights_as_inputs")
        self.wrapped = model
        self.built = True  # nothing of its own to build; `model.export` exports built models only

    def call(self, inputs):
        images, *weights = inputs
        trainable = len(self.wrapped.trainable_variables)
        outputs, _ = self.wrapped.stateless_call(weights[:trainable], weights[trainable:], images, training=False)
        return outputs


def write_onnx(model, path, input_size=None, *, external_data=None):
    """Converts a float32 Keras model to an ONNX file, its weights stored once as initializers.

    Keras's `model.export(format="onnx")` converts the weights as graph
    constants with tf2onnx, which holds about 47 copies of them (measured: the
    reference VGG16 FCN-8s's 513 MiB would need about 25 GB). Here the model
    is converted (by that same `model.export`) as a function of its images and
    of its weights (`_WeightsAsInputs`), so that the converted graph holds no
    weight; each weight input the graph uses then becomes an initializer of
    that name with the weight's value (transposes of kernels stay ops on
    them, which ONNX Runtime folds when it loads the file). Bilinear
    upsamplings become one group per class
    (`keras_fcn.exported_graphs`).
    Peak memory over
    the process: about 3.5 bytes per byte of weights (the VGG16 net: 1.8 GB,
    3 s). TensorFlow backend only.

    Args:
        model: a float32 `keras.Model` taking `(batch, H, W, C)` images.
        path: str, the `.onnx` file to write.
        input_size: `(height, width)` of the input (None for any), or None
            for the model's own.
        external_data: None (weights in the file unless they pass protobuf's
            2 GiB limit), or bool: True keeps them in `<path>.data` beside it
            (ONNX external data, which ONNX Runtime maps into memory).

    Returns:
        `path`.
    """
    import onnx

    weights = model.trainable_variables + model.non_trainable_variables
    height, width = model.input_shape[1:3] if input_size is None else input_size
    signature = [
        [keras.InputSpec(shape=(None, height, width, model.input_shape[-1]), dtype="float32", name="images")]
        + [keras.InputSpec(shape=w.shape, dtype=w.dtype, name=WEIGHT_INPUT.format(i)) for i, w in enumerate(weights)]
    ]
    with tempfile.TemporaryDirectory() as folder:
        converted = os.path.join(folder, "graph.onnx")
        with warnings.catch_warnings(), _held_tensors_as_constants(model), _quiet_logger("tf2onnx"):
            # tf2onnx probes numpy for names that numpy 2 deprecated; nothing to act on.
            warnings.simplefilter("ignore", FutureWarning)
            _WeightsAsInputs(model).export(converted, format="onnx", input_signature=signature, verbose=False)
        proto = onnx.load(converted)
    used = inputs_used(proto.graph)
    by_name = {WEIGHT_INPUT.format(i): weight for i, weight in enumerate(weights)}
    for graph_input in [graph_input for graph_input in proto.graph.input if graph_input.name in by_name]:
        proto.graph.input.remove(graph_input)
        if graph_input.name in used:  # unused: e.g. a dropout layer's seed state
            value = keras.ops.convert_to_numpy(by_name[graph_input.name])
            proto.graph.initializer.append(onnx.numpy_helper.from_array(value, graph_input.name))
    unconverted = sorted({node.op_type for node in proto.graph.node if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)})
    if unconverted:
        raise ConversionError(
            f"The ONNX converter (tf2onnx) left TensorFlow operations of {model.name!r} that ONNX does not have: "
            f"{unconverted} (Erfc: Keras's exact gelu). Run this model with TensorFlow or OpenVINO."
        )
    group_onnx_transposed_convolutions(proto.graph)
    _name_output_and_dimensions(proto.graph, model.output_shape)
    left_over = [graph_input.name for graph_input in proto.graph.input if graph_input.name != "images"]
    if left_over:
        raise ConversionError(
            f"The ONNX converter left values of {model.name!r} as inputs of the graph besides the images: {left_over}. "
            "Run this model with TensorFlow or OpenVINO."
        )
    if external_data is None:
        external_data = proto.ByteSize() > ONNX_FILE_LIMIT_BYTES
    data = f"{os.path.basename(path)}.data"
    onnx.save_model(proto, path, save_as_external_data=external_data, location=data, size_threshold=1024)
    return path


def _name_output_and_dimensions(graph, output_shape):
    """Names the graph's output `OUTPUT_NAME`, its open dimensions as Keras knows them, its fixed ones by value.

    Args:
        graph: the converted `onnx.GraphProto` (one input, one output).
        output_shape: the Keras model's output shape, e.g.
            `(None, None, None, 21)`.
    """
    [output] = graph.output
    for node in graph.node:
        node.input[:] = [OUTPUT_NAME if name == output.name else name for name in node.input]
        node.output[:] = [OUTPUT_NAME if name == output.name else name for name in node.output]
    output.name = OUTPUT_NAME
    for tensor, names, shape in ((graph.input[0], INPUT_DIMENSIONS, None), (output, OUTPUT_DIMENSIONS, output_shape)):
        for axis, dimension in enumerate(tensor.type.tensor_type.shape.dim):
            if shape is not None and shape[axis] is not None:
                dimension.dim_value = shape[axis]
            elif not dimension.HasField("dim_value") and names[axis] is not None:
                dimension.dim_param = names[axis]


@contextlib.contextmanager
def _held_tensors_as_constants(model):
    """Makes the tensors that layers hold besides their weights numpy arrays while the model is converted.

    A layer may keep a tensor computed from its weights, e.g. `Normalization`
    its mean and variance (EfficientNet's input normalization): a traced
    function captures such a tensor, and tf2onnx leaves each capture as a
    graph input of no value. A numpy array is traced as a constant. The
    layers hold their own tensors again afterwards.
    """
    held = []
    for layer in _layers_within(model):
        for name, value in list(vars(layer).items()):
            if keras.ops.is_tensor(value) and not isinstance(value, keras.Variable):  # weights are inputs
                held.append((layer, name, value))
                object.__setattr__(layer, name, keras.ops.convert_to_numpy(value))  # not tracked as a new state
    try:
        yield
    finally:
        for layer, name, value in held:
            object.__setattr__(layer, name, value)


@contextlib.contextmanager
def _quiet_logger(name):
    """Silences logger `name` below CRITICAL: tf2onnx logs each op it cannot convert, which `write_onnx` reports."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _layers_within(layer):
    """`layer` and, for a model, every layer within it, nested models' included."""
    yield layer
    for inner in getattr(layer, "layers", ()):
        yield from _layers_within(inner)


def _is_savedmodel_or_empty_folder(path):
    """Whether `path` is a folder that is empty or holds a SavedModel (which an export replaces)."""
    return os.path.isdir(path) and (not os.listdir(path) or os.path.isfile(os.path.join(path, "saved_model.pb")))


def check_export(path, format="savedmodel", input_size=None):
    """The checks `export` makes of its arguments before any work, for a caller to make before loading a model.

    Args:
        path, format, input_size: as for `export`.

    Raises:
        ValueError: for a bad `format`, `path` or `input_size`, as `export`.
        ImportError: for `"onnx"` when tf2onnx or onnx is not installed.
    """
    if format not in FORMATS:
        raise InvalidArgumentError(f"`format` must be one of {FORMATS}. Received format={format!r}")
    if format == "tflite" and input_size is None:
        raise InvalidArgumentError("TFLite export needs a fixed `input_size` (height, width). Received input_size=None")
    if format == "tflite" and not str(path).endswith(".tflite"):
        raise InvalidArgumentError(f"A TFLite file's name must end in '.tflite'. Received path={path!r}")
    if format == "onnx":
        missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
        if missing:
            raise MissingPackageError(
                f"ONNX export needs the packages {', '.join(missing)}, which are not installed: "
                "pip install keras-fcn[onnx]"
            )
    if format == "savedmodel" and os.path.exists(path) and not _is_savedmodel_or_empty_folder(path):
        raise InvalidArgumentError(
            f"A SavedModel is written as a folder of its own: {path!r} is a file or a folder holding other files. "
            f"Give a new or empty folder (or a .onnx / .tflite file name). Received path={path!r}"
        )


def export(model, path, format="savedmodel", *, input_size=None, verbose=False):
    """Writes a model in a serving format with `model.export`.

    - `"savedmodel"`: a TensorFlow SavedModel folder whose `serve` endpoint
      takes float32 `(batch, H, W, 3)` images of any size (unless
      `input_size` fixes it) and returns the logits.
    - `"tflite"`: a `.tflite` file for the LiteRT interpreter
      (`ai_edge_litert`), converted from the model's SavedModel; its input
      is `(1, height, width, 3)`, so `input_size` is required.
    - `"onnx"`: an `.onnx` file for ONNX Runtime, converted with tf2onnx
      (`pip install keras-fcn[onnx]`) by `write_onnx`, of any size unless
      `input_size` fixes it, computing in float32 (a mixed-precision model's
      float32 copy). The weights are in the file, or, past protobuf's 2 GiB
      limit, in `<path>.data` beside it.

    The exported model takes what the Keras model takes: RGB in `[0, 255]`,
    normalized inside, and returns float32 logits `(batch, H, W, classes)`.

    Args:
        model: a `keras.Model`.
        path: str, the folder (SavedModel) or file (`.tflite`, `.onnx`).
        format: one of `"savedmodel"`, `"tflite"`, `"onnx"`.
        input_size: `(height, width)` to fix the input size, or None.
        verbose: bool, whether Keras prints what it wrote.

    Returns:
        `path`.

    Raises:
        ValueError: for a bad `format`, `path` or `input_size`.
        ImportError: for `"onnx"` when tf2onnx or onnx is not installed.
        keras_fcn.export.ConversionError: for `"onnx"`, when the converter
            leaves operations ONNX does not have (e.g. the exact gelu's
            Erfc), or values of the model as graph inputs besides the images;
            nothing is written then.

    Example:

    >>> keras_fcn.export.export(model, "fcn8s.tflite", "tflite", input_size=(360, 480))
    """
    check_export(path, format, input_size)
    height, width = model.input_shape[1:3] if input_size is None else validate_size(input_size, "input_size")
    if format == "onnx":  # a mixed-precision model is exported as its float32 copy
        return write_onnx(as_float32(model), str(path), (height, width))
    batch = 1 if format == "tflite" else None
    # An explicit signature: a model loaded from a file has not been called, and Keras infers none for it.
    signature = [keras.InputSpec(shape=(batch, height, width, model.input_shape[-1]), dtype="float32")]
    model.export(str(path), format=_KERAS_FORMATS[format], input_signature=signature, verbose=verbose)
    return path
