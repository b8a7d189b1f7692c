"""Tests of keras_fcn.zoo: the manifest, verified cached downloads, conversion on first use.

A server on 127.0.0.1 (the `server` fixture of conftest.py) serves files the
tests make; no test needs the internet.
"""

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import resource
import signal

import numpy as np
import pytest

import keras_fcn
from keras_fcn import zoo
from keras_fcn.zoo import registry
from _caffe_helpers import assert_weights_equal_blobs, caffe_fcn_blobs, np_fcn
from _zoo_helpers import serve_blobs, serve_caffemodel_entry


@pytest.fixture
def fresh_registry(monkeypatch):
    """The manifest's entries in a registry the test may add to."""
    fresh = registry.Registry(registry.read_manifest())
    monkeypatch.setattr(zoo, "REGISTRY", fresh)
    return fresh


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def keras_entry(name, urls, data_sha256):
    """A zoo entry for a Keras weights file, modelled on voc-fcn8s."""
    return dataclasses.replace(
        zoo.get("voc-fcn8s"),
        name=name,
        aliases=(),
        urls=tuple(urls),
        source_format="keras",
        source_sha256=data_sha256,
        weights_sha256=data_sha256,
    )


def cache_files(directory):
    return sorted(os.listdir(directory)) if directory.exists() else []


# --- the manifest ----------------------------------------------------------------------

VOC_CLASSES = (
    "background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse "
    "motorbike person pottedplant sheep sofa train tvmonitor"
).split()


def test_manifest_lists_the_papers_models_with_their_metadata():
    expected = {
        "voc-fcn32s": ("fcn32s_vgg16_reference", 21, "fcn32s-heavy-pascal.caffemodel"),
        "voc-fcn16s": ("fcn16s_vgg16_reference", 21, "fcn16s-heavy-pascal.caffemodel"),
        "voc-fcn8s": ("fcn8s_vgg16_reference", 21, "fcn8s-heavy-pascal.caffemodel"),
        "voc-fcn8s-atonce": ("fcn8s_atonce_vgg16_reference", 21, "fcn8s-atonce-pascal.caffemodel"),
        "voc-fcn-alexnet": ("fcn32s_alexnet_reference", 21, "fcn-alexnet-pascal.caffemodel"),
        "pascalcontext-fcn32s": ("fcn32s_vgg16_reference", 60, "pascalcontext-fcn32s-heavy.caffemodel"),
        "pascalcontext-fcn16s": ("fcn16s_vgg16_reference", 60, "pascalcontext-fcn16s-heavy.caffemodel"),
        "pascalcontext-fcn8s": ("fcn8s_vgg16_reference", 60, "pascalcontext-fcn8s-heavy.caffemodel"),
        "siftflow-fcn32s": (
            "fcn32s_semantic_geometric_vgg16_reference",
            33,
            "siftflow-fcn32s-heavy.caffemodel",
        ),
        "siftflow-fcn16s": (
            "fcn16s_semantic_geometric_vgg16_reference",
            33,
            "siftflow-fcn16s-heavy.caffemodel",
        ),
        "siftflow-fcn8s": ("fcn8s_semantic_geometric_vgg16_reference", 33, "siftflow-fcn8s-heavy.caffemodel"),
        "nyud-fcn32s-color": ("fcn32s_vgg16_reference", 40, "nyud-fcn32s-color-heavy.caffemodel"),
        "nyud-fcn32s-hha": ("fcn32s_vgg16_reference", 40, "nyud-fcn32s-hha-heavy.caffemodel"),
        "nyud-fcn32s-color-hha": (
            "fcn32s_color_hha_vgg16_reference",
            40,
            "nyud-fcn32s-color-hha-heavy.caffemodel",
        ),
    }
    assert zoo.available() == [*expected, "camvid"]  # camvid, ours, is tested in test_camvid_zoo.py
    for name, (architecture, num_classes, file_name) in expected.items():
        entry = zoo.get(name)
        assert entry.architecture == architecture and entry.num_classes == num_classes
        assert entry.urls == (f"http://dl.caffe.berkeleyvision.org/{file_name}",)
        assert (
            entry.source_format == "caffemodel"
            and entry.source_sha256 is None
            and entry.weights_sha256 is None
        )
        assert len(entry.class_names) == num_classes == len(entry.palette)
        assert entry.licence and entry.command == f"keras-fcn zoo download {name}"
        assert all(metric["measured_by"] == "authors" and metric["source"] for metric in entry.metrics)
    assert zoo.get("voc-fcn8s").class_names == tuple(VOC_CLASSES)
    assert zoo.get("pascalcontext-fcn8s").class_names[:21] == tuple(VOC_CLASSES)
    assert [name for name, _ in zoo.get("siftflow-fcn16s").outputs] == ["score_sem", "score_geo"]
    assert zoo.get("siftflow-fcn16s").outputs[1][1] == ("sky", "horizontal", "vertical")
    assert [metric["value"] for metric in zoo.get("voc-fcn8s").metrics] == [65.5, 67.2]


