"""Optimizer presets: the paper's solver and two modern recipes, each a set of named fields.

- `"paper"`: the reference code's solver for its "heavy" nets (paper,
  section 4.3; `voc-fcn*/solver.py`, `net.py`): SGD with momentum 0.99, the
  summed (unnormalized) loss, a fixed learning rate of 1e-10 / 1e-12 / 1e-14
  for FCN-32s / 16s / 8s (1e-10 for the at-once FCN-8s, our choice),
  biases at twice the learning rate (Caffe's `lr_mult: 2`, through
  `keras_fcn.optimizers.CaffeSGD`), and weight decay 5e-4 as Caffe applies
  it: L2 on the kernels only (`decay_mult: 0` for biases), added to the
  gradient before momentum.
- `"sgd"`: SGD with momentum 0.9, the mean loss, learning rate 1e-2 with
  polynomial decay (power 0.9) to 0 over the run, decoupled weight decay
  1e-4 (biases and batch-normalization parameters excluded).
- `"adam"`: Adam (AdamW with weight decay), the mean loss, learning rate
  1e-3 with the same decay, decoupled weight decay 1e-4.
"""

import dataclasses

import keras

from keras_fcn.optimizers import CaffeSGD
from keras_fcn.training.stages import MODELS

POLYNOMIAL_DECAY_POWER = 0.9
# Variables that decoupled weight decay leaves alone: biases and batch-normalization scales and offsets.
NOT_DECAYED = ("bias", "gamma", "beta")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Preset:
    """An optimizer recipe.

    Attributes:
        summary: str, the recipe in a line (for `--help`).
        optimizer: `"sgd"` (`keras_fcn.optimizers.CaffeSGD`) or `"adam"`
            (`keras.optimizers.AdamW` when there is decoupled weight decay,
            else `keras.optimizers.Adam`).
        learning_rate: dict from model name (`"fcn32s"`, ...) to the
            initial learning rate.
        loss_reduction: `"sum"` or `"mean"`, the loss's reduction over
            pixels and images.
        weight_decay: float, the default weight decay.
        coupled_weight_decay: bool; True adds `weight_decay / 2 *
            ||kernel||^2` to the loss (L2 regularization, Caffe's
            `weight_decay`: the gradient gains `weight_decay * kernel`,
            momentum included); False decays the weights by `learning_rate
            * weight_decay` each step outside the gradient (the optimizers'
            decoupled `weight_decay`).
        polynomial_decay: bool, whether the learning rate follows
            `keras.optimizers.schedules.PolynomialDecay` (power 0.9) to 0
            over the run; otherwise it is fixed.
        momentum: float, SGD's momentum.
        bias_learning_rate_multiplier: float, the biases' learning rate
            relative to the kernels' (SGD only).
    """

    summary: str
    optimizer: str
    learning_rate: dict
    loss_reduction: str
    weight_decay: float
    coupled_weight_decay: bool
    polynomial_decay: bool
    momentum: float = 0.0
    bias_learning_rate_multiplier: float = 1.0

    def build_optimizer(self, learning_rate, weight_decay, total_steps):
        """The optimizer of this recipe.

        Args:
            learning_rate: float, the initial learning rate.
            weight_decay: float; decoupled decay when the recipe's is
                (otherwise see `add_coupled_weight_decay`).
            total_steps: int, the run's optimizer steps, over which a
                polynomial decay reaches 0.

        Returns:
            A `keras.optimizers.Optimizer`.
        """
        schedule = learning_rate
        if self.polynomial_decay:
            schedule = keras.optimizers.schedules.PolynomialDecay(
                learning_rate, total_steps, end_learning_rate=0.0, power=POLYNOMIAL_DECAY_POWER
            )
        decoupled = None if self.coupled_weight_decay or not weight_decay else weight_decay
        if self.optimizer == "sgd":
            optimizer = CaffeSGD(
                schedule,
                momentum=self.momentum,
                weight_decay=decoupled,
                bias_learning_rate_multiplier=self.bias_learning_rate_multiplier,
            )
        elif decoupled:
            optimizer = keras.optimizers.AdamW(schedule, weight_decay=decoupled)
        else:
            optimizer = keras.optimizers.Adam(schedule)
        if decoupled:
            optimizer.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
        return optimizer

    def add_coupled_weight_decay(self, model, weight_decay):
        """Caffe's weight decay, when the recipe's is coupled: `weight_decay / 2 * ||kernel||^2` added to the loss.

        Args:
            model: the `keras.Model` to train; its trainable kernels get an
                L2 regularizer (biases none, as `decay_mult: 0` in Caffe).
            weight_decay: float.
        """
        if not (self.coupled_weight_decay and weight_decay):
            return
        regularizer = keras.regularizers.L2(weight_decay / 2)
        for layer in model.layers:
            kernel = getattr(layer, "kernel", None)
            if kernel is not None and kernel.trainable:
                kernel.regularizer = regularizer


PRESETS = {
    "paper": Preset(
        summary="SGD, momentum 0.99, summed loss, fixed rate 1e-10/1e-12/1e-14, biases at 2x, Caffe L2 5e-4",
        optimizer="sgd",
        momentum=0.99,
        learning_rate={"fcn32s": 1e-10, "fcn16s": 1e-12, "fcn8s": 1e-14, "fcn8s_atonce": 1e-10},
        loss_reduction="sum",
        weight_decay=5e-4,
        coupled_weight_decay=True,
        polynomial_decay=False,
        bias_learning_rate_multiplier=2.0,
    ),
    "sgd": Preset(
        summary="SGD, momentum 0.9, mean loss, rate 1e-2 with poly decay, decoupled decay 1e-4",
        optimizer="sgd",
        momentum=0.9,
        learning_rate=dict.fromkeys(MODELS, 1e-2),
        loss_reduction="mean",
        weight_decay=1e-4,
        coupled_weight_decay=False,
        polynomial_decay=True,
    ),
    "adam": Preset(
        summary="Adam(W), mean loss, rate 1e-3 with poly decay, decoupled decay 1e-4",
        optimizer="adam",
        learning_rate=dict.fromkeys(MODELS, 1e-3),
        loss_reduction="mean",
        weight_decay=1e-4,
        coupled_weight_decay=False,
        polynomial_decay=True,
    ),
}
