"""The `camvid` zoo entry that ships inside the package: its record, its file, and what it sees in the sample street.

The weights were trained by zoo/train_camvid.sh; these tests need neither
the network nor the CamVid data.
"""

import numpy as np
import pytest
from PIL import Image

import keras_fcn
from keras_fcn import zoo
from keras_fcn.assets import sample_image_path
from keras_fcn.files import sha256_of

PAPER_FIGURES = ("pixel accuracy", "mean accuracy", "mean IU", "f.w. IU")


@pytest.fixture(scope="module")
def street_labels():
    model = keras_fcn.FCN8s(weights="camvid", backbone="mobilenet")
    image = np.asarray(Image.open(sample_image_path()).convert("RGB"))
    return keras_fcn.predict(model, [image])[0]


def test_camvid_entry_records_its_file_classes_figures_and_command():
    entry = zoo.get("camvid")
    assert entry.class_names == keras_fcn.data.CAMVID_CLASSES
    assert entry.architecture == "fcn8s_mobilenet" and entry.backbone_kwargs == {"alpha": 0.25}
    assert entry.palette[entry.class_names.index("road")] == (128, 64, 128)
    assert entry.urls == () and sha256_of(zoo.fetch("camvid")) == entry.weights_sha256
    figures = {metric["metric"]: metric["value"] for metric in entry.metrics}
    assert set(figures) == set(PAPER_FIGURES) | {f"IU {name}" for name in entry.class_names}
    assert all(metric["measured_by"] == "keras-fcn" for metric in entry.metrics)
    # The paper's definitions order the figures: mean IU <= f.w. IU <= pixel accuracy, mean IU <= mean accuracy.
    assert figures["mean IU"] <= min(figures["f.w. IU"], figures["mean accuracy"])
    assert figures["f.w. IU"] <= figures["pixel accuracy"]
    assert figures["mean IU"] == pytest.approx(np.mean([figures[f"IU {name}"] for name in entry.class_names]), abs=0.01)
    assert "zoo/train_camvid.sh" in entry.command


def test_camvid_model_sees_sky_above_and_road_below_in_the_sample_street(street_labels):
    names = keras_fcn.data.CAMVID_CLASSES
    height, width = street_labels.shape
    assert (height, width) == (360, 480)
    # The drawing (examples/draw_street.py): sky in the top centre, road across the bottom centre.
    sky = street_labels[: height // 8, width // 3 : 2 * width // 3]
    road = street_labels[-height // 6 :, width // 4 : 3 * width // 4]
    assert np.mean(sky == names.index("sky")) > 0.5
    assert np.mean(road == names.index("road")) > 0.8
    present = {names[c] for c in np.unique(street_labels)}
    assert {"sky", "building", "road", "car"} <= present
