"""Running a sweep's programs: a group of train cells in one vmapped call, meta-train
cells one at a time with resume; and the guard against reusing another config's cell folder."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from discovery import envs as env_registry
from discovery.agents.ppo import PPOHyperparams, diverged, make_train
from discovery.config import ConfigError, load_config, to_dict
from discovery.drift import make_drift
from discovery.sweep_report import _cell_record
from discovery.sweep_spec import Cell, _fmt, _is_number
from discovery.train import TrainConfig, TrainResult, write_train_metrics


def _run_train_group(
    cells: Sequence[Cell], cells_dir: Path, metric: str
) -> list[tuple[Cell, dict[str, Any]]]:
    """Train every cell of a group in one ``jit(vmap(vmap(train)))`` call.

    The per-cell inputs are exactly ``train_seeds``'s: keys ``split(key(seed), seeds)``,
    drift params ``drift.init(key(seed))``, and the cell's ``PPOHyperparams``.
    """
    config: TrainConfig = cells[0].config
    env, env_params = env_registry.make(config.env)
    drift = make_drift(config.drift)
    train = make_train(config.ppo, env, env_params, drift)

    def train_one(key: jax.Array, drift_params: Any, hparams: PPOHyperparams) -> Any:
        state, metrics = train(key, drift_params, hparams=hparams)
        return metrics, diverged(state, metrics)

    def train_cell(keys: jax.Array, drift_params: Any, hparams: PPOHyperparams) -> Any:
        """Metrics ``[seeds, updates]`` and divergence ``[seeds]`` of one cell's agents."""
        return jax.vmap(train_one, in_axes=(0, None, None))(keys, drift_params, hparams)

    keys = jnp.stack(
        [jax.random.split(jax.random.key(c.config.seed), c.config.seeds) for c in cells]
    )
    drift_params = _stack([drift.init(jax.random.key(c.config.seed)) for c in cells])
    hparams = _stack([c.config.ppo.hyperparams() for c in cells])
    tic = time.perf_counter()
    metrics, failed = jax.device_get(jax.jit(jax.vmap(train_cell))(keys, drift_params, hparams))
    metrics = {k: np.asarray(v) for k, v in metrics.items()}
    wall_time = time.perf_counter() - tic
    steps = np.arange(1, config.ppo.num_updates + 1) * config.ppo.steps_per_update

    from discovery.plots import plot_learning_curve

    finished = []
    for i, cell in enumerate(cells):
        cell_dir = cells_dir / cell.cell_id
        result = TrainResult({k: v[i] for k, v in metrics.items()}, steps, np.asarray(failed[i]))
        write_train_metrics(result, cell_dir / "metrics.jsonl")
        returns = result.metrics["latest_return"]
        with warnings.catch_warnings():  # every seed diverged: the curve is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            plot_learning_curve(steps, returns, cell_dir / "learning_curve.png",
                                title=_label(cell) or cell.cell_id)
        per_seed = {
            "final_return": result.final_returns(),
            "mean_return": np.where(result.diverged, np.nan, returns.mean(axis=-1)),
        }
        record = _cell_record(cell, metric, per_seed[metric])
        record.update(
            {
                "final_return_per_seed": per_seed["final_return"].tolist(),
                "final_return_mean": _nanmean(per_seed["final_return"]),
                "mean_return_per_seed": per_seed["mean_return"].tolist(),
                "learning_curve": {
                    "env_steps": steps.tolist(),
                    "latest_return": _nanmean(returns, axis=0).tolist(),
                },
                "group": [c.cell_id for c in cells],
                "group_wall_time_s": wall_time,
            }
        )
        finished.append((cell, record))
    return finished


def _run_meta_cells(
    cells: Sequence[Cell], cells_dir: Path, metric: str
) -> list[tuple[Cell, dict[str, Any]]]:
    """Meta-train each cell in turn, resuming from its checkpoint when it has one, and
    write the run's usual files (params, plots, ``summary.json`` with its evaluation)."""
    from discovery.checkpoint import latest_checkpoint

    finished = []
    for cell in cells:
        cell_dir = cells_dir / cell.cell_id
        checkpoints = cell_dir / "checkpoints"
        resume = checkpoints.is_dir() and latest_checkpoint(checkpoints) is not None
        tic = time.perf_counter()
        from discovery.components import component_of
        from discovery.pipeline import meta_train

        outcome = meta_train(cell.config, cell_dir, resume=resume)
        run_summary = component_of(cell.config).write_results(outcome, cell.config)
        history = [
            json.loads(line)
            for line in (cell_dir / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        ]
        curve = np.array([r.get(metric, np.nan) for r in history], dtype=float)
        window = max(1, len(history) // 5)
        record = _cell_record(cell, metric, np.array([_nanmean(curve[-window:])]))
        record.update(
            {
                "generations": len(history),
                "window": window,
                "curve": curve.tolist(),
                "last": {k: v for k, v in history[-1].items() if _is_number(v)},
                "run_summary": run_summary,
                "resumed": resume,
                "wall_time_s": time.perf_counter() - tic,
            }
        )
        finished.append((cell, record))
    return finished


def _check_cell_dir(cell: Cell, cell_dir: Path) -> None:
    """Refuse to reuse a cell folder written for a different config."""
    path = cell_dir / "config.yaml"
    if not path.is_file():
        return
    previous = load_config(type(cell.config), path)
    if previous == cell.config:
        return
    old, new = _flatten(to_dict(previous)), _flatten(to_dict(cell.config))
    changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:5])
    raise ConfigError(
        f"{cell_dir}: holds a run of a different config ({shown}); the sweep changed since "
        "it ran: give the sweep a new name or out dir, or delete that folder",
        field=cell.cell_id,
        source=str(path),
    )


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _label(cell: Cell) -> str:
    label = ", ".join(f"{k}={_fmt(v)}" for k, v in cell.values)
    return label + (f", seed={cell.seed}" if cell.seed is not None else "")


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _nanmean(x: Any, axis: int | None = None) -> Any:
    """``np.nanmean`` without the all-NaN warning (all-NaN gives NaN)."""
    x = np.asarray(x, dtype=float)
    count = np.sum(np.isfinite(x), axis=axis)
    total = np.nansum(np.where(np.isfinite(x), x, np.nan), axis=axis)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return float(mean) if axis is None else mean
