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

# This module reads the file and runs the sweep from the pieces: sweep_spec (the file's
# types and parsers), sweep_cells (cells and which share a program), sweep_run (running
# one program) and sweep_report (each cell's record and the summary).

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from discovery.config import (
    ConfigError,
    _Dumper,
    _Loader,
    load_config,
    read_config_text,
    read_json_object,
    save_config,
)
from discovery.files import lock_folder, write_json, write_text_atomic
from discovery.sweep_cells import (
    TRACED_PPO_FIELDS,
    _config_class,
    expand_cells,
    group_cells,
)
from discovery.sweep_report import write_summary
from discovery.sweep_run import _check_cell_dir, _run_meta_cells, _run_train_group
from discovery.sweep_spec import (
    _SPEC_KEYS,
    COMMANDS,
    MAX_CELLS,
    Cell,
    Distribution,
    RandomSpec,
    SweepSpec,
    _default_metric,
    _error,
    _parse_grid,
    _parse_random,
    _resolve_base,
    _show,
    allowed_metrics,
    cell_count,
)
from discovery.train import TrainConfig

__all__ = [
    "COMMANDS",
    "MAX_CELLS",
    "Cell",
    "Distribution",
    "RandomSpec",
    "SweepResult",
    "SweepSpec",
    "TRACED_PPO_FIELDS",
    "allowed_metrics",
    "cell_count",
    "expand_cells",
    "group_cells",
    "load_sweep",
    "run_sweep",
    "write_summary",
]


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


def load_sweep(
    path: str | Path, extra_set: Sequence[str] = (), max_cells: int | None = MAX_CELLS
) -> SweepSpec:
    """Read and validate a sweep file; ``extra_set`` overrides are appended to its ``set``.

    Raises ``ConfigError`` naming the field, the value and what is allowed, for the
    sweep's own keys and, through :func:`expand_cells`, for every cell's config; and,
    before any cell is built, for a sweep of more than ``max_cells`` cells (``None``:
    no limit).
    """
    path = Path(path)
    source = str(path)
    if path.is_dir():
        raise ConfigError(f"sweep: {path} is a folder; allowed: a YAML sweep file (e.g. "
                          "configs/sweep_ppo_cartpole.yaml)", field="sweep", source=source)
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path}", source=source)
    try:
        data = yaml.load(read_config_text(path), Loader=_Loader)
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

    count, product = cell_count(grid, random, seeds)
    if max_cells is not None and count > max_cells:
        raise ConfigError(
            f"grid: the sweep has {count:,} cells ({product}); allowed: at most "
            f"{max_cells:,} cells, or more when asked for (discover sweep "
            f"--allow-many-cells; load_sweep(..., max_cells=None)) (from {source})",
            field="grid", source=source,
        )

    max_group_size = data.get("max_group_size")
    if max_group_size is not None and (
        not isinstance(max_group_size, int) or isinstance(max_group_size, bool)
        or max_group_size < 1
    ):
        raise _error("max_group_size", max_group_size, "an int >= 1 or null", source)

    metric = data.get("metric")
    config_class = _config_class(command, base, overrides)
    base_config = load_config(config_class, base, overrides, allow_empty=False)
    if metric is None:
        metric = _default_metric(base_config)
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
    reused. The sweep folder is held by this call alone (an exclusive OS lock, taken
    before its cells are checked): a second sweep into it at the same time raises
    :class:`discovery.files.FolderInUseError`.
    """
    sweep_dir = Path(out_dir) / spec.name
    cells = expand_cells(spec)
    with lock_folder(sweep_dir, "sweep folder", "give the sweep another name or out dir"):
        return _run_locked(spec, sweep_dir, cells, on_cell, on_group)


def _run_locked(
    spec: SweepSpec,
    sweep_dir: Path,
    cells: list[Cell],
    on_cell: Callable[[Cell, dict[str, Any]], None] | None,
    on_group: Callable[[list[Cell]], None] | None,
) -> SweepResult:
    """:func:`run_sweep`'s work, once this process holds the sweep folder."""
    cells_dir = sweep_dir / "cells"
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
            results[cell.cell_id] = _read_result(result_path)
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


def _read_result(path: Path) -> dict[str, Any]:
    """A finished cell's ``result.json``, read strictly (:func:`read_json_object`)."""
    return read_json_object(path, "result", "the result.json a sweep wrote; delete it to "
                            "rerun the cell")
