"""One PPO speed measurement, shared by the benchmarks: PPO-clip through ``make_train``,
seeds under one ``jit(vmap)``, compile timed apart from the run. It uses only the API
that old commits share too (``benchmarks/ppo_vs_commit.py`` runs it against them)."""

from __future__ import annotations

import time
from typing import Any

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)

# isort: split
import jax
import numpy as np

from discovery.agents.ppo import PPOConfig, make_train
from discovery.drift import make_drift


def measure_ppo(env_name: str, fields: dict[str, Any], seeds: int) -> dict[str, float]:
    """``compile_s``, ``run_s``, ``steps_per_s`` over all seeds, and ``final_return``
    (the seeds' mean episode return over the last 10% of updates)."""
    env, env_params = envs.make(env_name)
    config = PPOConfig(**fields)
    drift = make_drift("ppo")
    train = make_train(config, env, env_params, drift)
    params = drift.init(jax.random.key(0))
    return time_seeds(lambda key: train(key, params)[1]["episode_return"], seeds,
                      config.num_updates * config.steps_per_update)


def time_seeds(train: Any, seeds: int, steps_per_seed: int) -> dict[str, float]:
    """``train(key) -> episode returns [updates]`` over ``seeds`` keys in one
    ``jit(vmap)``, compile timed apart from the run: the figures of :func:`measure_ppo`."""
    run = jax.jit(jax.vmap(train))
    keys = jax.random.split(jax.random.key(1), seeds)
    tic = time.perf_counter()
    compiled = run.lower(keys).compile()
    compile_s = time.perf_counter() - tic
    tic = time.perf_counter()
    returns = np.asarray(jax.block_until_ready(compiled(keys)))
    run_s = time.perf_counter() - tic
    last = returns[:, -max(1, returns.shape[1] // 10):]
    return {"compile_s": compile_s, "run_s": run_s,
            "steps_per_s": seeds * steps_per_seed / run_s,
            "final_return": float(np.nanmean(last))}
