"""Held-out evaluation of a discovered objective (``discover evaluate`` on an objective
entry).

LPG agents trained with the learned objective, next to A2C with the same rollout shape
and network (GROOVE, Jackson et al., 2023), on gridworld layouts, at each horizon (a
multiple of the agents' lifetime). Scored by the final reward per step, normalised by
A2C's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from discovery import envs as env_registry
from discovery import preflight
from discovery.agents.a2c import make_a2c
from discovery.agents.lpg_agent import LPGAgentConfig, make_lpg_agent
from discovery.config import apply_overrides, from_dict
from discovery.devices import run_split
from discovery.envs.registry import GRIDWORLD_PREFIX
from discovery.evaluate import (
    EvaluateConfig,
    HeldOut,
    MethodCurves,
    final_mean,
    normaliser,
    recorded_config,
)
from discovery.objective_training import a2c_like


def _layouts(entry: Any, config: EvaluateConfig) -> list[str]:
    """The gridworld layouts of an evaluation: ``--envs``, else the run's held-out ones."""
    recorded = recorded_config(entry)
    held_out = recorded.get("levels", {}).get("held_out", ["dense", "sparse", "long"])
    return [name.removeprefix(GRIDWORLD_PREFIX) for name in (config.envs or held_out)]


def check_evaluation(entry: Any, config: EvaluateConfig, overrides: Sequence[str]) -> None:
    """Before any compute: the layouts :func:`held_out` will train on."""
    where = "--envs" if config.envs else "levels.held_out (the component's meta-training config)"
    for layout in _layouts(entry, config):
        preflight.check_env(GRIDWORLD_PREFIX + layout, where)


def held_out(
    entry: Any, config: EvaluateConfig, overrides: Sequence[str]
) -> HeldOut:
    """Per horizon, layout and method: LPG agents (the objective) and A2C."""
    recorded = recorded_config(entry)
    agent_config = from_dict(
        LPGAgentConfig, recorded.get("agent", {}), source="the component's meta-training config"
    )
    agent_config = apply_overrides(agent_config, [o.removeprefix("agent.") for o in overrides])
    lifetime = int(recorded.get("eval_lifetime", 250))
    layouts = _layouts(entry, config)
    objective = entry.component()
    results: dict[float, dict[str, dict[str, MethodCurves]]] = {}
    env_keys = jax.random.split(jax.random.key(config.seed), len(layouts))
    for horizon in config.horizons:
        updates = max(1, int(round(lifetime * horizon)))
        results[horizon] = {}
        for layout, key in zip(layouts, env_keys):
            env, level = env_registry.make(GRIDWORLD_PREFIX + layout)
            keys = jax.random.split(key, config.seeds)
            agent = make_lpg_agent(agent_config, env, level, objective)

            def learned(keys, params, agent=agent, level=level, updates=updates):
                def train(agent_key):
                    return agent.train(agent_key, params, level, jnp.int32(updates), updates)[1]

                return jax.vmap(train)(keys)

            a2c = make_a2c(a2c_like(agent_config, updates), env, level)
            # Each method's seeds split over the devices (discovery.devices).
            runs = {
                "learned": run_split(learned, keys, entry.params, what="seeds"),
                "a2c": run_split(jax.vmap(lambda k, a2c=a2c: a2c.train(k)[1]), keys,
                                 what="seeds"),
            }
            per_method = {}
            for method, metrics in runs.items():
                curves = np.asarray(metrics["reward_per_step"], dtype=np.float64)
                per_method[method] = MethodCurves(
                    curves, final_mean(curves, config.final_fraction), agent_config.steps_per_update
                )
            results[horizon][layout] = per_method
    normalisers = {
        horizon: {name: normaliser(0.0, float(np.nanmean(per_env[name]["a2c"].final)))
                  for name in layouts}
        for horizon, per_env in results.items()
    }
    return HeldOut(
        results=results,
        env_names=layouts,
        training_length=float(lifetime),
        horizon_unit="agent updates",
        metric="final reward per step",
        normalisation="A2C 1",
        normalisers=normalisers,
    )


