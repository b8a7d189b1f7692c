"""Caffe files and the reduced-width reference FCN for the converter and zoo tests.

caffemodels are written with the real protobuf library, from a schema built here with caffe.proto's field
numbers, so the package's own wire-format reader and writer are checked against an independent implementation.
`caffe_fcn_blobs` makes random blobs for the reference FCN narrowed to `SMALL_BLOCKS` (see the `small_reference`
fixture in conftest.py), and `np_fcn` runs that net in numpy with Caffe's definitions.
"""

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from _numpy_reference import conv2d, crop, deconv2d, pool2d

# --- caffe.proto's weight-holding messages, built without protoc ---------------------------------------

_F = descriptor_pb2.FieldDescriptorProto


def _field(message, name, number, kind, label=_F.LABEL_OPTIONAL, type_name=None, packed=False):
    field = message.field.add(name=name, number=number, type=kind, label=label)
    if type_name:
        field.type_name = type_name
    if packed:
        field.options.packed = True


def _caffe_schema():
    proto = descriptor_pb2.FileDescriptorProto(name="test_caffe.proto", package="caffe", syntax="proto2")
    repeated = _F.LABEL_REPEATED
    shape = proto.message_type.add(name="BlobShape")
    _field(shape, "dim", 1, _F.TYPE_INT64, repeated, packed=True)
    blob = proto.message_type.add(name="BlobProto")
    _field(blob, "shape", 7, _F.TYPE_MESSAGE, type_name=".caffe.BlobShape")
    _field(blob, "data", 5, _F.TYPE_FLOAT, repeated, packed=True)
    _field(blob, "diff", 6, _F.TYPE_FLOAT, repeated, packed=True)
    _field(blob, "double_data", 8, _F.TYPE_DOUBLE, repeated, packed=True)
    for number, name in enumerate(("num", "channels", "height", "width"), start=1):
        _field(blob, name, number, _F.TYPE_INT32)
    layer = proto.message_type.add(name="LayerParameter")
    _field(layer, "name", 1, _F.TYPE_STRING)
    _field(layer, "type", 2, _F.TYPE_STRING)
    _field(layer, "bottom", 3, _F.TYPE_STRING, repeated)
    _field(layer, "top", 4, _F.TYPE_STRING, repeated)
    _field(layer, "blobs", 7, _F.TYPE_MESSAGE, repeated, type_name=".caffe.BlobProto")
    v1 = proto.message_type.add(name="V1LayerParameter")
    layer_type = v1.enum_type.add(name="LayerType")
    for name, number in (
        ("NONE", 0),
        ("CONVOLUTION", 4),
        ("INNER_PRODUCT", 14),
        ("POOLING", 17),
        ("RELU", 18),
        ("DECONVOLUTION", 39),
    ):
        layer_type.value.add(name=name, number=number)
    _field(v1, "bottom", 2, _F.TYPE_STRING, repeated)
    _field(v1, "top", 3, _F.TYPE_STRING, repeated)
    _field(v1, "name", 4, _F.TYPE_STRING)
    _field(v1, "type", 5, _F.TYPE_ENUM, type_name=".caffe.V1LayerParameter.LayerType")
    _field(v1, "blobs", 6, _F.TYPE_MESSAGE, repeated, type_name=".caffe.BlobProto")
    net = proto.message_type.add(name="NetParameter")
    _field(net, "name", 1, _F.TYPE_STRING)
    _field(net, "layers", 2, _F.TYPE_MESSAGE, repeated, type_name=".caffe.V1LayerParameter")
    _field(net, "layer", 100, _F.TYPE_MESSAGE, repeated, type_name=".caffe.LayerParameter")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe.NetParameter"))


NetParameter = _caffe_schema()
V1_TYPES = {"Convolution": 4, "Deconvolution": 39, "InnerProduct": 14, "ReLU": 18}


def protobuf_caffemodel(layers, *, legacy=False, double=False):
    """Serializes `[(name, type, [arrays])]` with the protobuf library, as Caffe would."""
    net = NetParameter(name="test")
    for name, layer_type, blobs in layers:
        if legacy:
            layer = net.layers.add(name=name, type=V1_TYPES[layer_type], bottom=["in"], top=[name])
        else:
            layer = net.layer.add(name=name, type=layer_type, bottom=["in"], top=[name])
        for array in blobs:
            blob = layer.blobs.add()
            if legacy:
                blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - array.ndim) + array.shape
            else:
                blob.shape.dim.extend(array.shape)
            (blob.double_data if double else blob.data).extend(array.ravel().tolist())
    return net.SerializeToString()


# --- the reduced-width reference FCN -----------------------------------------------------------------

