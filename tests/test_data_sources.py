"""File sources of keras_fcn.data on small trees the tests write: exact decoded values and clear errors."""

import os

import numpy as np
import pytest
import scipy.io
import tensorflow as tf
from PIL import Image

from keras_fcn import data

# A palette whose colours differ from their indices, so reading it as RGB would show.
PALETTE = np.random.default_rng(0).integers(0, 256, (256, 3), dtype=np.uint8)


def write_rgb(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def write_palette(path, indices):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(np.asarray(indices, np.uint8), mode="P")
    image.putpalette(PALETTE.ravel().tolist())
    image.save(path)


def random_image(rng, height, width):
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def random_mask(rng, height, width, num_classes):
    mask = rng.integers(0, num_classes, (height, width), dtype=np.uint8)
    mask[0, :] = 255
    return mask


def read_all(dataset):
    return [(image.numpy(), mask.numpy()) for image, mask in dataset]


def test_folders_read_exact_pixels_of_palette_and_grey_masks(tmp_path, rng):
    images = {"a": random_image(rng, 5, 7), "b": random_image(rng, 6, 4), "c": random_image(rng, 3, 3)}
    masks = {"a": random_mask(rng, 5, 7, 4), "b": random_mask(rng, 6, 4, 4), "c": random_mask(rng, 3, 3, 4)}
    write_rgb(tmp_path / "img" / "b.png", images["b"])
    write_rgb(tmp_path / "img" / "a.bmp", images["a"])
    write_rgb(tmp_path / "img" / "c.png", images["c"])
    write_palette(str(tmp_path / "lbl" / "a.png"), masks["a"])
    write_palette(str(tmp_path / "lbl" / "b.png"), masks["b"])
    write_rgb(tmp_path / "lbl" / "c.png", masks["c"])  # greyscale "L"
    (tmp_path / "img" / "notes.txt").write_text("not an image")

    pairs = read_all(data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=4))

    assert len(pairs) == 3
    for (image, mask), stem in zip(pairs, "abc"):
        assert image.dtype == np.uint8 and mask.dtype == np.uint8
        np.testing.assert_array_equal(image, images[stem])
        np.testing.assert_array_equal(mask, masks[stem])


def test_greyscale_rgba_and_palette_images_become_rgb(tmp_path, rng):
    grey = rng.integers(0, 256, (4, 5), dtype=np.uint8)
    rgba = rng.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    indices = rng.integers(0, 256, (4, 5), dtype=np.uint8)
    write_rgb(tmp_path / "img" / "grey.png", grey)
    write_rgb(tmp_path / "img" / "rgba.png", rgba)
    write_palette(str(tmp_path / "img" / "pal.png"), indices)
    for stem in ("grey", "rgba", "pal"):
        write_rgb(tmp_path / "lbl" / f"{stem}.png", np.zeros((4, 5), np.uint8))

    (grey_rgb, _), (pal, _), (rgba_rgb, _) = read_all(
        data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=1)
    )

    np.testing.assert_array_equal(grey_rgb, np.stack([grey] * 3, axis=-1))
    np.testing.assert_array_equal(rgba_rgb, rgba[..., :3])
    np.testing.assert_array_equal(pal, PALETTE[indices])


@pytest.mark.parametrize("as_dict", [False, True])
def test_color_coded_masks(tmp_path, rng, as_dict):
    colors = np.array([(0, 0, 0), (128, 0, 0), (0, 128, 0), (255, 255, 255)], np.uint8)
    if as_dict:  # white is ignored
        color_map, ids = {(0, 0, 0): 0, (128, 0, 0): 1, (0, 128, 0): 2, (255, 255, 255): 255}, [0, 1, 2, 255]
    else:  # class i has colour i
        color_map, ids = [(0, 0, 0), (128, 0, 0), (0, 128, 0)], [0, 1, 2]
    which = rng.integers(0, len(ids), (6, 8))
    write_rgb(tmp_path / "img" / "x.jpg", random_image(rng, 6, 8))
    write_rgb(tmp_path / "lbl" / "x.png", colors[which])

    ((image, mask),) = read_all(
        data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=3, color_map=color_map)
    )

    assert image.shape == (6, 8, 3)
    np.testing.assert_array_equal(mask, np.array(ids)[which])


def test_unknown_colour_is_named_with_the_file(tmp_path, rng):
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[1, 2] = (1, 2, 3)
    write_rgb(tmp_path / "img" / "x.png", random_image(rng, 4, 4))
    write_rgb(tmp_path / "lbl" / "x.png", mask)
    with pytest.raises(ValueError, match=r"x\.png' has colours \[\(1, 2, 3\)\]"):
        data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=2, color_map=[(0, 0, 0)])


