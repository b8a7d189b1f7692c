"""Inference speed of keras-fcn FCN-8s nets, side by side with a plain PyTorch FCN-8s.

Measures, in one run, for the FCN-8s on the reference VGG16 at 500x500 and
the FCN-8s on MobileNetV2 at 512x512 (random weights from a fixed seed, 21
classes): the median latency of one image over `--repeats` runs after a
warm-up, and the throughput of a batch of `--batch` images for the fastest
fp32 and bfloat16 way of each framework; the work per image (GFLOP,
counted from the layer shapes: 2 x multiply-adds of every convolution) and
the achieved GFLOP/s against a matmul peak measured in the same run with
`tf.linalg.matmul`. The Keras variants:

- `keras_fp32_predict_on_batch`: Keras's `model.predict_on_batch`;
- `keras_{fp32,bf16}_function`: `keras_fcn.inference_function(model,
  precision=...)`, what `keras_fcn.predict`, `keras_fcn.evaluate` and the
  CLI run: a `tf.function` whose input signature has `None` batch, height
  and width, traced once for every image size;
- `keras_{fp32,bf16}_xla`: the same with `jit_compile=True` (traced once;
  XLA compiles once per input shape);
- `keras_{fp32,bf16}_constants`: `keras_fcn.inference_function(model,
  precision=..., freeze=True)`, the weights folded into constants, which
  lets oneDNN prepare them once;

`bf16` is the model copied under the `mixed_bfloat16` policy (AMX on CPUs
that have it). With torch installed, the same VGG16 net in PyTorch
(`torch_fcn.py`, weights copied from the Keras model) runs fp32 (NCHW and
channels_last) and bfloat16 autocast (channels_last) with as many threads as
there are cores; its largest difference from the Keras fp32 output on the
timed image is printed as a check that both compute the same function.
The variants run in turns (one call of each per round), so that load from
other processes weighs on all of them alike. Prints one JSON object.

Usage:

    python benchmarks/inference.py [--quick] [--models vgg16_reference mobilenetv2] [--batch 8] [--repeats 3]
                                   [--no-constants]

Freezing is costly for the VGG16 net's 134 million weights: on 2 cores,
about 20 s to convert and 30 s for the first call per precision, and the
process's peak memory reaches about 22 GB in the full run, most of it for
them. `--no-constants` leaves them out. `--quick` is a smoke run of about
2 minutes: one timed run per variant at 128x128, batch 2, and no frozen
variants for nets over `QUICK_CONSTANTS_MAX_PARAMS` weights.
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

import keras_fcn
from keras_fcn.precision import with_dtype_policy

NUM_CLASSES = 21
SIZES = {"vgg16_reference": (500, 500), "mobilenetv2": (512, 512)}
QUICK_SIZE = (128, 128)
MATMUL_SIZE = 4096
QUICK_MATMUL_SIZE = 2048
QUICK_CONSTANTS_MAX_PARAMS = 10_000_000
TORCH_AVAILABLE = importlib.util.find_spec("torch") is not None
PRECISIONS = ("fp32", "bf16")
# Benchmark precision names -> `keras_fcn.inference_function`'s.
PACKAGE_PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}


@dataclasses.dataclass
class Variant:
    """One way of running a model: `prepare(images)` converts a batch and returns a call that runs it once.

    The call returns the logits as a float32 NHWC array.
    """

    framework: str
    precision: str
    prepare: Callable
    setup_s: float = 0.0


def build(backbone, policy="float32", seed=0):
    """A keras-fcn FCN-8s on `backbone` with random weights from `seed` (the same for every `policy`)."""
    model = randomize(keras_fcn.FCN8s(NUM_CLASSES, backbone=backbone, backbone_weights=None), seed)
    return model if policy == "float32" else with_dtype_policy(model, policy)


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


def matmul_peak(size, repeats):
    """The best GFLOP/s of `tf.linalg.matmul` on `size` x `size` matrices, per precision."""
    rng = np.random.default_rng(0)
    peaks = {}
    for precision, dtype in zip(PRECISIONS, (tf.float32, tf.bfloat16)):
        a, b = (tf.cast(rng.standard_normal((size, size)), dtype) for _ in range(2))
        matmul = tf.function(tf.linalg.matmul)
        matmul(a, b)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            matmul(a, b)
            best = min(best, time.perf_counter() - start)
        peaks[precision] = 2 * size**3 / best / 1e9
    return peaks


def keras_variants(model, constants=True):
    """The Keras ways of running the float32 `model`, by name.

    With `constants`, also the frozen-weights variants; their `setup_s` is
    the time `keras_fcn.inference_function(..., freeze=True)` takes.
    """

    def package_call(run):
        return lambda images: lambda: run(images)

    variants = {
        "keras_fp32_predict_on_batch": Variant(
            "keras", "fp32", lambda images: lambda: model.predict_on_batch(images)
        )
    }
    for precision, name in PACKAGE_PRECISIONS.items():
        variants[f"keras_{precision}_function"] = Variant(
            "keras", precision, package_call(keras_fcn.inference_function(model, precision=name))
        )
        variants[f"keras_{precision}_xla"] = Variant(
            "keras", precision, package_call(keras_fcn.inference_function(model, precision=name, jit_compile=True))
        )
        if constants:
            start = time.perf_counter()
            frozen = keras_fcn.inference_function(model, precision=name, freeze=True)
            variants[f"keras_{precision}_constants"] = Variant(
                "keras", precision, package_call(frozen), setup_s=time.perf_counter() - start
            )
    return variants


def torch_variants(model):
    """PyTorch runs of the VGG16 FCN-8s with `model`'s weights: fp32 (NCHW, channels_last) and bf16 autocast."""
    import torch

    import torch_fcn

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    nets = {}
    for channels_last in (False, True):
        net = torch_fcn.load_keras_weights(torch_fcn.FCN8sVGG16(NUM_CLASSES), model).eval()
        nets[channels_last] = net.to(memory_format=torch.channels_last) if channels_last else net

    def torch_call(channels_last, bfloat16):
        net = nets[channels_last]

        def prepare(images):
            x = torch.from_numpy(images).permute(0, 3, 1, 2)
            x = x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

            def run():
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                    return net(x).permute(0, 2, 3, 1).float().numpy()

            return run

        return prepare

    return {
        "torch_fp32": Variant("torch", "fp32", torch_call(False, False)),
        "torch_fp32_channels_last": Variant("torch", "fp32", torch_call(True, False)),
        "torch_bf16_channels_last": Variant("torch", "bf16", torch_call(True, True)),
    }


