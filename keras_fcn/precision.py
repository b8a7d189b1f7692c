"""Copies of a model that compute in another precision (a Keras dtype policy), and what a model computes in."""

import keras


def all_layers(model):
    """Every layer of `model`, those of nested models included (depth first), without the input layers.

    Args:
        model: a `keras.Model` (or any layer; a layer without `layers` has
            none).

    Returns:
        A list of layers.
    """
    layers = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        layers.append(layer)
        layers.extend(all_layers(layer))
    return layers


def dtype_policies(model):
    """The names of the dtype policies `model` and each of its layers compute under.

    A model saved after mixed-precision training keeps each layer's policy
    (e.g. `"mixed_bfloat16"`) while the reloaded model's own policy is the
    global one, so the model's policy alone does not say how it computes.

    Args:
        model: a `keras.Model`.

    Returns:
        A set of policy names, e.g. `{"float32"}` for a model that computes
        in float32 throughout.
    """
    return {model.dtype_policy.name} | {layer.dtype_policy.name for layer in all_layers(model)}


def as_float32(model):
    """`model` itself when it and all its layers compute in float32, else its float32 copy (`with_dtype_policy`)."""
    return model if dtype_policies(model) == {"float32"} else with_dtype_policy(model, "float32")


def with_dtype_policy(model, policy, *, synchronized_batch_norm=False):
    """A copy of `model`, with the same weights, every layer computing under dtype `policy`.

    Layers of nested models are cloned too, so that no layer keeps the
    policy it was built or saved with.

    Args:
        model: a functional `keras.Model`.
        policy: str, a Keras dtype policy name, e.g. `"float32"` or
            `"mixed_bfloat16"` (bfloat16 compute, float32 weights; the
            outputs of the builders' models stay float32).
        synchronized_batch_norm: bool; True makes the batch normalization
            layers compute their batch statistics over the global batch,
            across replicas, so that a step on `N` replicas is the step one
            device takes on the whole batch.

    Returns:
        A new functional `keras.Model` with the same layers, names and
        weight values.
    """

    def clone(layer):
        config = {**layer.get_config(), "dtype": policy}
        if synchronized_batch_norm and isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy
