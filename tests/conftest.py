import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
