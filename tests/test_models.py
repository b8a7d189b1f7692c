import keras
import numpy as np
import pytest

import keras_fcn
from _helpers import randomize as _randomize
from _helpers import run as _run
from _training_helpers import CHILD_ENV, run_python
from _numpy_reference import bilinear_upsample, crop, pool2d

pytestmark = pytest.mark.backend_agnostic

BUILDERS = {"32s": keras_fcn.FCN32s, "16s": keras_fcn.FCN16s, "8s": keras_fcn.FCN8s}
SMALL = {"backbone": "mobilenet", "backbone_weights": None, "backbone_kwargs": {"alpha": 0.25}}
SMALL_KWARGS = {"mobilenet": {"alpha": 0.25}}




@pytest.mark.parametrize("backbone", ["vgg16_reference", "alexnet_reference", "mobilenet", "inceptionv3"])
def test_output_has_the_input_size(rng, backbone):
    model = keras_fcn.FCN8s(3, backbone=backbone, backbone_weights=None, backbone_kwargs=SMALL_KWARGS.get(backbone))
    assert model.input.shape[1:] == (None, None, 3)
    for size in [(64, 64), (333, 517)]:
        out = _run(model, rng.uniform(0, 255, size=(1, *size, 3)).astype("float32"))
        assert out.shape == (1, *size, 3)
        assert out.dtype == "float32"


@pytest.mark.floor
@pytest.mark.parametrize("builder", [keras_fcn.FCN32s, keras_fcn.FCN16s, keras_fcn.FCN8sAtOnce])
def test_every_head_keeps_odd_sizes(rng, builder):
    model = builder(5, **SMALL)
    out = _run(model, rng.uniform(0, 255, size=(2, 47, 121, 3)).astype("float32"))
    assert out.shape == (2, 47, 121, 5)


def test_new_score_layers_start_at_zero_and_upsamplings_are_fixed(rng):
    model = keras_fcn.FCN8s(4, **SMALL)
    for name in ["score_fr", "score_pool4", "score_pool3"]:
        assert all(not np.any(w) for w in model.get_layer(name).get_weights())
    upsamplings = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [layer.name for layer in upsamplings] == ["upscore2", "upscore_pool4", "upscore8_1", "upscore8_2", "upscore8_3"]
    assert not any(layer.trainable or layer.use_bias for layer in upsamplings)
    assert not np.any(_run(model, rng.uniform(0, 255, size=(1, 40, 40, 3)).astype("float32")))
    learned = keras_fcn.FCN8s(4, trainable_upsampling=True, **SMALL)
    assert len(learned.trainable_weights) == len(model.trainable_weights) + 5


REFERENCE_LAYERS = {
    "32s": ["upscore"],
    "16s": ["upscore2", "score_pool4", "score_pool4c", "fuse_pool4", "upscore16"],
    "8s": ["upscore2", "score_pool4", "score_pool4c", "fuse_pool4", "upscore_pool4", "score_pool3",
           "score_pool3c", "fuse_pool3", "upscore8"],
}
# The paper's reference nets: (kernel, stride) of each deconvolution and the crop offsets.
REFERENCE_DECONVOLUTIONS = {
    "upscore": (64, 32), "upscore16": (32, 16), "upscore8": (16, 8), "upscore2": (4, 2), "upscore_pool4": (4, 2)
}
REFERENCE_CROPS = {"32s": {"score": 19}, "16s": {"score_pool4c": 5, "score": 27},
                   "8s": {"score_pool4c": 5, "score_pool3c": 9, "score": 31}}


@pytest.fixture(scope="module")
def reference_fcn8s():
    return keras_fcn.FCN8s(21, backbone="vgg16_reference", backbone_weights=None)


def test_reference_trunk_is_the_caffe_net(reference_fcn8s):
    model = reference_fcn8s
    convolutions = [f"conv{b}_{i}" for b, n in [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)] for i in range(1, n + 1)]
    for name in convolutions:
        layer = model.get_layer(name)
        assert layer.kernel_size == (3, 3)
        assert layer.padding == ("valid" if name == "conv1_1" else "same")
    assert model.get_layer("conv1_1_pad").padding == ((100, 100), (100, 100))
    for index in range(1, 6):
        pool = model.get_layer(f"pool{index}")
        assert (pool.pool_size, pool.strides, pool.padding) == ((2, 2), (2, 2), "same")
    fc6, fc7 = model.get_layer("fc6"), model.get_layer("fc7")
    assert (fc6.filters, fc6.kernel_size, fc6.padding) == (4096, (7, 7), "valid")
    assert (fc7.filters, fc7.kernel_size) == (4096, (1, 1))
    assert model.get_layer("drop6").rate == model.get_layer("drop7").rate == 0.5
    assert model.get_layer("score_fr").filters == 21


