"""TensorFlow Datasets (TFDS) datasets that carry segmentation masks."""

import dataclasses
from typing import Optional

import tensorflow as tf

from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.data.decode import LabelSpec, set_pair_shapes
from keras_fcn.errors import InvalidArgumentError, MissingPackageError


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """Where a TFDS dataset keeps its masks and how they become class ids.

    Attributes:
        mask_key: the feature holding the mask.
        num_classes: int, classes after `label_map`.
        label_map: dict `{raw value: class id or 255}`.
        name_key: optional feature naming an example in error messages.
    """

    mask_key: str
    num_classes: int
    label_map: dict
    name_key: Optional[str] = None


TFDS_SOURCES = {
    # Trimap 1 = pet, 2 = background, 3 = border (ignored): 0 background, 1 pet.
    "oxford_iiit_pet": TfdsSource("segmentation_mask", 2, {1: 1, 2: 0, 3: IGNORE_LABEL}, "file_name"),
    # ADE20K scene parsing: 0 = other objects (ignored), 1..150 = classes 0..149.
    "scene_parse150": TfdsSource("annotation", 150, {0: IGNORE_LABEL, **{v: v - 1 for v in range(1, 151)}}),
}


def _as_rgb(image):
    channels = image.shape[-1]
    if channels == 1:
        return tf.image.grayscale_to_rgb(image)
    if channels == 4:
        return image[..., :3]
    return image


def from_tfds(
    name,
    split="train",
    *,
    num_classes=None,
    label_map=None,
    image_key="image",
    mask_key=None,
    data_dir=None,
    download=True,
):
    """A TFDS dataset with masks as `(image, mask)` pairs, checked like files.

    For the datasets in `TFDS_SOURCES` (`"oxford_iiit_pet"`: background 0,
    pet 1, trimap border ignored; `"scene_parse150"`: ADE20K classes 0..149,
    "other" ignored) the mask feature, `num_classes` and `label_map` have
    defaults; for any other dataset pass `mask_key` and `num_classes`. A pair
    whose image and mask differ in size, or whose mask has a value that is
    neither a class id nor 255 after `label_map`, raises
    `tf.errors.InvalidArgumentError` naming the dataset, split and example.

    Args:
        name: str, the TFDS name, e.g. `"oxford_iiit_pet"`.
        split: str, a TFDS split such as `"train"` or `"test[:10%]"`.
        num_classes: int, overrides the default of a known dataset.
        label_map: dict `{raw value: class id or 255}`, replaces the default
            of a known dataset.
        image_key: str, the image feature (greyscale and RGBA become RGB).
        mask_key: str, the mask feature (`(H, W)`, `(H, W, 1)`, or greyscale
            stored as `(H, W, 3)`).
        data_dir: optional str, the TFDS data folder.
        download: bool, whether `tfds.load` may download and prepare the
            dataset.

    Returns:
        A `tf.data.Dataset` of `(image, mask)`: uint8 `(H, W, 3)` and uint8
        `(H, W)`.

    Example:

    >>> pets = keras_fcn.data.from_tfds("oxford_iiit_pet", "train")
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise MissingPackageError(
            "`from_tfds` needs tensorflow-datasets: pip install 'keras-fcn[data]'"
        ) from error
    known = TFDS_SOURCES.get(name)
    if known is None and (mask_key is None or num_classes is None):
        raise InvalidArgumentError(
            f"Dataset {name!r} has no defaults (known: {sorted(TFDS_SOURCES)}); pass `mask_key` "
            f"and `num_classes`. Received mask_key={mask_key!r}, num_classes={num_classes!r}"
        )
    mask_key = mask_key or known.mask_key
    spec = LabelSpec(
        num_classes if num_classes is not None else known.num_classes,
        label_map=label_map if label_map is not None or known is None else known.label_map,
    )
    name_key = known.name_key if known is not None else None
    dataset = tfds.load(name, split=split, data_dir=data_dir, download=download)
    missing = {image_key, mask_key} - set(dataset.element_spec)
    if missing:
        raise InvalidArgumentError(
            f"Dataset {name!r} has no feature {sorted(missing)}; its features are "
            f"{sorted(dataset.element_spec)}. Received image_key={image_key!r}, mask_key={mask_key!r}"
        )

    def check(image, mask, example):
        example = example.decode()
        return spec.check_pair(image, mask, example, example)

    def to_pair(index, features):
        example = tf.strings.join([f"{name} {split} example ", tf.strings.as_string(index)])
        if name_key is not None:
            example = tf.strings.join([example, " (", features[name_key], ")"])
        pair = tf.numpy_function(
            check,
            [_as_rgb(features[image_key]), features[mask_key], example],
            (tf.uint8, tf.uint8),
            stateful=False,
        )
        return set_pair_shapes(*pair)

    return dataset.enumerate().map(to_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
