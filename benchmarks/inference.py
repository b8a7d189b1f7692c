"""Inference speed and memory of keras-fcn's engines, side by side with what a user would pick instead.

Measures, in one run, batch 1, the median seconds per image over
`--repeats` timed calls after a warm-up, the paths taking turns in one
process; each path's setup (export and compile, paid once: the engines'
exports are cached on disk); and each path alone (a separate process per
path that imports every framework, then sets the path up from the model's
`.keras` file with a warm cache, as `keras-fcn predict FILE` does, and runs
one image: its peak resident memory over that after the imports, and the
process's peak `VmHWM`; then the median seconds of `--repeats` more calls,
and more up to `ALONE_MIN_S` seconds, undisturbed by other engines):

- `camvid`: the bundled CamVid FCN-8s (MobileNet 0.25, 11 classes) at
  360x480;
- `vgg16_reference`: the FCN-8s on the reference VGG16 (21 classes, random
  weights from a fixed seed) at 500x500.

Paths of the Keras model (`keras_fcn.inference_function`):
`keras_fcn_default` (the defaults `predict`, `evaluate` and the CLI use:
`engine="auto"`, float32), `tensorflow_fp32`, `tensorflow_fp32_xla` (VGG16
only; XLA is several times slower on depthwise nets), `openvino_fp32`,
`onnxruntime_fp32`, and `*_bf16` where the CPU computes bfloat16 natively.
Peers (what a user would pick instead), with the same weights: OpenVINO
and ONNX Runtime on Keras's own `model.export(format="openvino")` and
`model.export(format="onnx")` (the latter not for VGG16: it needs about
25 GB); for the VGG16 net, PyTorch fp32 (`torch_fcn.py`, NCHW and
channels_last; bf16 autocast where native), and ONNX Runtime and OpenVINO
on PyTorch's own ONNX export of it. Each path's
largest difference from the TensorFlow float32 logits is printed as a
check that all compute the same function. The paths run in turns (one
call of each per round), so that load from other processes weighs on all
alike; the load average is printed.

`ratio_to_fastest_peer` is seconds / the fastest peer's seconds (< 1:
faster than every peer). Prints one JSON object (and writes it with
`--json`); `--markdown FILE` prints the README's tables from a saved one.

Usage:

    python benchmarks/inference.py [--models camvid vgg16_reference] [--repeats 5] [--json results.json]
    python benchmarks/inference.py --markdown results.json
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

import keras
import numpy as np

import keras_fcn
from keras_fcn.cpu import host_cpu
from keras_fcn.precision import with_dtype_policy
from keras_fcn.weights_fingerprint import weights_fingerprint

NUM_CLASSES = 21
SIZES = {"camvid": (360, 480), "vgg16_reference": (500, 500)}
TORCH_AVAILABLE = importlib.util.find_spec("torch") is not None
KERAS_PATHS = {  # path -> the keyword arguments of keras_fcn.inference_function
    "keras_fcn_default": {},
    "tensorflow_fp32": {"engine": "tensorflow"},
    "openvino_fp32": {"engine": "openvino"},
    "onnxruntime_fp32": {"engine": "onnxruntime"},
    "tensorflow_fp32_xla": {"engine": "tensorflow", "jit_compile": True},
    "tensorflow_bf16": {"engine": "tensorflow", "precision": "bfloat16"},
    "openvino_bf16": {"engine": "openvino", "precision": "bfloat16"},
}
TORCH_LAYOUTS = {"torch_fp32": (False, False), "torch_fp32_channels_last": (True, False), "torch_bf16": (True, True)}
# Seconds between timed calls (see `run_in_turns`).
PAUSE_S = 0.3
# Alone, a path is timed over `--repeats` calls and at least this many seconds: 9 calls of a small net are too few
# for a median steady from one process to the next (camvid: 0.019 and 0.024 s for the same engine).
ALONE_MIN_S = 3.0
# Peers running an export of the model: path -> (runtime, whose export).
EXPORT_PATHS = {
    "openvino_on_keras_export": ("openvino", "keras"),
    "onnxruntime_on_keras_export": ("onnxruntime", "keras"),
    "onnxruntime_on_torch_export": ("onnxruntime", "torch"),
    "openvino_on_torch_export": ("openvino", "torch"),
}
# Keras's own ONNX export of the VGG16 net holds ~47 copies of its weights (keras_fcn.export.write_onnx).
TOO_LARGE = {("vgg16_reference", "onnxruntime_on_keras_export"): "Keras's ONNX export of it needs about 25 GB"}


@dataclasses.dataclass
class Path:
    """One way of running a model: `call(images)` returns float32 NHWC logits."""

    call: Callable
    peer: bool
    setup_s: float


def build(backbone, policy="float32", seed=0):
    """A keras-fcn FCN-8s on `backbone` with random weights from `seed` (the same for every `policy`)."""
    model = randomize(keras_fcn.FCN8s(NUM_CLASSES, backbone=backbone, backbone_weights=None), seed)
    return model if policy == "float32" else with_dtype_policy(model, policy)


def load(model_name):
    """The Keras model a benchmark model name stands for."""
    return keras_fcn.zoo.load_model("camvid") if model_name == "camvid" else build(model_name)


def randomize(model, seed):
    """Sets every convolution kernel (He normal) and bias (normal, std 0.1) from a seeded generator.

    The score layers, which start at zero, then give a non-zero output; the
    bilinear upsampling kernels and batch normalization keep their values.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            fan_in_axes = 2
        elif isinstance(layer, keras.layers.Conv2D):
            fan_in_axes = 3
        else:
            continue
        kernel, *bias = layer.get_weights()
        fan_in = int(np.prod(kernel.shape[:fan_in_axes]))
        weights = [rng.normal(0, np.sqrt(2 / fan_in), kernel.shape)] + [rng.normal(0, 0.1, b.shape) for b in bias]
        layer.set_weights([w.astype("float32") for w in weights])
    return model


