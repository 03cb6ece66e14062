"""Discovery tasks: (component params, key) -> fitness.

A drift-discovery task trains PPO agents with a candidate drift on a set of
environments, several seeds each, and scores the drift by the agents' final returns,
normalised per environment as ``(R - R_random) / (R_ppo - R_random)`` so that
environments of different scales can be mixed (the MinAtar LPO setting divides by
PPO's return; Lu et al., 2022). ``R_ppo`` (PPO-clip with the same inner-loop config)
and ``R_random`` (an untrained, uniformly random policy's episode return) are measured
once, when the task is built. All population members see the same keys (common
random numbers), so fitness differences come from the params alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

import envs as env_registry
from agents.ppo import PPOConfig, make_train
from discovery.drift import Drift, make_drift
from envs import wrappers


@dataclass(frozen=True)
class DriftTaskConfig:
    """What a drift is scored on.

    Attributes:
      envs: environment names (``envs.make``) the agents train on.
      drift: the learnable drift's name (``lpo`` or ``ta_lpo``).
      seeds: agents per environment per population member.
      ppo: the inner-loop PPO configuration shared by all environments.
      env_lr: optional per-environment learning rates (same order as ``envs``).
      final_fraction: fitness is the mean episode return over this final fraction of
        the agent's updates.
      baseline_seeds: seeds used once to measure PPO-clip's return for normalising.
      normalise: ``"ppo_random"`` maps random -> 0 and PPO -> 1 per env; ``"ppo"``
        divides by PPO's return; ``"none"`` uses raw returns.
    """

    envs: tuple[str, ...] = ("CartPole-v1",)
    drift: Literal["lpo", "ta_lpo"] = "lpo"
    seeds: int = 2
    ppo: PPOConfig = field(default_factory=PPOConfig)
    env_lr: tuple[float, ...] = ()
    final_fraction: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    baseline_seeds: int = field(default=16, metadata={"min": 1})
    normalise: Literal["ppo_random", "ppo", "none"] = "ppo_random"

    def __post_init__(self) -> None:
        if not self.envs:
            raise ValueError("envs=() must name at least one environment")
        if self.env_lr and len(self.env_lr) != len(self.envs):
            raise ValueError(
                f"env_lr={self.env_lr} must be empty or give one learning rate per env "
                f"({len(self.envs)} envs)"
            )
        if self.seeds < 1:
            raise ValueError(f"seeds={self.seeds} must be >= 1")


def final_return(episode_return: jax.Array, final_fraction: float) -> jax.Array:
    """Mean of the per-update episode returns ``[..., U]`` over the last fraction of updates.

    Updates in which no episode ended are NaN and skipped; if none ended at all the
    result is NaN, which the meta-optimiser treats as the worst fitness.
    """
    num_updates = episode_return.shape[-1]
    last = max(1, int(round(num_updates * final_fraction)))
    return jnp.nanmean(episode_return[..., -last:], axis=-1)


@dataclass(frozen=True, eq=False)
class DriftTask:
    """A built drift-discovery task.

    ``fitness(population, key) -> (fitness[P], returns[P, E])`` takes drift params with
    a leading population axis; ``baseline`` holds ``R_ppo`` and ``R_random`` per env.
    """

    config: DriftTaskConfig
    drift: Drift
    fitness: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]
    ppo_returns: np.ndarray
    random_returns: np.ndarray

    def init_params(self, key: jax.Array) -> Any:
        return self.drift.init(key)


def _env_trainers(
    config: DriftTaskConfig, drift: Drift, seeds: int | None = None
) -> list[Callable[..., Any]]:
    """Per env: ``score(drift_params, key) -> final return [seeds]``."""
    seeds = config.seeds if seeds is None else seeds
    trainers = []
    for index, name in enumerate(config.envs):
        env, env_params = env_registry.make(name)
        ppo = config.ppo
        hparams = ppo.hyperparams()
        if config.env_lr:
            hparams = hparams.replace(lr=jnp.float32(config.env_lr[index]))
        train = make_train(ppo, env, env_params, drift)

        def score(drift_params, key, train=train, hparams=hparams):
            keys = jax.random.split(key, seeds)
            _, metrics = jax.vmap(train, in_axes=(0, None, None))(keys, drift_params, hparams)
            return final_return(metrics["episode_return"], config.final_fraction)

        trainers.append(score)
    return trainers


def random_policy_return(name: str, key: jax.Array, num_envs: int = 16, steps: int = 2000) -> float:
    """Mean episode return of a uniformly random policy on ``name`` (a normalisation floor)."""
    env, env_params = env_registry.make(name)
    vec_env = wrappers.VecEnv(wrappers.EpisodeStatistics(env), num_envs)
    action_space = env.action_space(env_params)

    def run(key):
        key, reset_key = jax.random.split(key)
        obs, state = vec_env.reset(reset_key, env_params)

        def step(state, key):
            key_act, key_env = jax.random.split(key)
            actions = jax.vmap(action_space.sample)(jax.random.split(key_act, num_envs))
            _, state, _, _, _, info = vec_env.step(key_env, state, actions, env_params)
            return state, (info["returned_episode"], info["returned_episode_returns"])

        _, (ended, returns) = jax.lax.scan(step, state, jax.random.split(key, steps))
        return jnp.sum(returns * ended) / jnp.maximum(ended.sum(), 1)

    return float(jax.jit(run)(key))


def ppo_params_for(drift: Drift, key: jax.Array) -> Any:
    """Params with which the learned drift *is* PPO-clip (a zero output layer)."""
    params = drift.init(key)
    return {**params, "w2": jnp.zeros_like(params["w2"])}


def make_evaluator(
    config: DriftTaskConfig, drift: Drift, seeds: int
) -> Callable[[Any, jax.Array], np.ndarray]:
    """``evaluate(drift_params, key) -> final returns [E, seeds]`` of fresh agents.

    Each env's program is compiled once, on the first call, and reused for every params
    pytree of the same shape (e.g. a learned drift and its PPO-clip point).
    """
    scores = [jax.jit(score) for score in _env_trainers(config, drift, seeds)]

    def evaluate(drift_params: Any, key: jax.Array) -> np.ndarray:
        env_keys = jax.random.split(key, len(scores))
        return np.stack([np.asarray(score(drift_params, k)) for score, k in zip(scores, env_keys)])

    return evaluate


def evaluate_drift(
    config: DriftTaskConfig, drift: Drift, drift_params: Any, key: jax.Array, seeds: int
) -> np.ndarray:
    """Final returns ``[E, seeds]`` of fresh agents trained with ``drift_params``."""
    return make_evaluator(config, drift, seeds)(drift_params, key)


def make_drift_task(config: DriftTaskConfig, key: jax.Array) -> DriftTask:
    """Build the task and measure its normalisation baselines (PPO-clip, random policy)."""
    drift = make_drift(config.drift, clip_eps=0.2)
    trainers = _env_trainers(config, drift)

    def returns_of(drift_params, key):
        env_keys = jax.random.split(key, len(trainers))
        return jnp.stack([score(drift_params, k).mean() for score, k in zip(trainers, env_keys)])

    key_ppo, key_random = jax.random.split(key)
    ppo_returns = evaluate_drift(config, drift, ppo_params_for(drift, key_ppo), key_ppo,
                                 config.baseline_seeds).mean(axis=-1)
    random_returns = np.array(
        [random_policy_return(name, k) for name, k in
         zip(config.envs, jax.random.split(key_random, len(config.envs)))]
    )
    if config.normalise == "ppo_random":
        offset, scale = random_returns, ppo_returns - random_returns
    elif config.normalise == "ppo":
        offset, scale = np.zeros_like(ppo_returns), ppo_returns
    else:
        offset, scale = np.zeros_like(ppo_returns), np.ones_like(ppo_returns)
    scale = np.where(np.abs(scale) < 1e-6, 1.0, scale)
    offset_j, scale_j = jnp.asarray(offset, jnp.float32), jnp.asarray(scale, jnp.float32)

    def fitness(population, key):
        returns = jax.vmap(returns_of, in_axes=(0, None))(population, key)
        normalised = (returns - offset_j) / scale_j
        return normalised.mean(axis=-1), returns

    return DriftTask(config, drift, fitness, ppo_returns, random_returns)


