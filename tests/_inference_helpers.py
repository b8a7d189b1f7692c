"""Helpers of the inference, engine and export tests: a small FCN with varied logits, the float32 tolerance."""

import keras
import numpy as np

import keras_fcn


def random_fcn8s(rng, num_classes=3, policy="float32"):
    """An FCN-8s on MobileNet 0.25 whose convolutions all have random He-normal weights (varied logits).

    Built under the global dtype `policy`, which is then restored.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras_fcn.FCN8s(
            num_classes=num_classes, backbone="mobilenet", backbone_weights=None, backbone_kwargs={"alpha": 0.25}
        )
    finally:
        keras.mixed_precision.set_global_policy(previous)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose):
            kernel, *bias = layer.get_weights()
            depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
            fan_in = np.prod(kernel.shape[:2]) * (1 if depthwise else kernel.shape[2])
            layer.set_weights([rng.normal(0, np.sqrt(2 / fan_in), w.shape).astype("float32") for w in [kernel, *bias]])
    return model


def assert_float32_logits(logits, expected):
    """The float32 engines' tolerance: relative difference <= 1e-4 and argmax agreement >= 99.9% (issue 14)."""
    assert logits.dtype == np.float32 and logits.shape == expected.shape
    assert np.abs(logits - expected).max() <= 1e-4 * np.abs(expected).max()
    assert np.mean(logits.argmax(-1) == expected.argmax(-1)) >= 0.999