def gflop_per_image(model, height, width):
    """GFLOP of one forward pass on a `height` x `width` image: 2 x the multiply-adds of every convolution.

    A convolution does one multiply-add per kernel weight at every output
    position (input position for a transposed convolution); pooling,
    activations, normalization and additions are not counted.
    """
    convolutions = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose)
    layers = [layer for layer in model.layers if isinstance(layer, convolutions)]
    probe = keras.Model(model.input, [layer.input for layer in layers] + [layer.output for layer in layers])
    specs = probe.compute_output_spec(keras.KerasTensor((1, height, width, 3)))
    flops = 0
    for layer, inputs, outputs in zip(layers, specs[: len(layers)], specs[len(layers) :]):
        positions = inputs if isinstance(layer, keras.layers.Conv2DTranspose) else outputs
        flops += 2 * int(np.prod(positions.shape[1:3])) * int(np.prod(layer.kernel.shape))
    return flops / 1e9


def path_names(model_name):
    """The paths measured for a model on this host, in order."""
    bf16 = host_cpu().native_bfloat16
    names = ["keras_fcn_default", "tensorflow_fp32", "openvino_fp32", "onnxruntime_fp32"]
    names += ["tensorflow_fp32_xla"] if model_name == "vgg16_reference" else []
    names += ["tensorflow_bf16", "openvino_bf16"] if bf16 else []
    names += [name for name, (_, source) in EXPORT_PATHS.items() if source == "keras"]
    if model_name == "vgg16_reference" and TORCH_AVAILABLE:
        names += [name for name, (_, autocast) in TORCH_LAYOUTS.items() if bf16 or not autocast]
        names += [name for name, (_, source) in EXPORT_PATHS.items() if source == "torch"]
    return [name for name in names if (model_name, name) not in TOO_LARGE]


def make_path(name, model, exports):
    """Sets up path `name` (timed; an export's path from its file in `exports`) and returns it.

    A keras-fcn path runs as `predict` and `evaluate` run it: its function
    of the model's weights as they are (`as_of_now`), which compares them
    once per call of theirs, not per image (`weights_check_s`).
    """
    start = time.perf_counter()
    if name in KERAS_PATHS:
        call = keras_fcn.inference_function(model, **KERAS_PATHS[name]).as_of_now()
    elif name in TORCH_LAYOUTS:
        call = torch_call(model, *TORCH_LAYOUTS[name])
    else:
        call = exported_call(name, exports[name])
    return Path(call, name not in KERAS_PATHS, time.perf_counter() - start)


