"""`discover sweep`: grid and random sweeps over config values and seeds, resumable.

A sweep file names a command (``train`` or ``meta-train``), a base config, fixed
overrides, the values to sweep and the seeds::

    name: ppo-cartpole-lr
    command: train                    # or meta-train (drift or objective, by `component`)
    base: configs/ppo_cartpole.yaml   # relative to the sweep file, else to the cwd
    set: ["ppo.total_timesteps=65536"]
    grid:                             # cartesian product
      ppo.lr: [1.0e-3, 3.0e-3]
    random:                           # `samples` draws, each combined with every grid point
      samples: 4
      seed: 0
      fields:
        ppo.ent_coef: {uniform: [0.0, 0.02]}
        ppo.gae_lambda: {choice: [0.9, 0.95]}
    seeds: [0, 1, 2]                  # the config's `seed` field, one cell per seed
    metric: final_return
    max_group_size: null              # cells per vmapped program (null: no limit)

``uniform`` and ``log_uniform`` draw floats, rounded to 6 significant digits (readable
cell ids, exact overrides); sweep an int field with ``choice`` or ``grid``. A field may be
in ``grid`` or ``random``, not both; ``seed`` is swept only through ``seeds``.

Every (grid point x random draw x seed) is a *cell*: one config, built with
``load_config`` from the base and the cell's overrides, so a typo fails before anything
runs with the usual message naming the field, the value and what is allowed.

Train cells whose configs differ only in PPO's traced hyperparameters
(:class:`discovery.agents.ppo.PPOHyperparams`) and their seed share one compiled program: they run
as one ``jit(vmap(vmap(train)))`` over (cell: hyperparameters, drift params, seed keys;
agent: keys), as the architecture's static-versus-traced rule intends. Everything else
(network, rollout shape, lifetime, environment, drift, number of agents, ``adam_eps``,
``anneal_lr``; and ``gamma`` when ``normalize_reward`` is on, because the reward
normaliser closes over it) fixes the program, so such cells run in separate groups, one
after another. Meta-train cells run one at a time through ``meta_train``, which
checkpoints, so a killed cell resumes from its checkpoint.

Results go to ``<out_dir>/<name>/``: ``sweep.yaml`` (the resolved sweep),
``cells/<cell_id>/`` (``config.yaml``, the run's own files, and ``result.json``, written
last and atomically, so a cell with a ``result.json`` is finished and a rerun skips it),
and ``summary.md``, ``summary.json`` and ``summary.png`` ranking the swept values by
the metric, mean and standard error over seeds.

Metrics. ``train``: ``final_return`` (each agent's training return over the last 5% of
updates, as ``TrainResult.final_returns``) or ``mean_return`` (each agent's mean over
all updates, rewarding fast learning); a diverged agent's sample is missing and
counted; the samples of a cell are its
``TrainConfig.seeds`` agents. ``meta-train``: a field of the run's ``metrics.jsonl``
(``fitness_mean``, ``fitness_max``, ``best_fitness`` for ES runs; ``episode_return``
for objective meta-gradient runs), averaged over the last fifth of the generations
(at least one), the window ``discover meta-train``'s summary uses; one sample per cell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from discovery import envs as env_registry
from discovery.agents.ppo import PPOHyperparams, diverged, make_train
from discovery.config import (
    ConfigError,
    _Dumper,
    _Loader,
    config_component,
    load_config,
    save_config,
    to_dict,
)
from discovery.drift import make_drift
from discovery.files import write_json, write_text_atomic
from discovery.train import TrainConfig, TrainResult, write_train_metrics

__all__ = [
    "COMMANDS",
    "Cell",
    "Distribution",
    "RandomSpec",
    "SweepResult",
    "SweepSpec",
    "TRACED_PPO_FIELDS",
    "allowed_metrics",
    "expand_cells",
    "group_cells",
    "load_sweep",
    "run_sweep",
    "write_summary",
]

COMMANDS = ("train", "meta-train")
DISTRIBUTIONS = ("uniform", "log_uniform", "choice")

#: PPO fields that ``make_train``'s ``train`` takes traced (``PPOHyperparams``).
TRACED_PPO_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PPOHyperparams))

TRAIN_METRICS = ("final_return", "mean_return")
ES_METRICS = ("fitness_mean", "fitness_max", "best_fitness")
METAGRAD_METRICS = ("episode_return",)

_SPEC_KEYS = (
    "name", "command", "base", "set", "grid", "random", "seeds", "metric", "max_group_size"
)
_RANDOM_KEYS = ("samples", "seed", "fields")
_MAX_ID_LENGTH = 96
_SIGNIFICANT = 6  # digits kept of a randomly drawn float (readable ids, exact overrides)


# --------------------------------------------------------------------------- the spec


class Distribution(NamedTuple):
    """How a random-search field is drawn: ``uniform`` / ``log_uniform`` ``[low, high]``,
    or ``choice`` among ``args``."""

    kind: str
    args: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.args[int(rng.integers(len(self.args)))]
        low, high = self.args
        if self.kind == "uniform":
            value = rng.uniform(low, high)
        else:
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        return min(max(float(f"{value:.{_SIGNIFICANT}g}"), low), high)


@dataclass(frozen=True)
class RandomSpec:
    """Random search: ``samples`` draws of every field, from ``numpy``'s PCG64 seeded
    with ``seed`` (fields drawn in file order, so the same file gives the same cells)."""

    samples: int
    seed: int
    fields: dict[str, Distribution]


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file (see the module docstring for the format).

    Attributes:
      name: the sweep's folder under the output directory.
      command: ``"train"`` or ``"meta-train"``.
      base: the base config file, resolved; None for the config class's defaults.
      set: fixed overrides applied to every cell, before the swept ones.
      grid: field -> values; the sweep takes their cartesian product.
      random: random-search draws, each combined with every grid point; or None.
      seeds: the values of the config's ``seed`` field, one cell per seed; None keeps
        the config's own seed (one cell per point).
      metric: what the summary ranks by (see :func:`allowed_metrics`).
      max_group_size: at most this many train cells per vmapped program (None: no limit).
      source: the sweep file.
    """

    name: str
    command: str
    base: Path | None = None
    set: tuple[str, ...] = ()
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    random: RandomSpec | None = None
    seeds: tuple[int, ...] | None = None
    metric: str = "final_return"
    max_group_size: int | None = None
    source: Path | None = None

    @property
    def varied(self) -> tuple[str, ...]:
        """The swept fields, grid fields first."""
        random_fields = tuple(self.random.fields) if self.random else ()
        return tuple(self.grid) + random_fields

    def to_dict(self) -> dict[str, Any]:
        """The sweep as a YAML/JSON-safe mapping that :func:`load_sweep` reads back."""
        random = None
        if self.random is not None:
            random = {
                "samples": self.random.samples,
                "seed": self.random.seed,
                "fields": {k: {d.kind: list(d.args)} for k, d in self.random.fields.items()},
            }
        return {
            "name": self.name,
            "command": self.command,
            "base": None if self.base is None else str(self.base),
            "set": list(self.set),
            "grid": {k: list(v) for k, v in self.grid.items()},
            "random": random,
            "seeds": None if self.seeds is None else list(self.seeds),
            "metric": self.metric,
            "max_group_size": self.max_group_size,
        }


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: a point of the swept values and a seed.

    Attributes:
      index: position in the sweep's order (grid, then random draws, then seeds).
      cell_id: the folder name: readable (``000_ppo.lr=0.001,seed=0``), filesystem-safe,
        shortened with a hash when long; the index keeps equal-looking cells apart.
      values: the swept ``(field, value)`` pairs (the point), without the seed.
      seed: the cell's ``seed`` value, or None when the sweep gives no seeds.
      overrides: every override of the base config: ``set``, then the point, then seed.
      config: the cell's built config (a ``TrainConfig``, ``MetaTrainConfig`` or
        ``ObjectiveMetaTrainConfig``).
    """

    index: int
    cell_id: str
    values: tuple[tuple[str, Any], ...]
    seed: int | None
    overrides: tuple[str, ...]
    config: Any


@dataclass
class SweepResult:
    """What :func:`run_sweep` leaves behind.

    Attributes:
      sweep_dir: ``<out_dir>/<name>``.
      cells: every cell of the sweep, in order.
      results: cell id -> its ``result.json`` (finished before or in this call).
      groups: the cell ids of each program this call ran, in order: a vmapped group of
        train cells, or one meta-train cell.
      skipped: the cells already finished when this call started.
      summary: the contents of ``summary.json``.
    """

    sweep_dir: Path
    cells: list[Cell]
    results: dict[str, dict[str, Any]]
    groups: list[list[str]]
    skipped: list[str]
    summary: dict[str, Any]


def load_sweep(path: str | Path, extra_set: Sequence[str] = ()) -> SweepSpec:
    """Read and validate a sweep file; ``extra_set`` overrides are appended to its ``set``.

    Raises ``ConfigError`` naming the field, the value and what is allowed, for the
    sweep's own keys and, through :func:`expand_cells`, for every cell's config.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path}", source=source)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}", source=source) from None
    if not isinstance(data, Mapping):
        raise _error("", data, "a mapping of sweep keys", source)
    for key in data:
        if key not in _SPEC_KEYS:
            raise ConfigError(
                f"{key}: unknown sweep key (given value {_show(data[key])}); allowed keys: "
                f"{', '.join(_SPEC_KEYS)} (from {source})",
                field=str(key),
                source=source,
            )

    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name or not re.fullmatch(r"[A-Za-z0-9._+=,-]+", name):
        raise _error("name", name, "a non-empty folder name of letters, digits and ._+=,-",
                     source)
    command = data.get("command", "train")
    if command not in COMMANDS:
        raise _error("command", command, "one of " + ", ".join(map(repr, COMMANDS)), source)

    base = data.get("base")
    if base is not None:
        base = _resolve_base(base, path, source)

    overrides = data.get("set") or []
    if isinstance(overrides, str) or not isinstance(overrides, (list, tuple)):
        raise _error("set", overrides, "a list of 'field=value' strings", source)
    for i, item in enumerate(overrides):
        if not isinstance(item, str) or "=" not in item:
            raise _error(f"set[{i}]", item, "a 'field=value' string", source)
    overrides = tuple(overrides) + tuple(extra_set)

    grid = _parse_grid(data.get("grid"), source)
    random = _parse_random(data.get("random"), source)
    if not grid and random is None:
        raise ConfigError(
            f"grid: the sweep varies nothing (empty grid and no random); give `grid` values "
            f"(field: [v1, v2]) or `random` fields (from {source})",
            field="grid",
            source=source,
        )
    if random is not None:
        for key in random.fields:
            if key in grid:
                raise ConfigError(
                    f"random.fields.{key}: also in grid; sweep a field in one of them "
                    f"(from {source})",
                    field=f"random.fields.{key}",
                    source=source,
                )
    swept = list(grid) + (list(random.fields) if random else [])
    for key in swept:
        if key in ("seed", "component", "name"):
            where = f"grid.{key}" if key in grid else f"random.fields.{key}"
            allowed = "the `seeds` list" if key == "seed" else "a fixed value in `set`/base"
            raise ConfigError(
                f"{where}: `{key}` cannot be swept; use {allowed} (from {source})",
                field=where,
                source=source,
            )

    seeds = data.get("seeds")
    if seeds is not None:
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            seeds = [seeds]
        if (
            not isinstance(seeds, (list, tuple))
            or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        ):
            raise _error("seeds", seeds, "a non-empty list of ints", source)
        if len(set(seeds)) != len(seeds):
            raise _error("seeds", seeds, "a list of distinct ints", source)
        seeds = tuple(int(s) for s in seeds)

    max_group_size = data.get("max_group_size")
    if max_group_size is not None and (
        not isinstance(max_group_size, int) or isinstance(max_group_size, bool)
        or max_group_size < 1
    ):
        raise _error("max_group_size", max_group_size, "an int >= 1 or null", source)

    metric = data.get("metric")
    config_class = _config_class(command, base, overrides)
    if metric is None:
        metric = _default_metric(load_config(config_class, base, overrides))
    if not isinstance(metric, str):
        raise _error("metric", metric, "a metric name (str)", source)

    spec = SweepSpec(
        name=name,
        command=command,
        base=base,
        set=overrides,
        grid=grid,
        random=random,
        seeds=seeds,
        metric=metric,
        max_group_size=max_group_size,
        source=path,
    )
    expand_cells(spec)  # Every cell's config and the metric, validated before anything runs.
    return spec


