"""Colour label maps and overlays with a legend, for looking at predictions."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LEGEND_SWATCH = 14
LEGEND_PADDING = 6


def class_shares(label_map, num_classes):
    """The fraction of the pixels of a label map that each class has.

    Args:
        label_map: integer array `(H, W)` of class ids.
        num_classes: int.

    Returns:
        float64 array `(num_classes,)` summing to 1.
    """
    label_map = np.asarray(label_map)
    return np.bincount(label_map.ravel(), minlength=num_classes)[:num_classes] / label_map.size


def label_image(label_map, palette):
    """A class-index PNG image: palette mode, pixel value = class id, shown in `palette`'s colours.

    Args:
        label_map: uint8 array `(H, W)`.
        palette: sequence of `(r, g, b)`, one per class.

    Returns:
        A `PIL.Image.Image` in mode `"P"`.
    """
    image = Image.fromarray(np.asarray(label_map, dtype=np.uint8), mode="P")
    image.putpalette([channel for colour in palette for channel in colour])
    return image


def overlay(image, label_map, palette, class_names, *, alpha=0.5):
    """Blends the class colours over an image and adds a legend of the classes it shows.

    The legend, to the right of the image, lists each class present in
    `label_map` (largest share first) with its colour and share of the
    pixels.

    Args:
        image: uint8 array `(H, W, 3)`, RGB.
        label_map: integer array `(H, W)` of class ids.
        palette: sequence of `(r, g, b)`, one per class.
        class_names: sequence of str, one per class.
        alpha: float in `[0, 1]`, the opacity of the colours.

    Returns:
        A `PIL.Image.Image` in mode `"RGB"`, `H` (or the legend's height if
        taller) by `W` plus the legend's width.

    Example:

    >>> keras_fcn.visualize.overlay(image, labels, palette, names).save("overlay.png")
    """
    image = np.asarray(image, dtype=np.float64)
    colours = np.asarray(palette, dtype=np.float64)[np.asarray(label_map)]
    blended = Image.fromarray(np.round((1 - alpha) * image + alpha * colours).astype(np.uint8))
    shares = class_shares(label_map, len(palette))
    present = [c for c in np.argsort(-shares, kind="stable") if shares[c] > 0]
    font = ImageFont.load_default()
    lines = [f"{class_names[c]} {100 * shares[c]:.1f}%" for c in present]
    measure = ImageDraw.Draw(blended)
    text_width = max(int(np.ceil(measure.textlength(line, font=font))) for line in lines)
    row = LEGEND_SWATCH + LEGEND_PADDING
    width = blended.width + 3 * LEGEND_PADDING + LEGEND_SWATCH + text_width
    height = max(blended.height, LEGEND_PADDING + row * len(lines))
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(blended, (0, 0))
    draw = ImageDraw.Draw(canvas)
    left = blended.width + LEGEND_PADDING
    for index, (c, line) in enumerate(zip(present, lines)):
        top = LEGEND_PADDING + index * row
        draw.rectangle([left, top, left + LEGEND_SWATCH - 1, top + LEGEND_SWATCH - 1], fill=tuple(palette[c]), outline=(0, 0, 0))
        draw.text((left + LEGEND_SWATCH + LEGEND_PADDING, top), line, fill=(0, 0, 0), font=font)
    return canvas
