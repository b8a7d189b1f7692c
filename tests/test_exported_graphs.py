"""The rewrites of exported graphs: channelwise transposed convolutions become one group per channel.

onnx, onnxruntime and openvino (the `onnx` and `openvino` extras) are imported in the tests, as the floors CI job
collects this module without them.
"""

import keras
import numpy as np
import pytest

from keras_fcn.exported_graphs import channelwise_kernels
from keras_fcn.export import write_onnx
from _inference_helpers import assert_float32_logits, random_fcn8s


def _diagonal_kernel(rng, channels, size):
    """A `(C, C, kh, kw)` kernel, zero between different channels, random on the diagonal."""
    kernel = np.zeros((channels, channels, *size), "float32")
    for c in range(channels):
        kernel[c, c] = rng.normal(size=size)
    return kernel


def test_channelwise_kernels_are_the_diagonal_of_a_kernel_that_mixes_no_channels(rng):
    kernel = _diagonal_kernel(rng, 4, (3, 2))
    np.testing.assert_array_equal(channelwise_kernels(kernel), [kernel[c, c] for c in range(4)])
    mixing = kernel.copy()
    mixing[2, 0, 1, 1] = 1e-30  # one product between two channels is not zero
    assert channelwise_kernels(mixing) is None
    assert channelwise_kernels(np.zeros((4, 3, 2, 2))) is None  # 4 -> 3 channels
    assert channelwise_kernels(np.zeros((4, 4, 3))) is None


def _onnx_transposed_convolutions(path):
    import onnx

    proto = onnx.load(path)
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    read = {name for node in proto.graph.node for name in node.input}
    assert set(initializers) <= read, "an initializer no node reads"
    return [
        ({a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}.get("group", 1), initializers.get(node.input[1]))
        for node in proto.graph.node
        if node.op_type == "ConvTranspose"
    ]


def test_onnx_export_computes_each_bilinear_upsampling_per_class(tmp_path, rng):
    import onnxruntime

    model = random_fcn8s(rng, num_classes=5)
    write_onnx(model, str(tmp_path / "fcn.onnx"))
    upsamplings = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    converted = _onnx_transposed_convolutions(str(tmp_path / "fcn.onnx"))
    assert len(converted) == len(upsamplings) >= 3
    for (group, kernel), layer in zip(converted, upsamplings):
        keras_kernel = keras.ops.convert_to_numpy(layer.kernel)  # (kh, kw, out, in)
        assert group == 5 and kernel.shape == (5, 1, *keras_kernel.shape[:2])
        np.testing.assert_array_equal(kernel[:, 0], [keras_kernel[:, :, c, c] for c in range(5)])
    session = onnxruntime.InferenceSession(str(tmp_path / "fcn.onnx"), providers=["CPUExecutionProvider"])
    images = rng.uniform(0, 255, (2, 45, 61, 3)).astype("float32")
    assert_float32_logits(session.run(None, {"images": images})[0], model.predict(images, verbose=0))


def _upsampling_model(kernel):
    """`(batch, H, W, C)` -> a stride-2 transposed convolution with `kernel` (ONNX layout: in, out, kh, kw)."""
    channels = kernel.shape[0]
    inputs = keras.Input((None, None, channels))
    layer = keras.layers.Conv2DTranspose(channels, kernel.shape[2:], strides=2, use_bias=False)
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.transpose(kernel, (2, 3, 1, 0))])
    return model


@pytest.mark.parametrize("mixing", [False, True], ids=["channelwise", "mixing-channels"])
def test_only_transposed_convolutions_that_mix_no_channels_are_grouped(tmp_path, rng, mixing):
    import onnxruntime

    kernel = rng.normal(size=(3, 3, 4, 3)).astype("float32") if mixing else _diagonal_kernel(rng, 3, (4, 3))
    model = _upsampling_model(kernel)
    write_onnx(model, str(tmp_path / "up.onnx"))
    [(group, _)] = _onnx_transposed_convolutions(str(tmp_path / "up.onnx"))
    assert group == (1 if mixing else 3)
    x = rng.normal(size=(1, 5, 7, 3)).astype("float32")
    expected = np.zeros((1, 12, 15, 3), "float32")  # out[2i + a, 2j + b, o] += x[i, j, c] * kernel[c, o, a, b]
    for i in range(5):
        for j in range(7):
            expected[0, 2 * i : 2 * i + 4, 2 * j : 2 * j + 3] += np.einsum("c,coab->abo", x[0, i, j], kernel)
    session = onnxruntime.InferenceSession(str(tmp_path / "up.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"images": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_openvino_export_computes_each_bilinear_upsampling_per_class(tmp_path, rng):
    import openvino

    from keras_fcn.engines import _export_openvino

    model = random_fcn8s(rng, num_classes=5)
    _export_openvino(model, str(tmp_path / "fcn.xml"))
    converted = openvino.Core().read_model(str(tmp_path / "fcn.xml"))
    types = [node.get_type_name() for node in converted.get_ordered_ops()]
    upsamplings = sum(isinstance(layer, keras.layers.Conv2DTranspose) for layer in model.layers)
    assert types.count("GroupConvolutionBackpropData") == upsamplings and "ConvolutionBackpropData" not in types
    compiled = openvino.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    images = rng.uniform(0, 255, (1, 45, 61, 3)).astype("float32")
    assert_float32_logits(compiled(images)[0], model.predict(images, verbose=0))
