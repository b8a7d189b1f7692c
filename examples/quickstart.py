"""keras-fcn quick start: build FCN-32s, FCN-16s and FCN-8s, and fit one on random images and masks.

Runs offline in well under a minute on a laptop CPU:

    python examples/quickstart.py
"""

import numpy as np

import keras_fcn

NUM_CLASSES = 3
# A small ImageNet backbone; backbone_weights=None because "imagenet" needs a download.
BACKBONE = {"backbone": "mobilenet", "backbone_weights": None, "backbone_kwargs": {"alpha": 0.25}}


def main():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(8, 96, 128, 3)).astype("float32")
    masks = rng.integers(0, NUM_CLASSES, size=(8, 96, 128)).astype("uint8")

    for builder in (keras_fcn.FCN32s, keras_fcn.FCN16s, keras_fcn.FCN8s, keras_fcn.FCN8sAtOnce):
        model = builder(NUM_CLASSES, **BACKBONE)
        logits = model.predict(images[:1], verbose=0)
        print(f"{model.name}: {model.count_params():,} parameters, {images[:1].shape} -> {logits.shape}")

    model = keras_fcn.FCN8s(NUM_CLASSES, **BACKBONE)
    model.compile(
        optimizer="adam",
        loss=keras_fcn.losses.SegmentationCrossEntropy(),
        metrics=[keras_fcn.metrics.MeanIoU(NUM_CLASSES)],
    )
    model.fit(images, masks, batch_size=4, epochs=2)

    labels = keras_fcn.predict(model, [images[0], images[1, :77, :101]])
    print("label maps:", [label.shape for label in labels])


if __name__ == "__main__":
    main()
