"""Inference engines: TensorFlow itself, or OpenVINO or ONNX Runtime running an export of the model.

`"openvino"` runs `model.export(format="openvino")` (OpenVINO IR);
`"onnxruntime"` runs the model's ONNX export (`keras_fcn.export.write_onnx`)
as ONNX Runtime optimizes it for this host. In both, the bilinear
upsamplings compute one group per class (`keras_fcn.exported_graphs`).
Both are exported once with
dynamic batch, height and width, checked against the Keras model, and
cached on disk (`keras_fcn.engine_cache`); a saved model's source (a
`.keras` file's sha256, a zoo entry) is recorded with its export, so that
its export runs without the Keras model being loaded. `"auto"` takes the
first engine of `FASTEST_FIRST[host kind][weights size]` that is installed and can run
the model in the requested precision, and otherwise TensorFlow; an engine
whose export does not compute the model's logits (or does not run) is
left out with a warning, and the next one taken.

The order comes from `benchmarks/inference.py` (median seconds per image,
batch 1, float32, each engine on the same Keras model, in one run), for
models with `"small"` weights (up to `LARGE_WEIGHTS_BYTES`) and `"large"`:

- `x86_avx2` (2-core AMD EPYC, no AVX-512, no AMX; README "Speed"),
  each engine alone in its own process: the bundled camvid FCN-8s
  (MobileNet 0.25, 0.9 MiB of weights) at 360x480: OpenVINO 0.0164 s
  and 0.0148 s (two runs), ONNX Runtime 0.0253 s and 0.0205 s,
  TensorFlow 0.043 s; FCN-8s on ResNet50 (95 MiB), each engine alone in
  a separate script before the upsamplings were grouped (not this
  benchmark): OpenVINO 0.242 s, ONNX Runtime 0.274 s. So OpenVINO first
  for small weights.
  The reference VGG16 FCN-8s (513 MiB) at 500x500: ONNX Runtime 2.41 s,
  OpenVINO 2.80 s, TensorFlow 3.21 s, with peak memory (set up from the
  cache, one image) 649 MiB for ONNX Runtime, whose weights are mapped
  from its cached file, and 1426 MiB for OpenVINO, which holds its file's
  weights and its own repacked copy (PyTorch: 1010 MiB). So ONNX Runtime
  first for large weights (as fast or faster, half the memory).
- `x86_amx` and `x86_avx512` (2-core AVX-512 + AMX hosts, the VGG16
  net, the project's performance notes): ONNX Runtime float32 1.37 s,
  OpenVINO float32 1.63 s (both on the PyTorch export), TensorFlow
  float32 2.42 s; OpenVINO bfloat16 0.58 s, the fastest for
  `precision="bfloat16"` (ONNX Runtime has no bfloat16). Not remeasured
  with this package's exports, nor on small nets: ONNX Runtime first.
- other hosts (e.g. ARM): not measured, so TensorFlow.
"""

import importlib.metadata
import importlib.util
import json
import os
import tempfile

import keras
import numpy as np

from keras_fcn import engine_cache
from keras_fcn.cpu import host_cpu
from keras_fcn.export import ONNX_PACKAGES, ConversionError, write_onnx
from keras_fcn.exported_graphs import group_openvino_transposed_convolutions
from keras_fcn.errors import InvalidArgumentError, UnsupportedModelError
from keras_fcn.files import write_json_atomically
from keras_fcn.precision import as_float32
from keras_fcn.weights_fingerprint import weights_fingerprint

