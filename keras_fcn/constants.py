"""Values that several parts of keras-fcn share, defined once (as timm's `data/constants.py` does).

- `IGNORE_LABEL`: the mask value of pixels that count in no loss or metric
  (PASCAL VOC's "void" border; the reference code's `ignore_label: 255`).
- `IMAGENET_MEAN`, `IMAGENET_STD`: the ImageNet training set's RGB mean and
  standard deviation in `[0, 255]` (torchvision's, the Keras Applications'
  `"torch"` preprocessing); padding images with the mean makes the padding
  zero after the models' normalization.
- `CAFFE_IMAGENET_MEAN_BGR`: the BGR mean subtracted by the Caffe models of
  Keras Applications (VGG16, ResNet50: their `"caffe"` preprocessing).
- `CLASSES_FILE`: the file beside a trained model that names its classes.
- `SCALE_FACTOR_LIMITS`, `is_scale_factor`: the scaling factors accepted.
"""

import numbers

IGNORE_LABEL = 255
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
CAFFE_IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)
CLASSES_FILE = "classes.json"
# The scaling factors that training augmentation (`scale_range`) and test-time augmentation (`scales`) accept: a
# tenth of an image keeps too little to learn from or score; four times a 360x480 image is 1440x1920 already.
SCALE_FACTOR_LIMITS = (0.1, 4.0)


def is_scale_factor(value):
    """Whether `value` is a real number (not a bool) within `SCALE_FACTOR_LIMITS` (NaN is not)."""
    low, high = SCALE_FACTOR_LIMITS
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and low <= value <= high
