"""Lists the weight zoo as a Markdown table: entries, classes, sources and published metrics.

Usage:
    python zoo/list_zoo.py [--architecture fcn8s_vgg16_reference]

Metrics measured by the authors (the paper or the reference repository) are
marked "(theirs)"; those we measured are marked "(ours)".
"""

import argparse
import sys

from keras_fcn import zoo

_BY = {"authors": "theirs", "keras-fcn": "ours"}


def format_metric(metric):
    return f"{metric['metric']} {metric['value']} on {metric['split']} ({_BY[metric['measured_by']]}, {metric['source']})"


def table(names):
    rows = [
        "| entry | alias | architecture | classes | input | source | published metrics |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        entry = zoo.get(name)
        classes = " + ".join(str(len(class_names)) for _, class_names in entry.outputs)
        inputs = ", ".join(
            f"{input_name}: {pre.description.rsplit(' (', 1)[0]}" for input_name, pre in entry.inputs
        )
        metrics = "; ".join(map(format_metric, entry.metrics)) or "none published"
        source = f"[{entry.source_format}]({entry.urls[0]})"
        rows.append(
            f"| {name} | {', '.join(entry.aliases) or '-'} | {entry.architecture} | {classes} | {inputs} | {source} | {metrics} |"
        )
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--architecture", help="only the entries of this architecture")
    args = parser.parse_args(argv)
    print(table(zoo.available(args.architecture)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
