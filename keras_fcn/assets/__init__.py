"""Files that ship inside the package: the sample image `keras-fcn predict` segments when given no inputs."""

import os


def sample_image_path():
    """The absolute path of `street.jpg`, the sample image of a city street.

    A 360x480 (height x width) RGB JPEG in the style of the CamVid driving
    dataset, drawn procedurally by `examples/draw_street.py` (run it to
    redraw it); it is no dataset frame.

    Returns:
        str, the path of the image inside the installed package.
    """
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "street.jpg")
