"""Where a run computes and writes: a `tf.distribute` strategy by name, and the folder of each process."""

import os

import keras
import tensorflow as tf

from keras_fcn.distribute import MultiWorkerMirroredStrategy
from keras_fcn.errors import InvalidArgumentError

STRATEGIES = ("default", "mirrored", "multi-worker")


def get_strategy(strategy=None):
    """A `tf.distribute.Strategy` from its name.

    Args:
        strategy: None or `"default"` (the current strategy, usually one
            device), `"mirrored"` (`tf.distribute.MirroredStrategy`, every
            local GPU, else the CPU), `"multi-worker"`
            (`keras_fcn.distribute.MultiWorkerMirroredStrategy`, configured
            by the `TF_CONFIG` environment variable), or a strategy,
            returned as is.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        keras_fcn.errors.InvalidArgumentError: (a `ValueError`) for another
            name, or a distributed strategy on a backend other than
            TensorFlow.
    """
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in (None,) + STRATEGIES:
        raise InvalidArgumentError(
            f"`strategy` must be one of {STRATEGIES} or a tf.distribute.Strategy. Received strategy={strategy!r}"
        )
    if strategy in (None, "default"):
        return tf.distribute.get_strategy()
    if keras.backend.backend() != "tensorflow":
        raise InvalidArgumentError(
            f"`strategy={strategy!r}` uses tf.distribute, which needs the TensorFlow backend. "
            f"Received KERAS_BACKEND={keras.backend.backend()!r}"
        )
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return MultiWorkerMirroredStrategy()


def has_workers(strategy):
    """Whether `strategy` spans several processes (multi-worker), each running the training."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is not None and resolver.task_type is not None


def is_chief(strategy):
    """Whether this process writes the run's files (always, except on non-chief multi-worker tasks)."""
    if not has_workers(strategy):
        return True
    resolver = strategy.cluster_resolver
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def process_dir(output_dir, strategy):
    """`output_dir` for the chief; a folder of its own inside it, `workers/<task>-<id>`, for each other task."""
    if is_chief(strategy):
        return output_dir
    resolver = strategy.cluster_resolver
    return os.path.join(output_dir, "workers", f"{resolver.task_type}-{resolver.task_id}")


def shard_by_data(dataset):
    """`dataset` split between workers batch by batch (`AutoShardPolicy.DATA`), as files may be fewer than workers."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