def allowed_metrics(config: Any) -> tuple[str, ...]:
    """The metrics a cell with ``config`` reports (see the module docstring)."""
    if isinstance(config, TrainConfig):
        return TRAIN_METRICS
    if getattr(config, "component", "drift") == "objective" and config.optimizer == "metagrad":
        return METAGRAD_METRICS
    return ES_METRICS


def expand_cells(spec: SweepSpec) -> list[Cell]:
    """Every cell of ``spec`` with its built config: grid points (in file order, last
    field fastest) x random draws x seeds.

    Raises ``ConfigError`` naming the sweep field, its value and the config's complaint
    when a swept value is invalid, and naming the cell when values clash.
    """
    source = str(spec.source) if spec.source else "<sweep>"
    config_class = _config_class(spec.command, spec.base, spec.set)
    base = load_config(config_class, spec.base, spec.set)
    seen_envs: set[str] = set()
    _check_envs(base, "base/set", source, seen_envs)

    # Each swept value alone on the base, so an error names the sweep field it came from.
    checked = [(f"grid.{k}", k, v) for k, values in spec.grid.items() for v in values]
    if spec.random is not None:
        for k, dist in spec.random.fields.items():
            checked += [(f"random.fields.{k}", k, v) for v in dist.args]
    for where, key, value in checked:
        try:
            config = load_config(config_class, spec.base, [*spec.set, _override(key, value)])
        except ConfigError as e:
            raise ConfigError(
                f"{where}: value {_show(value)} rejected: {e} (sweep {source})",
                field=where,
                source=source,
            ) from None
        _check_envs(config, where, source, seen_envs)

    grid_points = [
        tuple(zip(spec.grid, values)) for values in itertools.product(*spec.grid.values())
    ]
    draws: list[tuple[tuple[str, Any], ...]] = [()]
    if spec.random is not None:
        rng = np.random.default_rng(spec.random.seed)
        draws = [
            tuple((k, dist.sample(rng)) for k, dist in spec.random.fields.items())
            for _ in range(spec.random.samples)
        ]
    points = [g + d for g in grid_points for d in draws]
    seeds: Sequence[int | None] = spec.seeds if spec.seeds is not None else (None,)
    combos = [(point, seed) for point in points for seed in seeds]

    width = max(3, len(str(len(combos) - 1)))
    cells = []
    for index, (point, seed) in enumerate(combos):
        overrides = tuple(spec.set) + tuple(_override(k, v) for k, v in point)
        if seed is not None:
            overrides += (f"seed={seed}",)
        label = ",".join(f"{k}={_fmt(v)}" for k, v in point)
        if seed is not None:
            label += f",seed={seed}"
        try:
            config = load_config(config_class, spec.base, overrides)
        except ConfigError as e:
            raise ConfigError(
                f"cell {index} ({label}): {e} (sweep {source})", field=e.field, source=source
            ) from None
        metrics = allowed_metrics(config)
        if spec.metric not in metrics:
            raise ConfigError(
                f"metric: {spec.metric!r} is not reported by cell {index} ({label}) of a "
                f"{_kind(config)} sweep; allowed: {', '.join(metrics)} (from {source})",
                field="metric",
                source=source,
            )
        cell_id = f"{index:0{width}d}_{_safe_id(label)}"
        cells.append(Cell(index, cell_id, point, seed, overrides, config))
    return cells


