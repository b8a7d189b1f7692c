"""Command-line argument types: the text of an argument to its value, or a one-line error saying what is allowed.

Each function is an `argparse` `type`: it raises
`argparse.ArgumentTypeError`, which `argparse` reports as
`argument --flag: <message>` and exit status 2. Shared by `keras-fcn`, the
training options (`keras_fcn.training.options`) and `zoo/publish.py`.
`Parser` is the command line's parser, which reports them on one line.
"""

import argparse
import json
import math
import os
import re
import sys

from keras_fcn.constants import SCALE_FACTOR_LIMITS, is_scale_factor

_LIMITS = tuple(f"{limit:g}" for limit in SCALE_FACTOR_LIMITS)
# A value that starts as a negative number does (-1, -0.5,2, -.5, -inf): argparse reads "-1,2" as a flag otherwise.
_NEGATIVE_VALUE = re.compile(r"-(\.?\d|inf|nan)", re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line, `PROG: error: MESSAGE`, as the command's other errors.

    A flag's value that starts as a negative number (`--scale-range -1,2`) is read as its value, to be refused
    by the flag's own check, not as an unknown flag. Arguments no parser knows are reported by the subcommand
    named in the attribute `subcommand_dest` of the parsed arguments (`keras-fcn train: error: ...`).

    Args:
        subcommand_dest: the `dest` of the parser's subparsers, or None.
        **kwargs: as `argparse.ArgumentParser`'s.
    """

    def __init__(self, *args, subcommand_dest=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.subcommand_dest = subcommand_dest

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            subcommand = getattr(parsed, self.subcommand_dest, None) if self.subcommand_dest else None
            prog = f"{self.prog} {subcommand}" if subcommand else self.prog
            self.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(unknown)}\n")
        return parsed

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        joined = []
        for index, arg in enumerate(args):
            if "--" in args[:index]:
                joined.append(arg)
            elif joined and _NEGATIVE_VALUE.match(arg) and _takes_joined_value(joined[-1]):
                joined[-1] = f"{joined[-1]}={arg}"
            else:
                joined.append(arg)
        return super().parse_known_args(joined, namespace)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _takes_joined_value(arg):
    """Whether `arg` is a long flag without a value: `--name`, not `--name=value` or `--`."""
    return arg.startswith("--") and arg != "--" and "=" not in arg


def size(text):
    """`HxW` or `H,W` -> `(H, W)`, positive ints."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"must be HEIGHTxWIDTH in pixels, e.g. 360x480, not {text!r}")
    return int(parts[0]), int(parts[1])


def positive_int(text):
    """A positive int."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return int(text)


def non_negative_float(text):
    """A finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text!r}")
    return value


def scale_range(text):
    """`MIN,MAX` -> `(MIN, MAX)`, floats with `MIN <= MAX`, both within `SCALE_FACTOR_LIMITS`."""
    parts = text.split(",")
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        low = high = math.nan
    if not (is_scale_factor(low) and is_scale_factor(high) and low <= high):
        raise argparse.ArgumentTypeError(
            f"must be MIN,MAX scaling factors with {_LIMITS[0]} <= MIN <= MAX <= {_LIMITS[1]}, e.g. 0.5,2, not {text!r}"
        )
    return low, high


def scales(text):
    """Scaling factors separated by commas, each within `SCALE_FACTOR_LIMITS`, e.g. `1,1.25,1.5` -> a tuple of floats."""
    try:
        values = tuple(float(item) for item in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(is_scale_factor(value) for value in values):
        raise argparse.ArgumentTypeError(
            f"must be scaling factors from {_LIMITS[0]} to {_LIMITS[1]} separated by commas, e.g. 1,1.25,1.5, "
            f"not {text!r}"
        )
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"gives a scaling factor twice: give each once, not {text!r}")
    return values


def fraction(text):
    """A float in `[0, 1)`."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to less than 1, e.g. 0.2, not {text!r}")
    return value


def class_weights(text):
    """`median_frequency` (or `median-frequency`), or numbers >= 0 separated by commas -> a list of floats."""
    if text.replace("-", "_") == "median_frequency":
        return "median_frequency"
    try:
        return [non_negative_float(item.strip()) for item in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be median_frequency or one number >= 0 per class separated by commas, e.g. 1,2.5,0.7, not {text!r}"
        ) from None


def _first_repeated(items):
    """The first item that an earlier one equals, or None."""
    seen = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def names(text):
    """Names separated by commas -> a list of str, none empty, no two the same."""
    items = [name.strip() for name in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"must be class names separated by commas, not {text!r}")
    repeated = _first_repeated(items)
    if repeated is not None:
        raise argparse.ArgumentTypeError(f"must name each class differently; {repeated!r} names two in {text!r}")
    return items


def keyword(text):
    """`KEY=VALUE` -> `(KEY, VALUE)`, the value read as JSON when it is JSON (0.25, true) and as text otherwise."""
    key, separator, value = text.partition("=")
    if not separator or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, e.g. alpha=0.25, not {text!r}")
    if re.search(r",\s*[A-Za-z_]\w*=", value):
        raise argparse.ArgumentTypeError(
            f"must be KEY=VALUE arguments separated by spaces, e.g. alpha=0.25 dropout=0.1, not {text!r}"
        )
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


class KeywordArguments(argparse.Action):
    """Collects `KEY=VALUE` arguments (parsed by `keyword`) into a dict, each key once; use with `nargs="+"`.

    A flag given again adds its arguments to those given before.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        given = list((getattr(namespace, self.dest, None) or {}).items()) + list(values)
        repeated = _first_repeated([key for key, _ in given])
        if repeated is not None:
            raise argparse.ArgumentError(self, f"gives {repeated} twice; give each keyword once")
        setattr(namespace, self.dest, dict(given))


def backbone_weights(text):
    """`imagenet`, `none` (-> None) or an existing file."""
    if text == "none":
        return None
    if text != "imagenet" and not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"must be 'imagenet', 'none' or an existing weights file, not {text!r}")
    return text


def label_map(text):
    """`RAW:CLASS,RAW:CLASS` -> `{RAW: CLASS}`, non-negative ints."""
    pairs = [pair.split(":") for pair in text.split(",")]
    if not all(len(pair) == 2 and all(part.strip().isdigit() for part in pair) for pair in pairs):
        raise argparse.ArgumentTypeError(f"must be RAW:CLASS pairs separated by commas, e.g. 255:1, not {text!r}")
    return {int(raw): int(class_id) for raw, class_id in pairs}


def verbose(text):
    """`auto`, or 0, 1, 2 (-> int), as `model.fit` takes them."""
    if text not in ("auto", "0", "1", "2"):
        raise argparse.ArgumentTypeError(f"must be one of auto, 0, 1, 2, not {text!r}")
    return text if text == "auto" else int(text)
