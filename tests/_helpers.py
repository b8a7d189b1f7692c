"""Helpers shared by the model tests."""

import keras


def run(model, x):
    """Runs `model` on `x` for inference and returns numpy.

    Eagerly on TensorFlow (no tracing per input size); compiled on JAX, where
    eager execution compiles every operation separately and is several times
    slower for a whole backbone.
    """
    if keras.backend.backend() == "jax":
        return keras.ops.convert_to_numpy(model.predict_on_batch(x))
    return keras.ops.convert_to_numpy(model(x, training=False))


def randomize(model, layer_names, rng, scale=1.0):
    """Gives layers random normal weights, as training would (score layers start at zero)."""
    for name in layer_names:
        layer = model.get_layer(name)
        layer.set_weights([rng.normal(scale=scale, size=w.shape).astype("float32") for w in layer.get_weights()])
