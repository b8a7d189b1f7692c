"""The training options, defined once for `keras_fcn.train` and `keras-fcn train`.

Each field of `TrainingOptions` is at once a keyword argument of
`keras_fcn.train` (its name, default and documentation, which make
`train`'s signature and the options part of its docstring), the check of
the value a caller passes, and a flag of `keras-fcn train` (`--<name>` with
dashes, its help, and how it reads the text: `type`, `choices`, `nargs`,
`action`, ... as for `argparse`'s `add_argument`).

Adding an option is one change here, one field:

    class_weights: object = option(
        None,                             # the default
        "sequence of floats, the loss weight of each class; None weighs every class 1.",   # the docstring's
        check=_class_weights,             # refuses a bad value from Python (None, the default, is not checked)
        help="loss weights of the classes, comma-separated",  # --help (default: the docstring's, no backticks)
        type=arguments.floats,            # how the command line reads the text (and any other argparse argument)
    )

then `options.class_weights` is used where it takes effect (the trainer,
`keras_fcn.training.trainer`): `keras_fcn.train(..., class_weights=...)` and
`keras-fcn train --class-weights ...` take it, `help(keras_fcn.train)` and
`keras-fcn train --help` document it. `flag="--other-name"` renames the
flag; `cli=False` keeps an option out of the command line (values with no
text form).
"""

import dataclasses
import inspect
import re
import textwrap

from keras_fcn import arguments
from keras_fcn.backbones import BACKBONES, get_backbone, validate_backbone_kwargs
from keras_fcn.data.transforms import validate_jitter, validate_scale_range, validate_size
from keras_fcn.errors import InvalidArgumentError
from keras_fcn.losses import LOSSES, validate_class_weights
from keras_fcn.metrics import validate_class_names
from keras_fcn.training.distribution import STRATEGIES
from keras_fcn.training.policy import MIXED_PRECISION
from keras_fcn.training.presets import PRESETS
from keras_fcn.training.run_folder import SEED_RANGE
from keras_fcn.training.stages import MODELS

VERBOSITIES = ("auto", 0, 1, 2)
# The training augmentation's options and their values when not given (`scale_range` as `keras_fcn.data.augment`'s).
AUGMENTATION_DEFAULTS = {"scale_range": (0.5, 2.0), "jitter": 0.0}
AUGMENTATION_CHECKS = {"scale_range": validate_scale_range, "jitter": validate_jitter}


def option(default, doc, *, check=None, help=None, flag=None, cli=True, exclusive=None, **argparse_kwargs):
    """A field of `TrainingOptions`.

    Args:
        default: the value when the option is not given.
        doc: str, the documentation of the keyword argument.
        check: None or `check(name, value)`, raising
            `keras_fcn.errors.InvalidArgumentError` for a value not allowed;
            when `default` is None, None is allowed and not checked.
        help: str, the flag's `--help` text; defaults to `doc` without
            backticks.
        flag: str, the flag; defaults to `--` and the name with dashes.
        cli: bool, whether `keras-fcn train` has the flag.
        exclusive: None or the name of a group of options of which the
            command line takes at most one (an `argparse` mutually
            exclusive group).
        **argparse_kwargs: passed to `argparse`'s `add_argument`.
    """
    if check is not None and default is None:
        check = _unless_none(check)
    metadata = {
        "doc": doc,
        "check": check,
        "help": help,
        "flag": flag,
        "cli": cli,
        "exclusive": exclusive,
        "argparse": argparse_kwargs,
    }
    return dataclasses.field(default=default, metadata=metadata)


def _unless_none(check):
    def unless_none(name, value):
        if value is not None:
            check(name, value)

    return unless_none


def _one_of(choices):
    def one_of(name, value):
        if not any(value == choice and type(value) is type(choice) for choice in choices):
            raise InvalidArgumentError(f"`{name}` must be one of {list(choices)}. Received {name}={value!r}")

    return one_of


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"`{name}` must be a positive int. Received {name}={value!r}")


def _seed(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_RANGE:
        raise InvalidArgumentError(f"`{name}` must be an int in [0, 2**32). Received {name}={value!r}")


def _non_negative_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise InvalidArgumentError(f"`{name}` must be a number >= 0. Received {name}={value!r}")


def _boolean(name, value):
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"`{name}` must be True or False. Received {name}={value!r}")


