"""tf.distribute: MirroredStrategy on two logical CPUs matches one device; MultiWorkerMirroredStrategy trains."""

import json
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_fcn
from _training_helpers import CHILD_ENV, TINY_CLI, TINY_MODEL, run_python, write_pairs

# Two logical CPUs must be configured before TensorFlow initializes its devices: a child process.
MIRRORED_CHILD = """
import sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_fcn import training

data, out = sys.argv[1], sys.argv[2]
strategies = {
    "one": tf.distribute.OneDeviceStrategy("/cpu:0"),
    "two": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
}
for name, strategy in strategies.items():
    model, _ = training.train(
        data, f"{out}/{name}", num_classes=3, backbone="mobilenet", backbone_weights=None,
        backbone_kwargs={"alpha": 0.25}, crop_size=(32, 32), batch_size=4, epochs=1, optimizer="sgd",
        learning_rate=0.5, weight_decay=0.0, augment=False, seed=7, strategy=strategy, verbose=0,
    )
    assert strategy.num_replicas_in_sync == {"one": 1, "two": 2}[name]
    np.savez(f"{out}/{name}.npz", *model.get_weights())
"""


def _weights(path):
    arrays = np.load(path)
    return [arrays[f"arr_{index}"] for index in range(len(arrays.files))]


def test_mirrored_step_on_two_replicas_equals_one_device(tmp_path):
    data = write_pairs(tmp_path / "train", 4)
    (tmp_path / "child.py").write_text(MIRRORED_CHILD)
    result = run_python([str(tmp_path / "child.py"), data, str(tmp_path)], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = _weights(tmp_path / "one.npz"), _weights(tmp_path / "two.npz")
    keras.utils.set_random_seed(7)
    initial = keras_fcn.FCN8s(3, **TINY_MODEL).get_weights()
    assert len(one) == len(two) == len(initial)
    # Both runs started from these weights (seed 7) and took one SGD step of a visible size ...
    step = max(float(np.abs(a - b).max()) for a, b in zip(one, initial))
    assert 1e-4 < step < 0.1
    # ... the same step, to float tolerance, on two replicas of 2 images as on one device of 4.
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, atol=1e-5)


# One SGD step of a 1x1 convolution on a batch of 4 images, with the loss under test, saved per reduction.
STEP_CHILD = """
import os
import sys
import numpy as np
import tensorflow as tf

workers = "TF_CONFIG" in os.environ
if not workers:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_fcn.distribute import MultiWorkerMirroredStrategy
from keras_fcn.losses import SegmentationCrossEntropy

batch, out = np.load(sys.argv[1]), sys.argv[2]
if workers:
    strategies = {"workers": MultiWorkerMirroredStrategy()}
else:
    strategies = {"one": tf.distribute.OneDeviceStrategy("/cpu:0"), "two": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
for name, strategy in strategies.items():
    for reduction in ("mean", "sum"):
        with strategy.scope():
            model = keras.Sequential([keras.Input(batch["images"].shape[1:]), keras.layers.Conv2D(3, 1)])
            model.set_weights([batch["kernel"], batch["bias"]])
            model.compile(optimizer=keras.optimizers.SGD(float(batch["rate"])), loss=SegmentationCrossEntropy(reduction=reduction))
        model.fit(batch["images"], batch["labels"], batch_size=4, epochs=1, shuffle=False, verbose=0)
        assert strategy.num_replicas_in_sync == {"one": 1, "two": 2, "workers": 2}[name]
        np.savez(f"{out}/{name}-{reduction}-{strategy.cluster_resolver.task_id if workers else 0}.npz", *model.get_weights())
"""


def _uneven_batch(path):
    """4 images of 4x4 pixels; the first two (the first replica's half) hold 3 valid pixels, the last two 32."""
    rng = np.random.default_rng(13)
    labels = rng.integers(0, 3, (4, 4, 4)).astype("uint8")
    labels[:2] = 255
    labels[0, 0, :2] = [1, 2]
    labels[1, 3, 3] = 0
    batch = {
        "images": rng.normal(0, 1, (4, 4, 4, 2)).astype("float32"),
        "labels": labels,
        "kernel": rng.normal(0, 1, (1, 1, 2, 3)).astype("float32"),
        "bias": rng.normal(0, 1, (3,)).astype("float32"),
        "rate": np.float32(0.5),
    }
    np.savez(path, **batch)
    return batch


