"""A plain PyTorch FCN-8s VGG16 in the authors' Caffe layout, for side-by-side benchmarks.

The same net as `keras_fcn.FCN8s(backbone="vgg16_reference")`, layer for
layer and with the same layer names: the input (RGB in `[0, 255]`, NCHW) is
flipped to BGR minus the reference mean, conv1_1 pads by 100, max pooling
rounds up (`ceil_mode`), fc6 is a 7x7 VALID convolution to 4096 channels,
fc7 a 1x1, each followed by ReLU and dropout 0.5; score_fr, upscore2 (4/2),
score_pool4 cropped at 5, upscore_pool4 (4/2), score_pool3 cropped at 9,
upscore8 (16/8) and a final crop at 31. The upsamplings have no bias and
are frozen, as in keras-fcn. `load_keras_weights` copies a keras-fcn
model's weights into it, so that both compute the same function.

Used by `inference.py` and `train.py` only when torch is installed.
"""

import numpy as np
import torch
from torch import nn

from keras_fcn.backbones import FCN_REFERENCE
from keras_fcn.reference import CONV1_1_PADDING, VGG16_BLOCKS

FC_FILTERS = 4096
DROPOUT_RATE = 0.5
# (name, skip channels, crop offset) of the skips, coarse to fine, and the final crop.
SKIPS = (("pool4", 512, 5), ("pool3", 256, 9))
SKIP_UPSAMPLINGS = ("upscore2", "upscore_pool4")
FINAL_OFFSET = 31


def _crop(x, like, offset):
    return x[:, :, offset : offset + like.shape[2], offset : offset + like.shape[3]]


class FCN8sVGG16(nn.Module):
    """FCN-8s on the reference VGG16: `(batch, 3, H, W)` RGB in `[0, 255]` to `(batch, num_classes, H, W)` logits."""

    def __init__(self, num_classes=21):
        super().__init__()
        mean = torch.tensor(FCN_REFERENCE[0], dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("mean", mean)
        self.blocks = nn.ModuleList()
        channels = 3
        for block, convolutions, filters in VGG16_BLOCKS:
            layers = nn.ModuleDict()
            for index in range(1, convolutions + 1):
                padding = CONV1_1_PADDING if (block, index) == (1, 1) else 1
                layers[f"conv{block}_{index}"] = nn.Conv2d(channels, filters, 3, padding=padding)
                channels = filters
            self.blocks.append(layers)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.fc6 = nn.Conv2d(channels, FC_FILTERS, 7)
        self.fc7 = nn.Conv2d(FC_FILTERS, FC_FILTERS, 1)
        self.dropout = nn.Dropout(DROPOUT_RATE)
        self.score_fr = nn.Conv2d(FC_FILTERS, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, bias=False)
        for upsampling in (self.upscore2, self.upscore_pool4, self.upscore8):
            upsampling.weight.requires_grad_(False)

    def named_layers(self):
        """`(name, module)` of every layer with weights, named as in keras-fcn."""
        for layers in self.blocks:
            yield from layers.items()
        for name in ("fc6", "fc7", "score_fr", "score_pool4", "score_pool3", *SKIP_UPSAMPLINGS, "upscore8"):
            yield name, getattr(self, name)

    def forward(self, images):
        x = images.flip(1) - self.mean
        pools = {}
        for block, layers in enumerate(self.blocks, 1):
            for convolution in layers.values():
                x = torch.relu(convolution(x))
            x = self.pool(x)
            pools[f"pool{block}"] = x
        x = self.dropout(torch.relu(self.fc6(x)))
        x = self.dropout(torch.relu(self.fc7(x)))
        scores = self.score_fr(x)
        for (name, _, offset), upsampling in zip(SKIPS, SKIP_UPSAMPLINGS):
            upsampled = getattr(self, upsampling)(scores)
            skip = getattr(self, f"score_{name}")(pools[name])
            scores = upsampled + _crop(skip, upsampled, offset)
        return _crop(self.upscore8(scores), images, FINAL_OFFSET)


def load_keras_weights(net, model):
    """Copies the weights of a keras-fcn FCN-8s `vgg16_reference` model into `net`.

    Keras kernels are `(kh, kw, in, out)` for convolutions and `(kh, kw, out, in)`
    for transposed convolutions; PyTorch's are `(out, in, kh, kw)` and
    `(in, out, kh, kw)`: the same permutation for both.
    """
    with torch.no_grad():
        for name, module in net.named_layers():
            kernel, *bias = model.get_layer(name).get_weights()
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
            if bias:
                module.bias.copy_(torch.from_numpy(bias[0]))
    return net