def _class_names(name, value):
    validate_class_names(value, name)


def _augmentation(name, value):
    AUGMENTATION_CHECKS[name](value, name)


def _class_weights(name, value):
    if value != "median_frequency":
        validate_class_weights(value, name, allowed='"median_frequency" or a sequence of')


def _backbone_kwargs(name, value):
    validate_backbone_kwargs(value, name)


def _backbone(name, value):
    if not isinstance(value, str):
        raise InvalidArgumentError(f"`{name}` must be a backbone name (str). Received {name}={value!r}")
    get_backbone(value)


def _size(name, value):
    validate_size(value, name)


def _choice(choices):
    """The `option` arguments of a value among `choices`: its check, and the flag's choices."""
    return {"check": _one_of(choices), "choices": choices}


# The `option` arguments of kinds of values: the check of a value from Python, and how the flag reads the text.
POSITIVE_INT = {"check": _positive_int, "type": arguments.positive_int}
NON_NEGATIVE_NUMBER = {"check": _non_negative_number, "type": arguments.non_negative_float}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingOptions:
    """The options of a training run; see the module's documentation. Each value is checked when the options are made."""

    model: str = option(
        "fcn8s",
        '`"fcn32s"`, `"fcn16s"`, `"fcn8s"` or `"fcn8s_atonce"`, the model to train.',
        help="the model to train",
        **_choice(sorted(MODELS)),
    )
    backbone: str = option(
        "vgg16_reference",
        "str, a key of `keras_fcn.BACKBONES` in any case (`\"ResNet50\"`, `\"resnet50\"`), passed to the builder "
        "(see `keras_fcn.FCN8s`).",
        check=_backbone,
        help="the backbone, in any case",
        type=str.lower,  # before argparse compares with the choices
        choices=sorted(BACKBONES),
    )
    backbone_weights: object = option(
        "imagenet",
        '`"imagenet"`, None (random initialization) or the path of a Keras Applications weights '
        "file, used when `weights` is None.",
        help="imagenet, none, or a weights file",
        type=arguments.backbone_weights,
    )
    backbone_kwargs: object = option(
        None,
        'dict, extra keyword arguments of the backbone\'s Keras Applications constructor, e.g. `{"alpha": 0.25}`; '
        "defaults to those of the zoo entry named by `weights`.",
        help="backbone constructor arguments, e.g. alpha=0.25",
        check=_backbone_kwargs,
        type=arguments.keyword,
        nargs="+",
        action=arguments.KeywordArguments,
        metavar="KEY=VALUE",
    )
    weights: object = option(
        None,
        "None, a `keras_fcn.zoo` entry's name or alias, or a `.keras` or `.weights.h5` file of this "
        "same architecture to start from (see `keras_fcn.FCN8s`).",
        help="a zoo entry or weights file of this same architecture to start from",
    )
    init_from: object = option(
        None,
        "staged training: a `.keras` file of a coarser stage (or its `.weights.h5`, built as "
        "`init_from_model` with this `backbone` and `backbone_kwargs`), upgraded with `keras_fcn.upgrade` "
        "to `model` (FCN-32s -> FCN-16s -> FCN-8s).",
        help="staged training: a .keras (or .weights.h5) file of a coarser stage",
    )
    init_from_model: object = option(
        None,
        "the architecture of a `.weights.h5` `init_from` (a `model` name); defaults to the stage before `model`.",
        help="the architecture of a .weights.h5 --init-from (default: the stage before --model)",
        **_choice(sorted(MODELS)),
    )
    data_root: object = option(
        None,
        "str, where a named dataset lives; see `keras_fcn.training.load_dataset`.",
        help="where a named dataset lives (for sbd: the folder holding benchmark_RELEASE/ and VOCdevkit/)",
    )
    validation: object = option(
        None,
        "None (the named dataset's validation split; none for a folder or a `tf.data.Dataset`), a folder "
        "holding `images/` and `masks/`, or a `tf.data.Dataset` of pairs.",
        help="a validation folder holding images/ and masks/",
        flag="--val-folder",
        metavar="FOLDER",
    )
    num_classes: object = option(
        None,
        "int, the number of classes; needed for a folder or a `tf.data.Dataset` unless `class_names` "
        "is given (a named dataset has its own).",
        help="the number of classes (default: the dataset's)",
        **POSITIVE_INT,
    )
    class_names: object = option(
        None,
        'sequence of str, one per class, class 0 first; defaults to the named dataset\'s, else `"0"`, `"1"`, ...; '
        "written to `classes.json` in the run folder.",
        check=_class_names,
        help="class names separated by commas, class 0 first",
        type=arguments.names,
    )
    label_map: object = option(
        None,
        "dict `{raw mask value: class id or 255}` remapping the masks of folder datasets, e.g. `{255: 1}` for "
        "masks holding 0 and 255 (255 is otherwise ignored); see `keras_fcn.data.from_folders`.",
        help="remap mask values, e.g. 255:1 for masks holding 0 and 255 (255 is otherwise ignored)",
        type=arguments.label_map,
        exclusive="mask reading",
        metavar="RAW:CLASS,...",
    )
    color_map: object = option(
        None,
        "colour-coded masks of folder datasets: the path of a colour map file (one `R G B name` line per class, "
        "class 0 first, `R G B ignore` for pixels to ignore; see `keras_fcn.data.read_color_map`), which also "
        "gives the number of classes and their names, or the colours as `keras_fcn.data.from_folders` takes them.",
        help="colour-coded masks: a text file with one 'R G B name' line per class, class 0 first "
        "('R G B ignore' for pixels to ignore)",
        metavar="FILE",
        exclusive="mask reading",
    )
    mask_threshold: object = option(
        None,
        "int, binary masks of folder datasets with in-between values (JPEG): grey values below it are class 0, "
        "the others class 1.",
        help="binary masks with in-between values (JPEG): grey below VALUE is class 0, the rest class 1, e.g. 128",
        metavar="VALUE",
        exclusive="mask reading",
        **POSITIVE_INT,
    )
    crop_size: object = option(
        None,
        "`(height, width)` of the training crops; None trains on whole (augmented) images, padded per batch.",
        check=_size,
        help="training crop, e.g. 360x480 (default: whole images)",
        type=arguments.size,
        metavar="HxW",
    )
    batch_size: int = option(
        8,
        "int, the global batch size (split across replicas).",
        help="global batch size",
        **POSITIVE_INT,
    )
    epochs: int = option(
        10,
        "int, the total number of epochs of the run.",
        help="total epochs of the run",
        **POSITIVE_INT,
    )
    steps_per_epoch: object = option(
        None,
        "int, training batches per epoch; defaults to one pass over the training data.",
        help="training batches per epoch (default: one pass over the data)",
        **POSITIVE_INT,
    )
    validation_steps: object = option(
        None,
        "int, validation batches per epoch (the same first ones every epoch); defaults to the whole "
        "validation set.",
        help="validation batches per epoch (default: the whole validation set)",
        **POSITIVE_INT,
    )
    optimizer: str = option(
        "adam",
        '`"' + '"`, `"'.join(PRESETS) + '"`, the optimizer preset (see `keras_fcn.training.presets`).',
        help="; ".join(f"{name}: {preset.summary}" for name, preset in PRESETS.items()),
        **_choice(sorted(PRESETS)),
    )
    loss: str = option(
        "cross_entropy",
        '`"cross_entropy"` (the paper\'s), `"focal"` or `"dice"`, the loss (see `keras_fcn.losses.get`). The '
        "per-pixel losses take the optimizer preset's reduction; the Dice loss is one minus the mean Dice over the "
        "classes, its validation loss the mean over the validation images of each image's own, and it does not go "
        'with the `"paper"` preset, whose rates are for a summed per-pixel loss.',
        help="the loss",
        **_choice(tuple(LOSSES)),
    )
    class_weights: object = option(
        None,
        '`"median_frequency"` (median frequency balancing over the training set, '
        "`keras_fcn.data.median_frequency_weights`), or a sequence of one loss weight >= 0 per class; None weighs "
        "every class 1.",
        check=_class_weights,
        help="median_frequency, or one loss weight per class separated by commas (default: 1 for every class)",
        type=arguments.class_weights,
        metavar="WEIGHTS",
    )
    learning_rate: object = option(
        None,
        "float, overrides the preset's initial learning rate.",
        help="the initial learning rate (default: the preset's)",
        **NON_NEGATIVE_NUMBER,
    )
    weight_decay: object = option(
        None,
        "float, overrides the preset's weight decay (0: none).",
        help="the weight decay, 0 for none (default: the preset's)",
        **NON_NEGATIVE_NUMBER,
    )
    mixed_precision: object = option(
        None,
        'None, `"auto"`, `"mixed_float16"`, `"mixed_bfloat16"` or `"float32"`; see '
        "`keras_fcn.training.dtype_policy`. The global policy is restored after building the model.",
        help="alone: mixed_float16 on GPU, mixed_bfloat16 on CPU",
        nargs="?",
        const="auto",
        choices=MIXED_PRECISION,
    )
    strategy: object = option(
        None,
        'None, `"default"`, `"mirrored"`, `"multi-worker"` or a `tf.distribute.Strategy`; see '
        "`keras_fcn.training.get_strategy`. With several replicas, batch normalization layers are "
        "synchronized (batch statistics over the global batch), so a step equals one device's step on "
        "the global batch. On multi-worker runs the chief writes `output_dir` and every other task its "
        "own `output_dir/workers/<task>-<id>`.",
        help="the tf.distribute strategy (default: one device)",
        choices=STRATEGIES,
    )
    augment: bool = option(
        True,
        "bool, random scaling (by `scale_range`), mirroring and colour jitter (by `jitter`) of the training pairs "
        "(`keras_fcn.data.augment`); cropping to `crop_size` happens either way.",
        check=_boolean,
        help="no random scaling, mirroring and colour jitter",
        flag="--no-augment",
        action="store_false",
    )
    scale_range: object = option(
        None,
        "`(min, max)`, the range of the random scaling factors of the training pairs (uniform; each from 0.1 to 4; "
        "`(1, 1)` for none); None is `(0.5, 2)`. Giving it needs `augment`.",
        check=_augmentation,
        help="random scaling factors of the training pairs, drawn uniformly from MIN to MAX, each from 0.1 to 4 "
        "(default: 0.5,2)",
        type=arguments.scale_range,
        metavar="MIN,MAX",
    )
    jitter: object = option(
        None,
        "float in `[0, 1)`, the strength of the random colour jitter of the training images: brightness shifts of "
        "up to `jitter * 255`, contrast and saturation factors in `[1 - jitter, 1 + jitter]`; None is 0, none. "
        "Giving it needs `augment`.",
        check=_augmentation,
        help="random brightness, contrast and saturation of the training images, from 0 to less than 1, e.g. 0.2 "
        "(default: 0, none)",
        type=arguments.fraction,
        metavar="STRENGTH",
    )
    seed: object = option(
        None,
        "int in [0, 2**32), seeds the initial weights, and the order and augmentation of each epoch, which are "
        "a function of the seed and the epoch's number, so that a resumed run reads what the uninterrupted run "
        "reads. Without a seed, one is drawn and recorded in the run folder's `run.json` (a resumed run takes it "
        "from there). Needed by multi-worker runs.",
        check=_seed,
        help="seeds the initial weights, shuffling and augmentation (default: one drawn and recorded in run.json)",
        type=int,
    )
    verbose: object = option(
        "auto",
        '`"auto"`, 0, 1 or 2, as for `model.fit`.',
        check=_one_of(VERBOSITIES),
        help="auto, 0, 1 (progress bar) or 2 (a line per epoch)",
        type=arguments.verbose,
    )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if field.metadata["check"] is not None:
                field.metadata["check"](field.name, getattr(self, field.name))
        given = [name for name in AUGMENTATION_DEFAULTS if getattr(self, name) is not None]
        if given and not self.augment:
            raise InvalidArgumentError(
                f"`{given[0]}` needs the augmentation that `augment` turns off: give one or the other. "
                f"Received {given[0]}={getattr(self, given[0])!r} with augment=False"
            )
        for name, default in AUGMENTATION_DEFAULTS.items():  # the values in effect, as the run folder records them
            value = default if getattr(self, name) is None else getattr(self, name)
            object.__setattr__(self, name, AUGMENTATION_CHECKS[name](value, name))  # as floats
        # One spelling per backbone, so that a run folder records "resnet50" whether "ResNet50" or "resnet50" was given.
        object.__setattr__(self, "backbone", self.backbone.lower())

    @classmethod
    def from_keywords(cls, keywords, function_name="train"):
        """The options given as keyword arguments of `function_name`; a TypeError names an unknown one."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(keywords) - names)
        if unknown:
            raise TypeError(
                f"{function_name}() got unexpected keyword arguments {unknown}; its options are {sorted(names)}"
            )
        return cls(**keywords)


def _flag(field):
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def add_arguments(parser, names=None):
    """Adds the flags of the options to an `argparse` parser.

    The parsed arguments also hold `option_flags`, a dict from the names of
    the options added to their flags (for `with_flags`).

    Args:
        parser: an `argparse.ArgumentParser`.
        names: None (every option with a flag) or the names of the options
            to add, e.g. `("data_root", "class_names")` for another verb
            that reads a dataset.
    """
    groups, flags = {}, {}
    for field in dataclasses.fields(TrainingOptions):
        if not field.metadata["cli"] or (names is not None and field.name not in names):
            continue
        exclusive = field.metadata["exclusive"]
        if exclusive is not None and exclusive not in groups:
            groups[exclusive] = parser.add_mutually_exclusive_group()
        help = field.metadata["help"] or field.metadata["doc"].replace("`", "")
        if field.default is not None and not isinstance(field.default, bool):
            help += f" (default: {field.default})"
        groups.get(exclusive, parser).add_argument(
            _flag(field), dest=field.name, default=field.default, help=help, **field.metadata["argparse"]
        )
        flags[field.name] = _flag(field)
    parser.set_defaults(option_flags=flags)


def with_flags(message, flags):
    """`message`, an error's naming keyword arguments of `keras_fcn.train`, naming their command-line flags instead.

    "`class_weights` must ..." becomes "`--class-weights` must ...",
    "Received class_weights=" "Received --class-weights=", and a name with
    an underscore standing as a word of its own (not in a path, nor a
    Python example such as "label_map={7: 255}"), "pass label_map", "pass
    --label-map". An option whose flag turns it off reads as the flag:
    "augment=False" becomes "--no-augment", "augment=True" "no
    --no-augment".

    Args:
        message: str.
        flags: dict from option names to their flags, e.g. the
            `option_flags` that `add_arguments` leaves in the parsed
            arguments.

    Returns:
        str.
    """
    fields = dataclasses.fields(TrainingOptions)
    negated = {field.name for field in fields if field.metadata["argparse"].get("action") == "store_false"}
    for name, flag in flags.items():
        if name in negated:  # augment=False is --no-augment given; augment=True, not given
            message = re.sub(rf"\b{name}=False\b", flag, message)
            message = re.sub(rf"\b{name}=True\b", f"no {flag}", message)
        message = message.replace(f"`{name}`", f"`{flag}`")
        message = re.sub(rf"\bReceived {name}=", f"Received {flag}=", message)
        if "_" in name:
            message = re.sub(rf"(?<![\w/.\\-]){name}(?![\w/.\\=-])", flag, message)
    return message


def from_arguments(args):
    """The keyword arguments of `keras_fcn.train` given by the flags of `add_arguments`, as `argparse` parsed them."""
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainingOptions) if field.metadata["cli"]}


def _documentation(indent):
    lines = []
    for field in dataclasses.fields(TrainingOptions):
        lines += textwrap.wrap(
            f"{field.name}: {field.metadata['doc']}",
            width=79,
            initial_indent=indent,
            subsequent_indent=indent + "    ",
            break_on_hyphens=False,
        )
    return "\n".join(lines).lstrip()


def takes_options(function):
    """Gives `function(..., **options)` the options as keyword-only parameters in its signature and docstring.

    The docstring's `{options}` line becomes one `Args` entry per option.
    """
    signature = inspect.signature(function)
    parameters = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    parameters += [
        inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default)
        for field in dataclasses.fields(TrainingOptions)
    ]
    function.__signature__ = signature.replace(parameters=parameters)
    indent = re.search(r"^( *)\{options\}", function.__doc__, re.MULTILINE)[1]
    function.__doc__ = function.__doc__.replace("{options}", _documentation(indent))
    return function