def _sgd_step(batch, reduction):
    """The kernel and bias after one SGD step on the whole batch (numpy, float64): the one-device step."""
    x = batch["images"].astype("float64")
    kernel, bias = batch["kernel"].astype("float64"), batch["bias"].astype("float64")
    logits = x @ kernel[0, 0] + bias
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    valid = batch["labels"] != 255
    onehot = np.eye(3)[np.where(valid, batch["labels"], 0)]
    # d(-log softmax(z)[y]) / dz = softmax(z) - onehot(y), per valid pixel; "mean" divides by the batch's valid count.
    grad = (probabilities - onehot) * valid[..., None] / (valid.sum() if reduction == "mean" else 1.0)
    rate = float(batch["rate"])
    return [kernel - rate * np.einsum("bhwc,bhwk->ck", x, grad)[None, None], bias - rate * grad.sum((0, 1, 2))]


def _assert_step(path, expected):
    for got, want in zip(_weights(path), expected):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.floor
def test_two_replicas_equal_one_device_on_a_batch_of_unevenly_valid_pixels(tmp_path):
    batch = _uneven_batch(tmp_path / "batch.npz")
    (tmp_path / "child.py").write_text(STEP_CHILD)
    result = run_python([str(tmp_path / "child.py"), str(tmp_path / "batch.npz"), str(tmp_path)], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for reduction in ("mean", "sum"):
        expected = _sgd_step(batch, reduction)
        assert np.abs(expected[0] - batch["kernel"]).max() > 1e-2  # a visible step
        _assert_step(tmp_path / f"one-{reduction}-0.npz", expected)
        _assert_step(tmp_path / f"two-{reduction}-0.npz", expected)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_workers(arguments, tmp_path, timeout=300):
    """Runs `python arguments...` as the 2 workers of a local cluster; asserts both exit 0."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        env = {**CHILD_ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        log = open(tmp_path / f"worker{index}.log", "w")
        workers.append((subprocess.Popen([sys.executable, *arguments], stdout=log, stderr=subprocess.STDOUT, env=env), log))
    try:
        codes = [process.wait(timeout=timeout) for process, _ in workers]
    finally:
        for process, log in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    logs = [(tmp_path / f"worker{index}.log").read_text()[-3000:] for index in range(2)]
    assert codes == [0, 0], logs


def test_two_workers_equal_one_device_on_a_batch_of_unevenly_valid_pixels(tmp_path):
    batch = _uneven_batch(tmp_path / "batch.npz")
    (tmp_path / "child.py").write_text(STEP_CHILD)
    _run_workers([str(tmp_path / "child.py"), str(tmp_path / "batch.npz"), str(tmp_path)], tmp_path)
    for reduction in ("mean", "sum"):
        expected = _sgd_step(batch, reduction)
        for worker in range(2):
            _assert_step(tmp_path / f"workers-{reduction}-{worker}.npz", expected)


def test_multi_worker_mirrored_training_with_two_workers(tmp_path):
    data = write_pairs(tmp_path / "train", 4)
    run = tmp_path / "run"
    arguments = [
        "-m", "keras_fcn", "train", data, "--output-dir", str(run), "--num-classes", "3", *TINY_CLI,
        "--model", "fcn32s", "--crop-size", "32x32", "--batch-size", "2", "--epochs", "2", "--strategy",
        "multi-worker", "--seed", "0", "--verbose", "2",
    ]
    _run_workers(arguments, tmp_path)
    chief = run / "log.csv"
    other = run / "workers" / "worker-1" / "log.csv"
    assert chief.read_text().splitlines()[1:][-1].startswith("1,")
    assert other.read_text().splitlines() == chief.read_text().splitlines()
    # Synchronous training: both workers end with the same weights.
    weights = [keras.saving.load_model(folder / "last.keras").get_weights() for folder in (run, other.parent)]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-6)
