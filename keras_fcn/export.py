"""Exporting a trained FCN for serving: TensorFlow SavedModel, TFLite (LiteRT) and ONNX."""

import importlib.util

import keras

from keras_fcn.data.transforms import validate_size
from keras_fcn.errors import InvalidArgumentError, MissingPackageError

FORMATS = ("savedmodel", "tflite", "onnx")
# What `model.export` calls each format.
_KERAS_FORMATS = {"savedmodel": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}
ONNX_PACKAGES = ("tf2onnx", "onnx")


def export(model, path, format="savedmodel", *, input_size=None, verbose=False):
    """Writes a model in a serving format with `model.export`.

    - `"savedmodel"`: a TensorFlow SavedModel folder whose `serve` endpoint
      takes float32 `(batch, H, W, 3)` images of any size (unless
      `input_size` fixes it) and returns the logits.
    - `"tflite"`: a `.tflite` file for `tf.lite.Interpreter` / LiteRT,
      converted from the model's SavedModel; its input is
      `(1, height, width, 3)`, so `input_size` is required.
    - `"onnx"`: an `.onnx` file, converted with tf2onnx (install `tf2onnx`
      and `onnx`), of any size unless `input_size` fixes it.

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
        ImportError: for `"onnx"` when tf2onnx or onnx is not installed.

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
                "pip install tf2onnx onnx"
            )
    signature = None
    if input_size is not None:
        height, width = validate_size(input_size, "input_size")
        batch = 1 if format == "tflite" else None
        signature = [keras.InputSpec(shape=(batch, height, width, 3), dtype="float32")]
    model.export(str(path), format=_KERAS_FORMATS[format], input_signature=signature, verbose=verbose)
    return path
