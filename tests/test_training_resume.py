"""A training run killed with SIGKILL and started again resumes after its last completed epoch."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import keras

from test_training_support import CHILD_ENV, TINY_CLI, run_python, write_pairs

EPOCHS = 4


def test_killed_run_resumes_after_its_last_completed_epoch(tmp_path):
    data = write_pairs(tmp_path / "train", 4)
    run = tmp_path / "run"
    arguments = [
        "-m", "keras_fcn", "train", data, "--output-dir", str(run), "--num-classes", "3", *TINY_CLI,
        "--model", "fcn32s", "--crop-size", "32x32", "--batch-size", "2", "--epochs", str(EPOCHS), "--seed", "0",
        "--verbose", "2",
    ]
    metadata = run / "backup" / "training_metadata.json"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen([sys.executable, *arguments], stdout=log, stderr=subprocess.STDOUT, env=CHILD_ENV)
        deadline = time.monotonic() + 150
        while not metadata.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]
    completed = json.loads(metadata.read_text())["epoch"]
    assert 1 <= completed < EPOCHS

    second = run_python(arguments, timeout=240)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    epochs_run = [int(n) for n in re.findall(rf"^Epoch (\d+)/{EPOCHS}$", second.stdout, re.MULTILINE)]
    assert epochs_run == list(range(completed + 1, EPOCHS + 1))
    with open(run / "log.csv", newline="") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == [str(e) for e in range(EPOCHS)]
    assert json.loads(metadata.read_text())["epoch"] == EPOCHS
    assert keras.saving.load_model(run / "last.keras").name.startswith("fcn32s")

    # Started once more, the finished run trains nothing and keeps its log.
    third = run_python(arguments, timeout=240)
    assert third.returncode == 0 and "Epoch " not in third.stdout
    with open(run / "log.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == EPOCHS