def test_ceil_mode_pooling_matches_numpy(rng):
    x = rng.normal(size=(1, 7, 5, 1)).astype("float32")
    out = _run(keras.Sequential([keras.Input((7, 5, 1)), keras.layers.MaxPooling2D(2, 2, padding="same")]), x)
    np.testing.assert_array_equal(out[0], pool2d(x[0], 2, 2, ceil_mode=True))


@pytest.mark.parametrize("stage", ["32s", "16s", "8s"])
def test_reference_heads_have_the_papers_layers_and_offsets(stage):
    model = BUILDERS[stage](21, backbone="vgg16_reference", backbone_weights=None)
    names = {layer.name for layer in model.layers}
    assert set(REFERENCE_LAYERS[stage]) <= names
    for name in names & set(REFERENCE_DECONVOLUTIONS):
        layer = model.get_layer(name)
        assert (layer.kernel_size[0], layer.strides[0]) == REFERENCE_DECONVOLUTIONS[name]
        assert not layer.use_bias
    for name, offset in REFERENCE_CROPS[stage].items():
        assert model.get_layer(name).offset == (offset, offset)


# The heads worked out by hand: offsets of the pool4 skip, the pool3 skip and the final crop, kernels of the
# 2x steps to pool4 and pool3, and the final upsampling steps as (factor, kernel).
# The reference VGG16 is the paper's (crops 5, 9, 31; 4/2, 4/2, 16/8). MobileNet's five stride-2 3x3 convolutions
# pad only the bottom and right, so stride-s cell i is centred on pixel s*i + s - 1 of the trunk's input (stride 8:
# 8i + 7, 16: 16i + 15, 32: 32i + 31). 15 zeros above the image put them on 8i - 8, 16i and 32i + 16 of the
# image; a kernel-3 2x step puts stride-32 cell i on index 2i + 1 (pixel 32i + 16): stride-16 cell 2i + 1
# (offset 0), and again onto stride-8 cell 4i + 3 (offset 0); three more kernel-3 steps put stride-8 cell r
# (pixel 8r - 8) on index 8r + 7: the final crop starts at 15.
HEAD_GEOMETRY = {
    "vgg16_reference": ((5, 9, 31), (4, 4), [(8, 16)]),
    "mobilenet": ((0, 0, 15), (3, 3), [(2, 3), (2, 3), (2, 3)]),
}


