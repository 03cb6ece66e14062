"""Held-out evaluation of a discovered drift (``discover evaluate`` on a drift entry).

PPO agents trained with the learned drift, next to PPO-clip and DPO (Lu et al., 2022),
at each horizon. Every method is its own program of the same shape (one agent per seed,
vmapped and split over the devices) and gets the same per-env keys, so seeds are paired
across methods, a baseline's runs do not depend on which drift is evaluated beside it,
and they can be read from a :class:`discovery.baseline_cache.BaselineCache`. Each agent
has a training score (mean episode return over the last ``final_fraction`` of updates)
and an evaluation score (its final policy's return over ``eval_episodes`` whole
episodes in each of PPO's ``num_envs`` envs, sampling its actions as in training); the
meta-training task's ``score`` picks the primary one. Normalised so that random play is
0 and PPO-clip 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from discovery import envs as env_registry
from discovery import preflight
from discovery.agents.ppo import PPOConfig, diverged, make_evaluate, make_train
from discovery.baseline_cache import BaselineCache, environment_key, fetch, key_data
from discovery.config import apply_overrides, from_dict, to_dict
from discovery.devices import run_split
from discovery.drift import make_drift
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
from discovery.progress import Report, no_report
from discovery.tasks import random_policy_return

DRIFT_METHODS = ("learned", "ppo_clip", "dpo")
#: The hand-designed drifts, by method: ``make_drift`` names.
BASELINES = {"ppo_clip": "ppo", "dpo": "dpo"}


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


def _bases(config: EvaluateConfig, names: Sequence[str], ppo: PPOConfig) -> dict[str, float]:
    """Each env's base training length in env steps (``--budget`` or the meta-training's)."""
    return base_lengths(config, names, ppo.total_timesteps, "env steps", ppo.steps_per_update)


def check_evaluation(entry: Any, config: EvaluateConfig, overrides: Sequence[str]) -> None:
    """Before any compute: the env names :func:`held_out` will train on, the budgets, and
    the inner PPO config with ``overrides`` and its memory, exactly as it will build them."""
    _, names, ppo = _setting(entry, config, overrides)
    where = "--envs" if config.envs else "envs (the component's meta-training envs)"
    for name in names:
        preflight.check_env(name, where)
    _bases(config, names, ppo)
    # Each method's seeds train together, in one program per env.
    preflight.ppo_memory(config.seeds, ppo, names, f"--seeds {config.seeds}",
                         "--seeds, ppo.num_envs or ppo.num_steps", together=False)


def _make_run(ppo: PPOConfig, env: Any, env_params: Any, drift: Any, episodes: int,
              primary: str) -> Callable[..., dict[str, jax.Array]]:
    """``run(key, drift_params, hparams)`` of one agent: its per-update training return
    ``curve``, the mean ``evaluation`` return of its final policy over ``episodes`` whole
    episodes per env, and whether training ``diverged``. The key splits as
    :func:`discovery.tasks.make_agent_score`'s does (training, then evaluation). An env
    without a time limit has no evaluation score (NaN), unless it is the ``primary`` one."""
    train = make_train(ppo, env, env_params, drift)
    try:
        evaluate = make_evaluate(ppo, env, env_params)
    except ValueError:  # no time limit: no evaluation episodes (a training score remains)
        if primary == "evaluation":
            raise
        evaluate = None

    def run(key, drift_params, hparams):
        key_train, key_eval = jax.random.split(key)
        state, metrics = train(key_train, drift_params, None, hparams)
        if evaluate is None:
            returns = jnp.full((), jnp.nan)
        elif episodes == 1:  # the very evaluation meta-training scores (tasks.make_agent_score)
            returns = evaluate(key_eval, state)
        else:  # independent continuations of the final state, vmapped: one while loop
            returns = jax.vmap(evaluate, in_axes=(0, None))(
                jax.random.split(key_eval, episodes), state)
        bad = diverged(state, metrics)
        return {"curve": metrics["latest_return"],
                "evaluation": jnp.where(bad, jnp.nan, jnp.nanmean(returns)),
                "diverged": bad.astype(jnp.float32)}

    return run


def _train_seeds(drift: Any, params: Any, ppo: PPOConfig, name: str, keys: jax.Array,
                 episodes: int, primary: str) -> dict[str, np.ndarray]:
    """One method's seeds on env ``name``: arrays ``curve [S, U]``, ``evaluation [S]`` and
    ``diverged [S]``, in one program split over the devices."""
    env, env_params = env_registry.make(name)
    run = _make_run(ppo, env, env_params, drift, episodes, primary)
    out = run_split(jax.vmap(run, in_axes=(0, None, None)), keys, params, ppo.hyperparams(),
                    what="seeds")
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def _method(arrays: dict[str, np.ndarray], primary: str, fraction: float,
            steps_per_update: int) -> MethodCurves:
    """A method's runs with both scores (the training one NaN where training diverged)."""
    bad = arrays["diverged"] > 0
    scores = {"evaluation": arrays["evaluation"],
              "training": np.where(bad, np.nan, final_mean(arrays["curve"], fraction))}
    ordered = {primary: scores[primary], **scores}
    return MethodCurves(arrays["curve"], ordered[primary], steps_per_update, ordered)


