"""batch_by_size (each pair at its own size) and epoch-keyed augmentation of keras_fcn.data, against hand-made pairs."""

import numpy as np
import pytest
import tensorflow as tf

from keras_fcn import data

SIZES = [(4, 6), (5, 6), (4, 6), (4, 6), (5, 6), (3, 3), (4, 6)]


def _items():
    """Pairs of the SIZES whose masks hold their index everywhere."""
    rng = np.random.default_rng(0)
    return [
        (rng.integers(0, 256, (*size, 3)).astype(np.uint8), np.full(size, index, np.uint8))
        for index, size in enumerate(SIZES)
    ]


def _pairs(items):
    return tf.data.Dataset.from_generator(
        lambda: iter(items),
        output_signature=(tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([None, None], tf.uint8)),
    )


def _indices(batches):
    return [masks[:, 0, 0].numpy().tolist() for _, masks in batches]


@pytest.mark.parametrize(
    "batch_size, window, keep_apart, expected",
    [
        (1, None, None, [[0], [1], [2], [3], [4], [5], [6]]),
        # 4x6: 0, 2, 3, 6; 5x6: 1, 4; 3x3: 5.
        (2, None, None, [[0, 2], [1, 4], [3, 6], [5]]),
        (3, None, None, [[0, 2, 3], [1, 4], [5], [6]]),
        (2, 3, None, [[0, 2], [1], [3], [4], [5], [6]]),  # windows of 3 pairs: 0 1 2, 3 4 5, 6
        (3, None, lambda image, mask: mask[0, 0] == 3, [[0, 2, 6], [1, 4], [3], [5]]),
    ],
)
def test_batch_by_size_batches_pairs_of_one_size_and_pads_nothing(batch_size, window, keep_apart, expected):
    items = _items()
    batches = list(data.batch_by_size(_pairs(items), batch_size, window=window, keep_apart=keep_apart))
    assert sorted(_indices(batches)) == expected  # in the order of the pairs within a batch, any order of batches
    for images, masks in batches:
        assert images.dtype == tf.float32 and masks.dtype == tf.uint8
        indices = masks[:, 0, 0].numpy()
        np.testing.assert_array_equal(images.numpy(), [items[i][0] for i in indices])
        np.testing.assert_array_equal(masks.numpy(), [items[i][1] for i in indices])


def test_batch_by_size_one_a_batch_knows_its_length_where_the_pairs_do():
    items = _items()
    known = tf.data.Dataset.range(len(items)).map(lambda i: (tf.zeros((4, 6, 3), tf.uint8), tf.zeros((4, 6), tf.uint8)))
    assert len(data.batch_by_size(known, 1)) == len(items) == len(list(data.batch_by_size(known, 1)))
    assert data.batch_by_size(known, 2).cardinality() == tf.data.UNKNOWN_CARDINALITY  # only the pairs' sizes tell
    assert data.batch_by_size(_pairs(items), 1).cardinality() == tf.data.UNKNOWN_CARDINALITY  # a generator's


def test_batch_by_size_refuses_bad_arguments():
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive int. Received batch_size=0"):
        data.batch_by_size(_pairs(_items()), 0)
    with pytest.raises(ValueError, match=r"`window` must be a positive int. Received window=0"):
        data.batch_by_size(_pairs(_items()), 2, window=0)


def test_augmentation_keyed_by_epoch_is_the_same_in_any_pipeline_and_new_each_epoch():
    pairs = _pairs(_items())

    def epoch(number, seed=3):
        augmented = data.augment(pairs, crop_size=(3, 3), scale_range=(0.5, 2.0), seed=seed, epoch=number)
        return [image.numpy() for image, _ in augmented]

    first = epoch(1)
    # Iterated again, or built again (as a resumed run builds it), epoch 1 draws the same.
    assert all(np.array_equal(a, b) for a, b in zip(first, epoch(1)))
    in_a_pass = data.augment(pairs, crop_size=(3, 3), scale_range=(0.5, 2.0), seed=3, epoch=tf.constant(1, tf.int64))
    assert all(np.array_equal(a, b.numpy()) for a, (b, _) in zip(first, in_a_pass))
    assert not all(np.array_equal(a, b) for a, b in zip(first, epoch(2)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, epoch(1, seed=4)))
    with pytest.raises(ValueError, match=r"`epoch` keys the random draws by `seed`: give a seed too. Received seed=No"):
        data.augment(pairs, seed=None, epoch=1)
    with pytest.raises(ValueError, match=r"`epoch` keys the random draws by `seed`"):
        data.make_pipeline(pairs, 2, training=True, epoch=1)
