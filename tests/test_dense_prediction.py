"""shift_and_stitch and rarefy. TensorFlow backend in CI (checked once under JAX: 11 passed) to keep CI short."""

import keras
import numpy as np
import pytest

import keras_fcn
from keras_fcn import dense_prediction
from _helpers import run as _run
from _numpy_reference import conv2d, pool2d

pytestmark = pytest.mark.floor


def _small_valid_net(rng):
    """A net of VALID layers with total stride 8: two strided poolings and a strided convolution."""
    inputs = keras.Input((None, None, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="p1")(x)
    x = keras.layers.Conv2D(5, 3, activation="relu", name="c2")(x)
    x = keras.layers.Conv2D(6, 2, strides=2, activation="relu", name="c3")(x)
    x = keras.layers.AveragePooling2D(2, name="p2")(x)
    x = keras.layers.Conv2D(3, 1, name="c4")(x)
    model = keras.Model(inputs, x, name="small")
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()])
    return model


# The numpy net: (kind, layer name, stride).
NUMPY_NET = [("conv", "c1", 1), ("max", 2, 2), ("conv", "c2", 1), ("conv", "c3", 2), ("avg", 2, 2), ("conv", "c4", 1)]


def _numpy_forward(model, image):
    x = image.astype("float64")
    for kind, spec, stride in NUMPY_NET:
        if kind == "conv":
            kernel, bias = model.get_layer(spec).get_weights()
            x = conv2d(x, kernel.transpose(3, 2, 0, 1), bias, stride)
            if spec != "c4":
                x = np.maximum(x, 0)
        else:
            x = pool2d(x, spec, stride, np.max if kind == "max" else np.mean)
    return x


def _numpy_dense(model, image, step):
    """Brute force: output (m, n) is the net's first output on the image shifted by (step * m, step * n)."""
    rows = [m for m in range(image.shape[0]) if _numpy_forward(model, image[step * m :]).shape[0]]
    cols = [n for n in range(image.shape[1]) if _numpy_forward(model, image[:, step * n :]).shape[1]]
    return np.array([[_numpy_forward(model, image[step * m :, step * n :])[0, 0] for n in cols] for m in rows])


@pytest.mark.parametrize("from_layer, factor", [("p1", 8), ("c3", 4), ("p2", 2)])
def test_rarefy_equals_shift_and_stitch_equals_numpy_brute_force(rng, from_layer, factor):
    net = _small_valid_net(rng)
    assert dense_prediction.subsampling(net) == 8
    assert dense_prediction.subsampling(net, from_layer) == factor
    image = rng.normal(size=(1, 27, 30, 2)).astype("float32")
    stitched = _run(dense_prediction.shift_and_stitch(net, factor), image)[0]
    rarefied = _run(dense_prediction.rarefy(net, from_layer), image)[0]
    expected = _numpy_dense(net, image[0], 8 // factor)
    assert stitched.shape == rarefied.shape == expected.shape
    # Receptive field 14: one output per step pixels where the 14-pixel window fits.
    assert expected.shape == ((27 - 14) // (8 // factor) + 1, (30 - 14) // (8 // factor) + 1, 3)
    assert np.abs(rarefied - stitched).max() < 1e-4
    np.testing.assert_allclose(rarefied, expected, rtol=1e-4, atol=1e-4)


def test_rarefy_dilates_later_layers_and_keeps_weights(rng):
    net = _small_valid_net(rng)
    rarefied = dense_prediction.rarefy(net, "c3")
    assert rarefied.get_layer("c1").strides == (1, 1) and rarefied.get_layer("c1").dilation_rate == (1, 1)
    assert rarefied.get_layer("p1").strides == (2, 2)
    assert (rarefied.get_layer("c3").strides, rarefied.get_layer("c3").dilation_rate) == ((1, 1), (1, 1))
    p2 = rarefied.get_layer("p2")
    assert isinstance(p2, dense_prediction.DilatedPooling2D) and (p2.dilation_rate, p2.mode) == ((2, 2), "average")
    assert rarefied.get_layer("c4").dilation_rate == (4, 4)
    for layer in net.layers[1:]:
        for old, new in zip(layer.get_weights(), rarefied.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(old, new)


def _numpy_dilated_pool(x, size, dilation, padding, reduce):
    """Pools x (h, w) over dilated windows, ignoring padded cells (NaN)."""
    (top, bottom), (left, right) = padding
    padded = np.pad(x, ((top, bottom), (left, right)), constant_values=np.nan)
    rows, cols = padded.shape[0] - (size - 1) * dilation, padded.shape[1] - (size - 1) * dilation
    out = np.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            out[i, j] = reduce(padded[i : i + size * dilation : dilation, j : j + size * dilation : dilation])
    return out


@pytest.mark.parametrize("mode, reduce", [("max", np.nanmax), ("average", np.nanmean)])
def test_dilated_pooling_matches_numpy_and_ignores_padding(rng, mode, reduce):
    x = rng.normal(size=(1, 9, 11, 1)).astype("float32")
    padding = ((1, 3), (0, 2))
    layer = dense_prediction.DilatedPooling2D(3, dilation_rate=2, padding=padding, mode=mode)
    expected = _numpy_dilated_pool(x[0, :, :, 0], 3, 2, padding, reduce)
    out = keras.ops.convert_to_numpy(layer(x))[0, :, :, 0]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape((1, 9, 11, 1)) == (1, *expected.shape, 1)


def test_interlace_places_shift_outputs_and_drops_missing_cells():
    # Output (x, y) holds 10 * x + y; the shifted outputs (1, *) lack a row, the (*, 1) a column.
    parts = [np.full((1, 3 - x, 4 - y, 1), 10 * x + y, "float32") for x in range(2) for y in range(2)]
    out = keras.ops.convert_to_numpy(dense_prediction.Interlace(2)(parts))[0, :, :, 0]
    expected = np.array([[10 * (i % 2) + j % 2 for j in range(7)] for i in range(5)])
    np.testing.assert_array_equal(out, expected)


def _same_padded_net(rng):
    """3x3 "same" convolutions and 2x2 stride-2 ceil-mode poolings, as in the reference VGG16."""
    inputs = keras.Input((None, None, 1))
    x = inputs
    for index in range(1, 4):
        x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name=f"conv{index}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{index}")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="score")(x))
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    return model


