"""Trajectory containers and generalised advantage estimation.

GAE (Schulman et al., 2016) with terminated and truncated kept apart: a terminated
step does not bootstrap, a truncated one bootstraps from the value of the true next
state (gymnax's ``info["final_observation"]``), and either ends the eligibility trace.
"""

from __future__ import annotations

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