ENGINES = ("tensorflow", "openvino", "onnxruntime")
# The packages an engine needs (to export the model and to run it), and the extra that installs them.
# The packages each engine needs (Keras's OpenVINO export imports its OpenVINO backend, which imports scipy).
REQUIRED_PACKAGES = {
    "tensorflow": (),
    "openvino": ("openvino", "scipy"),
    "onnxruntime": ("onnxruntime", *ONNX_PACKAGES),
}
EXTRAS = {"openvino": "keras-fcn[openvino]", "onnxruntime": "keras-fcn[onnx]"}
# The precisions each engine computes in. ONNX Runtime's CPU kernels are float32.
ENGINE_PRECISIONS = {
    "tensorflow": ("float32", "bfloat16", "float16"),
    "openvino": ("float32", "bfloat16"),
    "onnxruntime": ("float32",),
}
# Float32 weights above this size are "large": OpenVINO's extra copy of them would outweigh its speed (docstring).
LARGE_WEIGHTS_BYTES = 100 * 2**20
_ONNXRUNTIME_FIRST = ("onnxruntime", "openvino", "tensorflow")
# Measured order per `keras_fcn.cpu.CPU.kind` and size of the weights, fastest first; see the module docstring.
FASTEST_FIRST = {
    "x86_amx": {"small": _ONNXRUNTIME_FIRST, "large": _ONNXRUNTIME_FIRST},
    "x86_avx512": {"small": _ONNXRUNTIME_FIRST, "large": _ONNXRUNTIME_FIRST},
    "x86_avx2": {"small": ("openvino", "onnxruntime", "tensorflow"), "large": _ONNXRUNTIME_FIRST},
    "other": {"small": ("tensorflow",), "large": ("tensorflow",)},
}
# OpenVINO's name for each precision (its CPU plugin's `INFERENCE_PRECISION_HINT`; without it, AMX hosts run bf16).
OPENVINO_PRECISIONS = {"float32": "f32", "bfloat16": "bf16"}
# The exported model must give the Keras model's float32 logits to this fraction of their largest magnitude.
EXPORT_CHECK_TOLERANCE = 1e-4
# The image size the export is checked on, when the model takes any: odd, off every stride grid.
EXPORT_CHECK_SIZE = (67, 93)
# A version increase invalidates every cache entry: bump it when what is cached changes.
CACHE_FORMAT = 4
FILES = {"openvino": "model.xml", "onnxruntime": "model.onnx"}
# The file of a source's record: the key of its model's export, and the model's output shape.
SOURCE_RECORD = "source.json"
# The file of an export's refusal (`ExportCheckError`), cached so that the export is not tried again.
REFUSAL_RECORD = "refused.json"
# The model attribute holding its loaded exported functions, by (engine, precision).
LOADED_ATTRIBUTE = "_keras_fcn_exported_functions"


