"""`discover train`: PPO (with any registered drift) on one environment, seeds vmapped.

Plain values in, files out: ``run_train(config, run_dir)`` writes the resolved config,
``metrics.jsonl`` (one line per update, mean and per-seed returns) and a learning-curve
plot into ``run_dir``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np

from discovery import envs as env_registry
from discovery.agents.ppo import PPOConfig, diverged, make_train, make_train_stages
from discovery.devices import split_count, split_over
from discovery.drift import make_drift
from discovery.files import dumps, write_text_atomic


@dataclass(frozen=True)
class TrainConfig:
    """One PPO training run: an environment, a drift, several seeds in one jitted call.

    Attributes:
      name: run name (default ``ENV-DRIFT-sSEED``); results go to ``<runs_dir>/<name>/``.
      env: environment name (``discover envs``).
      drift: ``ppo`` (PPO-clip), ``dpo`` (Lu et al., 2022), ``lpo`` or ``ta_lpo`` (a
        learned drift at its initial parameters; use a zoo entry for a discovered one).
      seeds: agents trained side by side in one compiled call.
      seed: base seed; same config and seed give the same numbers.
      ppo: the PPO settings.
    """

    name: str = ""
    env: str = "CartPole-v1"
    drift: Literal["ppo", "dpo", "lpo", "ta_lpo"] = "ppo"
    seeds: int = field(default=4, metadata={"min": 1, "max": 65536})
    seed: int = 0
    ppo: PPOConfig = field(default_factory=PPOConfig)

    def run_name(self) -> str:
        return self.name or f"{self.env}-{self.drift}-s{self.seed}"


@dataclass
class TrainResult:
    """Per-update metrics ``[seeds, updates]``, the env steps at each update, and which
    seeds diverged (``[seeds]``, a non-finite loss or params)."""

    metrics: dict[str, np.ndarray]
    env_steps: np.ndarray
    diverged: np.ndarray

    def final_returns(self, fraction: float = 0.05) -> np.ndarray:
        """Per-seed training return over the last ``fraction`` of updates (each env's
        last finished episode; see ``make_train``'s ``latest_return``); NaN exactly
        where the seed diverged."""
        returns = self.metrics["latest_return"]
        last = max(1, int(round(returns.shape[-1] * fraction)))
        return np.where(self.diverged, np.nan, returns[:, -last:].mean(axis=-1))


#: At most this many host calls per run when progress is reported (``on_update``).
MAX_PROGRESS_CHUNKS = 1000


def progress_chunk(num_updates: int, max_chunks: int = MAX_PROGRESS_CHUNKS) -> int:
    """Updates per chunk when progress is reported, for at most ``max_chunks`` chunks: a
    divisor of ``num_updates`` when one is at most twice the fewest updates per chunk
    (every chunk then runs the same compiled program), else that fewest, with a shorter
    last chunk (a second program), so that a prime number of updates reports too."""
    fewest = -(-num_updates // max_chunks)
    divisor = next(d for d in range(fewest, num_updates + 1) if num_updates % d == 0)
    return divisor if divisor <= 2 * fewest else fewest


def train_seeds(
    config: TrainConfig,
    drift_params: Any = None,
    on_update: Callable[[int], None] | None = None,
    on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None = None,
) -> TrainResult:
    """Train ``config.seeds`` agents, vmapped over seeds, in one jitted program (per
    device: the seeds are split over the devices, :mod:`discovery.devices`).

    With ``on_update(n)`` (for progress bars) the updates run in equal chunks of one
    compiled program, the last one maybe shorter (:func:`progress_chunk`, from
    :func:`make_train_stages`), and ``on_update`` is called on the host after each
    chunk with the last update done (0-based): the same experience and returns as
    without, the loss means to float rounding. Programs without host callbacks are what
    JAX's persistent cache keeps, so a second identical run skips compiling.
    ``on_chunk(first, metrics)`` (which also runs in chunks) gets each chunk's metrics
    ``[seeds, updates in the chunk]`` as they arrive, its first update 0-based: a
    tracker logs them as training goes (:func:`update_records`).
    """
    env, env_params = env_registry.make(config.env)
    drift = make_drift(config.drift)
    if drift_params is None:
        drift_params = drift.init(jax.random.key(config.seed))
    keys = jax.random.split(jax.random.key(config.seed), config.seeds)
    devices = jax.local_devices()[:split_count(config.seeds, "seeds")]
    if on_update is None and on_chunk is None:
        train = make_train(config.ppo, env, env_params, drift)

        def train_one(key, drift_params):
            state, metrics = train(key, drift_params)
            return metrics, diverged(state, metrics)

        program = split_over(jax.vmap(train_one, in_axes=(0, None)), devices, num_shared=1)
        metrics, failed = program(keys, drift_params)
    else:
        start, advance = make_train_stages(config.ppo, env, env_params, drift)
        state, update_keys = split_over(jax.vmap(start), devices, num_shared=0)(keys)
        over_seeds = jax.vmap(advance, in_axes=(0, 0, None))
        step = split_over(lambda batch, params: over_seeds(*batch, params), devices,
                          num_shared=1)
        num_updates = config.ppo.num_updates
        chunk = progress_chunk(num_updates, MAX_PROGRESS_CHUNKS)
        parts = []
        for first in range(0, num_updates, chunk):
            state, part = step((state, update_keys[:, first:first + chunk]), drift_params)
            parts.append(part)
            if on_chunk is not None:
                on_chunk(first, {k: np.asarray(v) for k, v in jax.device_get(part).items()})
            if on_update is not None:
                on_update(min(first + chunk, num_updates) - 1)
        metrics = jax.tree.map(lambda *chunks: np.concatenate(chunks, axis=1), *parts)
        failed = jax.jit(jax.vmap(diverged))(state, metrics)
    metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
    steps = np.arange(1, config.ppo.num_updates + 1) * config.ppo.steps_per_update
    return TrainResult(metrics, steps, np.asarray(failed))


def update_records(metrics: dict[str, np.ndarray], first_update: int,
                   steps_per_update: int) -> list[dict[str, Any]]:
    """One record per update of ``metrics`` ``[seeds, updates]`` (its first update is
    ``first_update``): env steps, returns (mean over the seeds that have a value, how
    many, and per seed; ``None`` where missing), mean losses.

    ``episode_return`` is over episodes that ended in the update (missing where none
    did); ``latest_return`` exists at every update (each env's last finished episode).
    """
    records = []
    for column in range(metrics["latest_return"].shape[1]):
        update = first_update + column
        record: dict[str, Any] = {"update": update,
                                  "env_steps": (update + 1) * steps_per_update}
        for name in ("episode_return", "latest_return"):
            per_seed = metrics[name][:, column]
            finite = np.isfinite(per_seed)
            record[name] = float(per_seed[finite].mean()) if finite.any() else None
            record[f"{name}_seeds"] = int(finite.sum())
            record[f"{name}_per_seed"] = per_seed
        for name in ("actor_loss", "value_loss", "entropy", "drift", "approx_kl"):
            record[name] = np.mean(metrics[name][:, column])
        records.append(record)
    return records


def write_train_metrics(result: TrainResult, path: Path) -> None:
    """One strict-JSON line per update (:func:`update_records`)."""
    steps_per_update = int(result.env_steps[0]) if len(result.env_steps) else 0
    records = update_records(result.metrics, 0, steps_per_update)
    write_text_atomic(path, "".join(dumps(record) + "\n" for record in records))