def torch_call(model, channels_last, bfloat16):
    """PyTorch's VGG16 FCN-8s with `model`'s weights (or its own initialization when `model` is None)."""
    import torch

    import torch_fcn

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    net = torch_fcn.FCN8sVGG16(NUM_CLASSES).eval()
    if model is not None:
        torch_fcn.load_keras_weights(net, model)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)

    def call(images):
        x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=layout)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            return net(x).permute(0, 2, 3, 1).float().numpy()

    return call


def export_torch_onnx(model, path):
    """Writes PyTorch's ONNX export of its VGG16 FCN-8s with `model`'s weights, batch, height and width dynamic."""
    import torch

    import torch_fcn

    net = torch_fcn.load_keras_weights(torch_fcn.FCN8sVGG16(NUM_CLASSES).eval(), model)
    axes = {0: "batch", 2: "height", 3: "width"}
    # The TorchScript exporter: the torch.export one needs onnxscript, which is not installed.
    torch.onnx.export(
        net, (torch.zeros(1, 3, 64, 64),), path, dynamo=False,
        input_names=["images"], output_names=["logits"], dynamic_axes={"images": axes, "logits": axes},
    )
    return path


def export_keras(model, name, path):
    """Writes Keras's own `model.export` for path `name` (OpenVINO IR or ONNX), any batch and size; returns `path`."""
    formats = {"openvino": "openvino", "onnxruntime": "onnx"}
    signature = [keras.InputSpec(shape=(None, None, None, 3), dtype="float32")]
    model.export(path, format=formats[EXPORT_PATHS[name][0]], input_signature=signature, verbose=False)
    return path


def exported_call(name, path):
    """ONNX Runtime or OpenVINO (float32) running the export at `path` as a user of it would (NCHW: PyTorch's)."""
    runtime, source = EXPORT_PATHS[name]
    if runtime == "onnxruntime":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        run = lambda x: session.run(None, {input_name: x})[0]  # noqa: E731
    else:
        import openvino

        compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        run = lambda x: compiled(x)[compiled.output(0)]  # noqa: E731
    if source == "keras":
        return run
    return lambda images: run(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).transpose(0, 2, 3, 1)


def run_in_turns(paths, images, repeats):
    """Calls each path once (warm-up), then `repeats` rounds of one call each, `PAUSE_S` apart.

    The pause lets the worker threads of the path before go idle (TensorFlow,
    OpenVINO and ONNX Runtime threads spin-wait for a while after a call),
    so that they do not take cores from the path being timed.

    Returns `{name: (first call seconds, [timed seconds], first output)}`.
    """
    results = {}
    for name, path in paths.items():
        start = time.perf_counter()
        output = path.call(images)
        results[name] = (time.perf_counter() - start, [], output)
    for _ in range(repeats):
        for name, path in paths.items():
            time.sleep(PAUSE_S)
            start = time.perf_counter()
            path.call(images)
            results[name][1].append(time.perf_counter() - start)
    return results


