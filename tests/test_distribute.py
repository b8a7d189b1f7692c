"""tf.distribute: MirroredStrategy on two logical CPUs matches one device; MultiWorkerMirroredStrategy trains."""

import json
import socket
import subprocess
import sys

import keras
import numpy as np

import keras_fcn
from test_training_support import CHILD_ENV, TINY_CLI, TINY_MODEL, run_python, write_pairs

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


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_training_with_two_workers(tmp_path):
    data = write_pairs(tmp_path / "train", 4)
    run = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    arguments = [
        sys.executable, "-m", "keras_fcn", "train", data, "--output-dir", str(run), "--num-classes", "3", *TINY_CLI,
        "--model", "fcn32s", "--crop-size", "32x32", "--batch-size", "2", "--epochs", "2", "--strategy",
        "multi-worker", "--seed", "0", "--verbose", "2",
    ]
    workers = []
    for index in range(2):
        env = {**CHILD_ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        log = open(tmp_path / f"worker{index}.log", "w")
        workers.append((subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    try:
        codes = [process.wait(timeout=300) for process, _ in workers]
    finally:
        for process, log in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    logs = [(tmp_path / f"worker{index}.log").read_text()[-3000:] for index in range(2)]
    assert codes == [0, 0], logs
    chief = run / "log.csv"
    other = run / "workers" / "worker-1" / "log.csv"
    assert chief.read_text().splitlines()[1:][-1].startswith("1,")
    assert other.read_text().splitlines() == chief.read_text().splitlines()
    # Synchronous training: both workers end with the same weights.
    weights = [keras.saving.load_model(folder / "last.keras").get_weights() for folder in (run, other.parent)]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-6)