def group_cells(cells: Sequence[Cell], max_group_size: int | None = None) -> list[list[Cell]]:
    """Split cells into programs: train cells that share a compiled shape run together.

    Two train cells share a program when their configs are equal except for ``seed``,
    ``name`` and PPO's traced hyperparameters (``TRACED_PPO_FIELDS``; ``gamma`` counts
    as static when ``ppo.normalize_reward`` is on, since the reward normaliser closes
    over it). Groups keep the cells' order; meta-train cells are groups of one.
    """
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        if isinstance(cell.config, TrainConfig):
            key = _static_signature(cell.config)
        else:
            key = f"meta:{cell.cell_id}"
        groups.setdefault(key, []).append(cell)
    size = max_group_size or max(1, len(cells))
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


# --------------------------------------------------------------------------- running


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    on_cell: Callable[[Cell, dict[str, Any]], None] | None = None,
    on_group: Callable[[list[Cell]], None] | None = None,
) -> SweepResult:
    """Run the cells of ``spec`` not yet finished under ``<out_dir>/<name>/``, then write
    the summary.

    ``on_group(cells)`` is called before each program starts (a vmapped group of train
    cells, or one meta-train cell) and ``on_cell(cell, result)`` after each cell's
    ``result.json`` is written; an exception from either stops the sweep, as a kill
    would, and a later call resumes it. A cell folder holding another config (the
    sweep file changed under the same name) raises ``ConfigError`` instead of being
    reused.
    """
    sweep_dir = Path(out_dir) / spec.name
    cells_dir = sweep_dir / "cells"
    cells = expand_cells(spec)
    for cell in cells:
        _check_cell_dir(cell, cells_dir / cell.cell_id)
    cells_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        sweep_dir / "sweep.yaml",
        yaml.dump(spec.to_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=None),
    )

    results: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    pending: list[Cell] = []
    for cell in cells:
        result_path = cells_dir / cell.cell_id / "result.json"
        if result_path.is_file():
            results[cell.cell_id] = json.loads(result_path.read_text())
            skipped.append(cell.cell_id)
        else:
            pending.append(cell)

    groups: list[list[str]] = []
    for group in group_cells(pending, spec.max_group_size):
        groups.append([cell.cell_id for cell in group])
        if on_group is not None:
            on_group(group)
        for cell in group:
            cell_dir = cells_dir / cell.cell_id
            cell_dir.mkdir(parents=True, exist_ok=True)
            save_config(cell.config, cell_dir / "config.yaml")
        if isinstance(group[0].config, TrainConfig):
            finished = _run_train_group(group, cells_dir, spec.metric)
        else:
            finished = _run_meta_cells(group, cells_dir, spec.metric)
        for cell, result in finished:
            write_json(cells_dir / cell.cell_id / "result.json", result)
            results[cell.cell_id] = result
            if on_cell is not None:
                on_cell(cell, result)

    summary = write_summary(spec, cells, results, sweep_dir)
    return SweepResult(sweep_dir, cells, results, groups, skipped, summary)


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
        state, metrics = train(key, drift_params, hparams)
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


