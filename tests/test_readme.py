"""The README's API tour runs as written (on the shipped sample, so it stays quick)."""

import re
from pathlib import Path

import pytest

from fastcnn import datasets

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_api_tour_runs(tmp_path, monkeypatch, capsys):
    if not README.exists():
        pytest.skip("README.md is not beside the tests (an installed copy)")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has a python block"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTCNN_DATA", raising=False)
    exec(compile(blocks[0], str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "sample shipped with fastcnn" in out and "Total params" in out
    assert "val_accuracy" in out
