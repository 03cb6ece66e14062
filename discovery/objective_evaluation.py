"""Held-out evaluation of a discovered objective (``discover evaluate`` on an objective
entry).

LPG agents trained with the learned objective, next to A2C with the same rollout shape
and network (GROOVE, Jackson et al., 2023), on gridworld layouts, at each horizon (a
multiple of the agents' lifetime, or of a layout's own budget in updates). Each method's
seeds are one program and share the per-layout keys with the other method's (paired
seeds); A2C's runs can be read from a :class:`discovery.baseline_cache.BaselineCache`.
Scored by the reward per step: the primary score over the last ``final_fraction`` of
training updates (GROOVE's), and an evaluation score of the final policy playing on for
``eval_episodes`` rollouts of ``rollout_len`` steps in each of its envs. Normalised by
A2C's training reward rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from discovery import envs as env_registry
from discovery import preflight
from discovery.agents.a2c import make_a2c, wrap_env
from discovery.agents.lpg_agent import LPGAgentConfig, make_lpg_agent
from discovery.agents.rollout import make_rollout
from discovery.baseline_cache import BaselineCache, environment_key, fetch, key_data
from discovery.config import apply_overrides, from_dict, to_dict
from discovery.devices import run_split
from discovery.envs.registry import GRIDWORLD_PREFIX
from discovery.evaluate import (
    EvaluateConfig,
    HeldOut,
    MethodCurves,
    Progress,
    base_lengths,
    final_mean,
    normaliser,
    recorded_config,
)
from discovery.objective_training import a2c_like
from discovery.progress import Report, no_report
from discovery.tasks import random_play

#: The evaluation rollouts' keys are ``fold_in(seed key, EVAL_STREAM)``: training keeps
#: the seed's key as it was before evaluation rollouts existed.
EVAL_STREAM = 1


def _layouts(entry: Any, config: EvaluateConfig) -> list[str]:
    """The gridworld layouts of an evaluation: ``--envs``, else the run's held-out ones."""
    recorded = recorded_config(entry)
    held_out = recorded.get("levels", {}).get("held_out", ["dense", "sparse", "long"])
    return [name.removeprefix(GRIDWORLD_PREFIX) for name in (config.envs or held_out)]


def _bases(entry: Any, config: EvaluateConfig, layouts: list[str]) -> dict[str, float]:
    """Each layout's base lifetime in agent updates (``--budget`` or the run's)."""
    lifetime = int(recorded_config(entry).get("eval_lifetime", 250))
    return base_lengths(config, layouts, lifetime, "agent updates",
                        canonical=lambda name: name.removeprefix(GRIDWORLD_PREFIX))


def check_evaluation(entry: Any, config: EvaluateConfig, overrides: Sequence[str]) -> None:
    """Before any compute: the layouts :func:`held_out` will train on, and the budgets."""
    where = "--envs" if config.envs else "levels.held_out (the component's meta-training config)"
    layouts = _layouts(entry, config)
    for layout in layouts:
        preflight.check_env(GRIDWORLD_PREFIX + layout, where)
    _bases(entry, config, layouts)


def _rate_of(rollouts: Callable[..., jax.Array], episodes: int) -> Callable[..., jax.Array]:
    """``rate(carry, key)``: mean reward per step over ``episodes`` consecutive rollouts,
    where ``rollouts(carry, key) -> (carry, rewards)`` plays one on from ``carry``."""
    def rate(carry, key):
        _, rewards = jax.lax.scan(rollouts, carry, jax.random.split(key, episodes))
        return jnp.mean(rewards)

    return rate


def _learned_program(agent: Any, level: Any, updates: int, episodes: int) -> Callable[..., Any]:
    """``program(keys [S], objective_params) -> {curve, evaluation}`` of LPG agents."""
    def rollouts(state, key):
        state, experience = agent.rollout(state, key)
        return state, jnp.mean(experience.reward)

    rate = _rate_of(rollouts, episodes)

    def one(key, params):
        state, metrics = agent.train(key, params, level, jnp.int32(updates), updates)
        key_eval = jax.random.fold_in(key, EVAL_STREAM)
        return {"curve": metrics["reward_per_step"], "evaluation": rate(state, key_eval)}

    return jax.vmap(one, in_axes=(0, None))


def _a2c_program(a2c_config: Any, env: Any, level: Any, episodes: int) -> Callable[..., Any]:
    """``program(keys [S]) -> {curve, evaluation}`` of A2C agents."""
    a2c = make_a2c(a2c_config, env, level)
    scan = make_rollout(wrap_env(a2c_config, env), a2c.network, a2c_config.rollout_len)

    def one(key):
        state, metrics = a2c.train(key)
        key_eval = jax.random.fold_in(key, EVAL_STREAM)

        def rollouts(carry, key):
            carry, (traj, _) = scan(state.params, *carry, key, level)
            return carry, jnp.mean(traj.reward)

        rate = _rate_of(rollouts, episodes)((state.env_state, state.obs), key_eval)
        return {"curve": metrics["reward_per_step"], "evaluation": rate}

    return jax.vmap(one)


