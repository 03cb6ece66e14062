"""From a sweep spec to its cells (each point and seed with its built, checked config),
and which train cells share one compiled program."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from discovery import envs as env_registry
from discovery.agents.ppo import PPOHyperparams
from discovery.config import ConfigError, config_component, load_config, to_dict
from discovery.sweep_spec import Cell, SweepSpec, _fmt, _show, allowed_metrics
from discovery.train import TrainConfig

#: PPO fields that ``make_train``'s ``train`` takes traced (``PPOHyperparams``).
TRACED_PPO_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PPOHyperparams))

_MAX_ID_LENGTH = 96


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


def _config_class(command: str, base: Path | None, overrides: Sequence[str]) -> type:
    if command == "train":
        return TrainConfig
    from discovery.components import COMPONENTS

    return COMPONENTS[config_component(base, overrides)].config_class


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


def _override(key: str, value: Any) -> str:
    """``key=value`` with the value as JSON, which the config loader reads as YAML."""
    return f"{key}={json.dumps(value)}"


def _safe_id(label: str) -> str:
    """A filesystem-safe folder name: odd characters become ``_``; a long label is cut
    and gets a hash of the whole, so distinct labels stay distinct."""
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "_", label) or "cell"
    if len(safe) > _MAX_ID_LENGTH:
        digest = hashlib.sha1(label.encode()).hexdigest()[:10]
        safe = f"{safe[: _MAX_ID_LENGTH - 11]}~{digest}"
    return safe
