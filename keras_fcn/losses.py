"""Per-pixel softmax cross-entropy for FCN training (paper, sections 3.4 and 4.3)."""

import inspect
import math
import numbers

import keras
from keras import ops

from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.distribute import sum_over_replicas
from keras_fcn.errors import InvalidArgumentError

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


def validate_class_weights(class_weights, name="class_weights", allowed="a sequence of"):
    """Checks loss weights, one per class: finite numbers >= 0, not all zero.

    Args:
        class_weights: a sequence (list, tuple, 1-D array) of real numbers.
        name: the argument's name, for the message.
        allowed: how the message starts what is allowed.

    Returns:
        The weights as a tuple of Python floats.

    Raises:
        keras_fcn.errors.InvalidArgumentError: for a string, a scalar, an
            empty sequence, a non-number (bools included), a negative or
            non-finite weight, or weights that are all zero; the message
            gives the value received.
    """
    all_numbers = (
        not isinstance(class_weights, (str, bytes))
        and hasattr(class_weights, "__len__")
        and all(isinstance(w, numbers.Real) and not isinstance(w, bool) for w in class_weights)
    )
    if not all_numbers or not all(math.isfinite(w) and w >= 0 for w in class_weights) or not any(class_weights):
        raise InvalidArgumentError(
            f"`{name}` must be {allowed} finite numbers >= 0, one per class, not all zero. Received {name}={class_weights!r}"
        )
    return tuple(float(w) for w in class_weights)


def _check_class_count(class_weights, logits):
    """Refuses class weights (None or a tuple) whose number is not the logits' number of classes."""
    num_classes = logits.shape[-1]
    if class_weights is not None and num_classes is not None and len(class_weights) != num_classes:
        raise ValueError(
            f"`class_weights` has {len(class_weights)} entries but the logits have "
            f"{num_classes} classes. Received logits of shape {tuple(logits.shape)}"
        )


def _validate(ignore_index, reduction, class_weights, keep_probability, seed):
    """Checks the losses' arguments; returns the class weights as a tuple of floats, or None."""
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise ValueError(f"`ignore_index` must be an int or None. Received ignore_index={ignore_index!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}. Received reduction={reduction!r}")
    if class_weights is not None:
        class_weights = validate_class_weights(class_weights, allowed="None or a sequence of")
    if isinstance(keep_probability, bool) or not isinstance(keep_probability, (int, float)) or not (
        0 < keep_probability <= 1
    ):
        raise ValueError(
            "`keep_probability` must be a number in (0, 1]. "
            f"Received keep_probability={keep_probability!r}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be an int or None. Received seed={seed!r}")
    return class_weights


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
        ignore_index=IGNORE_LABEL,
        reduction="mean",
        class_weights=None,
        keep_probability=1.0,
        seed=None,
        name="segmentation_cross_entropy",
    ):
        class_weights = _validate(ignore_index, reduction, class_weights, keep_probability, seed)
        super().__init__(name=name, reduction=reduction, dtype="float32")
        self.ignore_index = ignore_index
        self.class_weights = class_weights
        self.keep_probability = float(keep_probability)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if keep_probability < 1 else None

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            logits = ops.cast(ops.convert_to_tensor(y_pred), "float32")
            labels = ops.cast(ops.convert_to_tensor(y_true), "int32")
            num_classes = logits.shape[-1]
            _check_class_count(self.class_weights, logits)
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
            return _reduce(terms, ops.sum(weights), self.reduction)

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


def _reduce(terms, weight, reduction):
    """`terms` unreduced, summed, or summed and divided by `weight` summed over every replica of the step.

    Dividing each replica's sum by the global weight makes the gradients the
    replicas sum equal to one device's on the whole global batch.
    """
    if reduction == "none":
        return terms
    total = ops.sum(terms)
    if reduction == "sum":
        return total
    weight = sum_over_replicas(weight)
    return total / ops.where(weight > 0, weight, 1.0)


class _ClassWeightedLoss(keras.losses.Loss):
    """What the focal and Dice losses share: `ignore_index`, `class_weights`, float32 inputs, counted pixels.

    Args: `ignore_index`, `reduction`, `class_weights`, `name`, as in
    `SegmentationCrossEntropy`.
    """

    def __init__(self, ignore_index, reduction, class_weights, name):
        class_weights = _validate(ignore_index, reduction, class_weights, 1.0, None)
        super().__init__(name=name, reduction=reduction, dtype="float32")
        self.ignore_index = ignore_index
        self.class_weights = class_weights

    def _pixels(self, y_true, y_pred, sample_weight):
        """`(float32 logits, class ids with 0 where not counted, per-pixel float32 sample weights, 0 there)`."""
        logits = ops.cast(ops.convert_to_tensor(y_pred), "float32")
        labels = ops.cast(ops.convert_to_tensor(y_true), "int32")
        num_classes = logits.shape[-1]
        _check_class_count(self.class_weights, logits)
        valid = valid_pixels(labels, num_classes, self.ignore_index)
        weights = ops.cast(valid, "float32")
        if sample_weight is not None:
            weights = weights * per_pixel(ops.cast(ops.convert_to_tensor(sample_weight), "float32"))
        return logits, ops.where(valid, labels, 0), weights

    def get_config(self):
        return {**super().get_config(), "ignore_index": self.ignore_index, "class_weights": self.class_weights}


