"""How far a killed and resumed training run ends from the uninterrupted run (issue 13, point 4).

Trains a tiny FCN-32s (MobileNet alpha 0.25, random weights) on random
32x32 pairs for two epochs, with op determinism and a seed, twice: without
interruption, and killed after its first epoch (an exception raised once
that epoch's backup is written) then started again into the same folder.
Prints the largest absolute difference between the two runs' final weights
as JSON: 0 when every epoch reads the same batches whichever process runs
it (1.5e-2 when a resumed process replayed epoch 0's order and draws).

Usage:

    python benchmarks/resume_exactness.py
"""

import json
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf

import keras_fcn
from keras_fcn.callbacks import AtomicBackupAndRestore

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from _training_helpers import TINY_MODEL, write_pairs  # noqa: E402

ARGUMENTS = dict(
    num_classes=3, **TINY_MODEL, model="fcn32s", crop_size=(24, 24), batch_size=2, epochs=2, seed=5, verbose=0
)


class Killed(Exception):
    """Stands for the process being killed after the first epoch's backup."""


def main():
    tf.config.experimental.enable_op_determinism()
    root = tempfile.mkdtemp()
    data = write_pairs(os.path.join(root, "train"), 6)
    uninterrupted, _ = keras_fcn.train(data, os.path.join(root, "uninterrupted"), **ARGUMENTS)
    save_backup = AtomicBackupAndRestore.on_epoch_end

    def killed_after_the_first_epoch(self, epoch, logs=None):
        save_backup(self, epoch, logs)
        raise Killed

    AtomicBackupAndRestore.on_epoch_end = killed_after_the_first_epoch
    try:
        keras_fcn.train(data, os.path.join(root, "killed"), **ARGUMENTS)
    except Killed:
        pass
    AtomicBackupAndRestore.on_epoch_end = save_backup
    resumed, _ = keras_fcn.train(data, os.path.join(root, "killed"), **ARGUMENTS)
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(resumed.get_weights(), uninterrupted.get_weights()))
    print(json.dumps({"max_abs_weight_difference": difference}))


if __name__ == "__main__":
    main()
