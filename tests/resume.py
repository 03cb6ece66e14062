"""Shared checks of meta-training runs: a run's logged records, and exact resume after a
kill (the same log, params and curriculum state as a run that was never stopped)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from discovery.pipeline import MetaTrainResult, meta_train


def logged_records(run_dir: Path) -> list[dict[str, Any]]:
    """A run's ``metrics.jsonl`` without the wall times (which differ run to run)."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        record.pop("wall_time_s")
    return records


def assert_records_close(
    got: list[dict[str, Any]], want: list[dict[str, Any]], rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """Logged records of two runs of one config by differently compiled programs (say a
    population scored in halves on two processes, or whole on one): the same fields,
    the same integers, strings and missing values, and floats equal to ``rtol`` /
    ``atol``, since XLA rounds each program its own way (bit-for-bit equality holds only
    for one compiled program)."""
    assert len(got) == len(want), (len(got), len(want))
    for index, (a, b) in enumerate(zip(got, want)):
        assert sorted(a) == sorted(b), (index, sorted(a), sorted(b))
        for name in a:
            x, y = a[name], b[name]
            if isinstance(x, float) or isinstance(y, float):
                np.testing.assert_allclose(x, y, rtol=rtol, atol=atol,
                                           err_msg=f"record {index}: {name}")
            elif isinstance(x, list) and isinstance(y, list):
                np.testing.assert_allclose(np.asarray(x, float), np.asarray(y, float),
                                           rtol=rtol, atol=atol,
                                           err_msg=f"record {index}: {name}")
            else:
                assert x == y, (index, name, x, y)


def killed_and_resumed(
    config: Any, tmp_path: Path, stop_after: int
) -> tuple[MetaTrainResult, MetaTrainResult]:
    """Run ``config`` straight (``tmp_path/straight``), and killed after ``stop_after``
    generations then resumed (``tmp_path/killed``); both must give the same log, params
    and curriculum state. Returns ``(straight, resumed)``."""
    straight = meta_train(config, tmp_path / "straight")
    meta_train(config, tmp_path / "killed", stop_after=stop_after)
    resumed = meta_train(config, tmp_path / "killed", resume=True)
    assert logged_records(tmp_path / "straight") == logged_records(tmp_path / "killed")
    jax.tree.map(np.testing.assert_array_equal, straight.params, resumed.params)
    jax.tree.map(np.testing.assert_array_equal, straight.state.curriculum,
                 resumed.state.curriculum)
    return straight, resumed