def _cell_record(cell: Cell, metric: str, samples: np.ndarray) -> dict[str, Any]:
    """The fields every ``result.json`` has: identity, config, and the metric's samples."""
    mean, sem = _mean_sem(samples)
    return {
        "cell_id": cell.cell_id,
        "index": cell.index,
        "values": {k: v for k, v in cell.values},
        "seed": cell.seed,
        "overrides": list(cell.overrides),
        "config": to_dict(cell.config),
        "metric": metric,
        "samples": np.asarray(samples, dtype=float).tolist(),
        "mean": mean,
        "sem": sem,
    }


# --------------------------------------------------------------------------- summary


def write_summary(
    spec: SweepSpec,
    cells: Sequence[Cell],
    results: Mapping[str, Mapping[str, Any]],
    sweep_dir: Path,
) -> dict[str, Any]:
    """Write ``summary.json``, ``summary.md`` and ``summary.png`` for the finished cells.

    Points (the swept values, over seeds) are ranked by the metric's mean, highest
    first; a point's mean and standard error pool the samples of all its seeds' cells
    (train: every agent's value; meta-train: one value per cell).
    """
    done = [cell for cell in cells if cell.cell_id in results]
    rows = []
    for cell in done:
        result = results[cell.cell_id]
        rows.append(
            {
                "cell_id": cell.cell_id,
                "values": {k: v for k, v in cell.values},
                "seed": cell.seed,
                "mean": result["mean"],
                "sem": result["sem"],
                "n": _finite_count(result["samples"]),
            }
        )
    points: dict[str, dict[str, Any]] = {}
    for cell in done:
        point = points.setdefault(
            _point_key(cell.values),
            {"values": {k: v for k, v in cell.values}, "cells": [], "samples": []},
        )
        point["cells"].append(cell.cell_id)
        point["samples"] += results[cell.cell_id]["samples"]
    ranked = []
    for point in points.values():
        mean, sem = _mean_sem(np.asarray(point["samples"], dtype=float))
        ranked.append({**point, "mean": mean, "sem": sem, "n": _finite_count(point["samples"])})
    ranked.sort(key=lambda p: -p["mean"] if p["mean"] is not None else math.inf)
    summary = {
        "name": spec.name,
        "command": spec.command,
        "base": None if spec.base is None else str(spec.base),
        "metric": spec.metric,
        "varied": list(spec.varied),
        "seeds": None if spec.seeds is None else list(spec.seeds),
        "cells_total": len(cells),
        "cells_finished": len(done),
        "best": ranked[0] if ranked else None,
        "points": ranked,
        "cells": rows,
    }
    write_json(sweep_dir / "summary.json", summary)
    write_text_atomic(sweep_dir / "summary.md", _markdown(spec, summary))
    _plot_summary(spec, summary, sweep_dir / "summary.png")
    return summary


