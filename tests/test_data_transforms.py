"""Augmentation and batching of keras_fcn.data, checked against numpy and hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from keras_fcn import data

MEAN = (10.5, 20.25, 30.0)


def pairs(*items):
    """A dataset of (uint8 image, uint8 mask) pairs of any sizes."""
    return tf.data.Dataset.from_generator(
        lambda: iter(items),
        output_signature=(
            tf.TensorSpec([None, None, 3], tf.uint8),
            tf.TensorSpec([None, None], tf.uint8),
        ),
    )


def read_all(dataset):
    return [(image.numpy(), mask.numpy()) for image, mask in dataset]


def coordinate_pair(height, width):
    """Image pixels hold (row + 1, column + 1, 200); the mask holds a function of the position."""
    rows, cols = np.mgrid[:height, :width]
    image = np.stack([rows + 1, cols + 1, np.full_like(rows, 200)], axis=-1).astype(np.uint8)
    return image, ((rows * width + cols) % 250).astype(np.uint8)


def test_scale_2_is_bilinear_for_images_and_nearest_for_masks():
    image = np.zeros((2, 2, 3), np.uint8)
    image[:, 1] = 4
    mask = np.array([[1, 2], [3, 4]], np.uint8)

    ((scaled, scaled_mask),) = read_all(
        data.augment(pairs((image, mask)), scale_range=(2.0, 2.0), flip=False, seed=1)
    )

    # Half-pixel bilinear sampling of [0, 4] at 2x: [0, 1, 3, 4].
    np.testing.assert_allclose(scaled[..., 0], [[0, 1, 3, 4]] * 4)
    np.testing.assert_array_equal(scaled_mask, np.repeat(np.repeat(mask, 2, axis=0), 2, axis=1))


def test_scale_half_keeps_every_other_mask_pixel():
    _, mask = coordinate_pair(4, 6)
    ((image, scaled_mask),) = read_all(
        data.augment(pairs((np.zeros((4, 6, 3), np.uint8), mask)), scale_range=(0.5, 0.5), flip=False)
    )
    assert image.shape == (2, 3, 3)
    np.testing.assert_array_equal(scaled_mask, mask[1::2, 1::2])


def test_random_scale_never_interpolates_mask_values():
    rng = np.random.default_rng(0)
    mask = np.where(rng.random((9, 13)) < 0.5, 0, 7).astype(np.uint8)
    dataset = pairs(*[(np.zeros((9, 13, 3), np.uint8), mask)] * 8)
    sizes = set()
    for _, scaled in read_all(data.augment(dataset, scale_range=(0.5, 2.0), seed=3)):
        assert set(np.unique(scaled)) <= {0, 7}
        sizes.add(scaled.shape)
    assert len(sizes) > 1


def test_crop_keeps_alignment_and_pads_with_mean_and_ignore():
    height, width, crop = 10, 20, (14, 8)
    image, mask = coordinate_pair(height, width)
    dataset = pairs(*[(image, mask)] * 6)
    lefts = set()
    for out, out_mask in read_all(
        data.augment(dataset, crop_size=crop, scale_range=None, flip=False, mean=MEAN, seed=0)
    ):
        assert out.shape == (14, 8, 3) and out.dtype == np.float32 and out_mask.dtype == np.uint8
        rows, cols = out[:height, :, 0] - 1, out[:height, :, 1] - 1
        left = int(cols[0, 0])
        lefts.add(left)
        np.testing.assert_array_equal(rows, np.repeat(np.arange(height)[:, None], 8, axis=1))
        np.testing.assert_array_equal(cols, np.tile(np.arange(left, left + 8), (height, 1)))
        np.testing.assert_array_equal(out_mask[:height], mask[:, left : left + 8])
        np.testing.assert_array_equal(out[height:], np.broadcast_to(MEAN, (4, 8, 3)).astype(np.float32))
        np.testing.assert_array_equal(out_mask[height:], 255)
    assert len(lefts) > 1


def test_flip_is_the_numpy_flip_of_image_and_mask_together():
    image, mask = coordinate_pair(3, 5)
    dataset = pairs(*[(image, mask)] * 16)
    flipped = []
    for out, out_mask in read_all(data.augment(dataset, scale_range=None, flip=True, seed=7)):
        if np.array_equal(out, image):
            np.testing.assert_array_equal(out_mask, mask)
            flipped.append(False)
        else:
            np.testing.assert_array_equal(out, np.flip(image, axis=1))
            np.testing.assert_array_equal(out_mask, np.flip(mask, axis=1))
            flipped.append(True)
    assert 0 < sum(flipped) < 16


def test_jitter_changes_the_image_only_and_keeps_padding():
    image, mask = coordinate_pair(6, 6)
    image = image * 20
    ((out, out_mask),) = read_all(
        data.augment(pairs((image, mask)), crop_size=(8, 6), scale_range=None, flip=False, jitter=0.5, mean=MEAN, seed=2)
    )
    np.testing.assert_array_equal(out_mask[:6], mask)
    assert out.min() >= 0 and out.max() <= 255
    assert np.abs(out[:6] - image).max() > 1
    np.testing.assert_array_equal(out[6:], np.broadcast_to(MEAN, (2, 6, 3)).astype(np.float32))


def test_all_off_is_the_identity():
    image, mask = coordinate_pair(4, 5)
    ((out, out_mask),) = read_all(data.augment(pairs((image, mask)), scale_range=None, flip=False))
    np.testing.assert_array_equal(out, image.astype(np.float32))
    np.testing.assert_array_equal(out_mask, mask)


def test_seed_reproduces_augmentation_and_epochs_differ():
    image, mask = coordinate_pair(12, 16)

    def run(seed):
        dataset = pairs(*[(image, mask)] * 4)
        return data.augment(dataset, crop_size=(8, 8), scale_range=(0.5, 1.5), jitter=0.2, seed=seed)

    first, second = run(5), run(5)
    epoch1, again = read_all(first), read_all(second)
    for (a, am), (b, bm) in zip(epoch1, again, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(am, bm)
    epoch2 = read_all(first)
    assert any(not np.array_equal(a, b) for (a, _), (b, _) in zip(epoch1, epoch2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"crop_size": (0, 5)}, r"`crop_size` must be a \(height, width\) pair of positive ints. Received crop_size=\(0, 5\)"),
        ({"scale_range": (2.0, 1.0)}, r"Received scale_range=\(2.0, 1.0\)"),
        ({"jitter": 1.5}, r"Received jitter=1.5"),
        ({"mean": (1, 2)}, r"Received mean=\(1, 2\)"),
    ],
)
def test_augment_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.augment(pairs(coordinate_pair(2, 2)), **kwargs)


def test_augment_rejects_batched_datasets():
    with pytest.raises(ValueError, match=r"before batching"):
        data.augment(pairs(coordinate_pair(2, 2)).batch(2))


def test_batch_pads_to_the_largest_pair_with_mean_and_ignore():
    (image_a, mask_a), (image_b, mask_b) = coordinate_pair(2, 3), coordinate_pair(3, 2)

    ((images, masks),) = read_all(data.batch(pairs((image_a, mask_a), (image_b, mask_b)), 2, mean=MEAN))

    assert images.shape == (2, 3, 3, 3) and images.dtype == np.float32
    assert masks.shape == (2, 3, 3) and masks.dtype == np.uint8
    want_images = np.broadcast_to(np.float32(MEAN), (2, 3, 3, 3)).copy()
    want_masks = np.full((2, 3, 3), 255, np.uint8)
    want_images[0, :2, :3], want_masks[0, :2, :3] = image_a, mask_a
    want_images[1, :3, :2], want_masks[1, :3, :2] = image_b, mask_b
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(masks, want_masks)


def test_batch_pads_to_a_fixed_size_and_rejects_larger_images():
    image, mask = coordinate_pair(2, 3)
    dataset = data.batch(pairs((image, mask)), 1, size=(4, 4), mean=MEAN)
    assert dataset.element_spec[0].shape.as_list() == [None, 4, 4, 3]
    ((images, masks),) = read_all(dataset)
    np.testing.assert_array_equal(masks[0, :2, :3], mask)
    np.testing.assert_array_equal(masks[0, 2:], 255)
    np.testing.assert_array_equal(images[0, :, 3], np.broadcast_to(np.float32(MEAN), (4, 3)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"larger than size=\(2, 2\)"):
        read_all(data.batch(pairs((image, mask)), 1, size=(2, 2)))


def test_batch_resize_crop_covers_then_takes_the_centre():
    image, mask = coordinate_pair(4, 8)
    small_image, small_mask = coordinate_pair(2, 4)

    ((images, masks),) = read_all(
        data.batch(pairs((image, mask), (small_image, small_mask)), 2, size=(4, 4), fit="resize_crop")
    )

    np.testing.assert_array_equal(images[0], image[:, 2:6])
    np.testing.assert_array_equal(masks[0], mask[:, 2:6])
    np.testing.assert_array_equal(masks[1], np.repeat(np.repeat(small_mask, 2, axis=0), 2, axis=1)[:, 2:6])


def test_batch_rejects_bad_arguments():
    dataset = pairs(coordinate_pair(2, 2))
    with pytest.raises(ValueError, match=r"Received batch_size=0"):
        data.batch(dataset, 0)
    with pytest.raises(ValueError, match=r"`fit` must be one of \('pad', 'resize_crop'\). Received fit='crop'"):
        data.batch(dataset, 1, fit="crop")
    with pytest.raises(ValueError, match=r"needs a `size`"):
        data.batch(dataset, 1, fit="resize_crop")


def test_make_pipeline_training_and_evaluation():
    items = [coordinate_pair(5 + n % 2, 7) for n in range(5)]

    train = data.make_pipeline(pairs(*items), 2, training=True, crop_size=(4, 6), jitter=0.1, cache=True, seed=0)
    assert train.element_spec[0].shape.as_list() == [2, 4, 6, 3]
    batches = read_all(train)
    assert len(batches) == 2  # 5 pairs, the last smaller batch dropped

    # Evaluation batches pairs of one size together (5 rows: 0, 2, 4; 6 rows: 1, 3), each as it is: no padding.
    evaluation = read_all(data.make_pipeline(pairs(*items), 2, training=False))
    assert [images.shape for images, _ in evaluation] == [(2, 5, 7, 3), (2, 6, 7, 3), (1, 5, 7, 3)]
    for (images, masks), indices in zip(evaluation, [(0, 2), (1, 3), (4,)]):
        np.testing.assert_array_equal(images, [items[i][0] for i in indices])
        np.testing.assert_array_equal(masks, [items[i][1] for i in indices])
