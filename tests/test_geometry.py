"""keras_fcn.geometry against receptive fields worked out by hand, and the paper's crops derived from it."""

from fractions import Fraction

import keras
import numpy as np
import pytest

import keras_fcn
from keras_fcn import geometry
from keras_fcn.geometry import GLOBAL, GeometryError, Length
from keras_fcn.layers import PadToMultiple

L = keras.layers


def _rows(field):
    """(stride, start, size, centre) along the rows."""
    return field.rows.stride, field.rows.start, field.rows.size, field.rows.centre


def _toy():
    x = keras.Input((None, None, 1))
    a = L.Conv2D(1, 3, name="a")(x)
    b = L.MaxPooling2D(2, name="b")(a)
    c = L.ZeroPadding2D(((1, 2), (3, 0)), name="c")(b)
    d = L.Conv2D(1, 3, dilation_rate=2, name="d")(c)
    e = L.DepthwiseConv2D(3, strides=2, name="e")(d)
    f = L.Cropping2D(((1, 0), (0, 2)), name="f")(e)
    g = L.SeparableConv2D(1, 3, padding="same", name="g")(f)
    return keras.Model(x, g)


# Worked out by hand, rows, as (stride, first pixel of cell 0's receptive field, its size, its centre):
# a: 3 taps: pixels 0..2. b: 2x2 pooling at stride 2 over a's cells 0, 1: pixels 0..3. c: one zero row above,
# at stride 2: cell 0 is that row, starting at pixel -2. d: 3 taps 2 cells apart span 5 cells of c: 4 + 2 * 4 =
# 12 pixels from -2. e: 3 taps at stride 2 of d: 12 + 2 * 2 = 16 pixels, stride 4. f: one row cropped: starts
# 4 pixels later. g: "same" 3 taps at stride 1 pad one cell before: starts 4 pixels earlier, 16 + 2 * 4 = 24.
TOY_ROWS = {
    "a": (1, 0, 3, 1),
    "b": (2, 0, 4, Fraction(3, 2)),
    "c": (2, -2, 4, Fraction(-1, 2)),
    "d": (2, -2, 12, Fraction(7, 2)),
    "e": (4, -2, 16, Fraction(11, 2)),
    "f": (4, 2, 16, Fraction(19, 2)),
    "g": (4, -2, 24, Fraction(19, 2)),
}
# On a 40-row input: a 38, b 19, c 22, d 18, e 8, f 7, g 7 rows. Columns: c pads 3 before, f crops none before.
TOY_LENGTHS = {"a": 38, "b": 19, "c": 22, "d": 18, "e": 8, "f": 7, "g": 7}


@pytest.mark.floor
def test_toy_net_rows_are_the_hand_computed_ones():
    fields = geometry.receptive_fields(_toy(), (40, 40))
    for name, expected in TOY_ROWS.items():
        assert _rows(fields[name]) == expected, name
        assert fields[name].rows.length == Length(0, TOY_LENGTHS[name]), name
    # Columns: c pads 3 before (start -6), d spans 12 from there, e 16, f crops nothing before, g pads 1 cell.
    assert fields["c"].columns.start == -6 and fields["g"].columns.start == -10 and fields["g"].columns.size == 24
    assert fields["g"].centre == (Fraction(19, 2), Fraction(3, 2))


def _same_conv(kernel, stride):
    x = keras.Input((None, None, 1))
    return keras.Model(x, L.Conv2D(1, kernel, strides=stride, padding="same", use_bias=False, name="conv")(x))


