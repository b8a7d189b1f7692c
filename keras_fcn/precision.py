"""Copies of a model that compute in another precision (a Keras dtype policy)."""

import keras


def with_dtype_policy(model, policy, *, synchronized_batch_norm=False):
    """A copy of `model`, with the same weights, computing under dtype `policy`.

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

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
