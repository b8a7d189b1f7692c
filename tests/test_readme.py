"""The README's self-contained examples run as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SELF_CONTAINED = "import numpy as np\nimport keras_fcn\n"
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if b.startswith(SELF_CONTAINED)]


def test_readme_has_self_contained_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.splitlines()[3][:40])
def test_readme_example_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the files an example writes go there
    exec(compile(block, str(README), "exec"), {})
