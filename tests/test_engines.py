"""OpenVINO and ONNX Runtime running Keras's own exports: the float32 Keras logits at any size, cached on disk.

TensorFlow backend only (the exports need it). OpenVINO and ONNX Runtime are in the `test` extra
(`pip install -e ".[test]"`): a test fails, rather than skips, where one is missing.
"""

import gc
import glob
import importlib.util
import json
import os
import weakref

import keras
import numpy as np
import pytest

import keras_fcn
from keras_fcn import engine_cache, engines, inference
from keras_fcn.cpu import parse_cpuinfo
from _inference_helpers import assert_float32_logits, random_fcn8s

EXPORT_ENGINES = ("openvino", "onnxruntime")
# The engine of the cache tests, which are the same for both.
CACHED_ENGINE = "openvino"
# An empty Keras folder for each test (conftest.py).
pytestmark = pytest.mark.usefixtures("keras_home")


@pytest.fixture
def exports(monkeypatch):
    """Counts the calls of `keras.Model.export`."""
    calls = []
    export = keras.Model.export

    def counting(model, *args, **kwargs):
        calls.append(kwargs.get("format"))
        return export(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "export", counting)
    return calls


def _tiny_model(rng):
    """A two-convolution net of any image size: quick to export, for the cache tests."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))
    model.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in model.get_weights()])
    return model


def _entries(keras_home):
    return sorted(glob.glob(os.path.join(keras_home, "engines", "*")))


@pytest.mark.parametrize("engine", EXPORT_ENGINES)
def test_engine_gives_the_float32_keras_logits_at_any_size(engine, rng):
    model = random_fcn8s(rng)
    run = keras_fcn.inference_function(model, engine=engine)
    for shape in [(1, 37, 45), (2, 64, 96), (3, 50, 33)]:
        images = rng.uniform(0, 255, (*shape, 3)).astype("float32")
        assert_float32_logits(run(images), model.predict(images, verbose=0))
    # uint8 images, as predict passes them, and predict's label maps
    images = rng.integers(0, 256, (2, 41, 29, 3)).astype("uint8")
    expected = model.predict(images.astype("float32"), verbose=0)
    assert_float32_logits(run(images), expected)
    labels = keras_fcn.predict(model, list(images), engine=engine)
    assert np.mean(np.stack(labels) == expected.argmax(-1)) >= 0.999


def test_openvino_bfloat16_is_close_to_float32_and_refused_where_the_cpu_lacks_it(rng, monkeypatch):
    model = _tiny_model(rng)
    images = rng.uniform(0, 255, (1, 64, 96, 3)).astype("float32")
    expected = model.predict(images, verbose=0)
    monkeypatch.setattr(engines, "host_cpu", lambda: parse_cpuinfo("flags\t\t: avx2 fma avx512f avx512_bf16\n"))
    logits = keras_fcn.inference_function(model, engine="openvino", precision="bfloat16")(images)
    # bfloat16 keeps 8 significant bits (and this test's real host may compute float32).
    assert np.abs(logits - expected).max() < 0.05 * np.abs(expected).max()
    monkeypatch.setattr(engines, "host_cpu", lambda: parse_cpuinfo("flags\t\t: avx2 fma\n"))
    with pytest.raises(ValueError, match='engine="openvino" cannot run this model in bfloat16: OpenVINO computes '
                       "bfloat16 only on CPUs with AMX or AVX512-BF16, and this one has neither"):
        keras_fcn.inference_function(model, engine="openvino", precision="bfloat16")


@pytest.mark.parametrize("engine", EXPORT_ENGINES)
def test_export_is_cached_on_disk_for_the_next_process(engine, rng, exports, keras_home, tmp_path):
    model = _tiny_model(rng)
    model.save(tmp_path / "model.keras")
    keras_fcn.inference_function(model, engine=engine)
    assert len(exports) == 1 and len(_entries(keras_home)) == 1
    # A new process: the model loaded from its file, nothing kept in memory.
    run = keras_fcn.inference_function(keras.saving.load_model(tmp_path / "model.keras"), engine=engine)
    images = rng.uniform(0, 255, (1, 45, 61, 3)).astype("float32")
    assert_float32_logits(run(images), model.predict(images, verbose=0))
    assert len(exports) == 1


def test_a_corrupt_or_stale_cache_entry_is_rebuilt_not_used(rng, exports, keras_home, tmp_path):
    engine = CACHED_ENGINE
    model = _tiny_model(rng)
    model.save(tmp_path / "model.keras")
    images = rng.uniform(0, 255, (1, 45, 61, 3)).astype("float32")
    expected = model.predict(images, verbose=0)
    keras_fcn.inference_function(model, engine=engine)
    [entry] = _entries(keras_home)

    def fresh_run():
        """The function a new process would make: a model loaded from its file, so nothing kept in memory."""
        return keras_fcn.inference_function(keras.saving.load_model(tmp_path / "model.keras"), engine=engine)

    largest = max(glob.glob(os.path.join(entry, "model.*")), key=os.path.getsize)
    with open(largest, "r+b") as file:  # one byte of the weights changed
        file.seek(os.path.getsize(largest) - 8)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0xFF]))
    with pytest.warns(RuntimeWarning, match="corrupt or stale"):
        run = fresh_run()
    assert len(exports) == 2
    assert_float32_logits(run(images), expected)

    manifest = os.path.join(entry, engine_cache.MANIFEST)
    with open(manifest) as file:
        record = json.load(file)
    record["key"]["versions"]["keras"] = "0.0.1"  # made by another version
    with open(manifest, "w") as file:
        json.dump(record, file)
    with pytest.warns(RuntimeWarning, match="corrupt or stale"):
        fresh_run()
    assert len(exports) == 3

    os.remove(manifest)  # as a crash while writing the entry would leave it, were it not renamed into place
    with pytest.warns(RuntimeWarning, match="corrupt or stale"):
        assert_float32_logits(fresh_run()(images), expected)
    assert len(exports) == 4 and _entries(keras_home) == [entry]


def test_new_weights_are_exported_again(rng, exports, keras_home, monkeypatch):
    engine = CACHED_ENGINE
    model = _tiny_model(rng)
    images = rng.uniform(0, 255, (1, 40, 40, 3)).astype("float32")
    loads = []
    load = engines._LOADERS[engine]
    monkeypatch.setitem(engines._LOADERS, engine, lambda *args: loads.append(1) or load(*args))
    keras_fcn.inference_function(model, engine=engine)
    loaded = len(loads)  # to check the export, and to run it
    for _ in range(2):  # the same weights: the function loaded is used again
        keras_fcn.inference_function(model, engine=engine)
    assert len(exports) == 1 and len(loads) == loaded
    layer = model.layers[-1]
    layer.set_weights([w + 0.5 for w in layer.get_weights()])
    assert_float32_logits(keras_fcn.inference_function(model, engine=engine)(images), model.predict(images, verbose=0))
    assert len(exports) == 2 and len(_entries(keras_home)) == 2


@pytest.mark.parametrize("engine", EXPORT_ENGINES)
def test_a_function_follows_the_weights_after_fit_and_assign(engine, rng, exports):
    model = _tiny_model(rng)
    images = rng.uniform(0, 255, (2, 24, 40, 3)).astype("float32")
    run = keras_fcn.inference_function(model, engine=engine)
    before = run(images)
    run(images)
    assert len(exports) == 1  # unchanged weights: no export at each call
    masks = rng.integers(0, 3, (2, 24, 40))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, masks, epochs=1, verbose=0)
    after = model.predict(images, verbose=0)
    assert np.abs(after - before).max() > 1e-3  # the step changed the logits
    assert_float32_logits(run(images), after)
    assert run.engine == engine and len(exports) == 2
    kernel = model.layers[1].kernel  # one element, by one unit of its last place
    value = kernel.numpy()
    value[1, 1, 2, 3] = np.nextafter(value[1, 1, 2, 3], np.float32(np.inf))
    kernel.assign(value)
    run(images)
    assert len(exports) == 3
    score = model.layers[-1]  # two classes exchanged: their scores swap, the sum of every weight stays
    kernel, bias = score.get_weights()
    score.set_weights([kernel[..., [2, 1, 0]], bias[[2, 1, 0]]])
    assert_float32_logits(run(images), model.predict(images, verbose=0))
    assert len(exports) == 4


def test_predict_compares_the_weights_once_per_call_not_per_batch(rng, monkeypatch):
    model = _tiny_model(rng)
    run = keras_fcn.inference_function(model, engine=CACHED_ENGINE)
    images = list(rng.uniform(0, 255, (4, 16, 16, 3)).astype("float32"))
    compared = []
    weights_fingerprint = engines.weights_fingerprint
    monkeypatch.setattr(engines, "weights_fingerprint", lambda model: compared.append(1) or weights_fingerprint(model))
    for count in (1, 4):
        del compared[:]
        labels = keras_fcn.predict(run, images[:count], batch_size=1)
        assert len(compared) == 1 and len(labels) == count
    del compared[:]
    keras_fcn.predict(model, images, batch_size=1)  # made (or found) with the weights as they are: nothing to compare
    assert not compared


def test_a_function_holds_its_model_and_as_of_now_does_not(rng, exports):
    model = _tiny_model(rng)
    images = rng.uniform(0, 255, (1, 16, 16, 3)).astype("float32")
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    run = keras_fcn.inference_function(model, engine=CACHED_ENGINE)
    run(images)
    kernel, alive = model.layers[-1].kernel, weakref.ref(model)
    fixed = run.as_of_now()
    del model
    gc.collect()
    assert alive() is not None  # `run` holds it: the weights may still change
    kernel.assign(kernel * 3 - 0.02)  # after the last call, before the model's name is gone
    twin.layers[-1].kernel.assign(twin.layers[-1].kernel * 3 - 0.02)
    assert_float32_logits(run(images), twin.predict(images, verbose=0))
    del run
    gc.collect()
    assert alive() is None  # `fixed` runs its export without the model
    assert fixed(images).shape == (1, 16, 16, 3)


def test_a_failed_export_leaves_nothing_in_the_cache(rng, keras_home, monkeypatch):
    engine = CACHED_ENGINE

    def failing(model, path, **kwargs):
        with open(path, "w") as file:
            file.write("half")
        raise OSError("No space left on device")

    monkeypatch.setattr(keras.Model, "export", failing)
    with pytest.raises(OSError, match="No space left"):
        keras_fcn.inference_function(_tiny_model(rng), engine=engine)
    assert os.listdir(keras_home / "engines") == []


def test_an_export_that_computes_something_else_is_refused_and_auto_falls_back(rng, keras_home, monkeypatch):
    engine = CACHED_ENGINE
    model = _tiny_model(rng)
    monkeypatch.setattr(engines, "EXPORT_CHECK_TOLERANCE", 0.0)  # float32 rounding now counts as a difference
    with pytest.raises(engines.ExportCheckError, match=f"exported for {engine} does not compute"):
        keras_fcn.inference_function(model, engine=engine)
    [entry] = _entries(keras_home)  # no export: the record of its refusal only
    assert sorted(os.listdir(entry)) == [engine_cache.MANIFEST, engines.REFUSAL_RECORD]
    monkeypatch.setattr(inference, "auto_engines", lambda model, precision: (engine, "tensorflow"))
    images = rng.uniform(0, 255, (1, 40, 40, 3)).astype("float32")
    with pytest.warns(RuntimeWarning, match=f'Leaving {engine} out of engine="auto"'):
        run = keras_fcn.inference_function(model)
    assert run.engine == "tensorflow"
    np.testing.assert_array_equal(run(images), keras_fcn.inference_function(model, engine="tensorflow")(images))


def _auto_leaves_onnxruntime_for_openvino(model, rng, monkeypatch):
    """Checks that auto, trying ONNX Runtime first, warns and runs `model` on OpenVINO; returns the images used."""
    monkeypatch.setattr(inference, "auto_engines", lambda model, precision: ("onnxruntime", "openvino", "tensorflow"))
    with pytest.warns(RuntimeWarning, match='Leaving onnxruntime out of engine="auto"'):
        run = keras_fcn.inference_function(model)
    images = rng.uniform(0, 255, (1, 30, 40, 3)).astype("float32")
    assert run.engine == "openvino"
    assert_float32_logits(run(images), model.predict(images, verbose=0))
    return images


def test_an_export_its_engine_cannot_run_is_refused_and_auto_takes_the_next_engine(rng, monkeypatch):
    model = _tiny_model(rng)
    load = engines._LOADERS["onnxruntime"]

    def failing_load(path, precision):
        load(path, precision)

        def run(images):
            raise ValueError("Required inputs (['normalization/Sub/y:0']) are missing from input feed (['images'])")

        return run

    monkeypatch.setitem(engines._LOADERS, "onnxruntime", failing_load)
    with pytest.raises(engines.ExportCheckError, match=r"exported for onnxruntime does not run in it: Required inputs"):
        keras_fcn.inference_function(model, engine="onnxruntime")
    _auto_leaves_onnxruntime_for_openvino(model, rng, monkeypatch)


def test_a_model_onnx_cannot_hold_runs_on_the_next_engine_of_auto(rng, exports, tmp_path, monkeypatch):
    # Keras's exact gelu (ConvNeXt's) has no ONNX conversion; OpenVINO runs it.
    inputs = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="gelu")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(hidden))
    model.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in model.get_weights()])
    with pytest.raises(engines.ExportCheckError, match=r"cannot be exported for onnxruntime: .*\['Erfc'\]"):
        keras_fcn.inference_function(model, engine="onnxruntime")
    images = _auto_leaves_onnxruntime_for_openvino(model, rng, monkeypatch)
    # The refusal is cached: not converted again (a ConvNeXt's conversion takes half a minute).
    converted = len(exports)
    with pytest.raises(engines.ExportCheckError, match=r"\['Erfc'\].* \(as recorded in .*onnxruntime-"):
        keras_fcn.inference_function(model, engine="onnxruntime")
    assert len(exports) == converted
    # A file: auto's engine is recorded with its export, so a later call loads no model and tries no conversion.
    model.save(tmp_path / "gelu.keras")
    with pytest.warns(RuntimeWarning, match='Leaving onnxruntime out of engine="auto"'):
        assert keras_fcn.inference_function(str(tmp_path / "gelu.keras")).engine == "openvino"
    monkeypatch.setattr(keras_fcn.inference, "load_model_file", lambda *a: pytest.fail("the model was loaded"))
    again = keras_fcn.inference_function(str(tmp_path / "gelu.keras"))
    assert again.engine == "openvino"
    assert_float32_logits(again(images), model.predict(images, verbose=0))


def test_engines_refuse_what_they_cannot_run(rng, monkeypatch):
    inputs = keras.Input((None, None, 3))
    two_outputs = keras.Model(inputs, [keras.layers.Conv2D(2, 1)(inputs), keras.layers.Conv2D(2, 1)(inputs)])
    with pytest.raises(ValueError, match='engine="onnxruntime" cannot run this model in bfloat16: onnxruntime computes'
                       " in float32, not bfloat16"):
        keras_fcn.inference_function(two_outputs, engine="onnxruntime", precision="bfloat16")
    for engine in EXPORT_ENGINES:
        with pytest.raises(ValueError, match="runs single-output models; this one has 2 outputs"):
            keras_fcn.inference_function(two_outputs, engine=engine)
    with monkeypatch.context() as uninstalled:
        find_spec = importlib.util.find_spec
        uninstalled.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else find_spec(name, *a))
        with pytest.raises(ValueError, match=r"openvino is not installed: pip install keras-fcn\[openvino\]"):
            keras_fcn.inference_function(two_outputs, engine="openvino")
    # Keras's OpenVINO export imports scipy: without it, openvino is refused by name, and "auto" passes it by.
    with monkeypatch.context() as uninstalled:
        find_spec = importlib.util.find_spec
        uninstalled.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else find_spec(name, *a))
        with pytest.raises(ValueError, match=r"openvino needs scipy, which is not installed: pip install keras-fcn\[openvino\]"):
            keras_fcn.inference_function(two_outputs, engine="openvino")
        assert "openvino" not in engines.auto_engines(None, "float32")


def test_a_keras_file_whose_export_is_cached_runs_without_its_model_being_loaded(rng, tmp_path, keras_home, monkeypatch):
    model = _tiny_model(rng)
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    images = rng.uniform(0, 255, (2, 21, 34, 3)).astype("float32")
    expected = model.predict(images, verbose=0)
    first = keras_fcn.inference_function(path, engine=CACHED_ENGINE)  # loads, exports, records the file
    assert (first.engine, first.precision, first.output_shape) == (CACHED_ENGINE, "float32", (None, None, None, 3))
    assert_float32_logits(first(images), expected)
    with monkeypatch.context() as no_loading:
        no_loading.setattr(keras_fcn.inference, "load_model_file", lambda *a: pytest.fail("the model was loaded"))
        again = keras_fcn.inference_function(path, engine=CACHED_ENGINE)
        assert (again.engine, again.output_shape) == (CACHED_ENGINE, (None, None, None, 3))
        assert_float32_logits(again(images), expected)
        # predict and evaluate take the function: no Keras model in memory.
        label_maps = keras_fcn.predict(again, list(images))
        np.testing.assert_array_equal(np.stack(label_maps), expected.argmax(-1))
        with pytest.raises(ValueError, match=r"`model` is an InferenceFunction, which runs on engine 'openvino' in "
                           r"'float32': pass `engine` and `precision` to `inference_function` instead. Received "
                           r"engine='tensorflow', precision='float32'"):
            keras_fcn.predict(again, list(images), engine="tensorflow")
    # Another file (one weight changed) is another model: loaded and exported, never the first one's export.
    model.layers[-1].bias.assign(model.layers[-1].bias + 1.0)
    model.save(path)
    changed = keras_fcn.inference_function(path, engine=CACHED_ENGINE)
    assert_float32_logits(changed(images), model.predict(images, verbose=0))
    # A damaged record or export is not used: the model is loaded and exported again.
    for entry in _entries(keras_home):
        for name in os.listdir(entry):
            if name != engine_cache.MANIFEST:
                with open(os.path.join(entry, name), "ab") as file:
                    file.write(b"!")
    loads = []
    load_model_file = keras_fcn.inference.load_model_file
    monkeypatch.setattr(keras_fcn.inference, "load_model_file", lambda p: loads.append(p) or load_model_file(p))
    with pytest.warns(RuntimeWarning, match="corrupt or stale"):
        rebuilt = keras_fcn.inference_function(path, engine=CACHED_ENGINE)
    assert loads == [path]
    assert_float32_logits(rebuilt(images), model.predict(images, verbose=0))


def test_a_keras_file_is_exported_and_recorded_hashing_its_weights_once(rng, tmp_path, monkeypatch):
    # The reference VGG16 net's 513 MiB take about a second to hash.
    _tiny_model(rng).save(tmp_path / "tiny.keras")
    hashed = []
    weights_digest = engine_cache.weights_digest
    monkeypatch.setattr(engine_cache, "weights_digest", lambda model: hashed.append(model) or weights_digest(model))
    keras_fcn.inference_function(str(tmp_path / "tiny.keras"), engine=CACHED_ENGINE)
    assert len(hashed) == 1


@pytest.mark.parametrize("engine", ("tensorflow", *EXPORT_ENGINES))
def test_images_with_the_wrong_number_of_channels_are_refused_alike_by_every_engine(engine, rng, tmp_path):
    # Each engine raised its own error (ONNX Runtime's INVALID_ARGUMENT, TensorFlow's TypeError).
    _tiny_model(rng).save(tmp_path / "tiny.keras")
    for _ in range(2):  # the second from the cache, without the model
        run = keras_fcn.inference_function(str(tmp_path / "tiny.keras"), engine=engine)
        assert run.input_shape == (None, None, None, 3)
        with pytest.raises(ValueError, match=r"`images` must be a batch of shape \(batch, height, width, 3\), as the "
                           r"model takes them. Received shape \(1, 16, 16, 4\)"):
            run(np.zeros((1, 16, 16, 4), "float32"))


def test_inference_function_of_a_folder_says_so(tmp_path):
    with pytest.raises(keras_fcn.errors.InvalidDataError, match=r"`model`: .* is a folder, not a .keras model file"):
        keras_fcn.inference_function(str(tmp_path))


def test_inference_function_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(keras_fcn.errors.InvalidDataError, match=r"`model`: .*nowhere.keras is neither a file nor a zoo "
                       r"entry \(one of .*camvid"):
        keras_fcn.inference_function(str(tmp_path / "nowhere.keras"))


def test_inference_function_of_a_zoo_entry_runs_its_cached_export_without_loading_it(monkeypatch):
    first = keras_fcn.inference_function("camvid", engine=CACHED_ENGINE)
    images = np.random.default_rng(0).uniform(0, 255, (1, 40, 56, 3)).astype("float32")
    expected = keras_fcn.zoo.load_model("camvid").predict(images, verbose=0)
    assert first.output_shape == (None, None, None, 11)
    assert_float32_logits(first(images), expected)
    monkeypatch.setattr(keras_fcn.zoo, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    again = keras_fcn.inference_function("camvid", engine=CACHED_ENGINE)
    assert_float32_logits(again(images), expected)


def test_cli_predict_loads_a_model_once_then_runs_its_cached_export(rng, tmp_path, monkeypatch, capsys):
    from keras_fcn import cli

    model = _tiny_model(rng)
    model.save(tmp_path / "tiny.keras")
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    keras.utils.save_img(tmp_path / "street.png", image)
    command = ["predict", str(tmp_path / "tiny.keras"), str(tmp_path / "street.png"), "--engine", CACHED_ENGINE]
    assert cli.main([*command, "--output-dir", str(tmp_path / "first")]) == 0
    monkeypatch.setattr(keras_fcn.inference, "load_model_file", lambda *a: pytest.fail("the model was loaded"))
    assert cli.main([*command, "--output-dir", str(tmp_path / "second")]) == 0
    assert capsys.readouterr().out.count(f"Running {tmp_path / 'tiny.keras'} on {CACHED_ENGINE} in float32") == 2
    first, second = (keras.utils.load_img(tmp_path / run / "street.png") for run in ("first", "second"))
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))


def test_a_keras_home_that_is_a_file_is_named_in_the_error(rng, tmp_path, monkeypatch, capsys):
    from keras_fcn import cli

    (tmp_path / "home").write_text("not a folder")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    with pytest.raises(keras_fcn.errors.InvalidDataError, match=r"keras-fcn's cache folder .*home/keras_fcn/engines "
                       r"cannot be made \(Not a directory: .*\). It is under KERAS_HOME=.*home: set KERAS_HOME to a "
                       "folder you can write to"):
        keras_fcn.inference_function(_tiny_model(rng), engine=CACHED_ENGINE)
    _tiny_model(rng).save(tmp_path / "tiny.keras")
    keras.utils.save_img(tmp_path / "street.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    command = ["predict", str(tmp_path / "tiny.keras"), str(tmp_path / "street.png"), "--engine", CACHED_ENGINE,
               "--output-dir", str(tmp_path / "out")]
    assert cli.main(command) == 2
    assert "keras-fcn predict: error: keras-fcn's cache folder" in capsys.readouterr().err
