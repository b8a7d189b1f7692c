"""Training speed of keras-fcn FCN-8s nets, side by side with a plain PyTorch FCN-8s.

Measures, in one run, the images per second of training steps at 360x480
(random images and labels; batches of 1 for the FCN-8s on the reference
VGG16, of 8 for the FCN-8s on MobileNetV2, or `--batch`; random weights from
a fixed seed, 21 classes, SGD with momentum 0.9, per-pixel cross-entropy
ignoring 255). Keras: `model.train_on_batch` after `model.compile(...)`, for
the model built in float32 and under the `mixed_bfloat16` policy; with
`--xla`, also compiled with `jit_compile=True` (off by default: on 2 cores
at 96x128, XLA made a VGG16 step 9x slower and a MobileNetV2 step 3.5x
slower, and it compiles for about a minute). With torch installed, the same VGG16 net in PyTorch
(`torch_fcn.py`, weights copied from the Keras model): a forward, backward
and `optimizer.step()` in fp32 (NCHW and channels_last) and under bfloat16
autocast (channels_last), with as many threads as there are cores; the
largest difference of its logits from the Keras fp32 ones on the first
image (dropout off) is printed as a check that both compute the same
function. The variants take steps in turns (one step of each per round,
after one warm-up step each). Work per image is estimated as 3x the
forward pass (forward, input gradients, weight gradients). Prints one JSON
object.

Usage:

    python benchmarks/train.py [--quick] [--models vgg16_reference mobilenetv2] [--batch N] [--steps 3] [--xla]

`--quick` is a smoke run of about 2 minutes: one timed step per variant on
one 96x128 image.
"""

import argparse
import json
import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from inference import NUM_CLASSES, TORCH_AVAILABLE, build, environment, gflop_per_image, peak_memory_mib, rounded
from keras_fcn.losses import SegmentationCrossEntropy

SIZE = (360, 480)
BATCH_SIZES = {"vgg16_reference": 1, "mobilenetv2": 8}
QUICK_SIZE = (96, 128)
IGNORE_LABEL = 255
LEARNING_RATE = 1e-8
MOMENTUM = 0.9
# Keras variants: (precision, dtype policy, jit_compile).
KERAS_VARIANTS = {
    "keras_fp32": ("fp32", "float32", False),
    "keras_bf16": ("bf16", "mixed_bfloat16", False),
}
XLA_VARIANTS = {
    "keras_fp32_xla": ("fp32", "float32", True),
    "keras_bf16_xla": ("bf16", "mixed_bfloat16", True),
}
# PyTorch variants: (precision, channels_last, bfloat16 autocast).
TORCH_VARIANTS = {
    "torch_fp32": ("fp32", False, False),
    "torch_fp32_channels_last": ("fp32", True, False),
    "torch_bf16_channels_last": ("bf16", True, True),
}


def keras_steps(backbone, images, labels, xla):
    """`{name: (precision, step)}`, a step being one `train_on_batch` returning the loss; and the fp32 model."""
    steps, models = {}, {}
    images, labels = tf.constant(images), tf.constant(labels)
    for name, (precision, policy, jit_compile) in {**KERAS_VARIANTS, **(XLA_VARIANTS if xla else {})}.items():
        model = models[name] = build(backbone, policy)
        model.compile(
            optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM),
            loss=SegmentationCrossEntropy(ignore_index=IGNORE_LABEL),
            jit_compile=jit_compile,
        )
        steps[name] = (precision, lambda model=model: float(model.train_on_batch(images, labels)))
    return steps, models["keras_fp32"]


