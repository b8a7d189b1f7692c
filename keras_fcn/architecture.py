"""What an FCN is, recorded in the model itself: `Architecture` and `architecture_of`.

The builders end every model with an `ArchitectureRecord` layer: it passes
the logits through unchanged, keeps the architecture in its config (so it
travels with `.keras` files, `keras.models.clone_model` and everything built
from a model's config, as keras-hub's task models keep theirs), and reads
the tensors an upgrade or a zoo net builds on (the skips, the features
`score_fr` scores, the score maps) as its inputs, so that nothing needs a
layer's name.
"""

import dataclasses

import keras

from keras_fcn.errors import InvalidArgumentError
from keras_fcn.geometry import node_references
from keras_fcn.heads import HeadGeometry

# The record layer's inputs, in order; an FCN-32s has the first six, an
# FCN-16s adds score_pool4 and an FCN-8s score_pool3.
ROLES = ("logits", "pool3", "pool4", "pool5", "features", "score_fr", "score_pool4", "score_pool3")
# Architecture names and their output strides.
STRIDES = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8, "fcn8s_atonce": 8}


def architecture_name(stride, at_once=False):
    """`"fcn32s"`, `"fcn16s"`, `"fcn8s"` or `"fcn8s_atonce"`."""
    return f"fcn{stride}s{'_atonce' if at_once else ''}"


def model_name(architecture, backbone):
    """The builders' default model name, e.g. `"fcn8s_mobilenet"` (the zoo's architecture names)."""
    return f"{architecture}_{backbone}"


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What a keras-fcn FCN is, as `architecture_of` reads it from the model.

    Attributes:
        name: `"fcn32s"`, `"fcn16s"`, `"fcn8s"` or `"fcn8s_atonce"`.
        backbone: str, the backbone's name in lower case (`"mobilenet"`,
            `"vgg16_reference"`), or the `name` of a `keras.Model` backbone.
        backbone_kwargs: dict, the extra arguments of the backbone's
            constructor (`{"alpha": 0.25}`).
        num_classes: int, the output channels.
        head_geometry: `keras_fcn.heads.HeadGeometry`: input padding,
            upsampling kernels and crop offsets of the heads.
        skip_layers: tuple of the names of the layers giving the stride-8,
            16 and 32 features, as the model now names them (empty when the
            record was not read from a model).
    """

    name: str
    backbone: str
    backbone_kwargs: dict
    num_classes: int
    head_geometry: HeadGeometry
    skip_layers: tuple = ()

    @property
    def stride(self):
        """int, the output stride of the head: 32, 16 or 8."""
        return STRIDES[self.name]

    @property
    def at_once(self):
        """bool, whether this is the at-once FCN-8s (skips scaled, trained in one stage)."""
        return self.name == "fcn8s_atonce"

    @property
    def model_name(self):
        """The builders' default model name, e.g. `"fcn8s_mobilenet"` (the zoo's architecture names)."""
        return model_name(self.name, self.backbone)

    def get_config(self):
        return {
            "name": self.name,
            "backbone": self.backbone,
            "backbone_kwargs": dict(self.backbone_kwargs),
            "num_classes": self.num_classes,
            "head_geometry": self.head_geometry.get_config(),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "head_geometry": HeadGeometry.from_config(config["head_geometry"])})


@keras.saving.register_keras_serializable(package="keras_fcn")
class ArchitectureRecord(keras.layers.Layer):
    """The last layer of a keras-fcn FCN: returns the logits and records the architecture.

    Args:
        architecture: an `Architecture`, or its config (a dict).
        **kwargs: standard layer arguments.

    Input shape:
        A list, in the order of `ROLES`: the logits `(batch, H, W, classes)`
        and the tensors the FCN is built from.

    Output shape:
        The logits, unchanged (never cast: the layer does not autocast).
    """

    def __init__(self, architecture, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if isinstance(architecture, dict):
            architecture = Architecture.from_config(architecture)
        self.architecture = architecture

    def call(self, inputs):
        return inputs[0]

    def get_config(self):
        return {**super().get_config(), "architecture": self.architecture.get_config()}


def record(architecture, tensors):
    """Ends an FCN with its `ArchitectureRecord`: `tensors` maps `ROLES` to tensors; returns the logits."""
    return ArchitectureRecord(architecture, name="architecture")([tensors[role] for role in ROLES if role in tensors])


def _record_layer(model):
    records = [layer for layer in model.layers if isinstance(layer, ArchitectureRecord)]
    if len(records) != 1:
        raise InvalidArgumentError(
            f"Model '{model.name}' is not a keras-fcn FCN: it has {len(records)} ArchitectureRecord layers, "
            "not one. Build it with keras_fcn.FCN32s, FCN16s, FCN8s or FCN8sAtOnce (or load one they built)."
        )
    return records[0]


def recorded_tensors(model):
    """The tensors the FCN `model` is built from, by role (see `ROLES`): skips, features, score maps."""
    layer = _record_layer(model)
    return dict(zip(ROLES, keras.tree.flatten(layer.input)))


def architecture_of(model):
    """What a keras-fcn FCN is: its `Architecture`, read from the model (not from layer names).

    Works on the builders' models, their `.keras` files loaded back, their
    `keras.models.clone_model` copies (`keras_fcn.precision.with_dtype_policy`)
    and models built from them by `keras_fcn.upgrade`.

    Args:
        model: a `keras.Model`.

    Returns:
        An `Architecture`, with `skip_layers` as the model names them now.

    Raises:
        ValueError: naming the model, when it is not a keras-fcn FCN.

    Example:

    >>> keras_fcn.architecture_of(keras_fcn.FCN16s(backbone="mobilenet", backbone_weights=None)).stride
    16
    """
    layer = _record_layer(model)
    node = next(entry for entry in model.get_config()["layers"] if entry["name"] == layer.name)["inbound_nodes"][0]
    producers = dict(zip(ROLES, (name for name, _, _ in node_references(node))))
    return dataclasses.replace(
        layer.architecture, skip_layers=tuple(producers[role] for role in ("pool3", "pool4", "pool5"))
    )