class InferenceFunction:
    """A model made ready to run on batches of images of any size; what `inference_function` returns.

    Call it on a `(batch, H, W, C)` array (any real dtype, as the model takes
    it) to get the model's float32 outputs as numpy arrays. It holds what
    runs the model: a `tf.function` of the Keras model, or a copy of it (an
    exported engine's, or one in another precision). A function following a
    model (`follow`) holds it, compares its weights at each call
    (`keras_fcn.weights_fingerprint.weights_fingerprint`) and, when they
    changed since its copy was made, makes it again first: it computes with
    the weights as they are, whatever the engine. `as_of_now()` gives the
    copy alone, without the model. The constructor's `follows`, None or
    `(model, remake)`, makes a function following `model` as `follow` does.

    Attributes:
        engine: str, the engine it runs on, one of
            `keras_fcn.engines.ENGINES` (what `"auto"` chose).
        precision: str, `"float32"`, `"bfloat16"` or `"float16"` (what
            `"auto"` chose).
        input_shape: the model's input shape, e.g. `(None, None, None, 3)`.
        output_shape: the model's output shape, e.g.
            `(None, None, None, num_classes)`.
        cache_key: dict, the `keras_fcn.engine_cache` key of the export it
            runs; None for TensorFlow.
    """

    def __init__(self, run, engine, precision, input_shape, output_shape, cache_key=None, follows=None):
        self._run = run
        self.engine = engine
        self.precision = precision
        self.input_shape = tuple(input_shape)
        self.output_shape = output_shape
        self.cache_key = cache_key
        self._followed = None if follows is None else (*follows, weights_fingerprint(follows[0]))

    def follow(self, model, remake):
        """A function running this one's copy that follows `model`'s weights.

        This function itself is left as it is (it may be kept on the model
        and given again for the same weights).

        Args:
            model: the `keras.Model` its copy was made from, with the
                weights it has now.
            remake: a function of a model making an `InferenceFunction` of
                it with its weights as they are then; called with `model` at
                the first call after they change.

        Returns:
            An `InferenceFunction`.
        """
        return self._copy(follows=(model, remake))

    def as_of_now(self):
        """This function with the followed model's weights as they are now, comparing them no more.

        For a loop in which nothing changes them (`keras_fcn.predict`,
        `keras_fcn.evaluate`): it compares the weights once, not at every
        batch, and holds a copy's engine without the model (which may then
        be released). What it computes after the weights change depends on
        the engine: a copy keeps the weights it has, while the float32
        TensorFlow function reads the model's weights itself.

        Returns:
            An `InferenceFunction`.
        """
        self._follow_weights()
        return self._copy()

    def _copy(self, follows=None):
        """A function running the same copy, following `follows`: None or `(model, remake)`, as `follow` takes them."""
        return InferenceFunction(
            self._run, self.engine, self.precision, self.input_shape, self.output_shape, self.cache_key, follows
        )

    def _follow_weights(self):
        if self._followed is None:
            return
        model, remake, made_with = self._followed
        now = weights_fingerprint(model)
        if now != made_with:
            fresh = remake(model)
            self._run, self.engine, self.cache_key = fresh, fresh.engine, fresh.cache_key  # it runs its copy
            self._followed = (model, remake, now)

    def __call__(self, images):
        images = np.asarray(images)
        expected = (None, *self.input_shape[1:])
        if images.ndim != 4 or any(size not in (None, got) for size, got in zip(expected, images.shape)):
            wanted = ", ".join(["batch", "height", "width", "channels"][axis] if size is None else str(size)
                               for axis, size in enumerate(expected))
            raise InvalidArgumentError(
                f"`images` must be a batch of shape ({wanted}), as the model takes them. Received shape {images.shape}"
            )
        self._follow_weights()
        return self._run(images)

    def __repr__(self):
        return f"<InferenceFunction engine={self.engine!r} precision={self.precision!r} output_shape={self.output_shape}>"


class ExportCheckError(UnsupportedModelError):
    """An exported model does not compute what the Keras model computes (a converter fault)."""


def missing_packages(engine):
    """The packages `engine` needs that are not installed, a tuple of names."""
    return tuple(package for package in REQUIRED_PACKAGES[engine] if importlib.util.find_spec(package) is None)


def installed(engine):
    """Whether the packages `engine` needs are installed."""
    return not missing_packages(engine)


def versions(engine):
    """`{package: version}` of everything the exported files of `engine` depend on."""
    packages = ("tensorflow", "keras", *REQUIRED_PACKAGES[engine])
    return {package: importlib.metadata.version(package) for package in packages}


def unavailable_reason(engine, model, precision):
    """Why `engine` cannot run `model` in `precision`, or None when it can.

    Args:
        engine: one of `ENGINES`.
        model: a `keras.Model`, or None to check only the host and precision.
        precision: `"float32"`, `"bfloat16"` or `"float16"`.

    Returns:
        None, or a sentence naming what is missing.
    """
    if precision not in ENGINE_PRECISIONS[engine]:
        return f"{engine} computes in {' or '.join(ENGINE_PRECISIONS[engine])}, not {precision}"
    if engine == "openvino" and precision == "bfloat16" and not host_cpu().native_bfloat16:
        # Its CPU plugin then quietly computes float32: a bfloat16 request would not be what runs.
        return "OpenVINO computes bfloat16 only on CPUs with AMX or AVX512-BF16, and this one has neither"
    if engine == "tensorflow":
        return None
    missing = missing_packages(engine)
    if missing == (engine,):
        return f"{engine} is not installed: pip install {EXTRAS[engine]}"
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        return f"{engine} needs {', '.join(missing)}, which {verb} not installed: pip install {EXTRAS[engine]}"
    if keras.backend.backend() != "tensorflow":
        return f"{engine} runs what Keras exports with dynamic sizes, which needs the TensorFlow backend"
    if model is not None and len(model.outputs) != 1:
        return f"{engine} runs single-output models; this one has {len(model.outputs)} outputs"
    return None


