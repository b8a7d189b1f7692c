"""Per-pixel softmax cross-entropy for FCN training (paper, sections 3.4 and 4.3)."""

import math

import keras
from keras import ops

from keras_fcn.distribute import sum_over_replicas

REDUCTIONS = ("mean", "sum", "none")


def valid_pixels(labels, num_classes, ignore_index):
    """Boolean mask of the pixels whose label is a class: in `[0, num_classes)` and not `ignore_index`."""
    valid = ops.logical_and(ops.greater_equal(labels, 0), ops.less(labels, num_classes))
    if ignore_index is not None:
        valid = ops.logical_and(valid, ops.not_equal(labels, ignore_index))
    return valid


def per_pixel(sample_weight):
    """Appends axes to per-image weights, shape `(batch,)`, so they broadcast against `(batch, H, W)`."""
    while len(sample_weight.shape) < 3:
        sample_weight = ops.expand_dims(sample_weight, -1)
    return sample_weight


def _validate(ignore_index, reduction, class_weights, keep_probability, seed):
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise ValueError(f"`ignore_index` must be an int or None. Received ignore_index={ignore_index!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}. Received reduction={reduction!r}")
    if class_weights is not None:
        try:
            weights = [float(w) for w in class_weights]
        except (TypeError, ValueError):
            weights = []
        if not weights or not all(math.isfinite(w) and w >= 0 for w in weights):
            raise ValueError(
                "`class_weights` must be None or a non-empty sequence of finite, non-negative "
                f"numbers, one per class. Received class_weights={class_weights!r}"
            )
    if isinstance(keep_probability, bool) or not isinstance(keep_probability, (int, float)) or not (
        0 < keep_probability <= 1
    ):
        raise ValueError(
            "`keep_probability` must be a number in (0, 1]. "
            f"Received keep_probability={keep_probability!r}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be an int or None. Received seed={seed!r}")


def _refuse_jax_steps_that_lose(variable, values, message):
    """Makes a compiled JAX step that computes `values` fail with `message` unless it threads `variable` through.

    JAX training and evaluation steps are pure functions of the state the
    trainer passes in (the model's variables, as traced arrays): an update
    to any other variable is lost. Keras exports no way to ask whether a
    variable is part of that state, so this reads the sign JAX gives: in a
    traced step the threaded state is traced like `values`, any other
    variable stays a concrete array. Keras's symbolic build traces the loss
    the same way but never runs it, so the refusal is a host callback that
    raises when the step runs (`jax.errors.JaxRuntimeError`, a
    `RuntimeError`, with `message` in its text), not at trace time. An eager
    JAX step (`run_eagerly=True`) traces nothing and is not seen.
    """
    if keras.backend.backend() != "jax":
        return
    import jax

    if isinstance(values, jax.core.Tracer) and not isinstance(variable.value, jax.core.Tracer):

        def refuse():
            raise RuntimeError(message)

        jax.debug.callback(refuse)


