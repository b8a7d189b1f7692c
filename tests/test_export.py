"""SavedModel, ONNX and TFLite exports. TensorFlow backend only: each is converted from a TensorFlow graph.

onnxruntime, tf2onnx and ai_edge_litert are in the `test` extra: a test fails where one is missing. They are
imported in the tests that use them, as the floors CI job collects this module without them.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_fcn
from keras_fcn import cli
from keras_fcn.export import export
from keras_fcn.precision import with_dtype_policy
from _inference_helpers import assert_float32_logits, random_fcn8s


def test_exported_savedmodel_serves_arbitrary_sizes(tmp_path, rng):
    model = keras_fcn.FCN8s(3, backbone="mobilenet", backbone_weights=None, backbone_kwargs={"alpha": 0.25})
    layer = model.get_layer("score_pool3")
    layer.set_weights([rng.normal(scale=0.05, size=w.shape).astype("float32") for w in layer.get_weights()])
    path = str(tmp_path / "fcn8s")
    model.export(path, verbose=False)
    served = tf.saved_model.load(path)
    for size in [(70, 90), (41, 53), (128, 32)]:
        images = rng.uniform(0, 255, size=(2, *size, 3)).astype("float32")
        out = served.serve(images).numpy()
        assert out.shape == (2, *size, 3)
        np.testing.assert_allclose(out, model.predict(images, verbose=0), atol=1e-5)


def test_savedmodel_export_refuses_a_file_or_a_folder_of_other_files(tmp_path, rng, capsys):
    model = random_fcn8s(rng)
    model.save(tmp_path / "fcn.keras")
    (tmp_path / "plainfile").write_text("mine")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    for target in ("plainfile", "mine"):
        assert cli.main(["export", str(tmp_path / "fcn.keras"), str(tmp_path / target)]) == 2
        assert capsys.readouterr().err.strip().startswith(
            f"keras-fcn export: error: A SavedModel is written as a folder of its own: {str(tmp_path / target)!r} is "
            "a file or a folder holding other files."
        )
    assert (tmp_path / "plainfile").read_text() == "mine" and os.listdir(tmp_path / "mine") == ["notes.txt"]


def test_cli_onnx_export_runs_in_onnxruntime_like_keras_at_any_size(tmp_path, rng):
    import onnxruntime
    model = random_fcn8s(rng)
    model.save(tmp_path / "fcn.keras")
    assert cli.main(["export", str(tmp_path / "fcn.keras"), str(tmp_path / "fcn.onnx")]) == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "fcn.onnx"), providers=["CPUExecutionProvider"])
    [name] = [spec.name for spec in session.get_inputs()]
    # Named as a user reads them, with the number of classes fixed (tf2onnx writes "Identity:0", "unk__12").
    assert [(spec.name, spec.shape) for spec in session.get_inputs() + session.get_outputs()] == [
        ("images", ["batch", "height", "width", 3]),
        ("logits", ["batch", "logits_height", "logits_width", model.output_shape[-1]]),
    ]
    # Sizes off the stride-32 grid: the padding to a multiple of 32 and the crops run inside the ONNX graph.
    for shape in [(1, 37, 45), (2, 64, 96), (1, 100, 33)]:
        images = rng.uniform(0, 255, (*shape, 3)).astype("float32")
        assert_float32_logits(session.run(None, {name: images})[0], model.predict(images, verbose=0))


def test_onnx_export_of_a_mixed_precision_model_computes_in_float32(tmp_path, rng):
    import onnxruntime
    mixed = random_fcn8s(rng, policy="mixed_bfloat16")
    float32 = with_dtype_policy(mixed, "float32")
    export(mixed, str(tmp_path / "fcn.onnx"), "onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "fcn.onnx"), providers=["CPUExecutionProvider"])
    images = rng.uniform(0, 255, (1, 48, 64, 3)).astype("float32")
    logits = session.run(None, {session.get_inputs()[0].name: images})[0]
    assert_float32_logits(logits, float32.predict(images, verbose=0))


def test_onnx_export_keeps_the_tensors_a_layer_holds_besides_its_weights(tmp_path, rng):
    # Normalization holds its mean and variance as tensors made from its weights (EfficientNet's input
    # normalization): tf2onnx left them as graph inputs of no value, so ONNX Runtime refused to run the file.
    import keras
    import onnxruntime

    inputs = keras.Input((None, None, 3))
    normalization = keras.layers.Normalization(axis=-1)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same")(normalization(inputs)))
    mean, variance = np.array([100.0, 120.0, 90.0]), np.array([900.0, 2500.0, 400.0])
    normalization.set_weights([mean, variance, np.array(0)])
    normalization.finalize_state()
    held = normalization.mean
    export(model, str(tmp_path / "fcn.onnx"), "onnx")
    assert normalization.mean is held  # the layer holds its own tensor again
    import onnx
    initializers = {initializer.name for initializer in onnx.load(str(tmp_path / "fcn.onnx")).graph.initializer}
    assert {"weight_0", "weight_1"} <= initializers  # the kernel and bias, stored once as initializers
    session = onnxruntime.InferenceSession(str(tmp_path / "fcn.onnx"), providers=["CPUExecutionProvider"])
    assert [spec.name for spec in session.get_inputs()] == ["images"]
    images = rng.uniform(0, 255, (1, 20, 24, 3)).astype("float32")
    kernel, bias = model.layers[-1].get_weights()
    normalized = (images - mean) / np.sqrt(variance)
    padded = np.pad(normalized, ((0, 0), (1, 1), (1, 1), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))  # (1, 20, 24, 3, 3, 3)
    expected = np.einsum("bhwcij,ijco->bhwo", windows, kernel) + bias
    assert_float32_logits(session.run(None, {"images": images})[0], expected.astype("float32"))


def test_onnx_export_refuses_a_model_with_operations_onnx_lacks_and_writes_nothing(tmp_path, rng, capsys):
    # Keras's exact gelu (ConvNeXt's) computes erfc, which tf2onnx leaves as a TensorFlow op: the file was invalid.
    import keras

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="gelu")(inputs), name="gelu_net")
    with pytest.raises(keras_fcn.export.ConversionError, match=r"left TensorFlow operations of 'gelu_net' that ONNX "
                       r"does not have: \['Erfc'\]"):
        export(model, str(tmp_path / "fcn.onnx"), "onnx")
    model.save(tmp_path / "fcn.keras")
    assert cli.main(["export", str(tmp_path / "fcn.keras"), str(tmp_path / "fcn.onnx")]) == 2
    assert "keras-fcn export: error: The ONNX converter (tf2onnx) left" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "fcn.onnx")


def test_tflite_export_runs_in_the_litert_interpreter(tmp_path, rng):
    from ai_edge_litert.interpreter import Interpreter

    model = random_fcn8s(rng)
    export(model, str(tmp_path / "fcn.tflite"), "tflite", input_size=(40, 56))
    interpreter = Interpreter(str(tmp_path / "fcn.tflite"))
    interpreter.allocate_tensors()
    images = rng.uniform(0, 255, (1, 40, 56, 3)).astype("float32")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert_float32_logits(logits, model.predict(images, verbose=0))


# Run in its own process, so that its peak resident memory is the export's alone.
VGG16_EXPORT = """
import json, sys
import numpy as np
import keras_fcn
from keras_fcn.export import export

