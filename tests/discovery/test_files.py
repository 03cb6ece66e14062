"""Strict JSON both ways: what runs write holds no NaN, and the reader refuses one."""

import numpy as np
import pytest

from discovery.files import dumps, loads_strict


def test_non_finite_values_are_written_as_null_and_read_back():
    text = dumps({"mean": float("nan"), "curve": np.array([1.0, np.inf]), "n": 3})
    assert loads_strict(text) == {"mean": None, "curve": [1.0, None], "n": 3}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_the_strict_reader_refuses_non_standard_constants(constant):
    with pytest.raises(ValueError, match=f"non-strict JSON constant {constant}"):
        loads_strict(f'{{"x": {constant}}}')
