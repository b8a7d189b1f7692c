"""Turn a classifier's fully connected head into convolutions (paper, section 3.1)."""

import keras

from keras_fcn.graph import producers


def _spatial_shape(tensor, layer):
    height, width = tensor.shape[1:3]
    if height is None or width is None:
        raise ValueError(
            "convolutionalize() needs the classifier's feature map size before "
            f"layer '{layer.name}' to be static, as it is for a Keras Applications "
            f"model built with include_top=True. Received shape {tuple(tensor.shape)}"
        )
    return height, width


_GLOBAL_POOLING = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)


class _HeadRewriter:
    """Maps each classifier layer to the layer that replaces it in the fully convolutional net.

    The head starts at the classifier's last Flatten or global pooling layer
    (earlier global poolings, such as squeeze-and-excitation ones, stay as they
    are). In the head, Flatten becomes the identity and the Dense right after it an `(h, w)` VALID
    convolution; a global pooling becomes a stride-1 pooling over the window it
    used to cover; later Dense layers become 1x1 convolutions; a Reshape that
    only drops the `1x1` spatial dimensions becomes the identity. Every other
    layer is cloned from its config. The map from kernel to kernel is recorded
    so that the weights can be copied once the new layers are built.
    """

    def __init__(self, classifier):
        self.producers = producers(classifier)
        starts = [
            index
            for index, layer in enumerate(classifier.layers)
            if isinstance(layer, (keras.layers.Flatten, *_GLOBAL_POOLING))
        ]
        if not starts:
            raise ValueError(
                "convolutionalize() found no Flatten or global pooling layer in "
                f"classifier '{classifier.name}': build it with include_top=True."
            )
        self.head = {layer.name for layer in classifier.layers[starts[-1] :]}
        self.dense_to_conv = {}

    def __call__(self, layer):
        if layer.name not in self.head:
            return layer.__class__.from_config(layer.get_config())
        if isinstance(layer, keras.layers.Flatten):
            return keras.layers.Identity(name=layer.name)
        if isinstance(layer, _GLOBAL_POOLING):
            pooling = (
                keras.layers.AveragePooling2D
                if isinstance(layer, keras.layers.GlobalAveragePooling2D)
                else keras.layers.MaxPooling2D
            )
            return pooling(pool_size=_spatial_shape(layer.input, layer), strides=1, name=layer.name)
        if isinstance(layer, keras.layers.Dense):
            source = self.producers.get(id(layer.input))
            if isinstance(source, keras.layers.Flatten):
                kernel_size = _spatial_shape(source.input, layer)
            else:
                kernel_size = (1, 1)
            config = layer.get_config()
            conv = keras.layers.Conv2D(
                filters=layer.units,
                kernel_size=kernel_size,
                activation=config["activation"],
                use_bias=layer.use_bias,
                name=layer.name,
                dtype=config.get("dtype"),
            )
            self.dense_to_conv[layer.name] = conv
            return conv
        if isinstance(layer, keras.layers.Reshape) and len(layer.target_shape) == 1:
            return keras.layers.Identity(name=layer.name)
        return layer.__class__.from_config(layer.get_config())


def convolutionalize(classifier, name=None):
    """Casts a classifier into a fully convolutional network that keeps its weights.

    The paper's section 3.1: a fully connected layer is a convolution whose
    kernel covers its whole input. A Flatten + Dense head (VGG16, VGG19)
    becomes an `h x w` VALID convolution over the last `h x w x c` feature map
    followed by 1x1 convolutions; a global-pooling head (ResNet, MobileNet,
    EfficientNet, ConvNeXt) becomes a stride-1 pooling over the `h x w` window
    the classifier saw, followed by 1x1 convolutions. Dense kernels are
    reshaped, never retrained.

    At the classifier's own input size the result outputs a `1 x 1` map equal
    to the classifier's output; on a larger image it outputs a map of class
    scores, one per `h x w` window of the last feature map (the paper's
    Figure 2). For a classifier without zero padding each of these equals the
    classifier applied to the matching input window; Keras Applications nets
    pad their convolutions, so windows agree in their interior and differ
    near their borders.

    Args:
        classifier: a functional `keras.Model` with a static input size, for
            example `keras.applications.VGG16(include_top=True)`.
        name: name of the returned model; defaults to
            `"<classifier name>_fully_conv"`.

    Returns:
        A new functional `keras.Model` with its own copy of the weights,
        mapping `(batch, None, None, channels)` images to
        `(batch, rows, cols, classes)` scores in the classifier's output
        activation (softmax probabilities for Keras Applications).

    Example:

    >>> vgg = keras.applications.VGG16(weights=None)
    >>> net = keras_fcn.convolutionalize(vgg)
    >>> net(np.zeros((1, 288, 352, 3))).shape
    (1, 3, 5, 1000)
    """
    rewriter = _HeadRewriter(classifier)
    channels = classifier.input.shape[-1]
    inputs = keras.Input(shape=(None, None, channels), name=classifier.input.name)
    rewritten = keras.models.clone_model(classifier, input_tensors=inputs, clone_function=rewriter)
    model = keras.Model(inputs, rewritten.outputs, name=name or f"{classifier.name}_fully_conv")
    for layer in classifier.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        target = model.get_layer(layer.name)
        if layer.name in rewriter.dense_to_conv:
            kernel, *rest = weights
            weights = [kernel.reshape(target.kernel.shape), *rest]
        target.set_weights(weights)
    return model