def _random_rate(layout: str, key: jax.Array, cache: BaselineCache | None,
                 num_envs: int = 16, steps: int = 500) -> float:
    """A uniformly random policy's reward per step on ``layout`` (cached too)."""
    def compute() -> dict[str, np.ndarray]:
        rate = random_play(GRIDWORLD_PREFIX + layout, key, num_envs, steps)[1]
        return {"rate": np.asarray([rate])}

    cache_key = {"env": layout, "key": key_data(key), "policy": "uniform random",
                 "num_envs": num_envs, "steps": steps, **environment_key()}
    arrays, _ = fetch(cache, "random-reward-rate", cache_key, compute,
                      f"random-policy reward rate on {layout}")
    return float(arrays["rate"][0])


def _method(arrays: dict[str, np.ndarray], fraction: float, steps_per_update: int) -> MethodCurves:
    """A method's runs with both scores, the training one first (primary)."""
    curve = arrays["curve"]
    scores = {"training": final_mean(curve, fraction), "evaluation": arrays["evaluation"]}
    return MethodCurves(curve, scores["training"], steps_per_update, scores)


def held_out(entry: Any, config: EvaluateConfig, overrides: Sequence[str] = (), *,
             report: Report = no_report, cache: BaselineCache | None = None) -> HeldOut:
    """Per horizon, layout and method: LPG agents (the objective) and A2C. ``report``
    hears of each finished (horizon, layout, method); ``cache`` holds A2C's runs."""
    recorded = recorded_config(entry)
    agent_config = from_dict(
        LPGAgentConfig, recorded.get("agent", {}), source="the component's meta-training config"
    )
    agent_config = apply_overrides(agent_config, [o.removeprefix("agent.") for o in overrides])
    lifetime = int(recorded.get("eval_lifetime", 250))
    layouts = _layouts(entry, config)
    bases = _bases(entry, config, layouts)
    objective = entry.component()
    episodes = config.eval_episodes
    progress = Progress(report, len(config.horizons) * len(layouts) * 2)
    results: dict[float, dict[str, dict[str, MethodCurves]]] = {}
    lengths: dict[float, dict[str, float]] = {}
    cached: list[str] = []
    env_keys = jax.random.split(jax.random.key(config.seed), len(layouts))
    for horizon in config.horizons:
        results[horizon], lengths[horizon] = {}, {}
        for layout, key in zip(layouts, env_keys):
            updates = max(1, int(round(bases[layout] * horizon)))
            lengths[horizon][layout] = float(updates)
            env, level = env_registry.make(GRIDWORLD_PREFIX + layout)
            keys = jax.random.split(key, config.seeds)
            agent = make_lpg_agent(agent_config, env, level, objective)
            learned = run_split(_learned_program(agent, level, updates, episodes), keys,
                                entry.params, what="seeds")
            run = _method({k: np.asarray(v, np.float64) for k, v in learned.items()},
                          config.final_fraction, agent_config.steps_per_update)
            progress.finished(horizon, layout, "learned", run)
            a2c_config = a2c_like(agent_config, updates)

            def compute(a2c_config=a2c_config, env=env, level=level, keys=keys):
                out = run_split(_a2c_program(a2c_config, env, level, episodes), keys,
                                what="seeds")
                return {k: np.asarray(v, np.float64) for k, v in out.items()}

            cache_key = {"env": layout, "method": "a2c", "a2c": to_dict(a2c_config),
                         "seeds": config.seeds, "key": key_data(key), "eval_episodes": episodes,
                         **environment_key()}
            arrays, hit = fetch(cache, "a2c-baseline", cache_key, compute,
                                f"a2c on {layout} ({updates} updates)")
            if hit:
                cached.append(f"x{horizon:g} {layout} a2c")
            baseline = _method(arrays, config.final_fraction, agent_config.steps_per_update)
            progress.finished(horizon, layout, "a2c", baseline, hit)
            results[horizon][layout] = {"learned": run, "a2c": baseline}
    keys = jax.random.split(jax.random.key(config.seed + 1), len(layouts))
    random = {name: _random_rate(name, k, cache) for name, k in zip(layouts, keys)}
    normalisers = {
        horizon: {name: normaliser(0.0, float(np.nanmean(per_env[name]["a2c"].final)))
                  for name in layouts}
        for horizon, per_env in results.items()
    }
    steps = f"{episodes} x {agent_config.rollout_len} steps in each of {agent_config.num_envs} envs"
    labels = {
        "training": "training reward per step (mean over the last "
                    f"{100 * config.final_fraction:g}% of updates)",
        "evaluation": f"evaluation reward per step (the final policy over {steps} per seed)",
    }
    return HeldOut(
        results=results,
        env_names=layouts,
        training_length=float(lifetime),
        horizon_unit="agent updates",
        metric=labels["training"],
        normalisation="A2C 1",
        normalisers=normalisers,
        scores=labels,
        curve_label="training reward per step",
        training_lengths=lengths,
        random=random,
        cached=tuple(cached),
    )
