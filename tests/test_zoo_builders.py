"""End-to-end: the builders' `weights=` argument takes zoo names and aliases.

`keras_fcn.FCN8s(weights="voc")` (the default backbone is `"vgg16_reference"`) downloads the
(local, test-made) caffemodel once, converts and caches it, and loads it; a
second build needs no network. The reference trunk is narrowed (see the
`small_reference` fixture of conftest.py) so the caffemodel stays small.
"""

import numpy as np
import pytest

import keras_fcn
from _caffe_helpers import assert_weights_equal_blobs, np_fcn
from _zoo_helpers import serve_caffemodel_entry


def test_fcn8s_voc_weights_download_convert_cache_and_load(small_reference, server, keras_home, monkeypatch):
    blobs = serve_caffemodel_entry(server, monkeypatch, "voc-fcn8s", 21, 8)
    model = keras_fcn.FCN8s(weights="voc")
    assert_weights_equal_blobs(model, blobs)
    image = np.random.default_rng(3).uniform(0, 255, (10, 13, 3)).astype(np.float32)
    expected = np_fcn(image, blobs, 8)
    np.testing.assert_allclose(
        np.asarray(model(image[None]))[0], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
    )
    assert sorted(path.name for path in keras_home.iterdir()) == [
        "voc-fcn8s.weights.h5",
        "voc-fcn8s.weights.h5.json",
    ]
    server.stop()
    again = keras_fcn.FCN8s(21, backbone="vgg16_reference", weights="voc-fcn8s")
    assert_weights_equal_blobs(again, blobs)
    assert server.requests == ["/voc-fcn8s.caffemodel"]


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: keras_fcn.FCN8s(backbone="vgg16", weights="voc"),
            r"Alias 'voc' names weights for other architectures only: .*'voc-fcn8s' \(fcn8s_vgg16_reference\)",
        ),
        (
            lambda: keras_fcn.FCN16s(3, backbone="vgg16_reference", weights="voc"),
            r"'voc-fcn16s' have 21 classes .*num_classes=3",
        ),
        (
            lambda: keras_fcn.FCN8sAtOnce(21, backbone="vgg16_reference", weights="voc-fcn8s"),
            r"architecture 'fcn8s_vgg16_reference', not 'fcn8s_atonce_vgg16_reference'",
        ),
        (
            lambda: keras_fcn.FCN32s(40, backbone="vgg16_reference", weights="nyud-fcn32s-color"),
            r"load_model\('nyud-fcn32s-color'\)",
        ),
        (
            lambda: keras_fcn.FCN32s(21, backbone="vgg16_reference", weights="no-such-weights"),
            r"Entries for 'fcn32s_vgg16_reference': \['voc-fcn32s', 'pascalcontext-fcn32s', 'nyud-fcn32s-color', 'nyud-fcn32s-hha'\]",
        ),
    ],
    ids=["alias-other-backbone", "class-count", "architecture", "preprocessing", "unknown-name"],
)
def test_builders_reject_weights_that_do_not_fit(small_reference, keras_home, build, message):
    with pytest.raises(ValueError, match=message):
        build()
