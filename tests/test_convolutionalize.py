import keras
import numpy as np
import pytest

from _helpers import run as _predict
from keras_fcn import convolutionalize

pytestmark = pytest.mark.backend_agnostic


@pytest.mark.parametrize(
    "application",
    [
        keras.applications.VGG16,
        keras.applications.ResNet50,
        keras.applications.MobileNet,
        keras.applications.MobileNetV2,
        keras.applications.EfficientNetV2B0,
    ],
    ids=lambda a: a.__name__,
)
def test_keras_applications_classifier_output_is_kept_at_224(rng, application):
    classifier = application(weights=None)
    net = convolutionalize(classifier)
    x = rng.uniform(0, 255, size=(2, 224, 224, 3)).astype("float32")
    dense = _predict(net, x)
    assert dense.shape == (2, 1, 1, 1000)
    assert np.abs(dense[:, 0, 0] - _predict(classifier, x)).max() < 1e-4
    larger = _predict(net, rng.uniform(0, 255, size=(1, 288, 352, 3)).astype("float32"))
    assert larger.shape == (1, 3, 5, 1000)


def _padding_free_classifier(head):
    """A small classifier with VALID convolutions (total stride 4) on 36x36 inputs."""
    inputs = keras.Input((36, 36, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(12, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    if head == "flatten":
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(16, activation="relu")(x)
        x = keras.layers.Dropout(0.5)(x)
    else:
        x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.floor
@pytest.mark.parametrize("head", ["flatten", "global_pooling"])
def test_each_output_equals_the_classifier_on_its_window(rng, head):
    """The paper's Figure 2: output (i, j) is the classifier on the window at (4i, 4j)."""
    classifier = _padding_free_classifier(head)
    for weight in classifier.weights:
        weight.assign(rng.normal(scale=0.3, size=weight.shape).astype("float32"))
    net = convolutionalize(classifier)
    image = rng.uniform(-1, 1, size=(1, 52, 60, 3)).astype("float32")
    dense = _predict(net, image)[0]
    assert dense.shape == (5, 7, 10)
    windows = np.stack(
        [image[0, 4 * i : 4 * i + 36, 4 * j : 4 * j + 36] for i in range(5) for j in range(7)]
    )
    expected = _predict(classifier, windows).reshape(5, 7, 10)
    np.testing.assert_allclose(dense, expected, atol=1e-5)


@pytest.mark.floor
def test_flatten_dense_becomes_a_valid_convolution_with_the_reshaped_kernel():
    classifier = _padding_free_classifier("flatten")
    net = convolutionalize(classifier)
    dense = classifier.layers[6]
    conv = net.get_layer(dense.name)
    assert isinstance(conv, keras.layers.Conv2D)
    assert conv.kernel_size == (7, 7) and conv.padding == "valid"
    kernel = keras.ops.convert_to_numpy(dense.kernel)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(conv.kernel)[2, 5, 11], kernel[(2 * 7 + 5) * 12 + 11])


def test_the_result_owns_its_weights():
    classifier = _padding_free_classifier("global_pooling")
    net = convolutionalize(classifier, name="dense_net")
    before = [keras.ops.convert_to_numpy(w) for w in net.weights]
    for weight in classifier.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    assert net.name == "dense_net"
    for kept, weight in zip(before, net.weights):
        np.testing.assert_array_equal(kept, keras.ops.convert_to_numpy(weight))


@pytest.mark.floor
def test_rejects_a_headless_model_and_a_non_model():
    inputs = keras.Input((32, 32, 3))
    headless = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs), name="trunk_only")
    with pytest.raises(ValueError, match="no Flatten or global pooling layer.*'trunk_only'"):
        convolutionalize(headless)
    with pytest.raises(TypeError, match="functional keras.Model"):
        convolutionalize("vgg16")