def _params_key(params: Any) -> dict[str, list[float]]:
    """A drift's params as plain numbers, by tree path, for a cache key."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(path): [float(x) for x in np.ravel(np.asarray(leaf))]
            for path, leaf in flat}


def _random_return(name: str, key: jax.Array, cache: BaselineCache | None) -> float:
    """A uniformly random policy's mean episode return on ``name`` (cached too)."""
    cache_key = {"env": name, "key": key_data(key), "policy": "uniform random",
                 **environment_key()}
    arrays, _ = fetch(cache, "random-policy-return", cache_key,
                      lambda: {"return": np.asarray([random_policy_return(name, key)])},
                      f"random-policy return on {name}")
    return float(arrays["return"][0])


def held_out(entry: Any, config: EvaluateConfig, overrides: Sequence[str] = (), *,
             report: Report = no_report, cache: BaselineCache | None = None) -> HeldOut:
    """Per horizon, env and method: PPO agents trained with that drift. ``report`` hears
    of each finished (horizon, env, method); ``cache`` holds the baselines' runs."""
    task, env_names, ppo = _setting(entry, config, overrides)
    primary = task.get("score", "evaluation")
    bases = _bases(config, env_names, ppo)
    drifts = {"learned": (entry.component(), entry.params)}
    for method, name in BASELINES.items():
        drift = make_drift(name)
        drifts[method] = (drift, drift.init(jax.random.key(0)))
    progress = Progress(report, len(config.horizons) * len(env_names) * len(drifts))
    results: dict[float, dict[str, dict[str, MethodCurves]]] = {}
    lengths: dict[float, dict[str, float]] = {}
    cached: list[str] = []
    env_keys = jax.random.split(jax.random.key(config.seed), len(env_names))
    for horizon in config.horizons:
        results[horizon], lengths[horizon] = {}, {}
        for name, env_key in zip(env_names, env_keys):
            steps = max(ppo.steps_per_update, int(round(bases[name] * horizon)))
            ppo_env = _tuned_for(task, name, replace(ppo, total_timesteps=steps))
            lengths[horizon][name] = float(ppo_env.num_updates * ppo_env.steps_per_update)
            keys = jax.random.split(env_key, config.seeds)
            per_method = {}
            for method, (drift, params) in drifts.items():
                def compute(drift=drift, params=params, ppo_env=ppo_env, name=name, keys=keys):
                    return _train_seeds(drift, params, ppo_env, name, keys,
                                        config.eval_episodes, primary)

                if method == "learned":
                    arrays, hit = compute(), False
                else:
                    cache_key = {"env": name, "method": method, "drift": BASELINES[method],
                                 "drift_params": _params_key(params), "ppo": to_dict(ppo_env),
                                 "seeds": config.seeds, "key": key_data(env_key),
                                 "eval_episodes": config.eval_episodes, **environment_key()}
                    arrays, hit = fetch(cache, "ppo-baseline", cache_key, compute,
                                        f"{method} on {name} ({lengths[horizon][name]:g} "
                                        "env steps)")
                    if hit:
                        cached.append(f"x{horizon:g} {name} {method}")
                run = _method(arrays, primary, config.final_fraction, ppo_env.steps_per_update)
                per_method[method] = run
                progress.finished(horizon, name, method, run, hit)
            results[horizon][name] = per_method
    keys = jax.random.split(jax.random.key(config.seed + 1), len(env_names))
    random = {n: _random_return(n, k, cache) for n, k in zip(env_names, keys)}
    normalisers = {
        horizon: {
            name: normaliser(random[name], float(np.nanmean(per_env[name]["ppo_clip"].final)))
            for name in env_names
        }
        for horizon, per_env in results.items()
    }
    episodes = f"{ppo.num_envs} envs x {config.eval_episodes} whole episode" + (
        "s" if config.eval_episodes > 1 else "")
    labels = {
        "evaluation": f"evaluation return (the final policy's mean over {episodes} per seed)",
        "training": "training return (mean episode return over the last "
                    f"{100 * config.final_fraction:g}% of updates)",
    }
    return HeldOut(
        results=results,
        env_names=list(env_names),
        training_length=float(ppo.total_timesteps),
        horizon_unit="env steps",
        metric=labels[primary],
        normalisation="random 0, PPO-clip 1",
        normalisers=normalisers,
        scores={primary: labels[primary], **labels},
        curve_label="training episode return",
        training_lengths=lengths,
        random=random,
        cached=tuple(cached),
    )
