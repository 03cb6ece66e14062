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