def measure_alone(name, model_name, export_file, keras_home, repeats):
    """`alone` of path `name` in a fresh process, with the warm engine cache; an error text when it failed."""
    command = [sys.executable, __file__, "--alone", name, "--models", model_name, "--export-file", export_file or "",
               "--model-file", model_file(keras_home, model_name), "--repeats", str(repeats)]
    environment = {**os.environ, "KERAS_HOME": keras_home, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if done.returncode == 0 and lines else f"failed: {done.stderr.strip()[-300:]}"


def model_file(keras_home, model_name):
    """Where the benchmark saves a model (`.keras`) for the memory processes to load."""
    return os.path.join(keras_home, f"{model_name}.keras")


def alone(name, model_name, export_file, keras_file, repeats):
    """Sets up path `name` as a user would, alone in this process, runs one image, then times more.

    Returns `{"working_mib", "peak_mib", "latency_s", "calls"}`: the memory
    after the first image, in MiB, and the median seconds of the timed
    calls (`repeats`, and more up to `ALONE_MIN_S` seconds), which
    no other engine of the process disturbs (in `run_in_turns`, a small
    net's calls slow down right after another engine's, by up to 1.7x
    for the camvid net).

    Every framework is imported first (keras-fcn with TensorFlow, then torch,
    OpenVINO and ONNX Runtime where installed), so that `working_mib`, the
    peak resident memory over the resident memory after the imports, is the
    path's own: model, engine and activations. `peak_mib` is the process's
    peak (`VmHWM`), imports included. keras-fcn's paths run
    `keras_fcn.inference_function(keras_file, ...)`, as `keras-fcn predict
    FILE` does: the TensorFlow ones load the Keras model, the exported
    engines (their exports cached) run without it.
    """
    for package in ("torch", "openvino", "onnxruntime"):
        if importlib.util.find_spec(package) is not None:
            importlib.import_module(package)
    imported = resident_memory_mib()
    images = np.random.default_rng(1).uniform(0, 255, (1, *SIZES[model_name], 3)).astype("float32")
    if name in TORCH_LAYOUTS:
        call = torch_call(None, *TORCH_LAYOUTS[name])  # PyTorch alone, as its user runs it
    elif name in EXPORT_PATHS:
        call = exported_call(name, export_file)
    else:
        call = keras_fcn.inference_function(keras_file, **KERAS_PATHS[name])
    call(images)
    memory = {"working_mib": peak_memory_mib() - imported, "peak_mib": peak_memory_mib()}
    times = []
    while len(times) < repeats or sum(times) < ALONE_MIN_S:
        start = time.perf_counter()
        call(images)
        times.append(time.perf_counter() - start)
    return {**memory, "latency_s": statistics.median(times), "calls": len(times)}


def benchmark_model(model_name, repeats, keras_home):
    """Times every path of one model; returns its JSON-ready results."""
    model = load(model_name)
    model.save(model_file(keras_home, model_name))
    size = SIZES[model_name]
    images = np.random.default_rng(1).uniform(0, 255, (1, *size, 3)).astype("float32")
    names = path_names(model_name)
    exports, export_s = {}, {}
    for name in [name for name in names if name in EXPORT_PATHS]:  # each export is part of its path's setup
        start = time.perf_counter()
        runtime, source = EXPORT_PATHS[name]
        if source == "keras":
            file = os.path.join(keras_home, f"{model_name}_{name}.{'xml' if runtime == 'openvino' else 'onnx'}")
            exports[name], export_s[name] = export_keras(model, name, file), time.perf_counter() - start
        elif "torch" not in exports:  # one PyTorch export, which both runtimes run
            exports["torch"] = export_torch_onnx(model, os.path.join(keras_home, "torch_fcn8s.onnx"))
            export_s["torch"] = time.perf_counter() - start
        if source == "torch":
            exports[name], export_s[name] = exports["torch"], export_s["torch"]
    paths, refused = {}, {name: reason for (model, name), reason in TOO_LARGE.items() if model == model_name}
    for name in names:
        try:
            paths[name] = make_path(name, model, exports)
        except (ValueError, ImportError) as error:
            refused[name] = str(error)
    for name in paths.keys() & KERAS_PATHS.keys():  # records the file's exports, for the memory processes
        keras_fcn.inference_function(model_file(keras_home, model_name), **KERAS_PATHS[name])
    results = run_in_turns(paths, images, repeats)
    reference = results["tensorflow_fp32"][2]
    latencies = {name: statistics.median(times) for name, (_, times, _) in results.items()}
    fastest_peer = min((n for n, p in paths.items() if p.peer), key=latencies.get)
    work = gflop_per_image(model, *size)
    report = {
        name: {
            "setup_s": path.setup_s + export_s.get(name, 0.0),
            "first_call_s": results[name][0],
            "latency_s": latencies[name],
            "latencies_s": results[name][1],
            "gflop_per_s": work / latencies[name],
            "ratio_to_fastest_peer": latencies[name] / latencies[fastest_peer],
            "max_abs_diff_vs_tensorflow_fp32": float(np.max(np.abs(results[name][2] - reference))),
            "alone": measure_alone(name, model_name, exports.get(name), keras_home, repeats),
        }
        for name, path in paths.items()
    }
    alone_peers = {n: r["alone"]["latency_s"] for n, r in report.items() if paths[n].peer and isinstance(r["alone"], dict)}
    for result in report.values():
        if isinstance(result["alone"], dict) and alone_peers:
            result["alone"]["ratio_to_fastest_peer"] = result["alone"]["latency_s"] / min(alone_peers.values())
    default = paths["keras_fcn_default"].call.engine if "keras_fcn_default" in paths else None
    return {
        "size": list(size),
        "parameters": model.count_params(),
        "weights_check_s": weights_check_s(model, repeats),
        "gflop_per_image": work,
        "max_abs_logit_tensorflow_fp32": float(np.max(np.abs(reference))),
        "default_engine": default,
        "fastest_peer": fastest_peer,
        "paths": report,
        "refused": refused,
    }


def weights_check_s(model, repeats):
    """Median seconds of the comparison of the model's weights that a function following it makes at each call."""
    weights_fingerprint(model)  # traced once
    times = []
    for _ in range(max(repeats, 20)):
        start = time.perf_counter()
        weights_fingerprint(model)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rounded(value):
    """`value` with every float rounded to 4 significant digits, for printing."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return value


def _status_mib(field):
    with open("/proc/self/status") as file:
        return next(int(line.split()[1]) for line in file if line.startswith(f"{field}:")) / 1024


def peak_memory_mib():
    """Peak resident memory of this process so far, in MiB (Linux)."""
    return _status_mib("VmHWM")


def resident_memory_mib():
    """Resident memory of this process now, in MiB (Linux)."""
    return _status_mib("VmRSS")


def environment():
    cpu = host_cpu()
    info = {
        "cpu": cpu.model,
        "cpu_flags": cpu.vector_flags(),
        "native_bfloat16": cpu.native_bfloat16,
        "host_kind": cpu.kind,
        "cores": len(os.sched_getaffinity(0)),
        "load_average_1min": os.getloadavg()[0],
    }
    for package in ("tensorflow", "keras", "openvino", "onnxruntime", "tf2onnx", "torch"):
        if importlib.util.find_spec(package) is not None:
            info[package] = importlib.metadata.version(package)
    return info


def markdown(results):
    """The README's speed tables from a benchmark's results."""
    lines = []
    for model_name, summary in results["models"].items():
        height, width = summary["size"]
        lines += [
            f"{model_name} at {height}x{width}, batch 1 (default engine here: {summary['default_engine']}):",
            "",
            "| path | seconds, in turns | vs fastest peer | seconds, alone | vs fastest peer | setup s | memory MiB "
            "| max diff vs TF fp32 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, path in summary["paths"].items():
            alone = path["alone"]
            if isinstance(alone, str):
                alone_s, alone_ratio, memory = alone, "", ""
            else:
                alone_s, alone_ratio = f"{alone['latency_s']:.3g}", f"{alone['ratio_to_fastest_peer']:.2f}"
                memory = f"{alone['working_mib']:.0f}"
            seconds, setup, check = path["latency_s"], path["setup_s"], path["max_abs_diff_vs_tensorflow_fp32"]
            lines.append(
                f"| `{name}` | {seconds:.3g} | {path['ratio_to_fastest_peer']:.2f} | {alone_s} | {alone_ratio} "
                f"| {setup:.3g} | {memory} | {check:.2g} |"
            )
        lines += [f"| `{name}` | refused | | | | | | |" for name in summary["refused"]]
        if "weights_check_s" in summary:
            lines += ["", f"Weights check of a function following the model in memory: {summary['weights_check_s'] * 1e3:.2g} ms a call."]
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5, help="timed batch-1 runs per path")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--markdown", metavar="FILE", help="print the README tables of saved results, and stop")
    parser.add_argument("--alone", help=argparse.SUPPRESS)
    parser.add_argument("--export-file", help=argparse.SUPPRESS)
    parser.add_argument("--model-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.markdown:
        with open(args.markdown) as file:
            print(markdown(json.load(file)))
        return
    if args.alone:
        print(json.dumps(alone(args.alone, args.models[0], args.export_file, args.model_file, args.repeats)))
        return
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as keras_home:
        os.environ["KERAS_HOME"] = keras_home  # a cold cache: setup_s includes each engine's export
        results = {"environment": environment(), "models": {}}
        for model_name in args.models:
            results["models"][model_name] = benchmark_model(model_name, args.repeats, keras_home)
    results["environment"]["load_average_1min_end"] = os.getloadavg()[0]
    text = json.dumps(rounded(results), indent=1)
    if args.json:
        with open(args.json, "w") as file:
            file.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
