"""`discover train`: PPO (with any registered drift) on one environment, seeds vmapped.

Plain values in, files out: ``run_train(config, run_dir)`` writes the resolved config,
``metrics.jsonl`` (one line per update, mean and per-seed returns) and a learning-curve
plot into ``run_dir``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np

import envs as env_registry
from agents.ppo import PPOConfig, make_train
from discovery.drift import make_drift


@dataclass(frozen=True)
class TrainConfig:
    """One PPO training run: an environment, a drift, several seeds in one jitted call."""

    name: str = ""
    env: str = "CartPole-v1"
    drift: Literal["ppo", "dpo", "lpo", "ta_lpo"] = "ppo"
    seeds: int = field(default=4, metadata={"min": 1})
    seed: int = 0
    ppo: PPOConfig = field(default_factory=PPOConfig)

    def run_name(self) -> str:
        return self.name or f"{self.env}-{self.drift}-s{self.seed}"


@dataclass
class TrainResult:
    """Per-update metrics ``[seeds, updates]`` and the env steps at each update."""

    metrics: dict[str, np.ndarray]
    env_steps: np.ndarray

    def final_returns(self, fraction: float = 0.05) -> np.ndarray:
        """Per-seed mean episode return over the last ``fraction`` of updates."""
        returns = self.metrics["episode_return"]
        last = max(1, int(round(returns.shape[-1] * fraction)))
        return np.nanmean(returns[:, -last:], axis=-1)


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
    _, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, drift_params)
    metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
    steps = np.arange(1, config.ppo.num_updates + 1) * config.ppo.steps_per_update
    return TrainResult(metrics, steps)


def write_train_metrics(result: TrainResult, path: Path) -> None:
    """One JSON line per update: env steps, mean/per-seed returns, mean losses."""
    returns = result.metrics["episode_return"]
    with path.open("w") as f:
        for update, steps in enumerate(result.env_steps):
            per_seed = returns[:, update]
            record: dict[str, Any] = {
                "update": update,
                "env_steps": int(steps),
                "episode_return": _finite_or_none(np.nanmean(per_seed))
                if np.isfinite(per_seed).any()
                else None,
                "episode_return_per_seed": [_finite_or_none(x) for x in per_seed],
            }
            for name in ("actor_loss", "value_loss", "entropy", "drift", "approx_kl"):
                record[name] = float(np.mean(result.metrics[name][:, update]))
            f.write(json.dumps(record) + "\n")


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