def test_preprocessing_of_each_dataset_is_the_authors():
    voc = zoo.get("voc-fcn8s").preprocessing
    assert (voc.mean, voc.bgr) == ((104.00699, 116.66877, 122.67892), True)
    assert zoo.get("siftflow-fcn8s").preprocessing.mean == (114.578, 115.294, 108.353)
    assert zoo.get("nyud-fcn32s-color").preprocessing.mean == (116.190, 97.203, 92.318)
    hha = zoo.get("nyud-fcn32s-hha").preprocessing
    assert (hha.mean, hha.bgr) == ((132.431, 94.076, 118.477), False)
    assert [name for name, _ in zoo.get("nyud-fcn32s-color-hha").inputs] == ["color", "hha"]


def test_voc_palette_is_the_devkit_colour_map():
    palette = zoo.voc_palette(256)
    assert palette[:4] == ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0))
    assert palette[15] == (192, 128, 128)  # person
    assert palette[20] == (0, 64, 128)  # tvmonitor
    assert palette[255] == (224, 224, 192)  # the devkit's "void" colour
    assert len(set(palette)) == 256


def test_registry_refuses_duplicates(fresh_registry):
    entry = zoo.get("voc-fcn8s")
    with pytest.raises(ValueError, match="named 'voc-fcn8s' already exists"):
        zoo.register(entry)
    with pytest.raises(ValueError, match="Alias 'voc' of zoo entry 'copy' already names 'voc-fcn8s'"):
        zoo.register(dataclasses.replace(entry, name="copy"))


def test_invalid_entries_are_refused():
    with pytest.raises(ValueError, match="64 lowercase hex digits.*palette has 2 colours for 21 classes"):
        dataclasses.replace(zoo.get("voc-fcn8s"), source_sha256="abc", palette=((0, 0, 0),) * 2)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        zoo.resolve_weights("vocc", architecture="fcn8s_vgg16_reference", num_classes=21)
    message = str(error.value)
    assert "Entries for 'fcn8s_vgg16_reference': ['voc-fcn8s', 'pascalcontext-fcn8s']" in message
    assert "'nyud-fcn32s-hha'" in message and "Received weights='vocc'" in message


def test_aliases_pick_the_entry_of_the_architecture():
    for architecture, name in [
        ("fcn32s_vgg16_reference", "voc-fcn32s"),
        ("fcn16s_vgg16_reference", "voc-fcn16s"),
        ("fcn8s_vgg16_reference", "voc-fcn8s"),
        ("fcn8s_atonce_vgg16_reference", "voc-fcn8s-atonce"),
    ]:
        assert zoo.REGISTRY.find("voc", architecture).name == name
    assert zoo.REGISTRY.find("pascalcontext", "fcn16s_vgg16_reference").name == "pascalcontext-fcn16s"
    with pytest.raises(
        ValueError, match="Alias 'voc' names weights for other architectures only: 'voc-fcn32s'"
    ):
        zoo.resolve_weights("voc", architecture="fcn8s_vgg16", num_classes=21)


@pytest.mark.parametrize(
    "weights, architecture, num_classes, message",
    [
        (
            "voc-fcn8s",
            "fcn32s_vgg16_reference",
            21,
            r"'voc-fcn8s' are for architecture 'fcn8s_vgg16_reference', not 'fcn32s_vgg16_reference'. Use keras_fcn.FCN8s\(backbone='vgg16_reference', weights='voc-fcn8s'\)",
        ),
        (
            "voc",
            "fcn8s_vgg16_reference",
            3,
            r"'voc-fcn8s' have 21 classes .*received num_classes=3. Pass num_classes=21",
        ),
        (
            "nyud-fcn32s-color",
            "fcn32s_vgg16_reference",
            40,
            r"BGR minus the mean \(116.190, 97.203, 92.318\).*keras_fcn.zoo.load_model\('nyud-fcn32s-color'\)",
        ),
        ("nyud-fcn32s-hha", "fcn32s_vgg16_reference", 40, r"HHA image.*load_model\('nyud-fcn32s-hha'\)"),
    ],
)
def test_weights_that_do_not_fit_say_why(weights, architecture, num_classes, message):
    with pytest.raises(ValueError, match=message):
        zoo.resolve_weights(weights, architecture=architecture, num_classes=num_classes)