@pytest.mark.floor
@pytest.mark.parametrize(
    "kernel, stride, length, before",
    [(3, 2, 8, 0), (3, 2, 7, 1), (4, 2, 8, 1), (4, 2, 9, 1), (5, 3, 10, 2), (5, 3, 9, 1), (1, 2, 9, 0), (2, 2, 9, 0)],
)
def test_same_padding_is_split_as_tensorflow_splits_it(kernel, stride, length, before):
    """The zeros before cell 0, by hand (floor(total / 2)), and as TensorFlow runs the convolution.

    A kernel whose only non-zero tap is the first reads input row `stride * j - before` for output row j;
    on rows numbered 1, 2, ... output row 1 is `stride + 1 - before`.
    """
    model = _same_conv(kernel, stride)
    field = geometry.receptive_fields(model, (length, length))["conv"]
    assert field.rows.start == -before and field.rows.length == Length(0, -(-length // stride))
    weights = np.zeros((kernel, kernel, 1, 1), "float32")
    weights[0, kernel // 2] = 1.0
    model.get_layer("conv").set_weights([weights])
    image = np.tile(np.arange(1, length + 1, dtype="float32")[:, None], (1, length))[None, ..., None]
    out = keras.ops.convert_to_numpy(model(image))[0, :, 0, 0]
    assert out[1] == stride + 1 - before


def test_same_padding_that_depends_on_the_input_size_is_refused_until_padded():
    model = _same_conv(3, 2)
    with pytest.raises(GeometryError, match=r"Layer 'conv' \(Conv2D\) pads by \[0, 1\].*PadToMultiple"):
        geometry.receptive_fields(model)
    assert geometry.receptive_fields(model, (Length(2, 0), Length(2, 0)))["conv"].rows.start == 0
    x = keras.Input((None, None, 1))
    padded = keras.Model(x, L.Conv2D(1, 3, strides=2, padding="same", name="conv")(PadToMultiple(4)(x)))
    assert geometry.receptive_fields(padded)["conv"].rows.length == Length(2, 0)


def test_merges_take_the_union_and_refuse_other_strides():
    x = keras.Input((None, None, 1))
    wide = L.Conv2D(1, 5, padding="same", name="wide")(x)
    narrow = L.Conv2D(1, 1, name="narrow")(x)
    total = L.Add(name="total")([wide, narrow])
    # NASNet's factorized reduction: one path sampled at even pixels, the other shifted by one.
    even = L.AveragePooling2D(1, strides=2, name="even")(x)
    odd = L.AveragePooling2D(1, strides=2, name="odd")(L.Cropping2D(((1, 0), (1, 0)))(L.ZeroPadding2D(((0, 1), (0, 1)))(x)))
    both = L.Concatenate(name="both")([even, odd])
    fields = geometry.receptive_fields(keras.Model(x, [total, both]), (Length(2, 0), Length(2, 0)))
    assert _rows(fields["total"]) == (1, -2, 5, 0)
    assert _rows(fields["both"]) == (2, 0, 2, Fraction(1, 2))
    bad = L.Add(name="bad")([L.Conv2D(1, 1, strides=2, name="half")(x), L.MaxPooling2D(4, name="quarter")(x)])
    with pytest.raises(GeometryError, match=r"Layer 'bad' \(Add\) merges maps at different strides \['2', '4'\]"):
        geometry.receptive_fields(keras.Model(x, bad), (Length(4, 0), Length(4, 0)))


def test_global_context_keeps_the_local_geometry():
    """Squeeze-and-excitation: a global gate multiplies the map; the map keeps its own receptive field."""
    x = keras.Input((None, None, 1))
    local = L.Conv2D(4, 3, padding="same", name="local")(x)
    gate = L.Conv2D(4, 1, activation="sigmoid", name="gate")(L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(local))
    gated = L.Multiply(name="gated")([local, gate])
    fields = geometry.receptive_fields(keras.Model(x, gated))
    assert fields["squeeze"] is GLOBAL and fields["gate"] is GLOBAL
    assert _rows(fields["gated"]) == _rows(fields["local"]) == (1, -1, 3, 0)


def test_unknown_layers_are_refused_by_name_and_class():
    x = keras.Input((None, None, 1))
    model = keras.Model(x, L.Conv2D(1, 1, name="after")(L.UpSampling2D(name="upsample")(x)))
    with pytest.raises(GeometryError, match=r"Layer 'upsample' \(UpSampling2D\) may change the receptive-field geometry"):
        geometry.receptive_fields(model)


def test_nested_sequential_models_are_walked_layer_by_layer():
    x = keras.Input((None, None, 1))
    stem = keras.Sequential([L.Conv2D(1, 4, strides=4), L.LayerNormalization()], name="stem")
    model = keras.Model(x, L.Conv2D(1, 2, strides=2, name="down")(stem(x)))
    fields = geometry.receptive_fields(model, (Length(8, 0), Length(8, 0)))
    assert _rows(fields["stem"]) == (4, 0, 4, Fraction(3, 2))
    assert _rows(fields["down"]) == (8, 0, 8, Fraction(7, 2))


def _stages():
    """Five stride-2 stages of one residual block each; stage outputs are named out_<stride>."""
    x = keras.Input((None, None, 3))
    h = x
    for stride in (2, 4, 8, 16, 32):
        h = L.Conv2D(4, 3, strides=2, padding="same", name=f"down_{stride}")(h)
        branch = L.Conv2D(4, 3, padding="same", name=f"branch_{stride}")(h)
        h = L.Add(name=f"out_{stride}")([h, branch])
        h = L.ZeroPadding2D(((0, 1), (0, 1)), name=f"pad_{stride}")(h)
    return keras.Model(x, h)


def test_feature_layers_are_the_last_stage_outputs_not_branches_or_paddings():
    assert geometry.feature_layers(_stages(), (Length(32, 0), Length(32, 0))) == {8: "out_8", 16: "out_16", 32: "out_32"}


def test_a_net_that_never_reaches_stride_32_is_refused_by_name():
    x = keras.Input((None, None, 3))
    model = keras.Model(x, L.MaxPooling2D(16)(x), name="shallow")
    message = r"Model 'shallow' never reaches stride 32 \(its deepest feature map is at stride 16\)"
    with pytest.raises(GeometryError, match=message):
        geometry.feature_layers(model)


# The reference nets' cell centres (Caffe's coordinate maps, by hand): VGG16's conv1_1 pads 100 and each 2x2
# pooling moves cell 0 half a cell of its input, so pool3, pool4 and pool5 cells are centred on 8i - 95.5,
# 16i - 91.5 and 32i - 83.5; fc6's 7x7 VALID window moves that 3 cells on: 32i + 12.5. AlexNet: conv1 (11,
# stride 4, padding 100) centres cell j on 4j - 95, the 3x3 VALID poolings move cell 0 by one input cell:
# pool1 8i - 91, pool2 16i - 83, pool5 32i - 67; fc6's 6x6 window by 2.5 cells: 32i + 13.
REFERENCE_CENTRES = {
    "vgg16_reference": (Fraction(-191, 2), Fraction(-183, 2), Fraction(25, 2)),
    "alexnet_reference": (-91, -83, 13),
}
# The reference code's crops (voc-fcn32s/16s/8s, voc-fcn-alexnet) and, for the FCN-AlexNet 16s and 8s the
# authors did not release, those its coordinate maps give: skip crops (pool4, pool3) and the final crop per head.
PAPER_CROPS = {
    "vgg16_reference": {32: ((), 19), 16: ((5,), 27), 8: ((5, 9), 31)},
    "alexnet_reference": {32: ((), 18), 16: ((5,), 18), 8: ((5, 10), 18)},
}


@pytest.mark.parametrize("backbone", sorted(PAPER_CROPS))
def test_reference_crops_derived_from_the_geometry_are_the_papers(backbone):
    builders = {32: keras_fcn.FCN32s, 16: keras_fcn.FCN16s, 8: keras_fcn.FCN8s}
    for stride, (skip_crops, final_crop) in PAPER_CROPS[backbone].items():
        with keras.StatelessScope():
            model = builders[stride](21, backbone=backbone, backbone_weights=None)
        crops = [model.get_layer(name).offset for name in ("score_pool4c", "score_pool3c")[: len(skip_crops)]]
        assert crops == [(crop, crop) for crop in skip_crops]
        assert model.get_layer("score").offset == (final_crop, final_crop)
    tensors = keras_fcn.architecture.recorded_tensors(model)
    fields = geometry.output_fields(keras.Model(model.input, [tensors[role] for role in ("pool3", "pool4", "features")]))
    assert [field.rows.centre for field in fields] == list(REFERENCE_CENTRES[backbone])
    assert [field.rows.stride for field in fields] == [8, 16, 32]


def _fields(centres):
    """ReceptiveFields whose cell 0 is centred on `centres[stride]` (a one-pixel field), rows and columns alike."""
    def field(stride):
        axis = geometry.AxisGeometry(Fraction(stride), Fraction(centres[stride]), Fraction(1), None)
        return geometry.ReceptiveField(axis, axis)

    return {stride: field(stride) for stride in (8, 16, 32)}


def test_heads_designed_by_hand_for_cells_between_pixels():
    """VGG-like cells centred on 8i + 3.5, 16i + 7.5, 32i + 15.5, worked out by hand.

    A kernel-4 2x step puts stride-32 cell i on index 2i + 1.5, at pixel 16(2i + 1.5) + 15.5 - 24 = 32i + 15.5
    when index u sits on 16u - 8.5: stride-16 cell u - 1 (crop -1); again kernel 4 puts index u on 8u - 20.5,
    stride-8 cell u - 3 (crop -3). Kernel-3 steps to strides 4 and 2 (origins -24.5, -26.5) and a last step of
    kernel 4 (3 would leave -27.5, between pixels) put index u on pixel u - 28: the final crop is 28.
    """
    design = keras_fcn.heads.design_head(_fields({8: Fraction(7, 2), 16: Fraction(15, 2), 32: Fraction(31, 2)}))
    assert design.skip_kernels == ((4, 4), (4, 4)) and design.skip_offsets == ((-1, -1), (-3, -3))
    assert design.final(8) == (((2, (3, 3)), (2, (3, 3)), (2, (4, 4))), (28, 28))
    assert design.final(32)[0][:2] == ((2, (4, 4)), (2, (4, 4))) and design.final_offsets == ((28, 28),) * 3
    single = keras_fcn.heads.design_head(_fields({8: Fraction(7, 2), 16: Fraction(15, 2), 32: Fraction(31, 2)}), stepwise=False)
    # One 32x step: kernel 64 puts cell i on index 32i + 31.5, pixel 32i + 15.5: crop 16.
    assert single.final(32) == (((32, (64, 64)),), (16, 16))


def test_skips_a_fraction_of_a_cell_off_cannot_be_lined_up():
    with pytest.raises(GeometryError, match="the stride-16 cells sit a fraction of a cell off the stride-32 ones"):
        keras_fcn.heads.design_head(_fields({8: 0, 16: 4, 32: 0}))
