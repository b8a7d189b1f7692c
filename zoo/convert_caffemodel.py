"""Converts one of the authors' caffemodels to a Keras weights file.

Usage:
    python zoo/convert_caffemodel.py voc-fcn8s
        downloads the entry's caffemodel, converts it, caches the result in
        $KERAS_HOME/keras_fcn and prints its path and sha256 (what
        `keras_fcn.FCN8s(weights="voc", backbone="vgg16_reference")` does on
        first use);
    python zoo/convert_caffemodel.py voc-fcn8s --caffemodel fcn8s-heavy-pascal.caffemodel --output voc-fcn8s.weights.h5
        converts a local file instead, without network access.
"""

import argparse
import sys

from keras_fcn import zoo
from keras_fcn.zoo.cache import sha256_of


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", choices=zoo.available(), metavar="NAME", help="zoo entry, e.g. voc-fcn8s")
    parser.add_argument("--caffemodel", help="a local .caffemodel file to convert instead of downloading")
    parser.add_argument("--output", help="where to write the .weights.h5 file (with --caffemodel)")
    args = parser.parse_args(argv)
    if (args.caffemodel is None) != (args.output is None):
        parser.error("--caffemodel and --output go together")
    if args.caffemodel:
        digest = zoo.convert_caffemodel(args.name, args.caffemodel, args.output)
        path = args.output
    else:
        path = zoo.fetch(args.name)
        digest = sha256_of(path)
    print(f"{path}\nsha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