def test_padded_net_agrees_with_shift_and_stitch_away_from_the_borders(rng):
    net = _same_padded_net(rng)
    image = rng.normal(size=(1, 61, 50, 1)).astype("float32")
    stitched = _run(dense_prediction.shift_and_stitch(net, 4), image)[0]
    rarefied = _run(dense_prediction.rarefy(net, "pool2"), image)[0]
    assert stitched.shape == rarefied.shape == (31, 25, 2)  # ceil(H / 2), ceil(W / 2)
    # A shifted input's first coarse cell (receptive field rows -7..14 of that input) sees the zero padding
    # above it, where the rarefied net sees image rows: dense rows and columns 0..3 (x = 0..3 times the cell 0).
    np.testing.assert_allclose(rarefied[4:, 4:], stitched[4:, 4:], rtol=1e-4, atol=1e-4)
    assert np.abs(rarefied[:4] - stitched[:4]).max() > 1e-3


def test_rarefied_model_round_trips_through_a_keras_file(rng, tmp_path):
    rarefied = dense_prediction.rarefy(_same_padded_net(rng), "pool1")
    path = tmp_path / "rarefied.keras"
    rarefied.save(path)
    image = rng.normal(size=(1, 20, 17, 1)).astype("float32")
    np.testing.assert_array_equal(_run(keras.saving.load_model(path), image), _run(rarefied, image))


def test_fcn_coarse_net_densifies_to_the_shift_and_stitch_shape(rng):
    fcn = keras_fcn.FCN32s(3, backbone="mobilenet", backbone_weights=None, backbone_kwargs={"alpha": 0.25})
    net = keras.Model(fcn.input, fcn.get_layer("score_fr").output)
    assert dense_prediction.subsampling(net) == 32 and dense_prediction.subsampling(net, "conv_pad_12") == 2
    image = rng.uniform(0, 255, size=(1, 70, 90, 3)).astype("float32")
    coarse = _run(net, image)
    # 70x90 is padded to 96x96, then by 15 + 17 zeros that centre the cells on 32-pixel blocks: 128x128.
    assert coarse.shape == (1, 4, 4, 3)
    # 8x8 cells at stride 16; conv_dw_12 (3x3 VALID after padding by 1) loses one.
    assert _run(dense_prediction.rarefy(net, "conv_pad_12"), image).shape == (1, 7, 7, 3)
    # The image shifted by 16 pixels, 54x74, is padded again, to 96x128: 3x4 cells, interlaced with 4x4.
    assert _run(dense_prediction.shift_and_stitch(net, 2), image).shape == (1, 7, 8, 3)


def test_bad_arguments_are_refused(rng):
    net = _small_valid_net(rng)
    with pytest.raises(ValueError, match="must divide the total stride 8"):
        dense_prediction.shift_and_stitch(net, 3)
    with pytest.raises(ValueError, match="has no layer 'p9'"):
        dense_prediction.rarefy(net, "p9")
    with pytest.raises(ValueError, match="does not subsample at or after layer 'c4'"):
        dense_prediction.rarefy(net, "c4")
    fcn = keras_fcn.FCN32s(2, backbone="mobilenet", backbone_weights=None, backbone_kwargs={"alpha": 0.25})
    with pytest.raises(ValueError, match="'upscore_1' \\(Conv2DTranspose\\) resamples"):
        dense_prediction.rarefy(fcn, "conv_pad_12")


def test_shared_layers_and_non_functional_models_are_refused():
    inputs = keras.Input((None, None, 2))
    shared = keras.layers.Conv2D(2, 3, strides=2, name="shared")
    twice = keras.Model(inputs, keras.layers.Conv2D(1, 1, name="head")(shared(shared(inputs))), name="twice")
    with pytest.raises(ValueError, match="Layer 'head' takes a tensor that no layer of model 'twice'.*called more than once"):
        dense_prediction.subsampling(twice)
    # The second call's output as the model's output.
    last = keras.Model(inputs, shared(keras.layers.Conv2D(2, 1, name="first")(shared.output)), name="last")
    with pytest.raises(ValueError, match="The output takes a tensor that no layer of model 'last'"):
        dense_prediction.subsampling(last)
    with pytest.raises(TypeError, match="functional keras.Model"):
        dense_prediction.subsampling(keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Conv2D(1, 3, strides=2)]))