def auto_engines(model, precision):
    """The engines `"auto"` tries for `model` in `precision`, fastest first: those installed that can run it.

    Args:
        model: a `keras.Model`, or None to check only the host and precision
            (then in the order for large weights).
        precision: `"float32"`, `"bfloat16"` or `"float16"`.

    Returns:
        tuple of `FASTEST_FIRST[host kind][weights size]`, in its order,
        ending with `"tensorflow"` (which runs every model).
    """
    large = model is None or 4 * model.count_params() > LARGE_WEIGHTS_BYTES  # exported in float32
    order = FASTEST_FIRST.get(host_cpu().kind, FASTEST_FIRST["other"])["large" if large else "small"]
    return tuple(engine for engine in order if unavailable_reason(engine, model, precision) is None)


def exported_function(model, engine, precision):
    """A function running `model` through `engine` ("openvino" or "onnxruntime") in `precision`.

    The float32 model (a copy when some layer computes in another
    precision) is exported with `model.export` once per architecture,
    weights, precision and engine version, checked, and cached on disk; the
    function then runs the cached export, whatever the image size. It
    computes with the weights the model has now (they are hashed at each
    call: the function made last for the same weights is reused).

    Args:
        model: a single-output `keras.Model` taking `(batch, H, W, C)`
            images.
        engine: `"openvino"` or `"onnxruntime"`.
        precision: one of `ENGINE_PRECISIONS[engine]`.

    Returns:
        An `InferenceFunction`: from a `(batch, H, W, C)` array of any real
        dtype to the float32 logits, a numpy array.

    Raises:
        ValueError: when the engine cannot run the model; the message says why.
        ExportCheckError: when the export does not compute the model's
            logits, or its engine cannot load or run it; the refusal is
            cached (for the same key: architecture, weights, versions, CPU),
            so that it is not exported again, and no export is.
    """
    reason = unavailable_reason(engine, model, precision)
    if reason is not None:
        raise InvalidArgumentError(f'engine="{engine}" cannot run this model in {precision}: {reason}.')
    key = _export_key(model, engine, precision)
    loaded = getattr(model, LOADED_ATTRIBUTE, {})
    if (engine, precision) in loaded and loaded[engine, precision][0] == key:
        return loaded[engine, precision][1]
    # Whether an export is refused also depends on keras_fcn's checks.
    refusal_key = {**key, "refused": True, "keras-fcn": importlib.metadata.version("keras-fcn")}
    refusal = engine_cache.entry_folder(refusal_key)
    if engine_cache.is_valid(refusal, refusal_key):
        raise ExportCheckError(f"{_read_json(os.path.join(refusal, REFUSAL_RECORD))['message']} (as recorded in {refusal})")
    try:
        folder = engine_cache.cached_export(key, lambda folder: _export_and_check(as_float32(model), engine, folder))
    except ExportCheckError as error:
        record = {"message": str(error)}
        engine_cache.cached_export(refusal_key, lambda folder: write_json_atomically(os.path.join(folder, REFUSAL_RECORD), record))
        raise
    path = os.path.join(folder, FILES[engine])
    loaded_run = _LOADERS[engine](path, precision)
    run = InferenceFunction(loaded_run, engine, precision, model.input_shape, model.output_shape, key)
    # Kept on the model, as Keras keeps `predict_function` (plain attribute setting would track it as state):
    # the latest function of each engine and precision, used again while the weights are the same.
    object.__setattr__(model, LOADED_ATTRIBUTE, {**loaded, (engine, precision): (key, run)})
    return run


