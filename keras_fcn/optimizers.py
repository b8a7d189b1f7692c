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

    Args:
        learning_rate: float or a `keras.optimizers.schedules` schedule.
        momentum: float in `[0, 1)`.
        bias_learning_rate_multiplier: float, the biases' rate multiplier
            (2 in the reference solvers).
        **kwargs: the other `keras.optimizers.SGD` arguments.

    Example:

    >>> model.compile(optimizer=keras_fcn.optimizers.CaffeSGD(1e-10, momentum=0.99), loss=...)
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, bias_learning_rate_multiplier=2.0, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.bias_learning_rate_multiplier = float(bias_learning_rate_multiplier)

    def update_step(self, gradient, variable, learning_rate):
        # The TensorFlow backend passes the backend's own variable: find the Keras variable by index.
        if self._trainable_variables[self._get_variable_index(variable)].name == "bias":
            learning_rate = learning_rate * self.bias_learning_rate_multiplier
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "bias_learning_rate_multiplier": self.bias_learning_rate_multiplier}