def _markdown(spec: SweepSpec, summary: Mapping[str, Any]) -> str:
    varied = list(spec.varied)
    metric = spec.metric
    over = "agents" if spec.command == "train" else "seeds"
    lines = [
        f"# Sweep `{spec.name}`",
        "",
        f"- command: `{spec.command}`; base: `{summary['base'] or 'defaults'}`; "
        f"fixed: {', '.join(f'`{s}`' for s in spec.set) or 'none'}",
        f"- {summary['cells_finished']} of {summary['cells_total']} cells finished; "
        f"seeds: {summary['seeds'] if summary['seeds'] is not None else 'config seed'}",
        f"- metric: `{metric}`, mean ± standard error over {over}"
        + (" of every seed" if spec.command == "train" else ""),
        "",
        f"## Ranked by {metric}",
        "",
        "| rank | " + " | ".join(varied) + f" | {metric} | n |",
        "|---:|" + "---|" * len(varied) + "---:|---:|",
    ]
    for rank, point in enumerate(summary["points"], 1):
        values = [_fmt(point["values"].get(k)) for k in varied]
        lines.append(
            f"| {rank} | " + " | ".join(values)
            + f" | {_pm(point['mean'], point['sem'])} | {point['n']} |"
        )
    lines += [
        "",
        "## Cells",
        "",
        "| cell | " + " | ".join(varied) + f" | seed | {metric} | n |",
        "|---|" + "---|" * len(varied) + "---:|---:|---:|",
    ]
    for row in summary["cells"]:
        values = [_fmt(row["values"].get(k)) for k in varied]
        seed = "-" if row["seed"] is None else str(row["seed"])
        lines.append(
            f"| `{row['cell_id']}` | " + " | ".join(values)
            + f" | {seed} | {_pm(row['mean'], row['sem'])} | {row['n']} |"
        )
    return "\n".join(lines) + "\n"