def _export_key(model, engine, precision):
    """The cache key of `model`'s export for `engine` in `precision`: everything the exported files depend on."""
    return {
        "format": CACHE_FORMAT,
        "engine": engine,
        "versions": versions(engine),
        "precision": precision,
        "architecture": engine_cache.architecture_digest(model),
        "weights": engine_cache.weights_digest(model),
        # ONNX Runtime's optimized model is laid out for this host's vector units (e.g. 8 or 16 floats a block).
        "cpu": host_cpu().vector_flags(),
    }


def _source_key(source, engine, precision):
    """The cache key of the record of which export a model source (a file's or zoo entry's identity) has.

    For `engine="auto"` it holds the versions of every engine auto may take
    here, since which it takes depends on them all.
    """
    engines = auto_engines(None, precision) if engine == "auto" else (engine,)
    return {
        "format": CACHE_FORMAT,
        "engine": engine,
        # The source holds weights and, at most, a config: what they compute is also keras_fcn's code.
        "versions": {**{name: versions(name) for name in engines}, "keras-fcn": importlib.metadata.version("keras-fcn")},
        "precision": precision,
        "cpu": host_cpu().vector_flags(),
        "source": source,
    }


def _read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def cached_source_function(source, engine, precision):
    """The function of the cached export of the model a source holds, without loading the model.

    Args:
        source: a JSON-serializable identity of a saved model, e.g.
            `{"file_sha256": ...}`, as `remember_source` recorded it.
        engine: `"auto"` (the engine it took, as recorded), `"openvino"` or
            `"onnxruntime"`, installed.
        precision: one of `ENGINE_PRECISIONS[engine]`.

    Returns:
        An `InferenceFunction`, as `exported_function` returns it; None when
        no valid export is recorded for the source (never recorded, or its
        record or export is corrupt, stale or deleted).
    """
    key = _source_key(source, engine, precision)
    folder = engine_cache.entry_folder(key)
    if not engine_cache.is_valid(folder, key):
        return None
    record = _read_json(os.path.join(folder, SOURCE_RECORD))
    exported = engine_cache.entry_folder(record["key"])
    if record["engine"] not in _LOADERS or not engine_cache.is_valid(exported, record["key"]):
        return None
    run = _LOADERS[record["engine"]](os.path.join(exported, FILES[record["engine"]]), precision)
    output_shape = tuple(record["output_shape"])
    return InferenceFunction(run, record["engine"], precision, record["input_shape"], output_shape, record["key"])


def remember_source(source, engine, function):
    """Records in the cache that `source` holds the model that `function` (of an exported engine) runs.

    A later `cached_source_function(source, engine, function.precision)`
    then loads that export without loading the model.

    Args:
        source: a JSON-serializable identity of a saved model.
        engine: the engine asked for: `"auto"`, `"openvino"` or `"onnxruntime"`.
        function: the `InferenceFunction` of an exported engine made for it.
    """
    record = {
        "engine": function.engine,
        "key": function.cache_key,
        "input_shape": function.input_shape,
        "output_shape": function.output_shape,
    }
    engine_cache.cached_export(
        _source_key(source, engine, function.precision),
        lambda folder: write_json_atomically(os.path.join(folder, SOURCE_RECORD), record),
    )


