"""`python -m keras_fcn`: the `keras-fcn` command line."""

import sys

from keras_fcn.cli import main

if __name__ == "__main__":
    sys.exit(main())
