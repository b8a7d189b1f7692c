"""Users' own files as they come: checked up front, read upright and at full range, never silently damaged."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import ExifTags, Image

from keras_fcn import data
from keras_fcn.data.image_files import upright_size
from _training_helpers import write_pairs


def save(path, array, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def read_all(dataset):
    return [(image.numpy(), mask.numpy()) for image, mask in dataset]


def disc(size, radius):
    """A boolean disc in the middle of a `size` x `size` square, drawn with numpy."""
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    return x**2 + y**2 <= radius**2


def test_every_bad_pair_is_listed_with_its_files_before_anything_is_read(tmp_path, rng, capsys):
    images, masks = tmp_path / "images", tmp_path / "masks"
    for stem in ("a_good", "b_narrow", "c_truncated", "d_values", "e_jpeg", "f_narrow"):
        save(images / f"{stem}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        save(masks / f"{stem}.png", rng.integers(0, 3, (16, 16), dtype=np.uint8))
    for stem in ("b_narrow", "f_narrow"):
        save(masks / f"{stem}.png", np.zeros((16, 15), np.uint8))
    whole = (images / "c_truncated.png").read_bytes()
    (images / "c_truncated.png").write_bytes(whole[: len(whole) // 2])
    save(masks / "d_values.png", np.full((16, 16), 7, np.uint8))
    os.remove(masks / "e_jpeg.png")
    save(masks / "e_jpeg.jpg", np.zeros((16, 16), np.uint8))

    with pytest.raises(ValueError) as error:
        data.from_folders(images, masks, num_classes=3)

    lines = str(error.value).splitlines()
    assert lines[0] == "5 of 6 image/mask pairs cannot be used:"
    assert len(lines) == 6 and "a_good" not in str(error.value)
    assert "b_narrow.png' is 16x16 but mask" in lines[1] and "b_narrow.png' is 16x15" in lines[1]
    assert "Cannot read image file" in lines[2] and "c_truncated.png" in lines[2]
    assert "d_values.png' has values [7]" in lines[3]
    assert "e_jpeg.jpg' is a JPEG file" in lines[4]
    assert "f_narrow.png' is 16x15" in lines[5]
    assert "Checking 6 image/mask pairs" in capsys.readouterr().out


def test_sizes_are_read_from_headers_without_decoding_pixels(tmp_path):
    save(tmp_path / "big.png", np.zeros((300, 200), np.uint8))
    whole = (tmp_path / "big.png").read_bytes()
    (tmp_path / "big.png").write_bytes(whole[:100])  # the header and no pixels
    assert upright_size(str(tmp_path / "big.png")) == ((300, 200), (300, 200), 1)
    with pytest.raises(ValueError, match=r"Cannot read image file '.*big\.png'"):
        data.read_image(str(tmp_path / "big.png"))


def test_lossy_masks_are_refused_naming_the_file(tmp_path):
    # The example: a disc of class 8 in a 64x64 JPEG mask gains other classes at its edge.
    mask = np.where(disc(64, 20), 8, 0).astype(np.uint8)
    save(tmp_path / "images" / "x.png", np.zeros((64, 64, 3), np.uint8))
    save(tmp_path / "masks" / "x.jpg", mask)
    ringing = np.asarray(Image.open(tmp_path / "masks" / "x.jpg"))
    assert (ringing != mask).sum() > 100
    with pytest.raises(ValueError, match=r"Mask '.*x\.jpg' is a JPEG file.*--mask-threshold.*--label-map"):
        data.from_folders(tmp_path / "images", tmp_path / "masks", num_classes=12)


def test_jpeg_binary_masks_read_with_a_threshold(tmp_path):
    foreground = disc(64, 20)
    save(tmp_path / "images" / "x.png", np.zeros((64, 64, 3), np.uint8))
    save(tmp_path / "masks" / "x.jpg", np.where(foreground, 255, 0).astype(np.uint8), quality=90)
    (_, mask), = read_all(data.from_folders(tmp_path / "images", tmp_path / "masks", num_classes=2, mask_threshold=128))
    np.testing.assert_array_equal(mask, foreground.astype(np.uint8))


@pytest.mark.parametrize("radius", [14, 6])  # the object covers most pixels, or few
def test_binary_0_255_masks_are_refused_with_the_fix_then_read_with_it(tmp_path, radius):
    foreground = disc(32, radius)
    for stem in ("a", "b"):
        save(tmp_path / "images" / f"{stem}.png", np.zeros((32, 32, 3), np.uint8))
        save(tmp_path / "masks" / f"{stem}.png", np.where(foreground, 255, 0).astype(np.uint8))
    folders = (tmp_path / "images", tmp_path / "masks")
    with pytest.raises(ValueError) as error:
        data.from_folders(*folders, num_classes=2)
    share = foreground.mean()
    assert f"hold no pixel of class 1 and {share:.0%} of their pixels are 255" in str(error.value)
    assert "--label-map 255:1 (label_map={255: 1})" in str(error.value)
    assert "--mask-threshold 128" in str(error.value)

    for _, mask in read_all(data.from_folders(*folders, num_classes=2, label_map={255: 1})):
        np.testing.assert_array_equal(mask, foreground.astype(np.uint8))
    # Saying that 255 does mean "ignore" keeps it.
    for _, mask in read_all(data.from_folders(*folders, num_classes=2, label_map={255: 255})):
        np.testing.assert_array_equal(mask, np.where(foreground, 255, 0))


def test_masks_with_every_class_and_an_ignored_border_pass(tmp_path):
    mask = np.array([[0, 1, 2, 255]] * 4, np.uint8)
    save(tmp_path / "images" / "a.png", np.zeros((4, 4, 3), np.uint8))
    save(tmp_path / "masks" / "a.png", mask)
    (_, read), = read_all(data.from_folders(tmp_path / "images", tmp_path / "masks", num_classes=3))
    np.testing.assert_array_equal(read, mask)


RAMP = np.array([[0, 1, 128, 257, 21845, 32767, 43690, 65535]], np.uint16)


@pytest.mark.parametrize(
    "name, array",
    [
        ("grey16.png", RAMP),  # Pillow mode I;16
        ("grey16.tif", RAMP),  # I;16
        ("grey16b.tif", RAMP.astype(">u2")),  # I;16B, big-endian
        ("grey32.tif", RAMP.astype(np.int32)),  # I, values 0..65535
    ],
)
def test_16_bit_images_are_scaled_to_0_255_not_clipped(tmp_path, name, array):
    save(tmp_path / name, array)
    expected = np.round(RAMP.astype(np.float64) * 255 / 65535)
    image = data.read_image(str(tmp_path / name))
    assert image.dtype == np.uint8 and image.shape == (1, 8, 3)
    np.testing.assert_array_equal(image, np.repeat(expected[..., None], 3, -1))
    if name.endswith(".png"):  # TensorFlow's own 8-bit decoding of the file agrees to within one level
        tf_image = tf.image.decode_png((tmp_path / name).read_bytes(), channels=3).numpy()
        np.testing.assert_allclose(image, tf_image, atol=1)


def test_floating_point_images_are_refused(tmp_path):
    save(tmp_path / "float.tif", np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"float\.tif' holds floating-point pixels"):
        data.read_image(str(tmp_path / "float.tif"))


def phone_photo(path, rng, stored_size=(16, 24)):
    """A JPEG whose pixels are stored sideways with EXIF orientation 6 (turn 90 degrees clockwise to view)."""
    stored = rng.integers(0, 256, (*stored_size, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    save(path, stored, exif=exif.tobytes(), quality=95)
    with Image.open(path) as image:  # the stored pixels as decoded, before any turn
        decoded = np.asarray(image.convert("RGB"))
    return np.rot90(decoded, k=-1)  # the photo as viewers show it


def test_exif_orientation_is_applied_in_the_data_loaders(tmp_path, rng):
    upright = phone_photo(str(tmp_path / "images" / "photo.jpg"), rng)
    mask = (np.arange(24 * 16).reshape(24, 16) % 3).astype(np.uint8)  # drawn on the upright photo
    save(tmp_path / "masks" / "photo.png", mask)
    (image, read_mask), = read_all(data.from_folders(tmp_path / "images", tmp_path / "masks", num_classes=3))
    assert image.shape == (24, 16, 3)
    np.testing.assert_array_equal(image, upright)
    np.testing.assert_array_equal(read_mask, mask)


def test_a_mask_drawn_on_the_unrotated_pixels_is_reported_with_the_exif_orientation(tmp_path, rng):
    phone_photo(str(tmp_path / "images" / "photo.jpg"), rng)
    save(tmp_path / "masks" / "photo.png", np.zeros((16, 24), np.uint8))
    with pytest.raises(ValueError, match=r"photo\.jpg' is 24x16 .* is 16x24 .*stored 16x24 with EXIF orientation 6"):
        data.from_folders(tmp_path / "images", tmp_path / "masks", num_classes=3)


def test_hidden_and_macos_resource_files_are_skipped_and_tiff_is_read(tmp_path, rng):
    image = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    save(tmp_path / "images" / "a.tif", image)
    save(tmp_path / "masks" / "a.png", np.ones((4, 5), np.uint8))
    for folder in ("images", "masks"):
        (tmp_path / folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
        (tmp_path / folder / ".DS_Store").write_bytes(b"Bud1")
    save(tmp_path / "images" / ".hidden.png", image)
    (read_image, mask), = read_all(data.from_folders(tmp_path / "images", tmp_path / "masks", num_classes=2))
    np.testing.assert_array_equal(read_image, image)
    np.testing.assert_array_equal(mask, np.ones((4, 5)))


def test_color_map_file(tmp_path, rng):
    (tmp_path / "colors.txt").write_text(
        "# R G B name\n128 128 128\tsky\n\n128,0,0 building block\n0 0 0 Ignore\n64 128 64\n"
    )
    colors = data.read_color_map(str(tmp_path / "colors.txt"))
    assert colors.colors == {(128, 128, 128): 0, (128, 0, 0): 1, (0, 0, 0): 255, (64, 128, 64): 2}
    assert colors.class_names == ("sky", "building block", "2") and colors.num_classes == 3

    palette = np.array([(128, 128, 128), (128, 0, 0), (0, 0, 0), (64, 128, 64)], np.uint8)
    which = rng.integers(0, 4, (5, 6))
    save(tmp_path / "images" / "x.png", rng.integers(0, 256, (5, 6, 3), dtype=np.uint8))
    save(tmp_path / "masks" / "x.png", palette[which])
    (_, mask), = read_all(
        data.from_folders(tmp_path / "images", tmp_path / "masks", num_classes=3, color_map=colors.colors)
    )
    np.testing.assert_array_equal(mask, np.array([0, 1, 255, 2])[which])


@pytest.mark.parametrize(
    "text, message",
    [
        ("0 0 0 a\n1 2 b\n", r"line 2: expected a colour"),
        ("0 0 0 a\n1 2 256 b\n", r"line 2: expected a colour.*'1 2 256 b'"),
        ("0 0 0 a\n# c\n0 0 0 b\n", r"line 3: colour \(0, 0, 0\) is given twice"),
        ("# nothing\n0 0 0 ignore\n", r"names no class"),
    ],
)
def test_color_map_file_errors_name_file_and_line(tmp_path, text, message):
    (tmp_path / "colors.txt").write_text(text)
    with pytest.raises(ValueError, match=r"Colour map file '.*colors\.txt'.*" + message):
        data.read_color_map(str(tmp_path / "colors.txt"))


def test_mask_reading_options_are_validated():
    with pytest.raises(ValueError, match=r"needs num_classes=2. Received num_classes=3, mask_threshold=128"):
        data.LabelSpec(3, mask_threshold=128)
    with pytest.raises(ValueError, match=r"at most one of .*Received label_map, mask_threshold"):
        data.LabelSpec(2, label_map={255: 1}, mask_threshold=128)


def test_load_dataset_reads_folders_with_the_mask_options_and_refuses_them_elsewhere(tmp_path):
    from keras_fcn import training

    foreground = disc(8, 3)
    for split in ("train", "val"):
        save(tmp_path / split / "images" / "a.png", np.zeros((8, 8, 3), np.uint8))
        save(tmp_path / split / "masks" / "a.png", np.where(foreground, 255, 0).astype(np.uint8))
    splits = training.load_dataset(
        str(tmp_path / "train"), validation=str(tmp_path / "val"), num_classes=2, label_map={255: 1}
    )
    for pairs in (splits.train, splits.validation):
        ((_, mask),) = read_all(pairs)
        np.testing.assert_array_equal(mask, foreground.astype(np.uint8))
    with pytest.raises(ValueError, match=r"apply to folder datasets. Received dataset='camvid'"):
        training.load_dataset("camvid", data_root=str(tmp_path), mask_threshold=128)


def test_the_check_shows_as_much_progress_as_verbose_asks(tmp_path, capsys):
    folder = write_pairs(tmp_path / "pairs", 5)
    checked = "Checking 5 image/mask pairs"
    data.from_folders(f"{folder}/images", f"{folder}/masks", num_classes=3, verbose=0)
    assert capsys.readouterr().out == ""
    data.from_folders(f"{folder}/images", f"{folder}/masks", num_classes=3, verbose=2)
    out = capsys.readouterr().out
    assert out.startswith(checked) and "5/5" in out and "1/5" not in out and "\r" not in out
    data.from_folders(f"{folder}/images", f"{folder}/masks", num_classes=3)
    assert capsys.readouterr().out.startswith(checked)
    with pytest.raises(ValueError, match="`verbose` must be 0, 1 or 2. Received verbose='auto'"):
        data.from_folders(f"{folder}/images", f"{folder}/masks", num_classes=3, verbose="auto")
    with open(f"{folder}/images/002.png", "r+b") as image:  # its header says another size than its mask's
        image.seek(16)
        image.write((1000).to_bytes(4, "big"))
    with pytest.raises(ValueError, match="1 of 5"):
        data.from_folders(f"{folder}/images", f"{folder}/masks", num_classes=3, verbose=2)
    assert "5/5" in capsys.readouterr().out  # the bar counts every pair checked, those refused by a header too