def test_camvid_classes_and_colours_are_the_segnet_release():
    with open(registry.MANIFEST_PATH, encoding="utf-8") as file:
        manifest = json.load(file)
    assert tuple(manifest["class_names"]["camvid"]) == keras_fcn.data.CAMVID_CLASSES
    colours = manifest["palettes"]["camvid"]
    assert colours[0] == [128, 128, 128] and colours[3] == [128, 64, 128] and colours[8] == [64, 0, 128]
    assert len({tuple(colour) for colour in colours}) == 11


def test_none_and_local_paths_pass_through(tmp_path):
    path = tmp_path / "mine.weights.h5"
    path.write_bytes(b"x")
    assert zoo.resolve_weights(None, architecture="fcn8s_vgg16", num_classes=21) is None
    assert zoo.resolve_weights(str(path), architecture="fcn8s_vgg16", num_classes=21) == str(path)
    assert zoo.resolve_weights(path, architecture="fcn8s_vgg16", num_classes=21) == str(path)


# --- downloads -------------------------------------------------------------------------


def test_download_verifies_caches_and_then_needs_no_network(server, keras_home, fresh_registry):
    data = os.urandom(100_000)
    zoo.register(keras_entry("mine", [server.add("/mine.weights.h5", data)], sha256(data)))
    path = zoo.fetch("mine")
    assert path == str(keras_home / "mine.weights.h5")
    assert open(path, "rb").read() == data
    assert cache_files(keras_home) == ["mine.weights.h5"]
    server.stop()
    assert zoo.fetch("mine") == path
    assert server.requests == ["/mine.weights.h5"]


def test_mirrors_are_tried_in_turn(server, keras_home, fresh_registry):
    data = b"weights"
    urls = [server.url("/gone.weights.h5"), server.add("/mirror.weights.h5", data)]
    zoo.register(keras_entry("mine", urls, sha256(data)))
    assert open(zoo.fetch("mine"), "rb").read() == data
    assert server.requests == ["/gone.weights.h5", "/mirror.weights.h5"]


@pytest.mark.parametrize("failure", ["hash mismatch", "404", "truncated"])
def test_failed_downloads_leave_nothing_in_the_cache(server, keras_home, fresh_registry, failure):
    data = os.urandom(50_000)
    url = server.add("/mine.weights.h5", data)
    if failure == "hash mismatch":
        expected_sha256 = sha256(data + b"!")
        reason = "file hash does not match"
    elif failure == "404":
        expected_sha256, url, reason = sha256(data), server.url("/missing.weights.h5"), "404"
    else:
        expected_sha256, reason = sha256(data), "retrieval incomplete"
        server.truncated.add("/mine.weights.h5")
    zoo.register(keras_entry("mine", [url], expected_sha256))
    with pytest.raises(zoo.WeightsDownloadError) as error:
        zoo.fetch("mine")
    assert url in str(error.value) and reason in str(error.value)
    assert cache_files(keras_home) == []


