"""SGD as the reference Caffe solvers apply it to the paper's nets: biases learn at twice the rate."""

import keras


@keras.saving.register_keras_serializable(package="keras_fcn")
class CaffeSGD(keras.optimizers.SGD):
    """SGD with momentum whose learning rate is multiplied for biases, as Caffe's `lr_mult` does.

    The reference FCN nets give every convolution's bias `lr_mult: 2` (and
    `decay_mult: 0`: `keras_fcn.train`'s Caffe-style weight decay reaches only
    kernels), so a bias moves by `bias_learning_rate_multiplier *
    learning_rate * gradient` per step (before momentum), a kernel by
    `learning_rate * gradient`. Keras's momentum update (`v = momentum * v -
    rate * g; w = w + v`) is Caffe's for a fixed rate. A variable counts as a
    bias when its name is `"bias"` (every Keras layer names its bias so).
    Gradient clipping is refused: Keras would clip the multiplied gradients.

    Args:
        learning_rate: float or a `keras.optimizers.schedules` schedule.
        momentum: float in `[0, 1)`.
        bias_learning_rate_multiplier: float, the biases' rate multiplier
            (2 in the reference solvers).
        **kwargs: the other `keras.optimizers.SGD` arguments, without
            `clipnorm`, `clipvalue` or `global_clipnorm`.

    Raises:
        ValueError: for a gradient clipping argument.

    Example:

    >>> model.compile(optimizer=keras_fcn.optimizers.CaffeSGD(1e-10, momentum=0.99), loss=...)
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, bias_learning_rate_multiplier=2.0, **kwargs):
        clipping = {name: kwargs[name] for name in ("clipnorm", "clipvalue", "global_clipnorm") if kwargs.get(name)}
        if clipping:
            raise ValueError(
                "CaffeSGD multiplies the biases' gradients before Keras clips gradients, so clipping would "
                f"not be Caffe's (which clips before the rate multiplier): leave it off. Received {clipping}"
            )
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.bias_learning_rate_multiplier = float(bias_learning_rate_multiplier)
        self.bias_mask = None

    def build(self, variables):
        super().build(variables)
        # Which of the variables are biases, in their order: in JAX's stateless steps `apply` gets the
        # gradients alone, and Keras has no public map from a gradient's position back to its variable.
        self.bias_mask = tuple(variable.name == "bias" for variable in variables)

    def apply(self, grads, trainable_variables=None):
        # SGD's update is linear in `learning_rate * gradient` (momentum included), so multiplying a bias's
        # gradient by the multiplier is multiplying its learning rate, as Caffe's `lr_mult` does.
        if trainable_variables is None:
            mask = self.bias_mask
        else:
            trainable_variables = list(trainable_variables)
            mask = [variable.name == "bias" for variable in trainable_variables]
        grads = [
            grad * self.bias_learning_rate_multiplier if grad is not None and is_bias else grad
            for grad, is_bias in zip(grads, mask)
        ]
        return super().apply(grads, trainable_variables)

    def get_config(self):
        return {**super().get_config(), "bias_learning_rate_multiplier": self.bias_learning_rate_multiplier}
