"""Multi-worker training that Keras 3 can run, and the sums over replicas a loss needs under `tf.distribute`."""

import keras
import tensorflow as tf

# Dtypes that TensorFlow's collective all-reduce accepts.
_COLLECTIVE_DTYPES = (tf.bfloat16, tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy` with a `reduce` that Keras 3's trainer can call.

    Keras 3 (up to at least 3.15) cannot `fit` under the plain strategy
    (keras-team/keras#20585): to build the model it reduces a whole
    `(images, masks)` batch in one `reduce` call, which the collective
    implementation accepts only for a single value of a float or int32/int64
    dtype, and it reduces scalar logs with `axis=0`. This subclass reduces
    each value of a structure on its own, other dtypes (uint8 masks) through
    float32, and scalars without an axis. Everything else is TensorFlow's
    strategy, configured by the `TF_CONFIG` environment variable.
    """

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def reduce_one(item):
            local = tf.convert_to_tensor(
                item.values[0] if isinstance(item, tf.distribute.DistributedValues) else item
            )
            item_axis = axis if local.shape.rank else None
            if local.dtype in _COLLECTIVE_DTYPES:
                return parent.reduce(reduce_op, item, item_axis)
            as_float = self.run(tf.cast, args=(item, tf.float32))
            return tf.cast(parent.reduce(reduce_op, as_float, item_axis), local.dtype)

        return tf.nest.map_structure(reduce_one, value)


def sum_over_replicas(value):
    """The sum of `value` over the replicas of the `tf.distribute` step that runs this code.

    Called in a replica context of a strategy with several replicas (inside
    `strategy.run`, as `model.fit` and `model.evaluate` call losses), it
    all-reduces `value` over every replica of every worker; elsewhere (one
    device, a cross-replica context, the JAX backend, whose distribution
    computes on global arrays) `value` is already the global value and is
    returned as is.

    Args:
        value: a tensor, the replica's own value (e.g. its count of valid
            pixels).

    Returns:
        A tensor of the same shape and dtype.
    """
    if keras.backend.backend() != "tensorflow":
        return value
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
