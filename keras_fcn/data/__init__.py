"""Input pipelines for semantic segmentation, built on `tf.data`.

Sources yield single `(image, mask)` pairs: uint8 RGB images `(H, W, 3)` and
uint8 masks `(H, W)` of class ids, 255 = ignore. `augment`, `batch` and
`make_pipeline` turn them into batches for `model.fit`: float32 images
`(B, h, w, 3)` in [0, 255] (the models normalize them themselves) and uint8
masks `(B, h, w)`.

Example:

>>> import keras_fcn
>>> train = keras_fcn.data.make_pipeline(
...     keras_fcn.data.camvid("data/camvid", "train"), 8,
...     training=True, crop_size=(360, 480), seed=0)
>>> val = keras_fcn.data.make_pipeline(
...     keras_fcn.data.camvid("data/camvid", "val"), 8, training=False)
"""

from keras_fcn.data.batching import batch, batch_by_size, make_pipeline
from keras_fcn.data.camvid import CAMVID_CLASSES, camvid
from keras_fcn.data.checks import check_file_pairs
from keras_fcn.data.color_map import ColorMap, read_color_map
from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.data.decode import LabelSpec
from keras_fcn.data.file_pairs import from_file_pairs
from keras_fcn.data.folders import from_folders, match_by_stem
from keras_fcn.data.image_files import IMAGE_EXTENSIONS, list_image_files, read_image
from keras_fcn.data.stats import class_frequencies, median_frequency_weights
from keras_fcn.data.tfds import TFDS_SOURCES, from_tfds
from keras_fcn.data.transforms import IMAGENET_MEAN, augment
from keras_fcn.data.voc import VOC_CLASSES, sbd, seg11valid, seg11valid_ids, voc

__all__ = [
    "CAMVID_CLASSES",
    "IGNORE_LABEL",
    "IMAGENET_MEAN",
    "IMAGE_EXTENSIONS",
    "TFDS_SOURCES",
    "VOC_CLASSES",
    "ColorMap",
    "LabelSpec",
    "augment",
    "batch",
    "batch_by_size",
    "camvid",
    "check_file_pairs",
    "class_frequencies",
    "from_file_pairs",
    "from_folders",
    "from_tfds",
    "list_image_files",
    "make_pipeline",
    "match_by_stem",
    "median_frequency_weights",
    "read_color_map",
    "read_image",
    "sbd",
    "seg11valid",
    "seg11valid_ids",
    "voc",
]
