"""Which layer outputs each tensor of a functional Keras model, read through public attributes only.

Keras keeps a functional model's graph in private node objects. Its public
face is each layer's `input` and `output`, the tensors of the layer's first
call, and a tensor is the same object as output of one layer and input of
the next. That is enough to walk a model whose layers are each called once.
"""

import keras


def producers(model):
    """Maps each tensor of a functional model's graph to the layer that outputs it.

    Args:
        model: a functional `keras.Model` (built from `keras.Input`).

    Returns:
        dict from `id(tensor)` to the `keras.layers.Layer` whose first call
        outputs the tensor, for every layer of `model` (input layers
        included). A tensor output by a later call of a layer called more
        than once (a shared layer, a nested model) has no entry.

    Raises:
        TypeError: for anything else than a functional `keras.Model`.
    """
    if not isinstance(model, keras.Model) or not isinstance(model, keras.Function):
        raise TypeError(
            "Expected a functional keras.Model (built from keras.Input, such as a Keras Applications "
            f"model). Received: {model!r}"
        )
    return {id(tensor): layer for layer in model.layers for tensor in keras.tree.flatten(layer.output)}
