"""Numpy references for the layers of an FCN: convolution, pooling, deconvolution, bilinear upsampling, crop, LRN.

Written from Caffe's layer definitions (caffe/src/caffe/layers, and the FCN authors' surgery.py for the bilinear
kernel), element by element where that stays fast enough, so that the tests check Keras layers against values
computed independently of them. Maps are one image, (height, width, channels), channels last as in Keras;
Caffe's blobs keep their own layout, named in each docstring. Results are float64.
"""

import numpy as np


def conv2d(x, weight, bias, stride=1, pad=0, group=1):
    """Caffe's Convolution (Keras's Conv2D with padding="valid" after zero padding, and `groups`).

    Args:
        x: the input map, (height, width, in_channels).
        weight: Caffe's blob, (out_channels, in_channels / group, kh, kw); a Keras Conv2D kernel
            (kh, kw, in, out) is `kernel.transpose(3, 2, 0, 1)`.
        bias: (out_channels,).
        stride: the step between windows, in input cells.
        pad: zeros added on every side first.
        group: Caffe's `group` (Keras's `groups`): the channels split into that many independent convolutions.

    Returns:
        (floor((height + 2 pad - kh) / stride) + 1, the same for the columns, out_channels); no rows or
        columns where the kernel does not fit.
    """
    x = np.pad(np.asarray(x, np.float64), ((pad, pad), (pad, pad), (0, 0)))
    out_channels, in_per_group, kh, kw = weight.shape
    rows, cols = (max((n - k) // stride + 1, 0) for n, k in zip(x.shape[:2], (kh, kw)))
    out = np.zeros((rows, cols, out_channels)) + bias
    per_group = out_channels // group
    for g in range(group):
        inputs = x[..., g * in_per_group : (g + 1) * in_per_group]
        kernel = weight[g * per_group : (g + 1) * per_group]
        for a in range(kh):
            for b in range(kw):
                window = inputs[a : a + stride * rows : stride, b : b + stride * cols : stride]
                out[..., g * per_group : (g + 1) * per_group] += window @ kernel[:, :, a, b].T
    return out


def pool2d(x, size, stride, reduce=np.nanmax, ceil_mode=False):
    """`reduce` over each size x size window of x (h, w, c), windows `stride` apart.

    Without `ceil_mode`, Keras's padding="valid": floor((n - size) / stride) + 1 windows along an axis of n cells.
    With it, Caffe's Pooling: ceil((n - size) / stride) + 1 windows, the last ones hanging over the edge and
    reducing only the cells they cover (`reduce` must ignore NaN: np.nanmax, np.nanmean). For a 2x2 stride-2
    max pooling that is also Keras's padding="same".
    """
    x = np.asarray(x, np.float64)
    height, width = x.shape[:2]
    rows, cols = (max(-(-(n - size) // stride) if ceil_mode else (n - size) // stride, -1) + 1 for n in (height, width))
    padded = np.full((max((rows - 1) * stride + size, height), max((cols - 1) * stride + size, width), *x.shape[2:]), np.nan)
    padded[:height, :width] = x
    windows = [padded[a : a + stride * rows : stride, b : b + stride * cols : stride] for a in range(size) for b in range(size)]
    return reduce(np.stack(windows), axis=0)


def deconv2d(x, weight, stride):
    """Caffe's Deconvolution without bias or padding (Keras's Conv2DTranspose with padding="valid", no bias).

    out[y s + i, x s + j, o] += x[y, x, c] W[c, o, i, j] for every input cell (y, x).

    Args:
        x: the input map, (height, width, in_channels).
        weight: Caffe's blob, (in_channels, out_channels, kh, kw); a Keras Conv2DTranspose kernel
            (kh, kw, out, in) is `kernel.transpose(3, 2, 0, 1)`.
        stride: the upsampling factor.

    Returns:
        ((height - 1) stride + kh, (width - 1) stride + kw, out_channels).
    """
    height, width, _ = x.shape
    _, out_channels, kh, kw = weight.shape
    out = np.zeros(((height - 1) * stride + kh, (width - 1) * stride + kw, out_channels))
    patches = np.einsum("yxc,coij->yxijo", np.asarray(x, np.float64), weight)
    for row in range(height):
        for col in range(width):
            out[row * stride : row * stride + kh, col * stride : col * stride + kw] += patches[row, col]
    return out


def bilinear_kernel(size):
    """The FCN authors' bilinear upsampling kernel of size x size taps (surgery.py's `upsample_filt`)."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 else factor - 0.5
    taps = 1 - np.abs(np.arange(size) - centre) / factor
    return np.outer(taps, taps)


def bilinear_blob(channels, size):
    """A Caffe Deconvolution blob (channels, channels, size, size) that upsamples each channel on its own, bilinearly."""
    return np.eye(channels)[:, :, None, None] * bilinear_kernel(size)


def bilinear_upsample(x, factor, size):
    """Caffe's Deconvolution of x (h, w, c) with the bilinear kernel of `size` taps, stride `factor`, per channel."""
    return deconv2d(x, bilinear_blob(x.shape[2], size), factor)


def crop(x, offset, size):
    """The window x[top:top + size[0], left:left + size[1]] of x (h, w, ...), zeros where it leaves x.

    Caffe's Crop (offsets >= 0, the window inside x) and keras_fcn's CropLike, which also takes negative offsets
    and windows past the edge. `offset` is one int for both axes or (top, left).
    """
    top, left = (offset, offset) if np.isscalar(offset) else offset
    out = np.zeros((*size, *x.shape[2:]), np.result_type(x, np.float32))
    rows = range(max(top, 0), min(top + size[0], x.shape[0]))
    cols = range(max(left, 0), min(left + size[1], x.shape[1]))
    if len(rows) and len(cols):
        out[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left] = x[rows.start : rows.stop, cols.start : cols.stop]
    return out


def local_response_normalization(x, size=5, alpha=1e-4, beta=0.75):
    """Caffe's LRN across channels: x / (1 + alpha / size * sum of x^2 over the `size` channels around)^beta."""
    channels = x.shape[-1]
    sums = np.stack([np.sum(x[..., max(c - size // 2, 0) : c + size // 2 + 1] ** 2, -1) for c in range(channels)], -1)
    return x / (1 + alpha / size * sums) ** beta
