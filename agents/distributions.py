"""Categorical and diagonal-Gaussian action distributions as pure functions.

A few lines of jax instead of distrax (which pulls ``tfp-nightly``). Each takes the
head's parameters and works on any leading batch shape.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def categorical_sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    """Sample actions ``[...]`` from logits ``[..., num_actions]``."""
    return jax.random.categorical(key, logits, axis=-1)


def categorical_log_prob(logits: jax.Array, action: jax.Array) -> jax.Array:
    """``log pi(a)`` for integer actions ``[...]`` under logits ``[..., num_actions]``."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_probs, action[..., None].astype(jnp.int32), axis=-1)[..., 0]


def categorical_entropy(logits: jax.Array) -> jax.Array:
    """Entropy ``[...]`` of the categorical with logits ``[..., num_actions]``."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)


def gaussian_sample(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Sample actions ``[..., action_dim]`` from a diagonal Gaussian."""
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """``log pi(a)`` summed over the action dimensions: shape ``[...]``."""
    z = (action - mean) * jnp.exp(-log_std)
    per_dim = -0.5 * z**2 - log_std - 0.5 * math.log(2.0 * math.pi)
    return jnp.sum(per_dim, axis=-1)


def gaussian_entropy(mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Entropy ``[...]`` of the diagonal Gaussian, summed over action dimensions."""
    per_dim = 0.5 + 0.5 * math.log(2.0 * math.pi) + log_std
    return jnp.sum(jnp.broadcast_to(per_dim, mean.shape), axis=-1)
