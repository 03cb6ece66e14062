"""Strict JSON both ways: what runs write holds no NaN, and the reader refuses one."""

import numpy as np
import pytest

from discovery import files
from discovery.files import dumps, loads_strict, write_bytes_atomic


def test_non_finite_values_are_written_as_null_and_read_back():
    text = dumps({"mean": float("nan"), "curve": np.array([1.0, np.inf]), "n": 3})
    assert loads_strict(text) == {"mean": None, "curve": [1.0, None], "n": 3}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_the_strict_reader_refuses_non_standard_constants(constant):
    with pytest.raises(ValueError, match=f"non-strict JSON constant {constant}"):
        loads_strict(f'{{"x": {constant}}}')


def test_an_atomic_write_replaces_the_file_or_leaves_it_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    write_bytes_atomic(path, b"old")
    assert path.read_bytes() == b"old" and (path.stat().st_mode & 0o777) == 0o644

    def crash(src, dst):
        raise OSError("killed before the rename")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(OSError, match="killed before the rename"):
        write_bytes_atomic(path, b"new", tmp_prefix=".mine.", tmp_suffix=".part")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]

    write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
