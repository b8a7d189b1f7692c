"""SavedModel export. TensorFlow backend only: a SavedModel is a TensorFlow artifact."""

import numpy as np
import tensorflow as tf

import keras_fcn


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
