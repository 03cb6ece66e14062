"""Trajectory containers, the actor-critic rollout scan, and generalised advantage
estimation.

GAE (Schulman et al., 2016) with terminated and truncated kept apart: a terminated
step does not bootstrap, a truncated one bootstraps from the value of the true next
state (gymnax's ``info["final_observation"]``), and either ends the eligibility trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Transition:
    """One batched environment step; every field has leading shape ``[T, N]`` in a rollout."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array  # pre-reset observation after the step (final_observation)


def gae(
    reward: jax.Array,
    value: jax.Array,
    next_value: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float | jax.Array,
    gae_lambda: float | jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimates and value targets.

    Args:
      reward, value, terminated, truncated: ``[T, ...]``.
      next_value: ``[T, ...]``, the value of the state reached by each step *before*
        any auto-reset.
      gamma, gae_lambda: discount and GAE trace parameter.

    Returns:
      ``(advantage, target)``, both ``[T, ...]``, with ``target = advantage + value``.

    ``delta_t = r_t + gamma (1 - term_t) V(s'_t) - V(s_t)``,
    ``A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}``, ``done = term or trunc``.
    """
    not_terminated = 1.0 - terminated.astype(value.dtype)
    not_done = 1.0 - jnp.logical_or(terminated, truncated).astype(value.dtype)
    delta = reward + gamma * not_terminated * next_value - value

    def backward(carry: jax.Array, step: tuple[jax.Array, jax.Array]):
        delta_t, not_done_t = step
        advantage = delta_t + gamma * gae_lambda * not_done_t * carry
        return advantage, advantage

    _, advantage = jax.lax.scan(
        backward, jnp.zeros_like(delta[0]), (delta, not_done), reverse=True
    )
    return advantage, advantage + value


def make_rollout(vec_env: Any, network: Any, num_steps: int) -> Callable[..., Any]:
    """Build ``rollout(params, env_state, obs, key, env_params, reward_scale=None) ->
    ((env_state, obs), traj, episode_info)``: ``num_steps`` steps of every env of
    ``vec_env`` with actions sampled from ``network.apply(params, obs) -> (policy,
    value)``, under one ``lax.scan`` (PPO and A2C share it).

    ``traj`` is a :class:`Transition` ``[T, N]`` whose rewards are float32, multiplied by
    ``reward_scale`` when given; ``episode_info`` is ``(ended, returns, lengths,
    latest_return)`` ``[T, N]`` from the episode-statistics wrapper, unscaled.
    """

    def rollout(params, env_state, obs, key, env_params, reward_scale=None):
        def env_step(carry, step_keys):
            env_state, obs = carry
            key_act, key_env = step_keys
            policy, value = network.apply(params, obs)
            action = policy.sample(key_act)
            next_obs, env_state, reward, terminated, truncated, info = vec_env.step(
                key_env, env_state, action, env_params
            )
            reward = jnp.asarray(reward, jnp.float32)
            transition = Transition(
                obs=obs,
                action=action,
                log_prob=policy.log_prob(action),
                value=value,
                reward=reward if reward_scale is None else reward * reward_scale,
                terminated=terminated,
                truncated=truncated,
                next_obs=info["final_observation"],
            )
            episode_info = (
                info["returned_episode"],
                info["returned_episode_returns"],
                info["returned_episode_lengths"],
                info["latest_episode_return"],
            )
            return (env_state, next_obs), (transition, episode_info)

        # Each step's (act, env) keys, split for all steps at once: the same keys as a
        # split inside the step, without a hash loop per step on XLA:CPU.
        keys = jax.vmap(jax.random.split)(jax.random.split(key, num_steps))
        return jax.lax.scan(env_step, (env_state, obs), keys)

    return rollout


def critic_gae(
    network: Any, params: Any, traj: Transition, gamma: Any, gae_lambda: Any
) -> tuple[jax.Array, jax.Array]:
    """:func:`gae` of a rollout under the actor-critic ``network``'s own critic, which
    values the pre-reset next observations (for truncation bootstrapping)."""
    _, next_value = network.apply(params, traj.next_obs)
    return gae(
        traj.reward, traj.value, next_value, traj.terminated, traj.truncated, gamma, gae_lambda
    )