def test_rgb_mask_without_color_map_is_an_error_unless_grey(tmp_path, rng):
    grey = np.array([[0, 1, 2]] * 3, np.uint8)
    write_rgb(tmp_path / "img" / "grey.png", random_image(rng, 3, 3))
    write_rgb(tmp_path / "lbl" / "grey.png", np.stack([grey] * 3, axis=-1))
    write_rgb(tmp_path / "img2" / "color.png", random_image(rng, 3, 3))
    write_rgb(tmp_path / "lbl2" / "color.png", np.full((3, 3, 3), (0, 1, 0), np.uint8))

    ((_, mask),) = read_all(data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=3))
    np.testing.assert_array_equal(mask, grey)
    with pytest.raises(ValueError, match=r"color\.png' is a colour image.*color_map"):
        data.from_folders(tmp_path / "img2", tmp_path / "lbl2", num_classes=3)


def test_unmatched_images_and_masks_are_listed(tmp_path, rng):
    for stem in ("a", "b", "only_image"):
        write_rgb(tmp_path / "img" / f"{stem}.png", random_image(rng, 2, 2))
    for stem in ("a", "b", "only_mask"):
        write_rgb(tmp_path / "lbl" / f"{stem}.png", np.zeros((2, 2), np.uint8))
    found = r"found images in .* without a mask in .*'only_image\.png'; masks in .* without an image in .*'only_mask\.png'"
    with pytest.raises(ValueError, match=r"is the same name\); " + found):
        data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=2)


def test_mask_suffix_pairs_names(tmp_path, rng):
    image = random_image(rng, 2, 3)
    write_rgb(tmp_path / "img" / "0001.png", image)
    write_rgb(tmp_path / "lbl" / "0001_L.png", np.array([[0, 1, 0], [1, 1, 255]], np.uint8))
    ((decoded, mask),) = read_all(data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=2, mask_suffix="_L"))
    np.testing.assert_array_equal(decoded, image)
    np.testing.assert_array_equal(mask, [[0, 1, 0], [1, 1, 255]])


@pytest.mark.parametrize("check", [True, False])
def test_size_mismatch_names_both_files_and_sizes(tmp_path, rng, check):
    write_rgb(tmp_path / "img" / "frame.png", random_image(rng, 4, 6))
    write_rgb(tmp_path / "lbl" / "frame.png", np.zeros((4, 5), np.uint8))
    message = r"image '.*img.frame\.png' is 4x6 but mask '.*lbl.frame\.png' is 4x5"
    if check:  # found before anything is read by tf.data
        with pytest.raises(ValueError, match=message):
            data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=2)
    else:  # found when tf.data reads the pair
        dataset = data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=2, check=False)
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            read_all(dataset)


def test_mask_values_out_of_range_are_named_or_remapped(tmp_path, rng):
    mask = np.array([[0, 1, 11], [12, 255, 2]], np.uint8)
    write_rgb(tmp_path / "img" / "m.png", random_image(rng, 2, 3))
    write_rgb(tmp_path / "lbl" / "m.png", mask)
    with pytest.raises(ValueError, match=r"lbl.m\.png' has values \[11, 12\]"):
        data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=3)

    remapped = read_all(data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=3, label_map={11: 255, 12: 0, 2: 1}))
    np.testing.assert_array_equal(remapped[0][1], [[0, 1, 255], [0, 255, 1]])


def test_label_map_values_are_validated():
    with pytest.raises(ValueError, match=r"`label_map` key 3 must map to a class id from 0 to 1.*Received 7"):
        data.LabelSpec(2, label_map={3: 7})


