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
from discovery.agents.ppo import PPOConfig, diverged, make_train
from discovery.drift import make_drift
from discovery.files import dumps, write_text_atomic


@dataclass(frozen=True)
class TrainConfig:
    """One PPO training run: an environment, a drift, several seeds in one jitted call."""

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


def train_seeds(
    config: TrainConfig,
    drift_params: Any = None,
    on_update: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``config.seeds`` agents in one ``jit(vmap(train))`` call.

    ``on_update(n)`` is called on the host as update ``n`` finishes (for progress bars).
    """
    env, env_params = env_registry.make(config.env)
    drift = make_drift(config.drift)
    if drift_params is None:
        drift_params = drift.init(jax.random.key(config.seed))
    callback = None if on_update is None else (lambda n: on_update(int(n)))
    train = make_train(config.ppo, env, env_params, drift, on_update=callback)
    keys = jax.random.split(jax.random.key(config.seed), config.seeds)

    def train_one(key, drift_params):
        state, metrics = train(key, drift_params)
        return metrics, diverged(state, metrics)

    metrics, failed = jax.jit(jax.vmap(train_one, in_axes=(0, None)))(keys, drift_params)
    metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
    steps = np.arange(1, config.ppo.num_updates + 1) * config.ppo.steps_per_update
    return TrainResult(metrics, steps, np.asarray(failed))


def write_train_metrics(result: TrainResult, path: Path) -> None:
    """One strict-JSON line per update: env steps, returns (mean over the seeds that
    have a value, how many, and per seed; ``null`` where missing), mean losses.

    ``episode_return`` is over episodes that ended in the update (missing where none
    did); ``latest_return`` exists at every update (each env's last finished episode).
    """
    lines = []
    for update, steps in enumerate(result.env_steps):
        record: dict[str, Any] = {"update": update, "env_steps": int(steps)}
        for name in ("episode_return", "latest_return"):
            per_seed = result.metrics[name][:, update]
            finite = np.isfinite(per_seed)
            record[name] = float(per_seed[finite].mean()) if finite.any() else None
            record[f"{name}_seeds"] = int(finite.sum())
            record[f"{name}_per_seed"] = per_seed
        for name in ("actor_loss", "value_loss", "entropy", "drift", "approx_kl"):
            record[name] = np.mean(result.metrics[name][:, update])
        lines.append(dumps(record) + "\n")
    write_text_atomic(path, "".join(lines))