def _plot_summary(spec: SweepSpec, summary: Mapping[str, Any], path: Path) -> None:
    """The metric per point with standard-error bars (and each cell's mean as a dot);
    against the swept value when a single numeric field varies."""
    from discovery.plots import pyplot

    plt = pyplot()
    points = summary["points"]
    varied = list(spec.varied)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    cell_means = {row["cell_id"]: row["mean"] for row in summary["cells"]}
    numeric = len(varied) == 1 and bool(points) and all(
        _is_number(p["values"][varied[0]]) for p in points
    )
    if numeric:
        key = varied[0]
        order = sorted(points, key=lambda p: p["values"][key])
        x = np.array([p["values"][key] for p in order], dtype=float)
        ax.errorbar(x, _nan([p["mean"] for p in order]), yerr=_nan([p["sem"] for p in order]),
                    marker="o", capsize=4, label="mean ± s.e.")
        for p in order:
            ys = _nan([cell_means[c] for c in p["cells"]])
            ax.scatter([p["values"][key]] * len(ys), ys, s=10, color="gray", alpha=0.6)
        log = (spec.random is not None and key in spec.random.fields
               and spec.random.fields[key].kind == "log_uniform")
        if log or (np.all(x > 0) and x.max() / x.min() >= 10):
            ax.set_xscale("log")
        ax.set_xlabel(key)
    else:
        x = np.arange(len(points))
        ax.errorbar(x, _nan([p["mean"] for p in points]), yerr=_nan([p["sem"] for p in points]),
                    fmt="o", capsize=4, label="mean ± s.e.")
        for i, p in enumerate(points):
            ys = _nan([cell_means[c] for c in p["cells"]])
            ax.scatter([i] * len(ys), ys, s=10, color="gray", alpha=0.6)
        labels = [_short_label(p["values"]) for p in points]
        ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("swept values (ranked)")
    ax.scatter([], [], s=10, color="gray", alpha=0.6, label="cell means (one per seed)")
    ax.set_ylabel(spec.metric)
    ax.set_title(f"sweep {spec.name}")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- internals


