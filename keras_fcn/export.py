"""Exporting a trained FCN for serving: TensorFlow SavedModel, TFLite (LiteRT) and ONNX."""

import importlib.util
import math

import keras

from keras_fcn.data.transforms import validate_size
from keras_fcn.errors import InvalidArgumentError, MissingPackageError
from keras_fcn.precision import as_float32

FORMATS = ("savedmodel", "tflite", "onnx")
# What `model.export` calls each format.
_KERAS_FORMATS = {"savedmodel": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}
ONNX_PACKAGES = ("tf2onnx", "onnx")
# Keras's ONNX export (tf2onnx) freezes, optimizes and converts the weights as graph constants, holding many
# copies of them. Peak resident memory measured with TensorFlow 2.21 and tf2onnx 1.17: the FCN-8s on MobileNetV2
# (9 MB of weights) 1.45 GB, on ResNet50 (90 MB) 5.3 GB, both from a 0.9 GB process: 0.2 GB + 46.4 bytes per byte
# of weights over the process. The reference VGG16 FCN-8s (513 MB) would need about 25 GB.
ONNX_EXPORT_BYTES_PER_WEIGHT_BYTE = 47
ONNX_EXPORT_PROCESS_BYTES = 1.2 * 2**30
ONNX_EXPORT_MEMORY_LIMIT_BYTES = 8 * 2**30
ONNX_EXPORT_MAX_WEIGHT_BYTES = (ONNX_EXPORT_MEMORY_LIMIT_BYTES - ONNX_EXPORT_PROCESS_BYTES) / ONNX_EXPORT_BYTES_PER_WEIGHT_BYTE


class ExportTooLargeError(ValueError):
    """An export refused before it starts because it would need more memory than the limit."""


def weight_bytes(model):
    """The bytes of all of a model's weights (trainable or not), as stored."""
    # The item size of each dtype, from a scalar of it (numpy has no name for some Keras dtypes, e.g. bfloat16).
    itemsize = {
        dtype: keras.ops.convert_to_numpy(keras.ops.zeros((), dtype)).itemsize
        for dtype in {weight.dtype for weight in model.weights}
    }
    return sum(math.prod(weight.shape) * itemsize[weight.dtype] for weight in model.weights)


def check_onnx_export_memory(model):
    """Refuses, before any work, an ONNX export that would need more than about 8 GB of memory.

    Args:
        model: a `keras.Model`.

    Raises:
        ExportTooLargeError: when the model's weights exceed
            `ONNX_EXPORT_MAX_WEIGHT_BYTES` (about 148 MiB, some 39 million
            float32 weights); the message gives the estimate and the
            formats that export such a model in little memory.
    """
    size = weight_bytes(model)
    if size > ONNX_EXPORT_MAX_WEIGHT_BYTES:
        needed = ONNX_EXPORT_PROCESS_BYTES + ONNX_EXPORT_BYTES_PER_WEIGHT_BYTE * size
        raise ExportTooLargeError(
            f"ONNX export of this model ({model.count_params():,} weights, {size / 2**20:.0f} MiB) would need "
            f"about {needed / 2**30:.0f} GiB of memory: Keras converts it with tf2onnx, which holds about "
            f"{ONNX_EXPORT_BYTES_PER_WEIGHT_BYTE} copies of the weights. Models of up to "
            f"{ONNX_EXPORT_MAX_WEIGHT_BYTES / 2**20:.0f} MiB of weights are exported (within "
            f"{ONNX_EXPORT_MEMORY_LIMIT_BYTES / 2**30:.0f} GiB); export this one as a SavedModel, or run it "
            'with engine="openvino".'
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
      (`pip install keras-fcn[onnx]`), of any size unless `input_size`
      fixes it, computing in float32 (a mixed-precision model's float32
      copy). Models of more than about 148 MiB of weights (the
      reference VGG16 nets among them) are refused before any work, as
      the conversion would need more than 8 GiB of memory.

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
        ExportTooLargeError: for `"onnx"`, a model whose conversion would
            need more than 8 GiB of memory; see `check_onnx_export_memory`.

    Example:

    >>> keras_fcn.export.export(model, "fcn8s.tflite", "tflite", input_size=(360, 480))
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
        check_onnx_export_memory(model)
        # Keras's ONNX export takes float32 models only; a mixed-precision model is exported as its float32 copy.
        model = as_float32(model)
    height, width = model.input_shape[1:3] if input_size is None else validate_size(input_size, "input_size")
    batch = 1 if format == "tflite" else None
    # An explicit signature: a model loaded from a file has not been called, and Keras infers none for it.
    signature = [keras.InputSpec(shape=(batch, height, width, model.input_shape[-1]), dtype="float32")]
    model.export(str(path), format=_KERAS_FORMATS[format], input_signature=signature, verbose=verbose)
    return path
