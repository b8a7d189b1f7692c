"""TFDS sources of keras_fcn.data, on tfds.testing.mock_data (no download)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_fcn import data


def read_all(dataset):
    return [(image.numpy(), mask.numpy()) for image, mask in dataset]


def mock_examples(examples):
    """An `as_dataset_fn` for `tfds.testing.mock_data` yielding the given feature dicts."""

    def as_dataset(self, *args, **kwargs):
        keys = examples[0].keys()
        return tf.data.Dataset.from_generator(
            lambda: iter(examples),
            output_types={k: self.info.features.dtype[k] for k in keys},
            output_shapes={k: self.info.features.shape[k] for k in keys},
        )

    return as_dataset


@pytest.mark.parametrize("name", ["oxford_iiit_pet", "scene_parse150"])
def test_random_mock_data_runs_into_a_named_size_error(name):
    # TFDS's random mock examples have images and masks of different sizes.
    with tfds.testing.mock_data(num_examples=2):
        dataset = data.from_tfds(name, "train")
    assert dataset.element_spec[0].shape.as_list() == [None, None, 3]
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"image '{name} train example 0.*' is \d+x\d+ but mask"):
        read_all(dataset)


def test_oxford_pet_trimap_becomes_background_pet_and_ignore(rng):
    image = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    trimap = rng.integers(1, 4, (4, 5, 1), dtype=np.uint8)
    examples = [{"image": image, "segmentation_mask": trimap, "file_name": "Abyssinian_1.jpg"}]
    with tfds.testing.mock_data(as_dataset_fn=mock_examples(examples)):
        ((out, mask),) = read_all(data.from_tfds("oxford_iiit_pet", "train"))
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(mask, np.array([0, 1, 0, 255])[trimap[..., 0]])


def test_oxford_pet_bad_mask_value_names_the_example(rng):
    trimap = np.full((2, 2, 1), 1, np.uint8)
    trimap[0, 0] = 7
    examples = [{"image": np.zeros((2, 2, 3), np.uint8), "segmentation_mask": trimap, "file_name": "pug_3.jpg"}]
    with tfds.testing.mock_data(as_dataset_fn=mock_examples(examples)):
        with pytest.raises(
            tf.errors.InvalidArgumentError, match=r"'oxford_iiit_pet train example 0 \(pug_3\.jpg\)' has values \[7\]"
        ):
            read_all(data.from_tfds("oxford_iiit_pet", "train"))


def test_scene_parse150_shifts_classes_and_ignores_other(rng):
    grey = rng.integers(0, 151, (3, 6), dtype=np.uint8)
    grey[0, 0], grey[0, 1] = 0, 150
    examples = [{"image": np.zeros((3, 6, 3), np.uint8), "annotation": np.stack([grey] * 3, axis=-1)}]
    with tfds.testing.mock_data(as_dataset_fn=mock_examples(examples)):
        ((_, mask),) = read_all(data.from_tfds("scene_parse150", "validation"))
    want = np.where(grey == 0, 255, grey.astype(int) - 1)
    np.testing.assert_array_equal(mask, want)
    assert mask[0, 0] == 255 and mask[0, 1] == 149


def test_unknown_dataset_needs_mask_key_and_num_classes():
    with pytest.raises(ValueError, match=r"has no defaults .*Received mask_key=None, num_classes=None"):
        data.from_tfds("mnist", "train")