def test_unreadable_file_is_named(tmp_path, rng):
    write_rgb(tmp_path / "img" / "good.png", random_image(rng, 2, 2))
    (tmp_path / "img" / "broken.png").write_bytes(b"not a png at all")
    for stem in ("good", "broken"):
        write_rgb(tmp_path / "lbl" / f"{stem}.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"Cannot read image file '.*broken\.png'"):
        data.from_folders(tmp_path / "img", tmp_path / "lbl", num_classes=1)


def test_camvid_layout(tmp_path, rng):
    expected = []
    for stem in ("0001TP_006690", "Seq05VD_f00000"):
        image, mask = random_image(rng, 6, 8), random_mask(rng, 6, 8, 11)
        write_rgb(tmp_path / "val" / "images" / f"{stem}.png", image)
        write_rgb(tmp_path / "val" / "masks" / f"{stem}.png", mask)
        expected.append((image, mask))

    pairs = read_all(data.camvid(tmp_path, "val"))

    for (image, mask), (want_image, want_mask) in zip(pairs, expected, strict=True):
        np.testing.assert_array_equal(image, want_image)
        np.testing.assert_array_equal(mask, want_mask)
    with pytest.raises(ValueError, match=r"split folder .*train.* does not exist"):
        data.camvid(tmp_path, "train")


def write_voc(root, year, split, ids, rng):
    """A VOCdevkit tree; returns {id: mask}. Images are flat grey so JPEG keeps them almost exactly."""
    year_dir = root / f"VOC{year}"
    split_dir = year_dir / "ImageSets" / "Segmentation"
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    masks = {}
    for n, image_id in enumerate(ids):
        write_rgb(year_dir / "JPEGImages" / f"{image_id}.jpg", np.full((5 + n, 7, 3), 40 * n, np.uint8))
        mask = random_mask(rng, 5 + n, 7, 21)
        mask[:, 0] = 255  # object border
        write_palette(str(year_dir / "SegmentationClass" / f"{image_id}.png"), mask)
        masks[image_id] = mask
    return masks


def test_voc_reads_split_order_palette_indices_and_borders(tmp_path, rng):
    ids = ["2008_000002", "2007_000032", "2009_000001"]
    masks = write_voc(tmp_path / "VOCdevkit", "2012", "val", ids, rng)

    pairs = read_all(data.voc(tmp_path / "VOCdevkit", "val"))

    assert len(pairs) == 3
    for n, ((image, mask), image_id) in enumerate(zip(pairs, ids)):
        assert image.shape == (5 + n, 7, 3)
        np.testing.assert_allclose(image, 40 * n, atol=2)
        np.testing.assert_array_equal(mask, masks[image_id])
        assert (mask[:, 0] == 255).all()


def test_voc_missing_files_are_listed(tmp_path, rng):
    write_voc(tmp_path / "VOCdevkit", "2012", "train", ["a", "b"], rng)
    os.remove(tmp_path / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "b.png")
    with pytest.raises(ValueError, match=r"missing: .*SegmentationClass.b\.png"):
        data.voc(tmp_path / "VOCdevkit", "train")
    with pytest.raises(ValueError, match=r"VOC2007.*Received root="):
        data.voc(tmp_path / "VOCdevkit", "train", year="2007")


def write_sbd(root, split, ids, rng):
    """An SBD tree (benchmark_RELEASE/dataset) with MATLAB class masks; returns {id: mask}."""
    dataset_dir = root / "dataset"
    (dataset_dir / "cls").mkdir(parents=True, exist_ok=True)
    (dataset_dir / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    masks = {}
    for image_id in ids:
        mask = rng.integers(0, 21, (6, 9), dtype=np.uint8)
        write_rgb(dataset_dir / "img" / f"{image_id}.jpg", np.full((6, 9, 3), 128, np.uint8))
        gtcls = {
            "Segmentation": mask,
            "Boundaries": np.zeros((21, 1), object),
            "CategoriesPresent": np.unique(mask[mask > 0]).astype(np.uint8),
        }
        scipy.io.savemat(str(dataset_dir / "cls" / f"{image_id}.mat"), {"GTcls": gtcls})
        masks[image_id] = mask
    return masks


def test_sbd_reads_mat_class_masks(tmp_path, rng):
    masks = write_sbd(tmp_path / "benchmark_RELEASE", "train", ["2008_000002", "2008_000003"], rng)

    pairs = read_all(data.sbd(tmp_path / "benchmark_RELEASE", "train"))

    assert len(pairs) == 2
    for (image, mask), want in zip(pairs, masks.values()):
        np.testing.assert_allclose(image, 128, atol=2)
        np.testing.assert_array_equal(mask, want)


def test_seg11valid_is_voc2011_val_minus_sbd_train(tmp_path, rng):
    masks = write_voc(tmp_path / "VOCdevkit", "2011", "val", ["v1", "shared1", "v2", "shared2"], rng)
    write_sbd(tmp_path / "sbd", "train", ["shared2", "t1", "shared1"], rng)

    assert data.seg11valid_ids(tmp_path / "VOCdevkit", tmp_path / "sbd") == ["v1", "v2"]
    pairs = read_all(data.seg11valid(tmp_path / "VOCdevkit", tmp_path / "sbd"))
    np.testing.assert_array_equal(pairs[0][1], masks["v1"])
    np.testing.assert_array_equal(pairs[1][1], masks["v2"])
    assert len(pairs) == 2