def _parse_grid(grid: Any, source: str) -> dict[str, tuple[Any, ...]]:
    if grid is None:
        return {}
    if not isinstance(grid, Mapping):
        raise _error("grid", grid, "a mapping of field -> list of values", source)
    out = {}
    for key, values in grid.items():
        if not isinstance(key, str) or not key:
            raise _error("grid", key, "dotted field names as keys", source)
        if not isinstance(values, (list, tuple)) or not values:
            raise _error(f"grid.{key}", values, "a non-empty list of values", source)
        out[key] = tuple(values)
    return out


def _parse_random(random: Any, source: str) -> RandomSpec | None:
    if random is None:
        return None
    if not isinstance(random, Mapping):
        raise _error("random", random, "a mapping with samples, seed, fields", source)
    for key in random:
        if key not in _RANDOM_KEYS:
            raise ConfigError(
                f"random.{key}: unknown key (given value {_show(random[key])}); allowed: "
                f"{', '.join(_RANDOM_KEYS)} (from {source})",
                field=f"random.{key}",
                source=source,
            )
    samples = random.get("samples")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise _error("random.samples", samples, "an int >= 1", source)
    seed = random.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise _error("random.seed", seed, "an int >= 0", source)
    fields = random.get("fields")
    if not isinstance(fields, Mapping) or not fields:
        raise _error("random.fields", fields, "a non-empty mapping of field -> distribution",
                     source)
    return RandomSpec(
        samples, seed, {str(k): _parse_distribution(f"random.fields.{k}", v, source)
                        for k, v in fields.items()}
    )


def _parse_distribution(where: str, spec: Any, source: str) -> Distribution:
    allowed = "{uniform: [low, high]}, {log_uniform: [low, high]} or {choice: [v1, v2, ...]}"
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise _error(where, spec, allowed, source)
    (kind, args), = spec.items()
    if kind not in DISTRIBUTIONS:
        raise _error(where, spec, f"one of {allowed} (unknown distribution {kind!r})", source)
    if kind == "choice":
        if not isinstance(args, (list, tuple)) or not args:
            raise _error(f"{where}.choice", args, "a non-empty list of values", source)
        return Distribution(kind, tuple(args))
    numbers = (
        isinstance(args, (list, tuple))
        and len(args) == 2
        and all(_is_number(a) and math.isfinite(a) for a in args)
    )
    if not numbers or not args[0] <= args[1]:
        raise _error(f"{where}.{kind}", args, "[low, high], two finite numbers, low <= high",
                     source)
    if kind == "log_uniform" and not args[0] > 0:
        raise _error(f"{where}.{kind}", args, "[low, high] with 0 < low <= high", source)
    return Distribution(kind, (float(args[0]), float(args[1])))


