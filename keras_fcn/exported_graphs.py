"""Rewrites of exported graphs (ONNX, OpenVINO) that compute the same logits with less work.

An FCN's bilinear upsampling (the reference's `upscore` layers,
`keras_fcn.heads`) is a transposed convolution from the `C` class scores to
themselves whose kernel is bilinear on its diagonal and zero elsewhere (paper,
section 3.3). Keras, TensorFlow and the converters keep it dense: each output
sums `C` inputs of which `C - 1` are multiplied by zero. As one group per
channel, with the `C` diagonal kernels, the same node computes the same sums
from the one non-zero product each: `C` times fewer multiplications (the
bundled `camvid` model: `benchmarks/inference.py`).
"""

import numpy as np


def channelwise_kernels(kernel):
    """The per-channel kernels of a `C -> C` transposed convolution that mixes no channels, else None.

    Args:
        kernel: array of shape `(C, C, kh, kw)`, input channels first
            (ONNX's and OpenVINO's layout).

    Returns:
        None, or the array of shape `(C, kh, kw)` of `kernel[c, c]`: when
        `kernel[i, j]` is zero wherever `i != j`.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] < 2:
        return None
    if np.any(kernel[~np.eye(kernel.shape[0], dtype=bool)]):
        return None
    channels = np.arange(kernel.shape[0])
    return np.ascontiguousarray(kernel[channels, channels])


def group_onnx_transposed_convolutions(graph):
    """Makes each channelwise ConvTranspose of an ONNX graph one group per channel.

    A ConvTranspose (group 1) whose kernel is a constant (an
    initializer, through Transposes) and `channelwise_kernels` gets
    `group = C` and the `(C, 1, kh, kw)` kernel; a dense kernel no node reads
    any more is removed with the Transposes that made it. Other nodes are
    left as they are.

    Args:
        graph: an `onnx.GraphProto`, rewritten in place.

    Returns:
        list of the names of the nodes rewritten.
    """
    from onnx import helper, numpy_helper

    initializers = {initializer.name: initializer for initializer in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    rewritten = []
    for node in graph.node:
        if node.op_type != "ConvTranspose" or len(node.input) < 2 or _onnx_attribute(node, "group", 1) != 1:
            continue
        kernel = _onnx_constant(node.input[1], initializers, producers)
        kernels = None if kernel is None else channelwise_kernels(kernel)
        if kernels is None:
            continue
        name = f"{node.name}/channelwise_kernel"
        graph.initializer.append(numpy_helper.from_array(kernels[:, None], name))
        dense, node.input[1] = node.input[1], name
        for attribute in [attribute for attribute in node.attribute if attribute.name == "group"]:
            node.attribute.remove(attribute)
        node.attribute.append(helper.make_attribute("group", len(kernels)))
        _remove_if_unread(graph, dense, initializers, producers)
        rewritten.append(node.name)
    return rewritten


def group_openvino_transposed_convolutions(model):
    """Makes each channelwise ConvolutionBackpropData of an OpenVINO model a GroupConvolutionBackpropData.

    A ConvolutionBackpropData whose kernel is a Constant and
    `channelwise_kernels` becomes a GroupConvolutionBackpropData with the
    same attributes and output shape and the `(C, 1, 1, kh, kw)` kernel.

    Args:
        model: an `openvino.Model`, rewritten in place.

    Returns:
        list of the friendly names of the nodes rewritten.
    """
    import openvino.opset13 as opset

    rewritten = []
    for node in model.get_ordered_ops():
        if node.get_type_name() != "ConvolutionBackpropData":
            continue
        source = node.input_value(1).get_node()
        kernels = channelwise_kernels(source.get_data()) if source.get_type_name() == "Constant" else None
        if kernels is None:
            continue
        attributes = node.get_attributes()
        grouped = opset.group_convolution_backprop_data(
            node.input_value(0),
            opset.constant(kernels[:, None, None]),
            attributes["strides"],
            node.input_value(2) if node.get_input_size() > 2 else None,
            attributes["pads_begin"],
            attributes["pads_end"],
            attributes["dilations"],
            attributes["auto_pad"],
            attributes["output_padding"],
        )
        grouped.set_friendly_name(node.get_friendly_name())
        node.output(0).replace(grouped.output(0))
        rewritten.append(node.get_friendly_name())
    return rewritten


def inputs_used(graph):
    """The names of all values read by the nodes of an `onnx.GraphProto` and of its subgraphs."""
    names = set()
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                names |= inputs_used(subgraph)
    return names


def _onnx_attribute(node, name, default):
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _onnx_constant(name, initializers, producers):
    """The value of `name` if it is an initializer or Transposes of one, else None."""
    from onnx import numpy_helper

    if name in initializers:
        return numpy_helper.to_array(initializers[name])
    node = producers.get(name)
    if node is None or node.op_type != "Transpose":
        return None
    value = _onnx_constant(node.input[0], initializers, producers)
    return None if value is None else np.transpose(value, _onnx_attribute(node, "perm", None))


def _remove_if_unread(graph, name, initializers, producers):
    """Removes the value `name` if nothing reads it: its initializer, or its Transpose and what only that read."""
    if name in inputs_used(graph) or name in {output.name for output in graph.output}:
        return
    if name in initializers:
        graph.initializer.remove(initializers.pop(name))
    elif name in producers:
        node = producers.pop(name)
        graph.node.remove(node)
        _remove_if_unread(graph, node.input[0], initializers, producers)
