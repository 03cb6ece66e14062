"""Composable wrappers over gymnax-API environments.

Each wrapper is itself a gymnax-API env: ``reset(key, params) -> (obs, state)`` and
``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``.
Wrapper state is a ``flax.struct.dataclass`` holding the inner env's state as
``env_state``; ``terminated``, ``truncated`` and ``info`` pass through unchanged (apart
from documented additions), since bootstrapping depends on telling them apart.

A typical training stack, innermost first::

    env = FlattenObservation(env)
    env = EpisodeStatistics(env)
    env = VecEnv(env, num_envs)
    env = NormalizeVecObservation(env)
    env = NormalizeVecReward(env, gamma)
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

Obs = jax.Array
Step = tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict[str, Any]]


class Wrapper:
    """Forwards everything it does not override (spaces, ``default_params``, ...)."""

    def __init__(self, env: Any):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        if name == "_env":  # not yet set (e.g. during copy/unpickling): avoid recursion
            raise AttributeError(name)
        return getattr(self._env, name)

    @property
    def unwrapped(self) -> Any:
        """The innermost (unwrapped) environment."""
        return getattr(self._env, "unwrapped", self._env)


class FlattenObservation(Wrapper):
    """Reshape array observations (and ``info["final_observation"]``) to one dimension."""

    def observation_space(self, params: Any = None) -> spaces.Box:
        space = self._env.observation_space(params)
        if not isinstance(space, spaces.Box):
            raise TypeError(f"FlattenObservation needs a Box observation space, got {space}")
        size = int(np.prod(space.shape))
        low = jnp.broadcast_to(jnp.asarray(space.low), space.shape).reshape(size)
        high = jnp.broadcast_to(jnp.asarray(space.high), space.shape).reshape(size)
        return spaces.Box(low, high, shape=(size,), dtype=space.dtype)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[Obs, Any]:
        obs, state = self._env.reset(key, params)
        return jnp.reshape(obs, (-1,)), state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any = None) -> Step:
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {**info, "final_observation": jnp.reshape(info["final_observation"], (-1,))}
        return jnp.reshape(obs, (-1,)), state, reward, terminated, truncated, info


@struct.dataclass
class EpisodeStatisticsState:
    """Running statistics of the current episode and those of the last finished one."""

    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array
    returned_episode_return: jax.Array
    returned_episode_length: jax.Array


class EpisodeStatistics(Wrapper):
    """Track undiscounted episode return and length for logging.

    Adds to ``info``: ``returned_episode`` (bool, an episode ended this step, by
    termination or truncation), ``returned_episode_returns`` and
    ``returned_episode_lengths`` (float32 / int32, of the last finished episode; zero
    before the first one ends), and ``latest_episode_return``: the last finished
    episode's return, or the running return of the first episode until one finishes, so
    that a return exists at every step whether or not an episode has ended.
    """

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[Obs, EpisodeStatisticsState]:
        obs, env_state = self._env.reset(key, params)
        zero_f, zero_i = jnp.float32(0.0), jnp.int32(0)
        state = EpisodeStatisticsState(
            env_state=env_state,
            episode_return=zero_f,
            episode_length=zero_i,
            returned_episode_return=zero_f,
            returned_episode_length=zero_i,
        )
        return obs, state

    @partial(jax.jit, static_argnames=("self",))
    def step(
        self, key: jax.Array, state: EpisodeStatisticsState, action: jax.Array, params: Any = None
    ) -> Step:
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_return + jnp.asarray(reward, jnp.float32)
        episode_length = state.episode_length + 1
        returned_return = jnp.where(done, episode_return, state.returned_episode_return)
        returned_length = jnp.where(done, episode_length, state.returned_episode_length)
        state = EpisodeStatisticsState(
            env_state=env_state,
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
            returned_episode_return=returned_return,
            returned_episode_length=returned_length,
        )
        info = {
            **info,
            "returned_episode": done,
            "returned_episode_returns": returned_return,
            "returned_episode_lengths": returned_length,
            "latest_episode_return": jnp.where(
                returned_length > 0, returned_return, episode_return
            ),
        }
        return obs, state, reward, terminated, truncated, info


class ClipAction(Wrapper):
    """Clip continuous actions to ``[low, high]`` before the inner env sees them.

    Policies with unbounded (e.g. Gaussian) heads sample outside the action range;
    clipping in the env keeps the log-probability of the unclipped sample intact.
    """

    def __init__(self, env: Any, low: float = -1.0, high: float = 1.0):
        super().__init__(env)
        if not low < high:
            raise ValueError(f"ClipAction needs low < high, got low={low}, high={high}")
        self.low = float(low)
        self.high = float(high)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[Obs, Any]:
        return self._env.reset(key, params)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any = None) -> Step:
        return self._env.step(key, state, jnp.clip(action, self.low, self.high), params)


class VecEnv(Wrapper):
    """Run ``num_envs`` copies of ``env`` in parallel with ``jax.vmap``.

    ``reset``/``step`` take one key and split it into ``num_envs`` keys; states, actions
    and all outputs carry a leading axis of size ``num_envs``. Every copy uses the same
    ``params`` (vmap ``in_axes=None``); vmap over params yourself for per-env levels.
    Spaces stay those of a single env.
    """

    def __init__(self, env: Any, num_envs: int):
        super().__init__(env)
        if num_envs < 1:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        self.num_envs = int(num_envs)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[Obs, Any]:
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.reset, in_axes=(0, None))(keys, params)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any = None) -> Step:
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)


@struct.dataclass
class RunningMeanStd:
    """Running mean and (population) variance of a stream of batches.

    Starts at mean 0, variance 1 with a tiny pseudo-count, so that the first
    normalisations are close to the identity and never divide by zero.
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape: tuple[int, ...] = (), count: float = 1e-4) -> RunningMeanStd:
        return cls(
            mean=jnp.zeros(shape, jnp.float32),
            var=jnp.ones(shape, jnp.float32),
            count=jnp.float32(count),
        )

    def update(self, batch: jax.Array) -> RunningMeanStd:
        """Merge a batch ``[B, *shape]`` (Chan, Golub & LeVeque, 1979, parallel variance)."""
        batch = jnp.asarray(batch, jnp.float32)
        batch_count = batch.shape[0]
        batch_mean = batch.mean(axis=0)
        batch_var = batch.var(axis=0)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        mean = self.mean + delta * batch_count / total
        m2 = (
            self.var * self.count
            + batch_var * batch_count
            + delta**2 * self.count * batch_count / total
        )
        return RunningMeanStd(mean=mean, var=m2 / total, count=total)


