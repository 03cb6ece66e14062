"""Held-out evaluation of a discovered drift (``discover evaluate`` on a drift entry).

PPO agents trained with the learned drift, next to PPO-clip and DPO (Lu et al., 2022),
all methods' seeds on one env as one vmapped program (a drift choice over the three),
at each horizon. Normalised so that random play is 0 and PPO-clip 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from discovery import envs as env_registry
from discovery import preflight
from discovery.agents.ppo import PPOConfig
from discovery.config import apply_overrides, from_dict
from discovery.devices import run_split
from discovery.drift import make_drift, make_drift_choice
from discovery.evaluate import (
    EvaluateConfig,
    HeldOut,
    MethodCurves,
    normaliser,
    recorded_config,
)
from discovery.tasks import DriftTaskConfig, make_agent_score, random_policy_return

DRIFT_METHODS = ("learned", "ppo_clip", "dpo")


def _drift_choice(entry: Any) -> tuple[Any, tuple[Any, ...]]:
    """The learned drift and the hand-designed ones, in ``DRIFT_METHODS`` order, as one
    drift choice (``make_drift_choice``), and each one's params."""
    ppo, dpo = make_drift("ppo"), make_drift("dpo")
    choice = make_drift_choice([entry.component(), ppo, dpo])
    return choice, (entry.params, ppo.init(jax.random.key(0)), dpo.init(jax.random.key(0)))


def _setting(
    entry: Any, config: EvaluateConfig, overrides: Sequence[str]
) -> tuple[dict[str, Any], tuple[str, ...], PPOConfig]:
    """``(recorded task, env names, inner PPO config with overrides)`` of an evaluation."""
    task = recorded_config(entry).get("task", {})
    env_names = config.envs or tuple(task.get("envs", ("CartPole-v1",)))
    ppo = from_dict(PPOConfig, task.get("ppo", {}), source="the component's meta-training config")
    return task, env_names, apply_overrides(ppo, [o.removeprefix("ppo.") for o in overrides])


def _tuned_for(task: dict[str, Any], env_name: str, ppo: PPOConfig) -> PPOConfig:
    """``ppo`` with the Adam lr / b2 the meta-training task tuned for ``env_name``
    (``task.env_lr`` / ``env_adam_b2``, e.g. per MinAtar game), if it did."""
    names = list(task.get("envs", ()))
    if env_name not in names:
        return ppo
    index = names.index(env_name)
    tuned = {field: task[key][index]
             for key, field in (("env_lr", "lr"), ("env_adam_b2", "adam_b2")) if task.get(key)}
    return replace(ppo, **tuned)


def check_evaluation(entry: Any, config: EvaluateConfig, overrides: Sequence[str]) -> None:
    """Before any compute: the env names :func:`held_out` will train on, and the
    inner PPO config with ``overrides`` and its memory, exactly as it will build them."""
    _, names, ppo = _setting(entry, config, overrides)
    where = "--envs" if config.envs else "envs (the component's meta-training envs)"
    for name in names:
        preflight.check_env(name, where)
    # The learned drift, PPO-clip and DPO train together, in one program per env.
    agents = config.seeds * len(DRIFT_METHODS)
    preflight.ppo_memory(agents, ppo, names, f"--seeds {config.seeds} x {len(DRIFT_METHODS)} "
                         "drifts", "--seeds, ppo.num_envs or ppo.num_steps", together=False)


def held_out(entry: Any, config: EvaluateConfig, overrides: Sequence[str]) -> HeldOut:
    """Per horizon, env and method: PPO agents trained with that drift."""
    task, env_names, ppo = _setting(entry, config, overrides)
    scoring = DriftTaskConfig(score=task.get("score", "evaluation"),
                              final_fraction=config.final_fraction)
    choice, members = _drift_choice(entry)
    every_method = {"index": jnp.arange(len(DRIFT_METHODS), dtype=jnp.int32),
                    "members": members}
    results: dict[float, dict[str, dict[str, MethodCurves]]] = {}
    env_keys = jax.random.split(jax.random.key(config.seed), len(env_names))
    for horizon in config.horizons:
        steps = max(ppo.steps_per_update, int(round(ppo.total_timesteps * horizon)))
        ppo_h = replace(ppo, total_timesteps=steps)
        results[horizon] = {}
        for name, key in zip(env_names, env_keys):
            env, env_params = env_registry.make(name)
            keys = jax.random.split(key, config.seeds)
            ppo_env = _tuned_for(task, name, ppo_h)
            # Every method's seeds in one program: [methods, seeds] agents, paired keys.
            score = make_agent_score(scoring, ppo_env, env, env_params, choice)
            over_seeds = jax.vmap(score, in_axes=(0, None, None))
            over_methods = jax.vmap(over_seeds, in_axes=(None, {"index": 0, "members": None},
                                                         None))
            # Seeds split over the devices (the methods' axis comes first in the outputs).
            final, metrics = run_split(over_methods, keys, every_method,
                                       ppo_env.hyperparams(), what="seeds", out_axes=1)
            per_method = {
                method: MethodCurves(
                    np.asarray(metrics["latest_return"][row], dtype=np.float64),
                    np.asarray(final[row], dtype=np.float64),
                    ppo_h.steps_per_update,
                )
                for row, method in enumerate(DRIFT_METHODS)
            }
            results[horizon][name] = per_method
    keys = jax.random.split(jax.random.key(config.seed + 1), len(env_names))
    random = {n: random_policy_return(n, k) for n, k in zip(env_names, keys)}
    normalisers = {
        horizon: {
            name: normaliser(random[name], float(np.nanmean(per_env[name]["ppo_clip"].final)))
            for name in env_names
        }
        for horizon, per_env in results.items()
    }
    return HeldOut(
        results=results,
        env_names=list(env_names),
        training_length=float(ppo.total_timesteps),
        horizon_unit="env steps",
        metric=f"final {scoring.score} return",
        normalisation="random 0, PPO-clip 1",
        normalisers=normalisers,
    )