def resident(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) * 1024

model = keras_fcn.FCN8s(21, backbone="vgg16_reference", backbone_weights=None)
rng = np.random.default_rng(0)
for name in ("score_fr", "score_pool4", "score_pool3"):  # zero-initialized: scores of zero would prove little
    layer = model.get_layer(name)
    layer.set_weights([rng.normal(0, 0.01, w.shape).astype("float32") for w in layer.get_weights()])
images = rng.uniform(0, 255, (1, 37, 45, 3)).astype("float32")
np.save(sys.argv[2], model.predict(images, verbose=0))
np.save(sys.argv[3], images)
before = resident("VmRSS")
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # VmHWM starts again from VmRSS
export(model, sys.argv[1], "onnx")
print(json.dumps({"export_bytes": resident("VmHWM") - before, "weight_bytes": 4 * model.count_params()}))
"""


def test_onnx_export_of_the_reference_vgg16_net_fits_in_memory_and_computes_its_logits(tmp_path):
    # Keras's own ONNX export of these 513 MiB of weights would need about 25 GB (47 copies; killed past 12 GB).
    import onnxruntime
    paths = [str(tmp_path / name) for name in ("fcn.onnx", "keras.npy", "images.npy")]
    done = subprocess.run([sys.executable, "-c", VGG16_EXPORT, *paths], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["export_bytes"] < 4 * measured["weight_bytes"] < 2.2 * 2**30
    session = onnxruntime.InferenceSession(paths[0], providers=["CPUExecutionProvider"])
    images, expected = np.load(paths[2]), np.load(paths[1])
    assert_float32_logits(session.run(None, {session.get_inputs()[0].name: images})[0], expected)


def test_cli_onnx_export_without_its_packages_says_what_to_install(tmp_path, rng, monkeypatch, capsys):
    random_fcn8s(rng).save(tmp_path / "fcn.keras")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else find_spec(name, *a))
    assert cli.main(["export", str(tmp_path / "fcn.keras"), str(tmp_path / "fcn.onnx")]) == 2
    assert capsys.readouterr().err.strip() == (
        "keras-fcn export: error: ONNX export needs the packages tf2onnx, which are not installed: "
        "pip install keras-fcn[onnx]"
    )
    assert not os.path.exists(tmp_path / "fcn.onnx")
