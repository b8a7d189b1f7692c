"""Test-time augmentation: class probabilities averaged over rescaled and mirrored copies of each image."""

import keras
import numpy as np

from keras_fcn.constants import SCALE_FACTOR_LIMITS, is_scale_factor
from keras_fcn.errors import InvalidArgumentError


def validate_augmentation(scales, flip):
    """Checks `augmented_inference`'s `scales` and `flip`; returns the scales as a tuple of floats."""
    if not isinstance(flip, bool):
        raise InvalidArgumentError(f"`flip` must be True or False. Received flip={flip!r}")
    return validate_scales(scales)


def validate_scales(scales, name="scales"):
    """Checks a non-empty sequence (list, tuple or 1-D array) of distinct scaling factors within
    `SCALE_FACTOR_LIMITS`; returns a tuple of floats."""
    low, high = SCALE_FACTOR_LIMITS
    if isinstance(scales, np.ndarray) and scales.ndim == 1:
        scales = scales.tolist()
    if not (isinstance(scales, (tuple, list)) and scales and all(is_scale_factor(s) for s in scales)):
        raise InvalidArgumentError(
            f"`{name}` must be a non-empty sequence of scaling factors from {low:g} to {high:g}, e.g. "
            f"(1.0, 1.25, 1.5). Received {name}={scales!r}"
        )
    if len(set(scales)) != len(scales):
        raise InvalidArgumentError(
            f"`{name}` gives a scaling factor twice: each is scored once, so give each once. Received {name}={scales!r}"
        )
    return tuple(float(s) for s in scales)


def _softmax(logits):
    exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def _resized(maps, size):
    """Float32 `(batch, h, w, C)` maps resized bilinearly (half-pixel centres, no antialiasing) to `size`."""
    if tuple(maps.shape[1:3]) == tuple(size):
        return maps
    resized = keras.ops.image.resize(maps.astype("float32"), size, interpolation="bilinear", antialias=False)
    return keras.ops.convert_to_numpy(resized)


def scaled_size(size, scale):
    """`(round(scale * H), round(scale * W))`, halves rounded up, at least 1 pixel each."""
    return tuple(max(1, int(scale * length + 0.5)) for length in size)


def augmented_inference(run, *, scales=(1.0,), flip=False):
    """`run` made to average each image's class probabilities over rescaled and mirrored copies of it.

    Multi-scale and flip test-time augmentation, as MMSegmentation's
    `aug_test` and DeepLab's evaluation do it: for each factor `s` of
    `scales`, the images are resized bilinearly to `scaled_size((H, W), s)`
    and scored, their logits resized bilinearly back to `(H, W)`; with
    `flip`, the images mirrored left-right are scored too and their logits
    mirrored back. The result is the mean of the softmax of these
    `len(scales) * (1 + flip)` logit maps. Scales above 1 see small objects
    over more cells of a stride-32 trunk, at `s**2` times the work.

    Args:
        run: a function from float32 images `(batch, H, W, C)` to float32
            logits `(batch, H, W, num_classes)`, as `inference_function`
            returns.
        scales: non-empty sequence of floats from 0.1 to 4
            (`keras_fcn.constants.SCALE_FACTOR_LIMITS`), the factors, e.g.
            `(1.0, 1.25, 1.5)`; `(1.0,)` (default) scores the images as
            they are.
        flip: bool, also score the left-right mirrors.

    Returns:
        A function from the same images to float32 class probabilities
        `(batch, H, W, num_classes)`, summing to 1 over the last axis.

    Raises:
        keras_fcn.errors.InvalidArgumentError: (a `ValueError`) for
            `scales` that are not factors from 0.1 to 4, or a non-bool
            `flip`.
    """
    scales = validate_augmentation(scales, flip)
    mirrors = (False, True) if flip else (False,)

    def averaged(images):
        images = np.asarray(images)
        size = images.shape[1:3]
        total = 0.0
        for scale in scales:
            scaled = images if scale == 1 else _resized(images, scaled_size(size, scale))
            for mirrored in mirrors:
                view = np.ascontiguousarray(scaled[:, :, ::-1]) if mirrored else scaled
                logits = _resized(np.asarray(run(view), "float32"), size)
                total = total + _softmax(logits[:, :, ::-1] if mirrored else logits)
        return (total / (len(scales) * len(mirrors))).astype("float32")

    return averaged
