"""The models a run trains, by name, and staged training: a finer stage started from a coarser one (paper, 4.2)."""

import os

from keras_fcn.errors import InvalidArgumentError
from keras_fcn.models import FCN8s, FCN8sAtOnce, FCN16s, FCN32s
from keras_fcn.upgrade import output_stride as _output_stride, upgrade
from keras_fcn.weights_files import load_model_file, load_weights

MODELS = {"fcn32s": FCN32s, "fcn16s": FCN16s, "fcn8s": FCN8s, "fcn8s_atonce": FCN8sAtOnce}
STRIDES = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8, "fcn8s_atonce": 8}


def _load_stage(path, source_model, builder_kwargs):
    """The model saved at `path`: a `.keras` file, or a weights file of `source_model`'s architecture."""
    if not os.path.isfile(path):
        raise InvalidArgumentError(
            f"`init_from` must be an existing .keras or .weights.h5 file. Received init_from={path!r}"
        )
    if path.endswith(".keras"):
        return load_model_file(path, "init_from")
    model = MODELS[source_model](**builder_kwargs, backbone_weights=None)
    load_weights(model, path, "init_from")
    return model


def staged_model(name, init_from, init_from_model, builder_kwargs):
    """The model saved at `init_from` (a coarser stage), upgraded with `keras_fcn.upgrade` until it is a `name`.

    Args:
        name: str, the model to train: `"fcn16s"` or `"fcn8s"`.
        init_from: str, a `.keras` file of a coarser stage, or its
            `.weights.h5` file.
        init_from_model: str or None, the architecture of a `.weights.h5`
            `init_from` (a key of `MODELS`); defaults to the stage before
            `name`.
        builder_kwargs: dict, `num_classes`, `backbone` and
            `backbone_kwargs` of the builder of a `.weights.h5` file.

    Returns:
        A `keras.Model` of stride `STRIDES[name]`.

    Raises:
        keras_fcn.errors.InvalidArgumentError: (a `ValueError`) when
            `name` is trained in one stage, `init_from` is missing, or holds
            a stage as fine as `name` or finer.
        keras_fcn.errors.InvalidDataError: when the weights do not fit.
    """
    target = STRIDES[name]
    if name == "fcn8s_atonce" or target == 32:
        raise InvalidArgumentError(
            f"`init_from` starts an FCN-16s or FCN-8s from a coarser stage; a {name} is trained in one stage. "
            f"Received model={name!r}, init_from={init_from!r}"
        )
    source_model = init_from_model or f"fcn{target * 2}s"
    if source_model not in MODELS:
        raise InvalidArgumentError(
            f"`init_from_model` must be one of {sorted(MODELS)}. Received init_from_model={source_model!r}"
        )
    model = _load_stage(init_from, source_model, builder_kwargs)
    stride = _output_stride(model)
    if stride <= target:
        raise InvalidArgumentError(
            f"`init_from` holds an FCN-{stride}s ('{model.name}'), which cannot start an FCN-{target}s "
            f"(model={name!r}): staged training goes FCN-32s -> FCN-16s -> FCN-8s. Received init_from={init_from!r}"
        )
    while stride > target:
        model = upgrade(model)
        stride //= 2
    return model