def _require_batched(env: Any, wrapper: str) -> int:
    num_envs = getattr(env, "num_envs", None)
    if num_envs is None:
        raise TypeError(f"{wrapper} normalises over an env batch: wrap the env in VecEnv first")
    return num_envs


@struct.dataclass
class NormalizeVecObservationState:
    env_state: Any
    obs_stats: RunningMeanStd


class NormalizeVecObservation(Wrapper):
    """Normalise observations by running statistics shared across the env batch.

    ``obs -> (obs - mean) / sqrt(var + epsilon)`` with mean and variance updated from
    every batch returned by ``reset`` and ``step`` (before normalising it). The
    statistics live in the state, so an outer ``vmap`` over seeds keeps one per seed.
    ``info["final_observation"]`` is normalised with the same statistics as ``obs``.
    """

    def __init__(self, env: Any, epsilon: float = 1e-8):
        super().__init__(env)
        _require_batched(env, type(self).__name__)
        self.epsilon = float(epsilon)

    def observation_space(self, params: Any = None) -> spaces.Box:
        space = self._env.observation_space(params)
        return spaces.Box(-jnp.inf, jnp.inf, shape=space.shape, dtype=jnp.float32)

    def _normalize(self, obs: jax.Array, stats: RunningMeanStd) -> jax.Array:
        return (jnp.asarray(obs, jnp.float32) - stats.mean) / jnp.sqrt(stats.var + self.epsilon)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[Obs, NormalizeVecObservationState]:
        obs, env_state = self._env.reset(key, params)
        stats = RunningMeanStd.create(obs.shape[1:]).update(obs)
        state = NormalizeVecObservationState(env_state=env_state, obs_stats=stats)
        return self._normalize(obs, stats), state

    @partial(jax.jit, static_argnames=("self",))
    def step(
        self,
        key: jax.Array,
        state: NormalizeVecObservationState,
        action: jax.Array,
        params: Any = None,
    ) -> Step:
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        stats = state.obs_stats.update(obs)
        info = {**info, "final_observation": self._normalize(info["final_observation"], stats)}
        state = NormalizeVecObservationState(env_state=env_state, obs_stats=stats)
        return self._normalize(obs, stats), state, reward, terminated, truncated, info


@struct.dataclass
class NormalizeVecRewardState:
    env_state: Any
    return_stats: RunningMeanStd
    discounted_return: jax.Array


class NormalizeVecReward(Wrapper):
    """Scale rewards by the running std of the discounted return (no mean shift).

    Reward scaling of Engstrom et al. (2020), "Implementation Matters in Deep Policy
    Gradients", as in OpenAI baselines' VecNormalize: ``G <- gamma * G + r`` per env,
    the variance of ``G`` is tracked over the env batch, ``r -> r / sqrt(var + eps)``,
    and ``G`` restarts at 0 after an episode ends (termination or truncation).
    The statistics live in the state (one per seed under an outer ``vmap``).
    """

    def __init__(self, env: Any, gamma: float, epsilon: float = 1e-8):
        super().__init__(env)
        _require_batched(env, type(self).__name__)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[Obs, NormalizeVecRewardState]:
        obs, env_state = self._env.reset(key, params)
        state = NormalizeVecRewardState(
            env_state=env_state,
            return_stats=RunningMeanStd.create(()),
            discounted_return=jnp.zeros((self.num_envs,), jnp.float32),
        )
        return obs, state

    @partial(jax.jit, static_argnames=("self",))
    def step(
        self,
        key: jax.Array,
        state: NormalizeVecRewardState,
        action: jax.Array,
        params: Any = None,
    ) -> Step:
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        discounted_return = self.gamma * state.discounted_return + reward
        stats = state.return_stats.update(discounted_return)
        done = jnp.logical_or(terminated, truncated)
        state = NormalizeVecRewardState(
            env_state=env_state,
            return_stats=stats,
            discounted_return=jnp.where(done, 0.0, discounted_return),
        )
        scaled = reward / jnp.sqrt(stats.var + self.epsilon)
        return obs, state, scaled, terminated, truncated, info
