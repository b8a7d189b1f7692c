import keras
import numpy as np
import pytest

from keras_fcn.optimizers import CaffeSGD

pytestmark = pytest.mark.floor


@pytest.mark.backend_agnostic
def test_caffe_sgd_doubles_the_bias_rate_with_caffes_momentum():
    # One Dense unit, loss = sum(output) on input x: gradient x for the kernel, 1 for the bias, at every step.
    x = np.array([[1.0, -2.0]], "float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    rate, momentum = 0.1, 0.9
    model.compile(optimizer=CaffeSGD(rate, momentum=momentum), loss=lambda y, p: keras.ops.sum(p))
    for _ in range(2):
        model.train_on_batch(x, np.zeros((1, 1), "float32"))
    # Caffe: v1 = r g, v2 = m v1 + r g = (1 + m) r g; w2 = w0 - v1 - v2 = -(2 + m) r g; biases at rate 2r.
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(kernel[:, 0], -(2 + momentum) * rate * x[0], rtol=1e-6)
    np.testing.assert_allclose(bias, [-(2 + momentum) * 2 * rate], rtol=1e-6)


@pytest.mark.backend_agnostic
def test_caffe_sgd_round_trips_through_its_config():
    optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(CaffeSGD(1e-3, momentum=0.99, bias_learning_rate_multiplier=3)))
    assert isinstance(optimizer, CaffeSGD)
    assert (optimizer.bias_learning_rate_multiplier, float(optimizer.momentum)) == (3.0, 0.99)


@pytest.mark.parametrize("clipping", [{"clipnorm": 1.0}, {"global_clipnorm": 1.0}, {"clipvalue": 0.5}])
def test_caffe_sgd_refuses_gradient_clipping(clipping):
    (name, value), = clipping.items()
    with pytest.raises(ValueError, match=f"Received {{'{name}': {value}}}"):
        CaffeSGD(1e-3, **clipping)
