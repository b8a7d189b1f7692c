"""The FCN reference VGG16 trunk, layer for layer as in the authors' Caffe nets."""

import re

import keras

# (block, convolutions, filters) of VGG16.
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
# Zero padding of conv1_1, which lets any input size give an output at least as large.
CONV1_1_PADDING = 100


def reference_vgg16_trunk(x):
    """Applies the reference net's conv1_1 ... pool5 to `x`.

    conv1_1 pads by 100 and convolves VALID, every other 3x3 convolution pads
    by 1, and max pooling rounds up (Caffe's ceil mode: TensorFlow's "same"
    pooling with a 2x2 window and stride 2 pads only the bottom and right and
    ignores the padding, which is the same thing). Layer names follow the
    reference: `conv1_1` ... `conv5_3`, `pool1` ... `pool5`.

    Args:
        x: tensor `(batch, h, w, 3)`, BGR minus the reference mean.

    Returns:
        The pool5 tensor `(batch, ceil((h + 198) / 32), ceil((w + 198) / 32), 512)`;
        the pool3 and pool4 layers are reachable by name.
    """
    x = keras.layers.ZeroPadding2D(CONV1_1_PADDING, name="conv1_1_pad")(x)
    for block, convolutions, filters in VGG16_BLOCKS:
        for index in range(1, convolutions + 1):
            x = keras.layers.Conv2D(
                filters,
                3,
                padding="valid" if (block, index) == (1, 1) else "same",
                activation="relu",
                name=f"conv{block}_{index}",
            )(x)
        x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{block}")(x)
    return x


def keras_vgg16_name(reference_name):
    """Maps a reference layer name to its Keras Applications VGG16 name (conv1_1 -> block1_conv1, fc6 -> fc1)."""
    convolution = re.fullmatch(r"conv(\d)_(\d)", reference_name)
    if convolution:
        return "block{}_conv{}".format(*convolution.groups())
    return {"fc6": "fc1", "fc7": "fc2"}.get(reference_name, reference_name)