def run_in_turns(variants, images, repeats):
    """Calls each variant once (warm-up), then `repeats` rounds of one call each.

    Returns `{name: (first call seconds, [timed seconds], first output)}`.
    """
    calls = {name: variant.prepare(images) for name, variant in variants.items()}
    results = {}
    for name, call in calls.items():
        start = time.perf_counter()
        output = call()
        results[name] = (time.perf_counter() - start, [], output)
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            results[name][1].append(time.perf_counter() - start)
    return results


def fastest(variants, latencies, framework, precision):
    """The name of the fastest variant of `framework` in `precision`, or None."""
    names = [n for n, v in variants.items() if (v.framework, v.precision) == (framework, precision)]
    return min(names, key=latencies.get, default=None)


def benchmark_model(backbone, size, *, repeats, batch, constants_max_params=None):
    """Times every variant of one model; returns its JSON-ready results.

    The frozen-constants variants run only for models with at most
    `constants_max_params` weights (None: always).
    """
    model = build(backbone)
    parameters = model.count_params()
    variants = keras_variants(model, constants_max_params is None or parameters <= constants_max_params)
    if TORCH_AVAILABLE and backbone == "vgg16_reference":
        variants.update(torch_variants(model))
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (batch or 1, *size, 3)).astype("float32")
    results = run_in_turns(variants, images[:1], repeats)
    work = gflop_per_image(model, *size)
    reference = results["keras_fp32_function"][2]
    latencies = {name: statistics.median(times) for name, (_, times, _) in results.items()}
    report = {
        name: {
            "precision": variant.precision,
            **({"setup_s": variant.setup_s} if variant.setup_s else {}),
            "first_call_s": results[name][0],
            "latency_s": latencies[name],
            "latencies_s": results[name][1],
            "gflop_per_s": work / latencies[name],
            "max_abs_diff_vs_keras_fp32": float(np.max(np.abs(results[name][2] - reference))),
        }
        for name, variant in variants.items()
    }
    if batch:
        frameworks = sorted({v.framework for v in variants.values()})
        best = {fastest(variants, latencies, f, p) for f in frameworks for p in PRECISIONS} - {None}
        batched = run_in_turns({name: variants[name] for name in sorted(best)}, images, max(1, repeats // 3))
        for name, (first, times, _) in batched.items():
            throughput = batch / statistics.median(times)
            report[name].update(
                {
                    f"batch{batch}_first_call_s": first,
                    f"batch{batch}_images_per_s": throughput,
                    f"batch{batch}_gflop_per_s": work * throughput,
                }
            )
    summary = {
        "size": list(size),
        "parameters": parameters,
        "gflop_per_image": work,
        "max_abs_output_keras_fp32": float(np.max(np.abs(reference))),
        "variants": report,
    }
    if "torch_fp32" in variants:
        summary["comparison"] = compare(variants, latencies, report, batch)
    return summary


def add_peak_fractions(model_results, peaks):
    """Adds to every variant its achieved GFLOP/s as a fraction of the matmul peak of its precision."""
    for variant in model_results["variants"].values():
        for key in [k for k in variant if k.endswith("gflop_per_s")]:
            variant[key.replace("gflop_per_s", "fraction_of_matmul_peak")] = variant[key] / peaks[variant["precision"]]


def compare(variants, latencies, report, batch):
    """Speed-ups of the Keras variants over PyTorch fp32 (>1: Keras faster), and the issue's two targets."""
    torch_fp32 = fastest(variants, latencies, "torch", "fp32")
    keras_fp32 = fastest(variants, latencies, "keras", "fp32")
    keras_best = min((n for n, v in variants.items() if v.framework == "keras"), key=latencies.get)
    fp32_speedup = latencies[torch_fp32] / latencies[keras_fp32]
    best_speedup = latencies[torch_fp32] / latencies[keras_best]
    comparison = {
        "torch_fp32_baseline": torch_fp32,
        "speedup_vs_torch_fp32_plain_nchw": {
            n: latencies["torch_fp32"] / latencies[n] for n, v in variants.items() if v.framework == "keras"
        },
        "speedup_vs_torch_fp32_baseline": {
            n: latencies[torch_fp32] / latencies[n] for n, v in variants.items() if v.framework == "keras"
        },
        "max_abs_diff_torch_fp32_vs_keras_fp32": report["torch_fp32"]["max_abs_diff_vs_keras_fp32"],
        "target_fp32_at_least_as_fast": {
            "keras": keras_fp32,
            "speedup": fp32_speedup,
            "met": fp32_speedup >= 1,
        },
        "target_best_precision_2x": {"keras": keras_best, "speedup": best_speedup, "met": best_speedup >= 2},
    }
    key = f"batch{batch}_images_per_s"
    if batch and key in report[torch_fp32]:
        comparison[f"batch{batch}_throughput_vs_torch_fp32_baseline"] = {
            n: report[n][key] / report[torch_fp32][key]
            for n, v in variants.items()
            if v.framework == "keras" and key in report[n]
        }
    return comparison


def rounded(value):
    """`value` with every float rounded to 4 significant digits, for printing."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return value


def peak_memory_mib():
    """Peak resident memory of this process so far, in MiB (Linux)."""
    with open("/proc/self/status") as file:
        return next(int(line.split()[1]) for line in file if line.startswith("VmHWM:")) / 1024


def environment():
    info = {
        "cores": len(os.sched_getaffinity(0)),
        "load_average_1min": os.getloadavg()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    if TORCH_AVAILABLE:
        import torch

        info["torch"] = torch.__version__
    return info


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--batch", type=int, help="batch size for throughput (default 8, --quick 2); 0 skips it")
    parser.add_argument("--repeats", type=int, default=3, help="timed batch-1 runs per variant")
    parser.add_argument("--no-constants", action="store_true", help="leave out the frozen-constants variants")
    parser.add_argument("--quick", action="store_true", help="a smoke run, see the module docstring")
    args = parser.parse_args()
    constants_max_params = 0 if args.no_constants else QUICK_CONSTANTS_MAX_PARAMS if args.quick else None
    repeats = 1 if args.quick else args.repeats
    batch = args.batch if args.batch is not None else 2 if args.quick else 8
    matmul_size = QUICK_MATMUL_SIZE if args.quick else MATMUL_SIZE
    keras.utils.set_random_seed(0)
    results = {"environment": environment(), "matmul_peak_gflop_per_s": {"start": matmul_peak(matmul_size, 3)}}
    results["models"] = {}
    for backbone in args.models:
        results["models"][backbone] = benchmark_model(
            backbone,
            QUICK_SIZE if args.quick else SIZES[backbone],
            repeats=repeats,
            batch=batch,
            constants_max_params=constants_max_params,
        )
    results["matmul_peak_gflop_per_s"]["end"] = matmul_peak(matmul_size, 3)
    peaks = {p: max(run[p] for run in results["matmul_peak_gflop_per_s"].values()) for p in PRECISIONS}
    results["matmul_peak_gflop_per_s"]["used"] = peaks
    for model_results in results["models"].values():
        add_peak_fractions(model_results, peaks)
    results["environment"]["load_average_1min_end"] = os.getloadavg()[0]
    results["environment"]["peak_memory_mib"] = peak_memory_mib()
    print(json.dumps(rounded(results), indent=1))


if __name__ == "__main__":
    main()