@contextlib.contextmanager
def files_limited_to(size):
    """Writes past `size` bytes of any file fail with EFBIG ("File too large"), as a full disk fails a write."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the default action would kill the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_write_that_fails_midway_leaves_nothing_in_the_cache(server, keras_home, fresh_registry):
    data = os.urandom(200_000)
    zoo.register(keras_entry("mine", [server.add("/mine.weights.h5", data)], sha256(data)))
    with files_limited_to(50_000), pytest.raises(zoo.WeightsDownloadError) as error:
        zoo.fetch("mine")
    assert os.strerror(errno.EFBIG) in str(error.value)
    assert cache_files(keras_home) == []


def test_corrupt_cached_file_is_downloaded_again(server, keras_home, fresh_registry):
    data = b"good weights"
    zoo.register(keras_entry("mine", [server.add("/mine.weights.h5", data)], sha256(data)))
    keras_home.mkdir(parents=True)
    (keras_home / "mine.weights.h5").write_bytes(b"bad")
    assert open(zoo.fetch("mine"), "rb").read() == data
    assert server.requests == ["/mine.weights.h5"]


def test_offline_error_names_the_url_and_where_to_put_the_file(server, keras_home, fresh_registry):
    data = b"weights"
    url = server.add("/mine.weights.h5", data)
    zoo.register(keras_entry("mine", [url], sha256(data)))
    server.stop()
    with pytest.raises(zoo.WeightsDownloadError) as error:
        zoo.fetch("mine")
    target = keras_home / "mine.weights.h5"
    assert f"{url}: Exception: URL fetch failure on {url}" in str(error.value)
    assert f"download {url} elsewhere and copy it to {target}" in str(error.value)
    assert cache_files(keras_home) == []
    target.write_bytes(data)
    assert zoo.fetch("mine") == str(target)


def test_url_weights_are_downloaded_once(server, keras_home):
    url = server.add("/some/where/net.weights.h5?version=2", b"weights")
    path = zoo.resolve_weights(url, architecture="fcn8s_vgg16", num_classes=21)
    assert path == str(keras_home / "net.weights.h5") and open(path, "rb").read() == b"weights"
    server.stop()
    assert zoo.resolve_weights(url, architecture="fcn8s_vgg16", num_classes=21) == path
    with pytest.raises(ValueError, match="'.weights.h5' file"):
        zoo.resolve_weights(server.url("/net.caffemodel"), architecture="fcn8s_vgg16", num_classes=21)


# --- caffemodel entries: download, convert, record, reuse --------------------------------


def assert_close(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_caffemodel_entry_is_converted_once_and_recorded(small_reference, server, keras_home, monkeypatch):
    blobs = serve_caffemodel_entry(server, monkeypatch, "voc-fcn16s", 21, 16, legacy=True)
    path = zoo.fetch("voc-fcn16s")
    assert path == str(keras_home / "voc-fcn16s.weights.h5")
    assert cache_files(keras_home) == ["voc-fcn16s.weights.h5", "voc-fcn16s.weights.h5.json"]
    record = json.loads((keras_home / "voc-fcn16s.weights.h5.json").read_text())
    assert record["sha256"] == sha256(open(path, "rb").read())
    assert record["source_sha256"] == sha256(server.files["/voc-fcn16s.caffemodel"])
    model = keras_fcn.FCN16s(21, backbone="vgg16_reference", backbone_weights=None)
    model.load_weights(path)
    assert_weights_equal_blobs(model, blobs)
    server.stop()
    assert zoo.fetch("voc-fcn16s") == path
    assert server.requests == ["/voc-fcn16s.caffemodel"]


def test_converted_file_that_changed_is_converted_again(small_reference, server, keras_home, monkeypatch):
    serve_caffemodel_entry(server, monkeypatch, "voc-fcn32s", 21, 32)
    path = zoo.fetch("voc-fcn32s")
    with open(path, "ab") as file:
        file.write(b"tampered")
    assert zoo.fetch("voc-fcn32s") == path
    assert server.requests == ["/voc-fcn32s.caffemodel"] * 2
    record = json.loads((keras_home / "voc-fcn32s.weights.h5.json").read_text())
    assert record["sha256"] == sha256(open(path, "rb").read())


def test_caffemodel_that_does_not_convert_leaves_nothing(small_reference, server, keras_home, monkeypatch):
    serve_caffemodel_entry(server, monkeypatch, "voc-fcn32s", 5, 32)  # 5 classes, the entry has 21
    with pytest.raises(zoo.WeightsDownloadError, match="'voc-fcn32s'.*could not be converted.*score_fr"):
        zoo.fetch("voc-fcn32s")
    assert cache_files(keras_home) == []


def test_load_model_applies_the_entrys_own_preprocessing(small_reference, server, keras_home, monkeypatch):
    for name, mean, bgr in [
        ("nyud-fcn32s-color", (116.190, 97.203, 92.318), True),
        ("nyud-fcn32s-hha", (132.431, 94.076, 118.477), False),
    ]:
        blobs = serve_caffemodel_entry(server, monkeypatch, name, 40, 32)
        model = zoo.load_model(name)
        assert_weights_equal_blobs(model, blobs)
        image = np.random.default_rng(2).uniform(0, 255, (9, 12, 3)).astype(np.float32)
        expected = np_fcn(image, blobs, 32, mean=np.array(mean), bgr=bgr)
        assert_close(np.asarray(model(image[None]))[0], expected)


def assert_loads_exactly(model, blobs):
    """Every layer with weights took the blobs of its name, exactly, and no blob was left over."""
    assert sorted(layer.name for layer in model.layers if layer.weights) == sorted(blobs)
    assert_weights_equal_blobs(model, blobs)


SIFTFLOW_MEAN = (114.578, 115.294, 108.353)
# Weighted layers of the two heads, as the authors' siftflow-fcn{32,16,8}s/net.py name them.
SIFTFLOW_HEADS = {
    32: ["score_fr_sem", "upscore_sem", "score_fr_geo", "upscore_geo"],
    16: ["score_fr_sem", "upscore2_sem", "score_pool4_sem", "upscore16_sem"]
    + ["score_fr_geo", "upscore2_geo", "score_pool4_geo", "upscore16_geo"],
    8: ["score_fr_sem", "upscore2_sem", "score_pool4_sem", "upscore_pool4_sem", "score_pool3_sem"]
    + ["upscore8_sem", "score_fr_geo", "upscore2_geo", "score_pool4_geo", "upscore_pool4_geo"]
    + ["score_pool3_geo", "upscore8_geo"],
}


@pytest.mark.parametrize("stride", [32, 16, 8])
def test_siftflow_two_heads_convert_load_and_match_numpy(
    small_reference, server, keras_home, monkeypatch, stride
):
    semantic, geometric = caffe_fcn_blobs(33, stride, seed=0), caffe_fcn_blobs(3, stride, seed=1)
    trunk = {name: blob for name, blob in semantic.items() if name.startswith(("conv", "fc"))}
    heads = {"_sem": semantic, "_geo": geometric}
    blobs = dict(trunk)
    for suffix, head in heads.items():
        blobs.update({f"{name}{suffix}": blob for name, blob in head.items() if name not in trunk})
    assert sorted(set(blobs) - set(trunk)) == sorted(SIFTFLOW_HEADS[stride])
    serve_blobs(server, monkeypatch, f"siftflow-fcn{stride}s", blobs)
    model = zoo.load_model(f"siftflow-fcn{stride}s")
    assert model.name == f"fcn{stride}s_semantic_geometric_vgg16_reference"
    assert_loads_exactly(model, blobs)
    image = np.random.default_rng(4).uniform(0, 255, (10, 13, 3)).astype(np.float32)
    got = model(image[None])
    assert sorted(got) == ["score_geo", "score_sem"]
    for suffix, head in heads.items():
        expected = np_fcn(image, {**head, **trunk}, stride, mean=np.array(SIFTFLOW_MEAN))
        assert_close(np.asarray(got[f"score{suffix}"])[0], expected)
    assert got["score_sem"].shape == (1, 10, 13, 33) and got["score_geo"].shape == (1, 10, 13, 3)


def test_nyud_color_hha_late_fusion_converts_loads_and_matches_numpy(
    small_reference, server, keras_home, monkeypatch
):
    streams = {"color": caffe_fcn_blobs(40, 32, seed=0), "hha": caffe_fcn_blobs(40, 32, seed=1)}
    upscore = streams["color"]["upscore"]
    blobs = {"upscore": upscore}
    for modality, stream in streams.items():
        blobs.update({f"{name}{modality}": blob for name, blob in stream.items() if name != "upscore"})
    assert {"conv1_1color", "fc6color", "score_frcolor", "conv5_3hha", "fc7hha", "score_frhha"} <= set(blobs)
    serve_blobs(server, monkeypatch, "nyud-fcn32s-color-hha", blobs)
    model = zoo.load_model("nyud-fcn32s-color-hha")
    assert model.name == "fcn32s_color_hha_vgg16_reference"
    assert_loads_exactly(model, blobs)
    rng = np.random.default_rng(5)
    color, hha = (rng.uniform(0, 255, (9, 12, 3)).astype(np.float32) for _ in range(2))
    got = np.asarray(model({"color": color[None], "hha": hha[None]}))[0]
    # score_fused = 0.5 score_frcolor + 0.5 score_frhha before upscore and the crop, which are
    # linear, so the output is the average of the two streams' FCN-32s outputs with that upscore.
    expected_color = np_fcn(color, streams["color"], 32, mean=np.array((116.190, 97.203, 92.318)))
    hha_stream = {**streams["hha"], "upscore": upscore}
    expected_hha = np_fcn(hha, hha_stream, 32, mean=np.array((132.431, 94.076, 118.477)), bgr=False)
    assert_close(got, 0.5 * expected_color + 0.5 * expected_hha)


def test_architectures_the_package_cannot_build_are_reported(fresh_registry):
    fcn4s = "fcn4s_vgg16_reference"
    zoo.register(dataclasses.replace(zoo.get("voc-fcn8s"), name="voc-fcn4s", aliases=(), architecture=fcn4s))
    with pytest.raises(NotImplementedError, match="'voc-fcn4s' needs architecture 'fcn4s_vgg16_reference'"):
        zoo.load_model("voc-fcn4s")


# --- weights shipped inside the package ----------------------------------------------------


def tiny_bundled_entry(directory, trained):
    """A bundled entry, 'tiny', for `trained` (an FCN-32s, MobileNet alpha 0.25) saved into `directory`."""
    path = directory / "tiny-0.weights.h5"
    trained.save_weights(str(path))
    digest = sha256(path.read_bytes())
    entry = dataclasses.replace(
        zoo.get("voc-fcn8s"),
        name="tiny",
        aliases=(),
        urls=(),
        source_format="keras",
        source_sha256=digest,
        weights_sha256=digest,
        architecture="fcn32s_mobilenet",
        backbone="mobilenet",
        outputs=(("score", ("sky", "road", "car")),),
        inputs=(("image", zoo.Preprocessing((127.5,) * 3, (127.5,) * 3, False, "[-1, 1]")),),
        palette=((128, 128, 128), (128, 64, 128), (64, 0, 128)),
        backbone_kwargs={"alpha": 0.25},
        bundled_file=path.name,
    )
    return entry, path


@pytest.fixture
def bundled(tmp_path, monkeypatch, fresh_registry):
    """A 3-class FCN-32s with random weights, registered as the bundled entry 'tiny'."""
    monkeypatch.setattr(registry, "BUNDLED_WEIGHTS_DIR", str(tmp_path))
    trained = keras_fcn.FCN32s(3, backbone="mobilenet", backbone_kwargs={"alpha": 0.25}, backbone_weights=None)
    rng = np.random.default_rng(5)
    for weight in trained.weights:
        weight.assign(rng.standard_normal(weight.shape).astype(weight.dtype))
    entry, path = tiny_bundled_entry(tmp_path, trained)
    zoo.register(entry)
    return trained, path


def test_bundled_weights_load_without_network_with_the_entrys_classes_and_backbone(bundled, keras_home):
    trained, path = bundled
    model = keras_fcn.FCN32s(backbone="mobilenet", weights="tiny")
    assert model.output_shape[-1] == 3
    assert model.get_layer("conv1").kernel.shape[-1] == 8  # MobileNet alpha 0.25: 32 * 0.25 filters
    for got, want in zip(model.weights, trained.weights):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert zoo.fetch("tiny") == str(path)
    assert not keras_home.exists()  # nothing downloaded or cached


def test_damaged_or_missing_bundled_weights_say_so(bundled):
    _, path = bundled
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(zoo.WeightsDownloadError, match=rf"shipped in the package as {path}, has sha256 .* reinstall"):
        zoo.fetch("tiny")
    path.unlink()
    with pytest.raises(zoo.WeightsDownloadError, match="is missing"):
        keras_fcn.FCN32s(backbone="mobilenet", weights="tiny")


def test_bundled_weights_need_their_backbone_arguments(bundled):
    with pytest.raises(ValueError, match=r"built with backbone_kwargs=\{'alpha': 0.25\}; received backbone_kwargs=\{'alpha': 0.5\}"):
        keras_fcn.FCN32s(backbone="mobilenet", weights="tiny", backbone_kwargs={"alpha": 0.5})
    with pytest.raises(ValueError, match="'tiny' have 3 classes"):
        keras_fcn.FCN32s(4, backbone="mobilenet", weights="tiny")


def test_bundled_entries_need_a_sha256_and_a_plain_file_name():
    entry = keras_entry("x", ("https://example.org/x.weights.h5",), "0" * 64)
    with pytest.raises(ValueError, match="urls must be one or more http"):
        dataclasses.replace(entry, urls=())
    with pytest.raises(ValueError, match="plain file name of 'keras' weights with a sha256"):
        dataclasses.replace(entry, urls=(), bundled_file="../x.weights.h5")
    with pytest.raises(ValueError, match="plain file name of 'keras' weights with a sha256"):
        dataclasses.replace(entry, urls=(), bundled_file="x.weights.h5", source_sha256=None, weights_sha256=None)