SMALL_BLOCKS = ((1, 2, 3), (2, 2, 4), (3, 3, 4), (4, 3, 5), (5, 3, 5))
SMALL_FC = 6
MEAN_BGR = np.array([104.00699, 116.66877, 122.67892], np.float32)  # the paper's mean (fcn-paper.md)


def caffe_fcn_blobs(num_classes, stride, seed=0, scales=False):
    """Random blobs for the reference FCN in Caffe's layout: name -> (type, [blobs])."""
    rng = np.random.default_rng(seed)

    def conv(out, inp, k):
        return (
            "Convolution",
            [
                rng.standard_normal((out, inp, k, k)).astype(np.float32) * 0.3,
                rng.standard_normal(out).astype(np.float32),
            ],
        )

    def deconv(k):
        return (
            "Deconvolution",
            [rng.standard_normal((num_classes, num_classes, k, k)).astype(np.float32) * 0.3],
        )

    blobs, channels = {}, 3
    for block, count, filters in SMALL_BLOCKS:
        for index in range(1, count + 1):
            blobs[f"conv{block}_{index}"] = conv(filters, channels, 3)
            channels = filters
    blobs["fc6"] = conv(SMALL_FC, channels, 7)
    blobs["fc7"] = conv(SMALL_FC, SMALL_FC, 1)
    blobs["score_fr"] = conv(num_classes, SMALL_FC, 1)
    if stride <= 16:
        blobs["upscore2"] = deconv(4)
        blobs["score_pool4"] = conv(num_classes, SMALL_BLOCKS[3][2], 1)
    if stride == 8:
        blobs["upscore_pool4"] = deconv(4)
        blobs["score_pool3"] = conv(num_classes, SMALL_BLOCKS[2][2], 1)
    blobs[{32: "upscore", 16: "upscore16", 8: "upscore8"}[stride]] = deconv(2 * stride)
    if scales:
        blobs["scale_pool4"] = ("Scale", [np.full(SMALL_BLOCKS[3][2], 0.01, np.float32)])
        blobs["scale_pool3"] = ("Scale", [np.full(SMALL_BLOCKS[2][2], 0.0001, np.float32)])
    return blobs


def np_fcn(image_rgb, blobs, stride, scales=None, mean=MEAN_BGR, bgr=True):
    """The reference FCN narrowed to `SMALL_BLOCKS`, in numpy with Caffe's layers (tests/_numpy_reference.py).

    The paper's section 4 nets and fcn-paper.md's crop offsets, on one RGB image (h, w, 3) with `blobs` from
    `caffe_fcn_blobs`; `scales` multiply the pool4 and pool3 taps as FCN-8s at-once does. Returns the scores
    (h, w, classes), float64.
    """
    x = (image_rgb[..., ::-1] if bgr else image_rgb) - mean
    taps = {}
    for block, count, _ in SMALL_BLOCKS:
        for index in range(1, count + 1):
            weight, bias = blobs[f"conv{block}_{index}"][1]
            x = np.maximum(conv2d(x, weight, bias, pad=100 if (block, index) == (1, 1) else 1), 0)
        x = pool2d(x, 2, 2, ceil_mode=True)
        taps[f"pool{block}"] = x
    x = np.maximum(conv2d(x, *blobs["fc6"][1]), 0)
    x = np.maximum(conv2d(x, *blobs["fc7"][1]), 0)
    scores = conv2d(x, *blobs["score_fr"][1])
    skips = {
        32: [],
        16: [("upscore2", "pool4", 5)],
        8: [("upscore2", "pool4", 5), ("upscore_pool4", "pool3", 9)],
    }[stride]
    for up_name, pool, offset in skips:
        scores = deconv2d(scores, blobs[up_name][1][0], 2)
        tap = taps[pool] * (scales[pool] if scales else 1.0)
        skip = conv2d(tap, *blobs[f"score_{pool}"][1])
        scores = scores + crop(skip, offset, scores.shape[:2])
    final_name, final_offset = {32: ("upscore", 19), 16: ("upscore16", 27), 8: ("upscore8", 31)}[stride]
    scores = deconv2d(scores, blobs[final_name][1][0], stride)
    return crop(scores, final_offset, image_rgb.shape[:2])


def assert_weights_equal_blobs(model, blobs):
    """Each layer named in `blobs` (name -> (type, arrays)) holds its arrays exactly, kernels in Keras's layout."""
    for name, (_, arrays) in blobs.items():
        weights = model.get_layer(name).get_weights()
        assert len(weights) == len(arrays), name
        # Keras kernels are (kh, kw, in, out) for Conv2D and (kh, kw, out, in) for Conv2DTranspose.
        np.testing.assert_array_equal(weights[0], np.transpose(arrays[0], (2, 3, 1, 0)))
        for got, want in zip(weights[1:], arrays[1:]):
            np.testing.assert_array_equal(got, want)
