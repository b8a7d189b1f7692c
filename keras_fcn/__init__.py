"""keras-fcn: Fully Convolutional Networks for semantic segmentation in Keras 3.

Long, Shelhamer and Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015 (arXiv 1411.4038).

The trainer (`keras_fcn.train`, `keras_fcn.training`) and the Caffe model
reader (`keras_fcn.caffe`) are imported when first used, not with the
package.
"""

import importlib

from keras_fcn import (
    assets,
    callbacks,
    constants,
    data,
    dense_prediction,
    errors,
    export,
    geometry,
    layers,
    losses,
    metrics,
    optimizers,
    test_time,
    visualize,
    zoo,
)
from keras_fcn.architecture import Architecture, architecture_of
from keras_fcn.backbones import BACKBONES
from keras_fcn.convolutionalize import convolutionalize
from keras_fcn.inference import InferenceFunction, evaluate, inference_function, predict
from keras_fcn.initializers import BilinearUpsampling
from keras_fcn.models import FCN8s, FCN8sAtOnce, FCN16s, FCN32s
from keras_fcn.upgrade import upgrade

__version__ = "0.1.0.dev0"

_LAZY_MODULES = ("caffe", "training")


def __getattr__(name):
    """Imports a lazy module (`caffe`, `training`), or `train`, on first use (PEP 562)."""
    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "train":
        return importlib.import_module(f"{__name__}.training").train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY_MODULES, "train"})


__all__ = [
    "Architecture",
    "BACKBONES",
    "BilinearUpsampling",
    "FCN8s",
    "FCN8sAtOnce",
    "FCN16s",
    "FCN32s",
    "InferenceFunction",
    "architecture_of",
    "assets",
    "caffe",
    "callbacks",
    "constants",
    "convolutionalize",
    "data",
    "dense_prediction",
    "errors",
    "evaluate",
    "export",
    "geometry",
    "inference_function",
    "layers",
    "losses",
    "metrics",
    "optimizers",
    "predict",
    "test_time",
    "train",
    "training",
    "upgrade",
    "visualize",
    "zoo",
]