def _export_and_check(model, engine, folder):
    """Exports the float32 `model` for `engine` into `folder`, then checks it on a random image."""
    height, width = model.input_shape[1:3]
    channels = model.input_shape[-1]
    path = os.path.join(folder, FILES[engine])
    _EXPORTERS[engine](model, path)
    check_size = (height or EXPORT_CHECK_SIZE[0], width or EXPORT_CHECK_SIZE[1])
    images = np.random.default_rng(0).uniform(0, 255, (1, *check_size, channels)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(images, training=False)).astype("float32")
    try:
        received = _LOADERS[engine](path, "float32")(images)
    except Exception as error:  # an export its engine cannot load or run: the converter's fault, not the caller's
        raise ExportCheckError(f"The model exported for {engine} does not run in it: {error}") from error
    error = float(np.max(np.abs(received - expected))) if received.shape == expected.shape else float("inf")
    if not error <= EXPORT_CHECK_TOLERANCE * float(np.max(np.abs(expected))):
        raise ExportCheckError(
            f"The model exported for {engine} does not compute the Keras model's logits: on a "
            f"{check_size[0]}x{check_size[1]} image it gives shape {received.shape}, largest difference {error:.3g} "
            f"(logits up to {np.max(np.abs(expected)):.3g}; allowed: {EXPORT_CHECK_TOLERANCE:g} of that). "
            'Use engine="tensorflow".'
        )


def _export_onnxruntime(model, path):
    """Writes `model` as the ONNX model ONNX Runtime makes of it when it optimizes it for this host.

    The model is converted by `keras_fcn.export.write_onnx`, then loaded
    once with every graph optimization (constant folding, fusions, the
    NCHWc layout of this host's vector units), which ONNX Runtime saves
    with its weights in `<path>.data`. `_onnxruntime_function` loads that
    file without optimizing again, mapping the weights into memory: setup
    in milliseconds, and the weights held once.

    Raises:
        ExportCheckError: when the model cannot be converted
            (`ConversionError`) or ONNX Runtime cannot load its conversion.
    """
    import onnxruntime

    with tempfile.TemporaryDirectory() as folder:
        try:
            converted = write_onnx(model, os.path.join(folder, "converted.onnx"), external_data=True)
        except ConversionError as error:
            raise ExportCheckError(f"The model cannot be exported for onnxruntime: {error}") from error
        options = onnxruntime.SessionOptions()
        options.optimized_model_filepath = path
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", f"{os.path.basename(path)}.data")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        options.log_severity_level = 3  # its warning that the file suits this host only: the cache key has the host
        try:
            onnxruntime.InferenceSession(converted, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ONNX Runtime's own error types: a graph it cannot load, optimize or save
            raise ExportCheckError(f"ONNX Runtime cannot load the model's ONNX conversion: {error}") from error


def _export_openvino(model, path):
    """Writes `model` as OpenVINO IR: `model.export`, with its channelwise upsamplings grouped.

    See `keras_fcn.exported_graphs`; the weights stay float32 (OpenVINO's
    `save_model` would halve them by default).
    """
    import openvino

    signature = [keras.InputSpec(shape=(None, *model.input_shape[1:]), dtype="float32")]
    with tempfile.TemporaryDirectory() as folder:
        exported = os.path.join(folder, "exported.xml")
        model.export(exported, format="openvino", input_signature=signature, verbose=False)
        converted = openvino.Core().read_model(exported)
        group_openvino_transposed_convolutions(converted)
        openvino.save_model(converted, path, compress_to_fp16=False)


def _openvino_function(path, precision):
    import openvino

    compiled = openvino.Core().compile_model(
        path, "CPU", {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY"}
    )
    # Results beyond the first are unused shape values the TensorFlow converter keeps; the model's output is first.
    output = compiled.output(0)

    def run(images):
        return compiled(np.asarray(images, dtype="float32"))[output]

    return run


def _onnxruntime_function(path, precision):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # optimized when exported
    options.enable_cpu_mem_arena = False  # buffers freed after each call: less memory, as fast (benchmarks/inference.py)
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(images):
        return session.run(None, {name: np.asarray(images, dtype="float32")})[0]

    return run


_LOADERS = {"openvino": _openvino_function, "onnxruntime": _onnxruntime_function}
_EXPORTERS = {"openvino": _export_openvino, "onnxruntime": _export_onnxruntime}
