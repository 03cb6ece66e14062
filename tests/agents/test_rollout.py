"""GAE against hand-computed values, with terminated and truncated kept apart."""

import jax
import jax.numpy as jnp
import numpy as np

from discovery import envs  # noqa: F401
from discovery.agents.rollout import gae


def _reference_gae(reward, value, next_value, terminated, truncated, gamma, lam):
    advantage = np.zeros_like(reward)
    running = 0.0
    for t in reversed(range(len(reward))):
        delta = reward[t] + gamma * (1 - terminated[t]) * next_value[t] - value[t]
        done = terminated[t] or truncated[t]
        running = delta + gamma * lam * (1 - done) * running
        advantage[t] = running
    return advantage


def test_gae_hand_computed_three_steps():
    # Step 0: ordinary; step 1: truncated (bootstrap from V(final obs) = 5, cut trace);
    # step 2: terminated (no bootstrap).
    reward = jnp.array([1.0, 2.0, 3.0])
    value = jnp.array([0.5, 1.0, 1.5])
    next_value = jnp.array([1.0, 5.0, 9.0])
    terminated = jnp.array([False, False, True])
    truncated = jnp.array([False, True, False])
    gamma, lam = 0.9, 0.8
    advantage, target = jax.jit(gae)(reward, value, next_value, terminated, truncated, gamma, lam)
    a2 = 3.0 - 1.5
    a1 = 2.0 + 0.9 * 5.0 - 1.0
    a0 = (1.0 + 0.9 * 1.0 - 0.5) + 0.9 * 0.8 * a1
    np.testing.assert_allclose(advantage, [a0, a1, a2], rtol=1e-6)
    np.testing.assert_allclose(target, np.array([a0, a1, a2]) + np.array(value), rtol=1e-6)


def test_gae_matches_reference_loop_batched_under_vmap():
    key = jax.random.key(0)
    k = jax.random.split(key, 5)
    shape = (16, 3)
    reward = jax.random.normal(k[0], shape)
    value = jax.random.normal(k[1], shape)
    next_value = jax.random.normal(k[2], shape)
    terminated = jax.random.bernoulli(k[3], 0.2, shape)
    truncated = jax.random.bernoulli(k[4], 0.1, shape) & ~terminated
    batched = jax.jit(jax.vmap(gae, in_axes=(1, 1, 1, 1, 1, None, None), out_axes=1))
    advantage, _ = batched(reward, value, next_value, terminated, truncated, 0.99, 0.95)
    for column in range(shape[1]):
        expected = _reference_gae(
            *(np.asarray(x[:, column], np.float64) for x in (reward, value, next_value)),
            np.asarray(terminated[:, column]),
            np.asarray(truncated[:, column]),
            0.99,
            0.95,
        )
        np.testing.assert_allclose(advantage[:, column], expected, rtol=1e-4, atol=1e-5)
