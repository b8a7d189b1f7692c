"""The training recipe in one call: data, model, optimizer, logs, checkpoints and resume (paper, section 4.3).

`keras_fcn.train` (`keras_fcn.training.train`) wraps `model.fit` with what
an FCN run needs: the dataset by name or folder, the model (optionally
started from the previous stage, FCN-32s -> FCN-16s -> FCN-8s), an
optimizer preset, mixed precision, a `tf.distribute` strategy, and in
`output_dir`:

- `log.csv`, one row per epoch; `tensorboard/`, TensorBoard logs;
- `best.keras` (best validation mean IU, with `best.keras.json` recording
  it) and `last.keras`, full models written atomically at each epoch end;
- `backup/`, the model and optimizer state of the last completed epoch, and
  its logs: a run that is killed and started again with the same arguments
  resumes after it, reading the same batches as the uninterrupted run, and
  a finished run started again trains nothing; either first writes what a
  kill after the backup left unwritten (the epoch's log row, checkpoints);
- `classes.json`, the class names, which `keras-fcn predict` and
  `keras-fcn evaluate` read beside the model; `run.json`, the model options
  and the seed, which a run started again into the folder must share;
- `training.lock` while a training runs, which another one started into
  the same folder refuses to share.

The validation figures (`val_mean_iou`, ...) are those of each image at its
own size, whatever the batch size (`keras_fcn.training.pipelines`).

One module per part:

- `datasets`: a dataset name, folder or `tf.data.Dataset` -> its splits
  and classes (`load_dataset`);
- `distribution`: the `tf.distribute` strategy by name, and the folder each
  multi-worker process writes (`get_strategy`);
- `policy`: mixed precision by name -> the dtype policy (`dtype_policy`);
- `presets`: the optimizer presets (`PRESETS`, `Preset`);
- `stages`: the models by name and staged training (`MODELS`);
- `options`: the options of `train` and `keras-fcn train`, defined once
  (`TrainingOptions`; how to add one is in its documentation);
- `pipelines`: the training batches, keyed by the absolute epoch, and the
  validation batches, each image at its own size;
- `run_folder`: the run folder's lock, checks and records;
- `trainer`: `train`, the loop that puts them together.
"""

from keras_fcn.training.datasets import NAMED_DATASETS, DatasetSplits, load_dataset
from keras_fcn.training.distribution import STRATEGIES, get_strategy
from keras_fcn.training.options import TrainingOptions
from keras_fcn.training.policy import MIXED_PRECISION, dtype_policy
from keras_fcn.training.presets import PRESETS, Preset
from keras_fcn.training.stages import MODELS
from keras_fcn.training.trainer import train

__all__ = [
    "MIXED_PRECISION",
    "MODELS",
    "NAMED_DATASETS",
    "PRESETS",
    "STRATEGIES",
    "DatasetSplits",
    "Preset",
    "TrainingOptions",
    "dtype_policy",
    "get_strategy",
    "load_dataset",
    "train",
]
