"""Where the heads put every score, checked against receptive fields measured without keras_fcn.geometry.

For each skip and the features `score_fr` scores, the receptive field of a cell in the middle of the map is
measured as the support of the input gradient of a linearised float64 copy of the trunk (every kernel a
positive constant, every activation and normalization the identity, products (gates) and concatenations
replaced by sums, max pooling by average pooling over the same windows, global context cut off with a
stop-gradient), so that nothing cancels or vanishes and every pixel
the cell can see gets a non-zero gradient. Its centre is the middle of the support, the image being tall
enough that the support does not reach its edges (with four channels in every layer, which the sums keep
consistent: channel counts do not change where a cell looks). Where the head puts that cell is measured by feeding the
model's own head layers a single unit score at that cell: the centre of mass of the response along the rows
(bilinear upsampling and crops are symmetric about the point a score lands on). The two must agree to within
half a pixel (the paper's reference code derives its crops from the same receptive-field centres).
"""

import pytest

import keras_fcn
from _receptive_field_probe import measure

SMALL_KWARGS = {"mobilenet": {"alpha": 0.25}, "mobilenetv2": {"alpha": 0.35}, "mobilenetv3small": {"alpha": 0.75}}
BUILT_IN = [
    "vgg16_reference", "alexnet_reference", "vgg16", "vgg19", "resnet50", "resnet50v2", "mobilenet", "mobilenetv2",
    "efficientnetv2b0", "convnexttiny", "inceptionv3",
]  # fmt: skip
MORE_APPLICATIONS = [
    "DenseNet121", "EfficientNetB0", "MobileNetV3Small", "MobileNetV3Large", "Xception", "ResNet101",
    "ResNet101V2", "EfficientNetV2B1", "InceptionResNetV2", "EfficientNetV2S", "EfficientNetB2",
]  # fmt: skip
SLOW = {"convnexttiny", "InceptionResNetV2", "EfficientNetV2S", "ResNet101", "ResNet101V2"}


@pytest.mark.parametrize(
    "backbone",
    [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in BUILT_IN + MORE_APPLICATIONS],
)
def test_every_score_lands_on_its_receptive_field_centre(backbone):
    model = keras_fcn.FCN8s(2, backbone=backbone, backbone_weights=None, backbone_kwargs=SMALL_KWARGS.get(backbone.lower()))
    for stride, field_centre, placed in measure(model):
        assert abs(placed - field_centre) <= 0.5, (stride, field_centre, placed)
