import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_fcn import models, reference  # noqa: E402
from _caffe_helpers import SMALL_BLOCKS, SMALL_FC  # noqa: E402
from _zoo_helpers import FileServer  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(1411_4038)


@pytest.fixture(autouse=True, scope="session")
def keras_home_of_the_session(tmp_path_factory):
    """Downloads, conversions and exported engines go to a folder of the test session, never to ~/.keras."""
    previous = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = str(tmp_path_factory.mktemp("keras_home"))
    yield
    if previous is None:
        del os.environ["KERAS_HOME"]
    else:
        os.environ["KERAS_HOME"] = previous


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras folder for this test; returns its `keras_fcn` folder (the zoo's cache, the engines' one above)."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home / "keras_fcn"


@pytest.fixture
def server():
    """A `FileServer` on 127.0.0.1 for this test, stopped at its end."""
    file_server = FileServer()
    yield file_server
    file_server.stop()


@pytest.fixture
def small_reference(monkeypatch):
    """Makes the builders' vgg16_reference trunk and fc6/fc7 narrow (`SMALL_BLOCKS`, `SMALL_FC`), for fast exact tests."""
    monkeypatch.setattr(reference, "VGG16_BLOCKS", SMALL_BLOCKS)
    monkeypatch.setattr(models, "FC_FILTERS", SMALL_FC)
