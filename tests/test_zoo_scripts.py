"""Tests of `zoo/publish.py` and of the `keras-fcn zoo` verb that lists, downloads and converts weights."""

import hashlib
import importlib.util
import json
import os
import pathlib
import re
import shutil

import numpy as np
import pytest

import keras_fcn
from keras_fcn import cli, zoo
from keras_fcn.zoo import registry
from _caffe_helpers import assert_weights_equal_blobs, caffe_fcn_blobs, protobuf_caffemodel

SCRIPTS = pathlib.Path(__file__).resolve().parent.parent / "zoo"


def script(name):
    spec = importlib.util.spec_from_file_location(f"zoo_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refusal(main, args, capsys):
    """The error line of a script that refuses `args`, which must end it with status 2, as argparse does."""
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_zoo_convert_verb_converts_a_local_caffemodel(small_reference, tmp_path, capsys):
    blobs = caffe_fcn_blobs(21, 32)
    caffemodel = tmp_path / "fcn32s.caffemodel"
    caffemodel.write_bytes(
        protobuf_caffemodel([(name, kind, arrays) for name, (kind, arrays) in blobs.items()])
    )
    output = tmp_path / "voc-fcn32s.weights.h5"
    assert cli.main(["zoo", "convert", "voc-fcn32s", "--caffemodel", str(caffemodel), "--output", str(output)]) == 0
    assert capsys.readouterr().out.split() == [
        str(output),
        "sha256",
        hashlib.sha256(output.read_bytes()).hexdigest(),
    ]
    model = keras_fcn.FCN32s(21, backbone="vgg16_reference", backbone_weights=None)
    model.load_weights(str(output))
    assert_weights_equal_blobs(model, blobs)
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_zoo_convert_verb_reports_a_truncated_caffemodel_on_one_line(small_reference, tmp_path, capsys):
    blobs = caffe_fcn_blobs(21, 32)
    data = protobuf_caffemodel([(name, kind, arrays) for name, (kind, arrays) in blobs.items()])
    caffemodel = tmp_path / "cut.caffemodel"
    caffemodel.write_bytes(data[: len(data) // 2])
    output = tmp_path / "voc-fcn32s.weights.h5"
    assert cli.main(["zoo", "convert", "voc-fcn32s", "--caffemodel", str(caffemodel), "--output", str(output)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("keras-fcn zoo: error: ") and "cut.caffemodel" in err and "\n" not in err
    assert not output.exists()


def test_zoo_list_markdown_marks_published_metrics_as_theirs(capsys):
    assert cli.main(["zoo", "list", "--architecture", "fcn8s_vgg16_reference", "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| voc-fcn8s | voc | fcn8s_vgg16_reference | 21 |")
    assert "mean IU 65.5 on seg11valid (theirs, fcn.berkeleyvision.org README)" in lines[2]
    assert (
        "mean IU 35.1 on PASCAL-Context val, 59 classes (theirs, Long, Shelhamer, Darrell, CVPR 2015)"
        in lines[3]
    )


def test_zoo_list_markdown_shows_bundled_weights_and_our_metrics(capsys):
    assert cli.main(["zoo", "list", "--architecture", "fcn8s_mobilenet", "--markdown"]) == 0
    (row,) = capsys.readouterr().out.splitlines()[2:]
    assert row.startswith("| camvid | - | fcn8s_mobilenet | 11 |") and "keras (in the package)" in row
    (mean_iu,) = [metric["value"] for metric in zoo.get("camvid").metrics if metric["metric"] == "mean IU"]
    assert f"mean IU {mean_iu} on CamVid val (101 images) (ours, keras-fcn evaluate --json" in row


def test_publish_names_the_file_by_hash_and_adds_a_loadable_entry(tmp_path, server, keras_home, monkeypatch, capsys):
    manifest = tmp_path / "manifest.json"
    shutil.copyfile(registry.MANIFEST_PATH, manifest)
    (tmp_path / "classes.txt").write_text("sky\nground\nthing\n")
    trained = keras_fcn.FCN32s(
        3, backbone="mobilenet", backbone_kwargs={"alpha": 0.25}, backbone_weights=None
    )
    for layer in trained.layers:
        layer.set_weights(
            [np.random.default_rng(0).standard_normal(w.shape).astype(w.dtype) for w in layer.get_weights()]
        )
    weights = tmp_path / "trained.weights.h5"
    trained.save_weights(str(weights))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    args = [
        str(weights),
        "--name",
        "tiny",
        "--alias",
        "demo",
        "--architecture",
        "fcn32s_mobilenet",
        "--backbone-kwargs",
        "alpha=0.25",
        "--classes",
        str(tmp_path / "classes.txt"),
        "--dataset",
        "made up",
        "--url-base",
        server.url("/zoo/"),
        "--metric",
        "val:mean IU:12.5",
        "--training-command",
        "python train.py --tiny",
        "--licence",
        "Apache-2.0",
        "--output-dir",
        str(tmp_path / "dist"),
        "--manifest",
        str(manifest),
    ]
    publish = script("publish")
    assert publish.main(args) == 0
    published = tmp_path / "dist" / f"tiny-{digest[:8]}.weights.h5"
    assert published.read_bytes() == weights.read_bytes()
    record = json.loads(manifest.read_text())["entries"][-1]
    assert record["source"] == {
        "format": "keras",
        "urls": [server.url(f"/zoo/{published.name}")],
        "sha256": digest,
    }
    assert record["metrics"] == [
        {
            "split": "val",
            "metric": "mean IU",
            "value": 12.5,
            "measured_by": "keras-fcn",
            "source": "zoo/publish.py",
        }
    ]
    assert record["command"] == "python train.py --tiny"
    assert record["backbone_kwargs"] == {"alpha": 0.25}
    entry = registry.read_manifest(manifest)[-1]
    assert entry.class_names == ("sky", "ground", "thing")
    assert refusal(publish.main, args, capsys).startswith(
        "publish.py: error: the manifest has an entry named 'tiny': give --replace"
    )
    assert len(json.loads(manifest.read_text())["entries"]) == len(zoo.available()) + 1

    server.add(f"/zoo/{published.name}", published.read_bytes())
    monkeypatch.setattr(zoo, "REGISTRY", registry.Registry(registry.read_manifest(manifest)))
    model = keras_fcn.FCN32s(backbone="mobilenet", weights="demo")
    for got, want in zip(model.weights, trained.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_publish_bundles_the_file_with_the_figures_of_an_evaluation(tmp_path, monkeypatch, capsys):
    manifest = tmp_path / "manifest.json"
    shutil.copyfile(registry.MANIFEST_PATH, manifest)
    monkeypatch.setattr(registry, "BUNDLED_WEIGHTS_DIR", str(tmp_path / "package"))
    # A staged model, as training saves it: an FCN-16s upgraded to an FCN-8s, with trained (random) score layers.
    coarse = keras_fcn.FCN16s(11, backbone="mobilenet", backbone_kwargs={"alpha": 0.25}, backbone_weights=None)
    trained = keras_fcn.upgrade(coarse)
    rng = np.random.default_rng(2)
    for name in ("score_fr", "score_pool4", "score_pool3"):
        trained.get_layer(name).set_weights([rng.normal(size=w.shape).astype("float32") for w in trained.get_layer(name).get_weights()])
    weights = tmp_path / "best.keras"
    trained.save(str(weights))
    per_class = dict(zip(keras_fcn.data.CAMVID_CLASSES, [0.9, 0.8, 0.1, 0.95, 0.7, 0.75, 0.2, 0.3, 0.8, 0.3, None]))
    figures = {"pixel_accuracy": 0.91234, "mean_accuracy": 0.6, "mean_iou": 0.55556, "frequency_weighted_iou": 0.8}
    (tmp_path / "val.json").write_text(json.dumps({"model": "best.keras", **figures, "per_class_iou": per_class}))
    args = [str(weights), "--name", "street", "--architecture", "fcn8s_mobilenet", "--backbone-kwargs", "alpha=0.25"]
    args += ["--classes", "camvid", "--palette", "camvid", "--dataset", "CamVid train", "--bundle"]
    args += ["--metrics-json", str(tmp_path / "val.json"), "--training-command", "bash zoo/train_camvid.sh"]
    args += ["--licence", "CC-BY-NC-4.0", "--manifest", str(manifest)]
    assert script("publish").main(args) == 0
    (bundled,) = (tmp_path / "package").iterdir()
    assert capsys.readouterr().out.strip() == str(bundled)
    digest = hashlib.sha256(bundled.read_bytes()).hexdigest()
    assert bundled.name == f"street-{digest[:8]}.weights.h5"
    record = json.loads(manifest.read_text())["entries"][-1]
    assert record["source"] == {"format": "keras", "urls": [], "sha256": digest, "bundled_file": bundled.name}
    assert record["geometry"] == "receptive_field"  # the model's own record
    values = {metric["metric"]: metric["value"] for metric in record["metrics"]}
    assert values == {
        "pixel accuracy": 91.23,
        "mean accuracy": 60.0,
        "mean IU": 55.56,
        "f.w. IU": 80.0,
        **{f"IU {name}": round(100 * iou, 2) for name, iou in per_class.items() if iou is not None},
    }
    assert {metric["split"] for metric in record["metrics"]} == {"val"}
    entry = registry.read_manifest(manifest)[-1]
    assert entry.palette[4] == (60, 40, 222) and entry.class_names[4] == "pavement"
    monkeypatch.setattr(zoo, "REGISTRY", registry.Registry(registry.read_manifest(manifest)))
    model = keras_fcn.FCN8s(backbone="mobilenet", weights="street")
    image = rng.uniform(0, 255, (1, 45, 70, 3)).astype("float32")
    np.testing.assert_array_equal(model(image).numpy(), trained(image).numpy())


def test_publish_replaces_an_entry_only_when_asked_and_records_the_models_geometry(tmp_path, monkeypatch, capsys):
    manifest = tmp_path / "manifest.json"
    shutil.copyfile(registry.MANIFEST_PATH, manifest)
    package = tmp_path / "package"
    package.mkdir()
    old = json.loads(manifest.read_text())
    names = [entry["name"] for entry in old["entries"]]
    old_file = old["entries"][names.index("camvid")]["source"]["bundled_file"]
    (package / old_file).write_bytes(b"the old weights")
    monkeypatch.setattr(registry, "BUNDLED_WEIGHTS_DIR", str(package))
    trained = keras_fcn.FCN8s(
        11, backbone="mobilenet", backbone_kwargs={"alpha": 0.25}, backbone_weights=None, geometry="pixel_blocks"
    )
    trained.save(str(tmp_path / "best.keras"))
    args = [str(tmp_path / "best.keras"), "--name", "camvid", "--architecture", "fcn8s_mobilenet"]
    args += ["--backbone-kwargs", "alpha=0.25", "--classes", "camvid", "--palette", "camvid", "--dataset", "d"]
    args += ["--bundle", "--training-command", "c", "--licence", "l", "--manifest", str(manifest)]
    assert refusal(script("publish").main, args, capsys) == (
        "publish.py: error: the manifest has an entry named 'camvid': give --replace to replace it"
    )
    refused = refusal(script("publish").main, [*args, "--replace", "--geometry", "receptive_field"], capsys)
    assert re.fullmatch(r"publish.py: error: --geometry receptive_field disagrees with .*best.keras.*'pixel_blocks'.*", refused)
    assert json.loads(manifest.read_text()) == old and os.listdir(package) == [old_file]
    assert script("publish").main([*args, "--replace"]) == 0
    new = json.loads(manifest.read_text())
    assert [entry["name"] for entry in new["entries"]] == names  # in its place
    record = new["entries"][names.index("camvid")]
    assert record["geometry"] == "pixel_blocks" and record["command"] == "c"
    assert os.listdir(package) == [record["source"]["bundled_file"]] != [old_file]


def test_publish_refuses_a_file_that_is_not_an_evaluation(tmp_path, monkeypatch, capsys):
    (tmp_path / "val.json").write_text('{"mean_iou": 0.5}')
    args = ["x.weights.h5", "--name", "x", "--architecture", "fcn8s_mobilenet", "--classes", "camvid", "--bundle"]
    args += ["--dataset", "d", "--metrics-json", str(tmp_path / "val.json"), "--training-command", "c", "--licence", "l"]
    refused = refusal(script("publish").main, args, capsys)
    assert re.match(r"publish.py: error: --metrics-json: .*val.json: expected the JSON that `keras-fcn evaluate --json` writes", refused)