@pytest.mark.parametrize("backbone", sorted(HEAD_GEOMETRY))
def test_fcn8s_head_equals_numpy_upsample_crop_and_sum(rng, backbone, request):
    offsets, skip_kernels, final_steps = HEAD_GEOMETRY[backbone]
    if backbone == "vgg16_reference":
        model = request.getfixturevalue("reference_fcn8s")
    else:
        model = keras_fcn.FCN8s(21, **SMALL)
        assert model.get_layer("input_padding").padding == ((15, 17), (15, 17))
    _randomize(model, ["score_fr", "score_pool4", "score_pool3"], rng, scale=0.05)
    image = rng.uniform(0, 255, size=(1, 45, 70, 3)).astype("float32")
    probe = keras.Model(model.input, [model.get_layer(n).output for n in ["score_fr", "score_pool4", "score_pool3"]])
    score_fr, score_pool4, score_pool3 = (t[0] for t in probe(image, training=False))
    score_fr, score_pool4, score_pool3 = map(keras.ops.convert_to_numpy, (score_fr, score_pool4, score_pool3))
    up2 = bilinear_upsample(score_fr, 2, skip_kernels[0])
    fuse_pool4 = up2 + crop(score_pool4, offsets[0], up2.shape[:2])
    up4 = bilinear_upsample(fuse_pool4, 2, skip_kernels[1])
    fuse_pool3 = up4 + crop(score_pool3, offsets[1], up4.shape[:2])
    for factor, kernel in final_steps:
        fuse_pool3 = bilinear_upsample(fuse_pool3, factor, kernel)
    expected = crop(fuse_pool3, offsets[2], (45, 70))
    np.testing.assert_allclose(_run(model, image)[0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backbone", ["mobilenet", "inceptionv3"])
def test_upgrade_starts_from_exactly_the_previous_stage(rng, backbone):
    fcn32s = keras_fcn.FCN32s(3, **{**SMALL, "backbone": backbone, "backbone_kwargs": SMALL_KWARGS.get(backbone)})
    _randomize(fcn32s, ["score_fr"], rng, scale=0.5)
    image = rng.uniform(0, 255, size=(2, 75, 101, 3)).astype("float32")
    expected = _run(fcn32s, image)
    assert np.abs(expected).max() > 0.1

    fcn16s = keras_fcn.upgrade(fcn32s)
    assert fcn16s.name == f"fcn16s_{backbone}"
    np.testing.assert_allclose(_run(fcn16s, image), expected, rtol=1e-5, atol=1e-4)

    _randomize(fcn16s, ["score_pool4"], rng, scale=0.05)
    trained_16s = _run(fcn16s, image)
    fcn8s = keras_fcn.upgrade(fcn16s)
    assert fcn8s.name == f"fcn8s_{backbone}"
    assert not any(np.any(w) for w in fcn8s.get_layer("score_pool3").get_weights())
    np.testing.assert_allclose(_run(fcn8s, image), trained_16s, rtol=1e-5, atol=1e-4)

    fcn16s.get_layer("score_fr").set_weights([np.zeros(w.shape, "float32") for w in fcn16s.get_layer("score_fr").get_weights()])
    np.testing.assert_allclose(_run(fcn8s, image), trained_16s, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="already an FCN-8s"):
        keras_fcn.upgrade(fcn8s)


def test_reference_upgrade_copies_weights_and_cuts_only_the_corners(rng):
    """The reference heads' 2x + 16x bilinear steps cut the corners of the 32x one (see upgrade()).

    Both interpolate the coarse scores linearly; the 2x step samples them a
    quarter cell either side of each cell centre, so along one axis the two
    differ only near the centres, by at most 1/8 of the scores' second
    difference there (zero scores beyond the edges), and in 2-D by at most the
    sum of that bound along both axes.
    """
    fcn32s = keras_fcn.FCN32s(3, backbone="vgg16_reference", backbone_weights=None)
    _randomize(fcn32s, ["score_fr"], rng, scale=0.5)
    fcn16s = keras_fcn.upgrade(fcn32s)
    for layer in fcn32s.layers:
        if layer.weights and layer.name != "upscore":
            for old, new in zip(layer.get_weights(), fcn16s.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(old, new)
    image = rng.uniform(0, 255, size=(1, 75, 101, 3)).astype("float32")
    before, after = _run(fcn32s, image), _run(fcn16s, image)
    coarse = _run(keras.Model(fcn32s.input, fcn32s.get_layer("score_fr").output), image)[0]
    padded = np.pad(coarse, ((1, 1), (1, 1), (0, 0)))
    second_y = np.abs(padded[:-2, 1:-1] - 2 * padded[1:-1, 1:-1] + padded[2:, 1:-1]).max()
    second_x = np.abs(padded[1:-1, :-2] - 2 * padded[1:-1, 1:-1] + padded[1:-1, 2:]).max()
    difference = np.abs(after - before).max()
    assert 0.01 * (second_y + second_x) < difference <= (second_y + second_x) / 8 + 1e-5


def test_upgrade_rejects_other_models():
    inputs = keras.Input((None, None, 3))
    with pytest.raises(ValueError, match="not a keras-fcn FCN"):
        keras_fcn.upgrade(keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs), name="plain"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 0}, r"num_classes.*positive int. Received num_classes=0"),
        ({"backbone": "vgg17"}, r"Expected a keras.Model or one of \(any case\) \[.*'MobileNet'.*\]. Received backbone='vgg17'"),
        ({"geometry": "pixels"}, r"geometry.*Received geometry='pixels'"),
        ({"weights": "no/such/file.weights.h5"}, r"Received weights='no/such/file.weights.h5'"),
        ({"backbone_weights": "imagenet21k"}, r"Received backbone_weights='imagenet21k'"),
        ({"input_shape": (None, None, 4)}, r"Received input_shape=\(None, None, 4\)"),
        ({"backbone_kwargs": [("alpha", 0.25)]}, r"`backbone_kwargs` must be None or a dict.*Received backbone_kwargs=\[\('alpha', 0.25\)\]"),
        ({"backbone_kwargs": "alpha=0.25"}, r"Received backbone_kwargs='alpha=0.25'"),
    ],
)
def test_bad_arguments_name_the_argument_and_value(kwargs, message):
    arguments = {"num_classes": 3, "backbone": "mobilenet", "backbone_weights": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        keras_fcn.FCN8s(**arguments)


@pytest.mark.floor
def test_weights_file_round_trip(tmp_path, rng):
    model = keras_fcn.FCN16s(3, **SMALL)
    _randomize(model, ["score_fr", "score_pool4"], rng, scale=0.05)
    path = str(tmp_path / "fcn16s.weights.h5")
    model.save_weights(path)
    restored = keras_fcn.FCN16s(3, weights=path, **SMALL)
    image = rng.uniform(0, 255, size=(1, 50, 70, 3)).astype("float32")
    np.testing.assert_array_equal(_run(restored, image), _run(model, image))


def test_vgg_backbone_weights_keep_the_classifier_weights(tmp_path, rng):
    classifier = keras.applications.VGG16(weights=None)
    path = str(tmp_path / "vgg16.weights.h5")
    classifier.save_weights(path)
    fc1 = keras.ops.convert_to_numpy(classifier.get_layer("fc1").kernel)
    for backbone, conv in [("vgg16", "block3_conv2"), ("vgg16_reference", "conv3_2")]:
        model = keras_fcn.FCN32s(2, backbone=backbone, backbone_weights=path)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(model.get_layer(conv).kernel),
            keras.ops.convert_to_numpy(classifier.get_layer("block3_conv2").kernel),
        )
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("fc6").kernel), fc1.reshape(7, 7, 512, 4096))
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(model.get_layer("fc7").bias),
            keras.ops.convert_to_numpy(classifier.get_layer("fc2").bias),
        )


