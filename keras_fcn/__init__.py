"""keras-fcn: Fully Convolutional Networks for semantic segmentation in Keras 3.

Long, Shelhamer and Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015 (arXiv 1411.4038).
"""

from keras_fcn import assets, callbacks, data, dense, export, layers, losses, metrics, optimizers, training, visualize, zoo
from keras_fcn import geometry
from keras_fcn.architecture import Architecture, architecture_of
from keras_fcn.backbones import BACKBONES
from keras_fcn.convolutionalize import convolutionalize
from keras_fcn.inference import evaluate, inference_function, predict
from keras_fcn.initializers import BilinearUpsampling
from keras_fcn.models import FCN8s, FCN8sAtOnce, FCN16s, FCN32s
from keras_fcn.training import train
from keras_fcn.upgrade import upgrade

__version__ = "0.1.0.dev0"

__all__ = [
    "Architecture",
    "BACKBONES",
    "BilinearUpsampling",
    "FCN8s",
    "FCN8sAtOnce",
    "FCN16s",
    "FCN32s",
    "architecture_of",
    "assets",
    "callbacks",
    "convolutionalize",
    "data",
    "dense",
    "evaluate",
    "export",
    "geometry",
    "inference_function",
    "layers",
    "losses",
    "metrics",
    "optimizers",
    "predict",
    "train",
    "training",
    "upgrade",
    "visualize",
    "zoo",
]
