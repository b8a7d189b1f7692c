"""Cost of dense predictions: shift-and-stitch and filter rarefaction against the upsampling FCN.

The paper's section 3.2: an FCN-32s scores one cell per 32x32 pixels; its
head interpolates those scores to every pixel. Shift-and-stitch
(`keras_fcn.dense_prediction.shift_and_stitch`, `f^2` passes of the net up to
`score_fr`) and filter rarefaction (`keras_fcn.dense_prediction.rarefy`, one pass of
the dilated net) compute real scores every `32 / f` pixels instead. For
each, at `f` = 2 (stride 16) and 4 (stride 8), this measures on the
reference VGG16 FCN-32s (random weights, 21 classes, one RGB image) the
time of one forward pass (the median of `--repeats` after a warm-up), the
peak memory it adds to the process (resident set size, each variant in
its own process) and the activation memory (all layer outputs, summed),
and prints them as JSON. On 2 CPU cores at 64x64 it takes about 2 minutes.

Usage:

    python benchmarks/dense_prediction.py [--size 64] [--repeats 1]
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np

# keras and keras_fcn are imported by the measuring processes only.
VARIANTS = ("fcn32s_upsampling", "coarse", "shift_and_stitch_2", "rarefy_pool5", "shift_and_stitch_4", "rarefy_pool4")


def _memory_mib(field):
    """`VmRSS` (resident now) or `VmHWM` (peak resident) of this process, in MiB (Linux)."""
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"/proc/self/status has no {field}.")


def _reset_peak_memory():
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")


def _activation_mib(model, shape):
    """MiB of float32 layer outputs of a flat functional `model` on an input of `shape`, summed."""
    import keras

    probe = keras.Model(model.input, [layer.output for layer in model.layers[1:]])
    specs = probe.compute_output_spec(keras.KerasTensor(shape))
    return sum(4 * int(np.prod(spec.shape)) for spec in specs) / 2**20


def _build(variant):
    import keras

    import keras_fcn
    from keras_fcn import dense_prediction

    fcn = keras_fcn.FCN32s(21, backbone_weights=None)
    net = keras.Model(fcn.input, fcn.get_layer("score_fr").output, name="coarse")
    if variant == "fcn32s_upsampling":
        return fcn, 1
    if variant == "coarse":
        return net, 32
    kind, argument = variant.rsplit("_", 1)
    if kind == "shift_and_stitch":
        return dense_prediction.shift_and_stitch(net, int(argument)), 32 // int(argument)
    return dense_prediction.rarefy(net, argument), 32 // dense_prediction.subsampling(net, argument)


def measure(variant, size, repeats):
    """Builds one variant and times it; run in a process of its own so that its peak memory is its own."""
    model, stride = _build(variant)
    image = np.random.default_rng(0).uniform(0, 255, size=(1, size, size, 3)).astype("float32")
    if variant.startswith("shift_and_stitch"):
        factor = int(variant[-1])
        step = 32 // factor
        net = model.get_layer("coarse")
        activations = sum(
            _activation_mib(net, (1, size - step * x, size - step * y, 3)) for x in range(factor) for y in range(factor)
        )
    else:
        activations = _activation_mib(model, image.shape)
    _reset_peak_memory()
    before = _memory_mib("VmRSS")
    output = model(image, training=False)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        output = np.asarray(model(image, training=False))
        times.append(time.perf_counter() - start)
    peak = _memory_mib("VmHWM")
    return {
        "variant": variant,
        "output_shape": list(output.shape[1:3]),
        "score_every_pixels": stride,
        "passes_of_the_net": int(variant[-1]) ** 2 if variant.startswith("shift_and_stitch") else 1,
        "seconds": round(float(np.median(times)), 3),
        "peak_memory_added_mib": round(peak - before, 1),
        "activation_mib": round(activations, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variant", choices=VARIANTS, help="measure one variant in this process")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.size, args.repeats)))
        return
    results = []
    for variant in VARIANTS:
        command = [sys.executable, __file__, "--variant", variant, "--size", str(args.size), "--repeats", str(args.repeats)]
        completed = subprocess.run(command, capture_output=True, text=True, check=True)
        print(completed.stdout.strip().splitlines()[-1], file=sys.stderr)
        results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    print(json.dumps({"backbone": "vgg16_reference", "image": [args.size, args.size], "results": results}, indent=1))


if __name__ == "__main__":
    main()
