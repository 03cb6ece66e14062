"""The sweep file's spec: the spec, distribution and cell types, the metric names, and
the parsers that validate each key (the format is in :mod:`discovery.sweep`'s docstring)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from discovery.config import ConfigError
from discovery.train import TrainConfig

COMMANDS = ("train", "meta-train")
DISTRIBUTIONS = ("uniform", "log_uniform", "choice")

TRAIN_METRICS = ("final_return", "mean_return")
ES_METRICS = ("fitness_mean", "fitness_max", "best_fitness")
METAGRAD_METRICS = ("episode_return",)

_SPEC_KEYS = (
    "name", "command", "base", "set", "grid", "random", "seeds", "metric", "max_group_size"
)
_RANDOM_KEYS = ("samples", "seed", "fields")
_SIGNIFICANT = 6  # digits kept of a randomly drawn float (readable ids, exact overrides)

#: The most cells a sweep runs unless the user confirms more (``discover sweep
#: --allow-many-cells``, ``load_sweep(..., max_cells=None)``): every cell is a training
#: run, and each is built and checked before the first starts, so a typo of a
#: thousand-fold grid would otherwise sit for minutes, then run for days.
MAX_CELLS = 1000


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


def cell_count(grid: Mapping[str, Any], random: RandomSpec | None,
               seeds: tuple[int, ...] | None) -> tuple[int, str]:
    """How many cells a sweep has, and how that number comes about (``"3 x 2 grid
    values x 4 random draws x 3 seeds"``), from its parsed keys, before any cell is
    built."""
    sizes = [len(values) for values in grid.values()]
    draws = random.samples if random is not None else 1
    n_seeds = len(seeds) if seeds is not None else 1
    parts = []
    if sizes:
        parts.append(" x ".join(map(str, sizes)) + " grid values")
    if random is not None:
        parts.append(f"{draws} random draw{'s' * (draws != 1)}")
    parts.append(f"{n_seeds} seed{'s' * (n_seeds != 1)}")
    return math.prod(sizes) * draws * n_seeds, " x ".join(parts)


def allowed_metrics(config: Any) -> tuple[str, ...]:
    """The metrics a cell with ``config`` reports (see the module docstring)."""
    if isinstance(config, TrainConfig):
        return TRAIN_METRICS
    if getattr(config, "optimizer", "es") == "metagrad":
        return METAGRAD_METRICS
    return ES_METRICS


def _default_metric(config: Any) -> str:
    return allowed_metrics(config)[0]


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


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)


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
