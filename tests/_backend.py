"""Running models in tests the fast way for the current Keras backend."""

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