def _non_negative(name, value):
    """`value` as a float, refusing anything but a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"`{name}` must be a finite number >= 0. Received {name}={value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="keras_fcn")
class SegmentationFocalLoss(_ClassWeightedLoss):
    """Per-pixel softmax focal loss that skips ignored pixels (Lin et al., ICCV 2017).

    Focal loss (Lin, Goyal, Girshick, He and Dollar, "Focal Loss for Dense
    Object Detection", ICCV 2017, equation 5) scales the cross-entropy of
    each pixel by `(1 - p_t) ** gamma`, so well-classified pixels (large
    `p_t`) count less. Here, for the softmax over the classes, each pixel `p`
    with a class label `y_p` contributes

        `w_p * -(1 - p_t) ** gamma * log(p_t)`,  `p_t = softmax(logits_p)[y_p]`,

    where `w_p` is the class weight of `y_p` (the paper's `alpha_t`, per
    class) times the sample weight of `p`, both 1 by default. `gamma=0` is
    `SegmentationCrossEntropy`; the paper finds `gamma=2` best.

    Pixels and reductions are as in `SegmentationCrossEntropy`: pixels
    labelled `ignore_index` (255) or outside `[0, num_classes)` contribute
    nothing; `reduction="mean"` divides the sum of the terms by the total
    weight `sum_p w_p` of the valid pixels of the batch (their number when
    unweighted; the paper divides by the number of anchors assigned to
    objects, which has no counterpart here), `"sum"` returns the sum and
    `"none"` the per-pixel terms, zero where ignored. Computed in float32
    whatever the dtype of the logits.

    Args:
        gamma: float >= 0, the focusing parameter. Defaults to 2.
        ignore_index: int or None, the label of pixels to skip. Defaults to
            255.
        reduction: `"mean"` (default), `"sum"` or `"none"`, see above.
        class_weights: None or a sequence of `num_classes` non-negative
            numbers, the weight of each class's pixels (`alpha_t`).
        name: str, the loss's name.

    Call arguments:
        y_true: integer labels of shape `(batch, H, W)`, any integer or float
            dtype.
        y_pred: logits of shape `(batch, H, W, num_classes)`, any float dtype.
        sample_weight: optional weights broadcastable to `(batch, H, W)`.

    Returns:
        A float32 scalar, or a `(batch, H, W)` float32 tensor for
        `reduction="none"`.

    Raises:
        ValueError: for an argument outside the ranges above, or class
            weights of another length than the logits' classes.

    Example:

    >>> loss = keras_fcn.losses.SegmentationFocalLoss(gamma=2)
    >>> labels = np.array([[[0, 255]]], dtype="uint8")
    >>> logits = np.array([[[[0.0, 0.0], [5.0, 0.0]]]])
    >>> float(loss(labels, logits))  # (1 - 1/2)**2 * log(2): the 255 pixel is skipped
    0.1732...
    """

    def __init__(
        self, gamma=2.0, ignore_index=IGNORE_LABEL, reduction="mean", class_weights=None, name="segmentation_focal_loss"
    ):
        super().__init__(ignore_index, reduction, class_weights, name)
        self.gamma = _non_negative("gamma", gamma)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            logits, labels, weights = self._pixels(y_true, y_pred, sample_weight)
            if self.class_weights is not None:
                weights = weights * ops.take(ops.convert_to_tensor(self.class_weights, "float32"), labels)
            log_p = ops.squeeze(
                ops.take_along_axis(ops.log_softmax(logits, axis=-1), ops.expand_dims(labels, -1), axis=-1), -1
            )
            # (1 - p_t) ** gamma, with the gradient 0 rather than NaN where p_t rounds to 1 and gamma < 1.
            miss = -ops.expm1(log_p)
            missed = miss > 0
            modulation = ops.where(missed, ops.power(ops.where(missed, miss, 1.0), self.gamma), 0.0**self.gamma)
            return _reduce(-modulation * log_p * weights, ops.sum(weights), self.reduction)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="keras_fcn")
class SegmentationDiceLoss(_ClassWeightedLoss):
    """Soft Dice loss over the classes of a softmax, skipping ignored pixels (Milletari et al., 3DV 2016).

    V-Net (Milletari, Navab and Ahmadi, "V-Net: Fully Convolutional Neural
    Networks for Volumetric Medical Image Segmentation", 3DV 2016, section 3)
    trains on the soft Dice coefficient of the foreground,
    `D = 2 sum_i p_i g_i / (sum_i p_i**2 + sum_i g_i**2)`, with `p_i` the
    predicted probability and `g_i` the binary label of voxel `i`. For
    `num_classes` classes this loss takes, for each class `c`, `P_pc` the
    softmax probability of class `c` at pixel `p` and `G_pc = [y_p == c]`,
    with sums over every counted pixel of the whole batch (not per image):

        `D_c = (2 sum_p s_p P_pc G_pc + smooth) / (sum_p s_p (P_pc**2 + G_pc**2) + smooth)`

    where `s_p` is the sample weight of `p` (1 by default, 0 for pixels
    labelled `ignore_index` or outside `[0, num_classes)`), and the loss of
    class `c` is `w_c * (1 - D_c)` with `w_c` its class weight (1 by
    default). `reduction="mean"` returns `sum_c w_c (1 - D_c) / sum_c w_c`,
    one minus the (weighted) mean Dice over the classes; `"sum"` returns
    `sum_c w_c (1 - D_c)`; `"none"` the per-class losses, shape
    `(num_classes,)`. `smooth=0` is V-Net's coefficient; the default
    `smooth=1` (in pixels) makes a class absent from a batch's labels
    count `1 - 1 / (1 + sum_p s_p P_pc**2)`, so its false positives are
    penalised, where with `smooth=0` its Dice is 0 whatever the prediction.
    With no pixel counted, every class has Dice 1 and the loss is 0.

    Being a ratio of sums over the batch, the loss depends on which images
    share a batch, unlike the per-pixel losses. Under a `tf.distribute`
    strategy each replica computes the Dice of its part of the batch and
    the replicas' values are averaged. Computed in float32 whatever the
    dtype of the logits.

    Args:
        smooth: float >= 0, added to the numerator and denominator of every
            class's Dice, in (weighted) pixels. Defaults to 1.
        ignore_index: int or None, the label of pixels to skip. Defaults to
            255.
        reduction: `"mean"` (default), `"sum"` or `"none"`, see above.
        class_weights: None or a sequence of `num_classes` non-negative
            numbers, one per class, not all 0.
        name: str, the loss's name.

    Call arguments:
        y_true: integer labels of shape `(batch, H, W)`, any integer or float
            dtype.
        y_pred: logits of shape `(batch, H, W, num_classes)`, any float dtype.
        sample_weight: optional weights broadcastable to `(batch, H, W)`.

    Returns:
        A float32 scalar, or a `(num_classes,)` float32 tensor for
        `reduction="none"`.

    Raises:
        ValueError: for an argument outside the ranges above, or class
            weights of another length than the logits' classes.

    Example:

    >>> loss = keras_fcn.losses.SegmentationDiceLoss(smooth=0)
    >>> labels = np.array([[[0, 1, 255]]], dtype="uint8")
    >>> logits = np.array([[[[9.0, -9.0], [-9.0, 9.0], [0.0, 0.0]]]])
    >>> round(float(loss(labels, logits)), 4)  # both pixels right; the 255 pixel is skipped
    0.0
    """

    def __init__(
        self, smooth=1.0, ignore_index=IGNORE_LABEL, reduction="mean", class_weights=None, name="segmentation_dice_loss"
    ):
        super().__init__(ignore_index, reduction, class_weights, name)
        self.smooth = _non_negative("smooth", smooth)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            logits, labels, weights = self._pixels(y_true, y_pred, sample_weight)
            num_classes = logits.shape[-1]
            weights = ops.expand_dims(weights, -1)
            probabilities = ops.softmax(logits, axis=-1)
            truth = ops.one_hot(labels, num_classes, dtype="float32")
            pixel_axes = tuple(range(len(logits.shape) - 1))
            overlap = ops.sum(weights * probabilities * truth, axis=pixel_axes)
            size = ops.sum(weights * (ops.square(probabilities) + truth), axis=pixel_axes)  # G**2 = G
            numerator, denominator = 2.0 * overlap + self.smooth, size + self.smooth
            dice = ops.where(denominator > 0, numerator / ops.where(denominator > 0, denominator, 1.0), 1.0)
            if self.class_weights is None:
                class_weights = ops.ones((num_classes,), "float32")
            else:
                class_weights = ops.convert_to_tensor(self.class_weights, "float32")
            return _reduce(class_weights * (1.0 - dice), ops.sum(class_weights), self.reduction)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


LOSSES = {
    "cross_entropy": SegmentationCrossEntropy,
    "dice": SegmentationDiceLoss,
    "focal": SegmentationFocalLoss,
}


def get(name, **kwargs):
    """A segmentation loss by its short name, e.g. for a `--loss` option.

    Args:
        name: str, one of `LOSSES`: `"cross_entropy"`
            (`SegmentationCrossEntropy`), `"dice"` (`SegmentationDiceLoss`)
            or `"focal"` (`SegmentationFocalLoss`).
        **kwargs: the constructor arguments of that loss, e.g.
            `class_weights=`, `reduction=`.

    Returns:
        A new instance of the loss.

    Raises:
        ValueError: if `name` is not in `LOSSES`, or `kwargs` holds an
            argument that loss does not take or a value it refuses.

    Example:

    >>> loss = keras_fcn.losses.get("focal", gamma=2, class_weights=weights)
    """
    if name not in LOSSES:
        raise ValueError(f"`name` must be one of {', '.join(LOSSES)}. Received name={name!r}")
    accepted = inspect.signature(LOSSES[name]).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"The {name!r} loss takes the arguments {', '.join(accepted)}. Received {', '.join(unknown)}"
        )
    return LOSSES[name](**kwargs)
