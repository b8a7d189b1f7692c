"""Where an FCN-8s puts the scores of each map, and the receptive-field centre of the cells scored, measured
without keras_fcn.geometry (tests/test_receptive_fields.py says how).

`measure(model)` measures the receptive field of a cell in the middle of each probed map as the support of the
input gradient of a linearised float64 copy of the trunk, and where the head puts that cell as the centre of
mass of the head's response to a unit score there.
"""

import math

import keras
import numpy as np
import tensorflow as tf

import keras_fcn
from keras_fcn.architecture import recorded_tensors

WIDTH = 64
HEIGHTS = (256, 512, 1024, 2048, 4096)
# Maps probed: (stride, the recorded tensor the cell is read from, its score map).
MAPS = ((8, "pool3", "score_pool3"), (16, "pool4", "score_pool4"), (32, "features", "score_fr"))
IDENTITY_LAYERS = (
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.PReLU,
    keras.layers.Softmax, keras.layers.BatchNormalization, keras.layers.LayerNormalization,
    keras.layers.Normalization, keras.layers.Rescaling, keras.layers.Dropout, keras.layers.SpatialDropout2D,
    keras_fcn.layers.InputNormalization, keras_fcn.alexnet.LocalResponseNormalization,
)  # fmt: skip
IDENTITY_CLASS_NAMES = ("LayerScale", "StochasticDepth")


class _Identity(keras.layers.Layer):
    """Returns its input; takes whatever arguments the layer it stands for was called with (`training`, `mask`)."""

    def call(self, inputs, **kwargs):
        return inputs


def _linearise(layer):
    """The linearised float64 stand-in for one layer (see the module docstring); operations are kept."""
    if isinstance(layer, keras.Sequential):
        return keras.Sequential([_linearise(inner) for inner in layer.layers], name=layer.name)
    if not isinstance(layer, keras.layers.Layer):
        return layer
    if isinstance(layer, IDENTITY_LAYERS) or type(layer).__name__ in IDENTITY_CLASS_NAMES:
        return _Identity(name=layer.name, dtype="float64")
    if isinstance(layer, (keras.layers.Multiply, keras.layers.Concatenate)):
        return keras.layers.Add(name=layer.name, dtype="float64")
    if isinstance(layer, keras.layers.MaxPooling2D):
        return keras.layers.AveragePooling2D(
            layer.pool_size, layer.strides, layer.padding, name=layer.name, dtype="float64"
        )
    if isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)):
        keepdims = layer.keepdims
        return keras.layers.Lambda(
            lambda x: keras.ops.stop_gradient(keras.ops.mean(x, axis=(1, 2), keepdims=keepdims)),
            name=layer.name,
            dtype="float64",
        )
    config = {**layer.get_config(), "dtype": "float64"}
    if "activation" in config:
        config["activation"] = "linear"
    # Channel counts do not change where a cell looks: four channels (per group) keep the copy cheap.
    if "filters" in config:
        config["filters"] = 4
    if "groups" in config:
        config["groups"] = math.gcd(config["groups"], 4)
    if "units" in config:
        config["units"] = 4
    if isinstance(layer, keras.layers.Reshape):
        config["target_shape"] = (*config["target_shape"][:-1], -1)
    return layer.__class__.from_config(config)


def _positive_weights(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _positive_weights(layer)
        elif layer.weights:
            layer.set_weights(
                [np.full(w.shape, 1.0 / np.prod(w.shape[:-1])) if len(w.shape) > 1 else np.zeros(w.shape) for w in layer.weights]
            )


def _support_rows(trunk, height, output_index):
    """(first, last) image row whose gradient reaches the middle cell of a map, that cell, and the maps' shapes."""
    image = tf.ones((1, height, WIDTH, 3), "float64")
    with tf.GradientTape() as tape:
        tape.watch(image)
        outputs = trunk(image)
        output = outputs[output_index]
        cell = output.shape[1] // 2
        target = tf.reduce_sum(output[0, cell, output.shape[2] // 2])
    rows = np.flatnonzero(np.abs(tape.gradient(target, image).numpy()[0]).sum(axis=(1, 2)) > 0)
    return rows[0], rows[-1], cell, [tuple(o.shape[1:3]) for o in outputs]


def _head_centre(head, score_shapes, height, role, cell):
    """Centre of mass, along the rows, of the logits when the head gets one unit score at `cell` of `role`."""
    scores = {name: np.zeros((1, *shape), "float32") for name, shape in score_shapes.items()}
    scores[role][0, cell, score_shapes[role][1] // 2, 0] = 1.0
    logits = head([np.zeros((1, height, WIDTH, 3), "float32"), *scores.values()])
    profile = keras.ops.convert_to_numpy(logits)[0, :, :, 0].sum(axis=1)
    assert profile[0] == profile[-1] == 0, "the response reaches the image's edge"
    return (np.arange(height) * profile).sum() / profile.sum()


def measure(model):
    """For each probed map of an FCN-8s: (stride, receptive-field centre, where the head puts it), in pixels."""
    tensors = recorded_tensors(model)
    trunk = keras.models.clone_model(
        keras.Model(model.input, [tensors[name] for _, name, _ in MAPS]), clone_function=_linearise
    )
    _positive_weights(trunk)
    roles = [role for _, _, role in MAPS]
    head = keras.Model([model.input, *(tensors[role] for role in roles)], tensors["logits"])
    results, heights = [], list(HEIGHTS)
    for index, (stride, _, role) in enumerate(MAPS):
        while heights:
            first, last, cell, shapes = _support_rows(trunk, heights[0], index)
            if first > 0 and last < heights[0] - 1:
                break
            heights.pop(0)
        else:
            raise AssertionError(f"the receptive field of a stride-{stride} cell is taller than {HEIGHTS[-1]} rows")
        score_shapes = {name: (*shape, model.output.shape[-1]) for name, shape in zip(roles, shapes)}
        results.append((stride, (first + last) / 2, _head_centre(head, score_shapes, heights[0], role, cell)))
    return results
