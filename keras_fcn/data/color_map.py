"""Colour map files: which mask colour is which class, for colour-coded masks (`--color-map FILE`).

The format, one class per line in class order (class 0 first), as CamVid's
`label_colors.txt`:

    # colour-coded street masks: R G B, then the class name
    128 128 128 sky
    128 0 0     building
    128 64 128  road
    0 0 0       ignore

Each line holds a colour as three integers from 0 to 255 (separated by
spaces, tabs or commas) and, optionally, the class name (the rest of the
line). Lines are classes 0, 1, 2, ... in order, except lines named `ignore`
(any case): their colour marks pixels to ignore (the label 255) and takes no
class id. Blank lines and lines starting with `#` are skipped.
"""

import dataclasses
import re

from keras_fcn.constants import IGNORE_LABEL
from keras_fcn.errors import InvalidDataError

IGNORE_NAME = "ignore"
_LINE = re.compile(r"^\s*(\d+)[\s,]+(\d+)[\s,]+(\d+)(?:[\s,]+(.*?))?\s*$")


@dataclasses.dataclass(frozen=True)
class ColorMap:
    """A colour map file's content.

    Attributes:
        colors: dict `{(r, g, b): class id or 255}`, the `color_map` of
            `keras_fcn.data.from_folders`.
        class_names: tuple of str, one per class; `"0"`, `"1"`, ... where
            the file names none.
    """

    colors: dict
    class_names: tuple

    @property
    def num_classes(self):
        return len(self.class_names)


def read_color_map(path):
    """Reads a colour map file (see the module's documentation for the format).

    Args:
        path: str, the file.

    Returns:
        A `ColorMap`.

    Raises:
        ValueError: naming the file and line, for a line that is not a
            colour, a value outside 0..255, a colour given twice, or a file
            without classes.

    Example:

    >>> colors = keras_fcn.data.read_color_map("colors.txt")
    >>> ds = keras_fcn.data.from_folders("images", "masks",
    ...     num_classes=colors.num_classes, color_map=colors.colors)
    """
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidDataError(f"Cannot read the colour map file '{path}': {error}") from error
    colors, names = {}, []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        rgb = tuple(int(value) for value in match.groups()[:3]) if match else None
        if rgb is None or max(rgb) > 255:
            raise InvalidDataError(
                f"Colour map file '{path}', line {number}: expected a colour, three integers from 0 to 255 "
                f"(R G B), then optionally the class name. Received {line.strip()!r}"
            )
        if rgb in colors:
            raise InvalidDataError(f"Colour map file '{path}', line {number}: colour {rgb} is given twice.")
        name = match.group(4) or ""
        if name.lower() == IGNORE_NAME:
            colors[rgb] = IGNORE_LABEL
        else:
            colors[rgb] = len(names)
            names.append(name or str(len(names)))
    if not names:
        raise InvalidDataError(f"Colour map file '{path}' names no class: write one line 'R G B name' per class.")
    return ColorMap(colors, tuple(names))
