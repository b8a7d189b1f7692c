"""Helpers shared by the training, CLI and distribution tests (no tests here)."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

NUM_CLASSES = 3
TINY_MODEL = {"backbone": "mobilenet", "backbone_weights": None, "backbone_kwargs": {"alpha": 0.25}}
TINY_CLI = ["--backbone", "mobilenet", "--backbone-weights", "none", "--backbone-kwargs", "alpha=0.25"]
# Quieter TensorFlow in child processes; the package from this checkout.
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.getcwd()}


def write_pairs(folder, count, size=(32, 32), seed=0):
    """Writes `count` random RGB PNGs to `folder/images` and class-index PNG masks to `folder/masks`.

    Masks are blocks of classes 0..2 with the image brighter where the class
    is higher, so the task is learnable; returns the folder.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
    for index in range(count):
        mask = rng.integers(0, NUM_CLASSES, size=(size[0] // 8, size[1] // 8)).repeat(8, 0).repeat(8, 1)
        image = (mask[..., None] * 90 + rng.integers(0, 60, size=(*size, 3))).astype(np.uint8)
        Image.fromarray(image).save(os.path.join(folder, "images", f"{index:03d}.png"))
        Image.fromarray(mask.astype(np.uint8)).save(os.path.join(folder, "masks", f"{index:03d}.png"))
    return str(folder)


def run_python(args, timeout, cwd=None, env=None, **kwargs):
    """Runs `python args...` in a child process; returns the CompletedProcess (text output).

    `kwargs` go to `subprocess.run` (e.g. `preexec_fn`).
    """
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env or CHILD_ENV,
        **kwargs,
    )
