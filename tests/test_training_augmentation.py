"""The training options `scale_range` and `jitter` reach the training batches."""

import numpy as np
from PIL import Image

from keras_fcn import data as fcn_data
from keras_fcn.training import TrainingOptions
from keras_fcn.training.pipelines import training_batches, training_steps
from _training_helpers import write_pairs


def _originals(folder, count):
    """Each pair as written, and mirrored: (image, mask) arrays."""
    pairs = []
    for index in range(count):
        image = np.asarray(Image.open(f"{folder}/images/{index:03d}.png"), np.float32)
        mask = np.asarray(Image.open(f"{folder}/masks/{index:03d}.png"))
        pairs += [(image, mask), (image[:, ::-1], mask[:, ::-1])]
    return pairs


def _batches(folder, **options):
    pairs = fcn_data.from_folders(f"{folder}/images", f"{folder}/masks", num_classes=3, verbose=0)
    options = TrainingOptions(batch_size=1, epochs=2, **options)
    steps, passes = training_steps(pairs, options.batch_size, options.steps_per_epoch)
    return [(images.numpy()[0], masks.numpy()[0]) for images, masks in training_batches(pairs, options, 3, 0, steps, passes)]


def test_scale_range_scales_every_training_pair_by_a_factor_in_it(tmp_path):
    folder = write_pairs(tmp_path / "train", 3, size=(16, 24))
    doubled = [mask.repeat(2, 0).repeat(2, 1) for _, mask in _originals(folder, 3)]
    batches = _batches(folder, scale_range=(2.0, 2.0))
    assert len(batches) == 6
    for image, mask in batches:
        assert image.shape == (32, 48, 3)
        assert any(np.array_equal(mask, expected) for expected in doubled)
    sizes = {image.shape[:2] for image, _ in _batches(folder, scale_range=(0.5, 1.5))}
    # (16 s, 24 s) rounded, for factors s from 0.5 to 1.5, and not all the same
    assert all(8 <= h <= 24 and 12 <= w <= 36 and abs(h / 16 - w / 24) < 1 / 16 for h, w in sizes) and len(sizes) > 1


def test_jitter_changes_the_training_images_only(tmp_path):
    folder = write_pairs(tmp_path / "train", 3, size=(16, 24))
    originals = _originals(folder, 3)

    def matches(image, mask):
        return [i for i, (expected_image, expected_mask) in enumerate(originals)
                if np.array_equal(mask, expected_mask) and np.allclose(image, expected_image)]

    plain = _batches(folder, scale_range=(1.0, 1.0))
    assert all(matches(image, mask) for image, mask in plain)  # each pair as written, or mirrored
    for image, mask in _batches(folder, scale_range=(1.0, 1.0), jitter=0.5):
        assert not matches(image, mask)
        assert any(np.array_equal(mask, expected_mask) for _, expected_mask in originals)
        assert image.min() >= 0 and image.max() <= 255