def _resolve_base(base: Any, sweep_path: Path, source: str) -> Path:
    if not isinstance(base, str) or not base:
        raise _error("base", base, "a config file path (str)", source)
    candidates = [sweep_path.parent / base, Path(base)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise ConfigError(
        f"base: config file not found: {base!r} (looked for {tried}; a relative path is "
        f"taken from the sweep file's folder, then the current directory) (from {source})",
        field="base",
        source=source,
    )


def _config_class(command: str, base: Path | None, overrides: Sequence[str]) -> type:
    if command == "train":
        return TrainConfig
    from discovery.components import COMPONENTS

    return COMPONENTS[config_component(base, overrides)].config_class


def _default_metric(config: Any) -> str:
    return allowed_metrics(config)[0]


def _kind(config: Any) -> str:
    if isinstance(config, TrainConfig):
        return "train"
    component = getattr(config, "component", "drift")
    return f"meta-train ({component}, {getattr(config, 'optimizer', 'es')})"


def _check_envs(config: Any, where: str, source: str, seen: set[str]) -> None:
    """Fail fast, naming the field, on environment names ``envs.make`` rejects (names
    in ``seen`` were checked already; checked names are added to it)."""
    if isinstance(config, TrainConfig):
        names = [("env", config.env)]
    elif hasattr(config, "task"):
        names = [(f"task.envs[{i}]", n) for i, n in enumerate(config.task.envs)]
    elif hasattr(config, "levels"):
        names = [(f"levels.train[{i}]", n) for i, n in enumerate(config.levels.train)]
    else:
        names = []
    for field_name, name in names:
        if name in seen:
            continue
        try:
            env_registry.make(name)
        except ValueError as error:
            raise ConfigError(
                f"{where}: {field_name}: {error} (sweep {source})", field=field_name,
                source=source,
            ) from None
        seen.add(name)


def _static_signature(config: TrainConfig) -> str:
    """Everything about a train config that fixes its compiled program."""
    data = to_dict(config)
    del data["name"], data["seed"]
    for name in TRACED_PPO_FIELDS:
        if name == "gamma" and config.ppo.normalize_reward:
            continue
        del data["ppo"][name]
    return json.dumps(data, sort_keys=True)


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


def _override(key: str, value: Any) -> str:
    """``key=value`` with the value as JSON, which the config loader reads as YAML."""
    return f"{key}={json.dumps(value)}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)


def _safe_id(label: str) -> str:
    """A filesystem-safe folder name: odd characters become ``_``; a long label is cut
    and gets a hash of the whole, so distinct labels stay distinct."""
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "_", label) or "cell"
    if len(safe) > _MAX_ID_LENGTH:
        digest = hashlib.sha1(label.encode()).hexdigest()[:10]
        safe = f"{safe[: _MAX_ID_LENGTH - 11]}~{digest}"
    return safe


def _label(cell: Cell) -> str:
    label = ", ".join(f"{k}={_fmt(v)}" for k, v in cell.values)
    return label + (f", seed={cell.seed}" if cell.seed is not None else "")


def _short_label(values: Mapping[str, Any]) -> str:
    return ",".join(f"{k.rsplit('.', 1)[-1]}={_fmt(v)}" for k, v in values.items())


def _point_key(values: tuple[tuple[str, Any], ...]) -> str:
    return json.dumps([[k, v] for k, v in values])


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _nanmean(x: Any, axis: int | None = None) -> Any:
    """``np.nanmean`` without the all-NaN warning (all-NaN gives NaN)."""
    x = np.asarray(x, dtype=float)
    count = np.sum(np.isfinite(x), axis=axis)
    total = np.nansum(np.where(np.isfinite(x), x, np.nan), axis=axis)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return float(mean) if axis is None else mean


def _mean_sem(samples: np.ndarray) -> tuple[float | None, float | None]:
    """Mean and standard error (``std(ddof=1) / sqrt(n)``) of the finite samples."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None, None
    sem = float(np.std(x, ddof=1) / np.sqrt(x.size)) if x.size > 1 else None
    return float(np.mean(x)), sem


def _finite_count(samples: Sequence[float | None]) -> int:
    return int(np.sum(np.isfinite(_nan(samples))))


def _pm(mean: float | None, sem: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.4g}" if sem is None else f"{mean:.4g} ± {sem:.2g}"


def _nan(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _error(where: str, value: Any, allowed: str, source: str) -> ConfigError:
    return ConfigError(
        f"{where or '<top level>'}: expected {allowed}, got {_show(value)} (from {source})",
        field=where,
        source=source,
    )