def torch_steps(model, images, labels):
    """`{name: (precision, step)}` for the PyTorch VGG16 FCN-8s with `model`'s weights, and a check.

    The check is the largest difference between its logits and `model`'s on
    the first image, dropout off.
    """
    import torch
    import torch.nn.functional as F

    import torch_fcn

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    y = torch.from_numpy(labels.astype("int64"))
    steps = {}
    for name, (precision, channels_last, bfloat16) in TORCH_VARIANTS.items():
        net = torch_fcn.load_keras_weights(torch_fcn.FCN8sVGG16(NUM_CLASSES), model)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        net = net.to(memory_format=memory_format).train()
        inputs = x.contiguous(memory_format=memory_format)
        optimizer = torch.optim.SGD(
            [p for p in net.parameters() if p.requires_grad], lr=LEARNING_RATE, momentum=MOMENTUM
        )

        def step(net=net, inputs=inputs, optimizer=optimizer, bfloat16=bfloat16):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                loss = F.cross_entropy(net(inputs), y, ignore_index=IGNORE_LABEL)
            loss.backward()
            optimizer.step()
            return loss.item()

        steps[name] = (precision, step)
    check = torch_fcn.load_keras_weights(torch_fcn.FCN8sVGG16(NUM_CLASSES), model).eval()
    with torch.inference_mode():
        logits = check(x[:1].contiguous()).permute(0, 2, 3, 1).numpy()
    difference = float(np.max(np.abs(logits - keras.ops.convert_to_numpy(model(images[:1], training=False)))))
    return steps, difference


def benchmark_model(backbone, size, *, batch, steps, xla):
    """Trains every variant of one model in turns; returns its JSON-ready results."""
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (batch, *size, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, (batch, *size)).astype("uint8")
    variants, model = keras_steps(backbone, images, labels, xla)
    summary = {"size": list(size), "batch": batch, "gflop_per_image_forward": gflop_per_image(model, *size)}
    if TORCH_AVAILABLE and backbone == "vgg16_reference":
        torch_variants, summary["max_abs_diff_logits_torch_vs_keras_fp32"] = torch_steps(model, images, labels)
        variants.update(torch_variants)
    results = {}
    for name, (precision, step) in variants.items():
        start = time.perf_counter()
        loss = step()
        first = time.perf_counter() - start
        results[name] = {"precision": precision, "first_step_s": first, "first_loss": loss, "steps_s": []}
    for _ in range(steps):
        for name, (_, step) in variants.items():
            start = time.perf_counter()
            step()
            results[name]["steps_s"].append(time.perf_counter() - start)
    for result in results.values():
        result["images_per_s"] = batch / statistics.median(result["steps_s"])
        result["train_gflop_per_s"] = 3 * summary["gflop_per_image_forward"] * result["images_per_s"]
    summary["variants"] = results
    if "torch_fp32" in results:
        summary["comparison"] = compare(results)
    return summary


def compare(results):
    """Speed-ups of the Keras variants over the faster PyTorch fp32 variant (>1: Keras faster), and the target."""
    def best(framework, precision=None):
        names = [n for n in results if n.startswith(framework)]
        names = [n for n in names if precision is None or results[n]["precision"] == precision]
        return max(names, key=lambda n: results[n]["images_per_s"])

    torch_fp32 = best("torch", "fp32")
    keras_fp32 = best("keras", "fp32")
    speedups = {
        n: results[n]["images_per_s"] / results[torch_fp32]["images_per_s"] for n in results if n.startswith("keras")
    }
    return {
        "torch_fp32_baseline": torch_fp32,
        "speedup_vs_torch_fp32_baseline": speedups,
        "speedup_vs_torch_fp32_plain_nchw": {
            n: results[n]["images_per_s"] / results["torch_fp32"]["images_per_s"] for n in speedups
        },
        "speedup_keras_best_vs_torch_best": results[best("keras")]["images_per_s"]
        / results[best("torch")]["images_per_s"],
        "target_fp32_at_least_as_fast": {
            "keras": keras_fp32,
            "speedup": speedups[keras_fp32],
            "met": speedups[keras_fp32] >= 1,
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(BATCH_SIZES), default=list(BATCH_SIZES))
    parser.add_argument("--batch", type=int, help="images per step (default: VGG16 1, MobileNetV2 8; --quick 1)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--xla", action="store_true", help="also time the Keras models with jit_compile=True")
    parser.add_argument("--quick", action="store_true", help="a smoke run, see the module docstring")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    results = {"environment": environment(), "models": {}}
    for backbone in args.models:
        results["models"][backbone] = benchmark_model(
            backbone,
            QUICK_SIZE if args.quick else SIZE,
            batch=args.batch or (1 if args.quick else BATCH_SIZES[backbone]),
            steps=1 if args.quick else args.steps,
            xla=args.xla,
        )
    results["environment"]["load_average_1min_end"] = os.getloadavg()[0]
    results["environment"]["peak_memory_mib"] = peak_memory_mib()
    print(json.dumps(rounded(results), indent=1))


if __name__ == "__main__":
    main()