def test_backbone_kwargs_reach_the_application():
    quarter = keras_fcn.FCN8s(2, **SMALL)
    full = keras_fcn.FCN8s(2, backbone="mobilenet", backbone_weights=None)
    assert quarter.get_layer("conv_pw_13_relu").output.shape[-1] == 256
    assert full.get_layer("conv_pw_13_relu").output.shape[-1] == 1024


@pytest.mark.floor
def test_keras_file_round_trip_serves_any_size(tmp_path, rng):
    model = keras_fcn.FCN8sAtOnce(4, **SMALL)
    _randomize(model, ["score_fr", "score_pool4", "score_pool3"], rng, scale=0.05)
    path = tmp_path / "fcn.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    for size in [(33, 47), (64, 96)]:
        image = rng.uniform(0, 255, size=(1, *size, 3)).astype("float32")
        np.testing.assert_array_equal(_run(restored, image), _run(model, image))


@pytest.mark.floor
def test_fit_on_random_images_and_masks(rng):
    model = keras_fcn.FCN8s(3, **SMALL)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = rng.uniform(0, 255, size=(4, 64, 96, 3)).astype("float32")
    masks = rng.integers(0, 3, size=(4, 64, 96)).astype("int32")
    before = model.get_layer("score_fr").get_weights()[0].copy()
    history = model.fit(images, masks, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.abs(history.history["loss"][0] - np.log(3)) < 0.05
    assert np.any(model.get_layer("score_fr").get_weights()[0] != before)


@pytest.mark.floor
def test_a_seed_gives_the_same_weights_whether_or_not_the_backbone_was_built_before():
    # The first build of a backbone reads its geometry from a dry build; that must draw no random numbers.
    # Constructor arguments no other test uses, so that the first build here is the first in the process.
    kwargs = {"backbone": "mobilenet", "backbone_weights": None, "backbone_kwargs": {"alpha": 0.75, "depth_multiplier": 1}}
    keras.utils.set_random_seed(11)
    first = keras_fcn.FCN32s(2, **kwargs).get_weights()
    keras.utils.set_random_seed(11)
    second = keras_fcn.FCN32s(2, **kwargs).get_weights()
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


# Keras reads KERAS_HOME once, when imported: a child process with its own, whose ImageNet file the test made.
IMAGENET_MOBILENET = """
import sys, warnings
import keras, numpy as np
import keras_fcn
warnings.simplefilter("error", UserWarning)
model = keras_fcn.FCN8s(3, backbone="mobilenet", backbone_kwargs={"alpha": 0.25}, backbone_weights="imagenet")
trunk = keras.saving.load_model(sys.argv[1], compile=False)
np.testing.assert_array_equal(model.get_layer("conv1").kernel.numpy(), trunk.get_layer("conv1").kernel.numpy())
"""


def test_imagenet_mobilenet_trunk_of_any_input_size_builds_without_keras_warning_of_224(tmp_path):
    # The ImageNet file in Keras's cache, as a download leaves it (MobileNet's has no checksum to check).
    trunk = keras.applications.MobileNet(alpha=0.25, include_top=False, weights=None, input_shape=(224, 224, 3))
    (tmp_path / "models").mkdir()
    trunk.save(tmp_path / "models" / "mobilenet_2_5_224_tf_no_top.h5")
    trunk.save(tmp_path / "trunk.keras")
    environment = {**CHILD_ENV, "KERAS_HOME": str(tmp_path)}
    done = run_python(["-c", IMAGENET_MOBILENET, str(tmp_path / "trunk.keras")], timeout=300, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
