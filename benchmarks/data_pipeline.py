"""Input pipeline throughput against the training step rate it has to feed.

Measures, in one run, the images per second of the CamVid training pipeline
(decode, random scale 0.5-2.0, 360x480 crop, flip, jitter, batch 8) and of
training an FCN-8s MobileNet (alpha 0.25, random weights) on 360x480
batches of 8, and prints both and their ratio as JSON. The pipeline should
deliver at least 3 times what training consumes.

Usage:

    python benchmarks/data_pipeline.py [--root ../shared/data/camvid]
"""

import argparse
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

import keras_fcn
from keras_fcn import data
from keras_fcn.losses import SegmentationCrossEntropy

BATCH_SIZE = 8
SIZE = (360, 480)
NUM_CLASSES = len(data.CAMVID_CLASSES)
DEFAULT_ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "camvid")


def pipeline_images_per_second(root, batches, warmup):
    pipeline = data.make_pipeline(
        data.camvid(root, "train").repeat(),
        BATCH_SIZE,
        training=True,
        crop_size=SIZE,
        scale_range=(0.5, 2.0),
        flip=True,
        jitter=0.1,
        seed=0,
    )
    iterator = iter(pipeline)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * BATCH_SIZE / (time.perf_counter() - start)


def training_images_per_second(steps, warmup):
    model = keras_fcn.FCN8s(
        NUM_CLASSES, backbone="mobilenet", backbone_weights=None, backbone_kwargs={"alpha": 0.25}
    )
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
        loss=SegmentationCrossEntropy(ignore_index=data.IGNORE_LABEL),
    )
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (BATCH_SIZE,) + SIZE + (3,)).astype(np.float32)
    masks = rng.integers(0, NUM_CLASSES, (BATCH_SIZE,) + SIZE).astype(np.uint8)
    for _ in range(warmup):
        model.train_on_batch(images, masks)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, masks)
    return steps * BATCH_SIZE / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=DEFAULT_ROOT, help="CamVid folder with train/images and train/masks")
    parser.add_argument("--batches", type=int, default=40, help="timed pipeline batches")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps")
    args = parser.parse_args()
    pipeline = pipeline_images_per_second(args.root, args.batches, warmup=3)
    training = training_images_per_second(args.steps, warmup=2)
    print(
        json.dumps(
            {
                "pipeline_images_per_s": round(pipeline, 1),
                "training_images_per_s": round(training, 2),
                "ratio": round(pipeline / training, 1),
                "batch_size": BATCH_SIZE,
                "size": list(SIZE),
                "pipeline": "camvid train: decode, scale 0.5-2.0, crop 360x480, flip, jitter 0.1",
                "model": "FCN8s(11, backbone='mobilenet', alpha=0.25), SGD, SegmentationCrossEntropy, train_on_batch, fp32",
                "pipeline_batches": args.batches,
                "training_steps": args.steps,
                "cpu_count": os.cpu_count(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