@keras.saving.register_keras_serializable(package="keras_fcn")
class SegmentationCrossEntropy(keras.losses.Loss):
    """Per-pixel softmax cross-entropy that skips ignored pixels.

    Each pixel `p` with a class label `y_p` contributes the term
    `w_p * -log(softmax(logits_p)[y_p])`, where `w_p` is the class weight of
    `y_p` times the sample weight of `p` (both 1 by default). Pixels labelled
    `ignore_index` (255, the VOC "void" border) and pixels whose label is
    outside `[0, num_classes)` contribute nothing.

    `reduction="mean"` divides the sum of the terms by the total weight of
    the valid pixels in the batch (their number when unweighted), so it is
    exact per batch whatever the number of ignored pixels. Under a
    `tf.distribute` strategy each replica divides its own sum by the total
    weight of the global batch (summed over the replicas of all workers), so
    the replicas' gradients add up to the gradient of one device on the
    global batch however the valid pixels are spread among them.
    `reduction="sum"` is the reference code's unnormalised loss.
    `reduction="none"` returns the per-pixel terms, zero where ignored.

    Loss sampling (paper, section 3.4): with `keep_probability=p < 1`, each
    spatial term is kept with probability `p` and scaled by `1 / p`, so the
    expected loss equals the full loss (the denominator of `"mean"` stays the
    full valid weight). The mask is drawn anew at each call, including in
    `model.evaluate`.

    The loss is computed in float32 whatever the dtype of the logits
    (bfloat16 or float16 under mixed precision), and ignores Keras's own
    reduction: use it as `model.compile(loss=SegmentationCrossEntropy())`.

    Args:
        ignore_index: int or None, the label of pixels to skip. Defaults to
            255.
        reduction: `"mean"` (default), `"sum"` or `"none"`, see above.
        class_weights: None or a sequence of `num_classes` non-negative
            numbers, the weight of each class's pixels.
        keep_probability: float in `(0, 1]`, the probability of keeping each
            spatial term. Defaults to 1 (whole-image training, the paper's
            choice).
        seed: int or None, seeds the sampling mask.
        name: str, the loss's name.

    Call arguments:
        y_true: integer labels of shape `(batch, H, W)`, any integer or float
            dtype (uint8 works).
        y_pred: logits of shape `(batch, H, W, num_classes)`, any float dtype.
        sample_weight: optional weights broadcastable to `(batch, H, W)`,
            e.g. one per image of shape `(batch,)`.

    Returns:
        A float32 scalar, or a `(batch, H, W)` float32 tensor for
        `reduction="none"`.

    Example:

    >>> loss = keras_fcn.losses.SegmentationCrossEntropy()
    >>> labels = np.array([[[0, 255]]], dtype="uint8")
    >>> logits = np.array([[[[0.0, 0.0], [5.0, 0.0]]]])
    >>> float(loss(labels, logits))  # log(2): the 255 pixel is skipped
    0.6931...
    """

    def __init__(
        self,
        ignore_index=255,
        reduction="mean",
        class_weights=None,
        keep_probability=1.0,
        seed=None,
        name="segmentation_cross_entropy",
    ):
        _validate(ignore_index, reduction, class_weights, keep_probability, seed)
        super().__init__(name=name, reduction=reduction, dtype="float32")
        self.ignore_index = ignore_index
        self.class_weights = None if class_weights is None else tuple(float(w) for w in class_weights)
        self.keep_probability = float(keep_probability)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if keep_probability < 1 else None

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            logits = ops.cast(ops.convert_to_tensor(y_pred), "float32")
            labels = ops.cast(ops.convert_to_tensor(y_true), "int32")
            num_classes = logits.shape[-1]
            if self.class_weights is not None and num_classes is not None and len(self.class_weights) != num_classes:
                raise ValueError(
                    f"`class_weights` has {len(self.class_weights)} entries but the logits have "
                    f"{num_classes} classes. Received logits of shape {tuple(logits.shape)}"
                )
            valid = valid_pixels(labels, num_classes, self.ignore_index)
            safe_labels = ops.where(valid, labels, 0)
            weights = ops.cast(valid, "float32")
            if self.class_weights is not None:
                weights = weights * ops.take(ops.convert_to_tensor(self.class_weights, "float32"), safe_labels)
            if sample_weight is not None:
                weights = weights * per_pixel(ops.cast(ops.convert_to_tensor(sample_weight), "float32"))
            log_probs = ops.log_softmax(logits, axis=-1)
            picked = ops.take_along_axis(log_probs, ops.expand_dims(safe_labels, -1), axis=-1)
            terms = -picked[..., 0] * weights
            if self.seed_generator is not None:
                keep = self._draw(terms) < self.keep_probability
                terms = terms * ops.cast(keep, "float32") / self.keep_probability
            if self.reduction == "none":
                return terms
            total = ops.sum(terms)
            if self.reduction == "sum":
                return total
            weight = sum_over_replicas(ops.sum(weights))
            return total / ops.where(weight > 0, weight, 1.0)

    def _draw(self, terms):
        """Uniform [0, 1) noise shaped like `terms` from the seed generator, refusing where its update is lost."""
        _refuse_jax_steps_that_lose(
            self.seed_generator.state,
            terms,
            "Loss sampling (`keep_probability` < 1) is running in a stateless training step "
            "(the JAX backend) where the loss's seed generator is not tracked, so every step "
            "would draw the same mask. Attach it to the model before `fit`, e.g. "
            "`model.loss_seed_generator = loss.seed_generator`. "
            f"Received keep_probability={self.keep_probability}",
        )
        return keras.random.uniform(ops.shape(terms), seed=self.seed_generator)

    def get_config(self):
        return {
            **super().get_config(),
            "ignore_index": self.ignore_index,
            "class_weights": self.class_weights,
            "keep_probability": self.keep_probability,
            "seed": self.seed,
        }

