"""A directional finite-difference check of an analytic gradient, shared by the
meta-gradient tests (objectives through LPG updates, drifts through PPO updates)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def assert_gradient_matches_finite_differences(
    loss: Callable[[Any], jax.Array], theta: Any, key: jax.Array, eps: float = 1e-6,
    rtol: float = 1e-4,
) -> None:
    """``<grad loss(theta), d>`` equals the central difference of ``loss`` along a random
    direction ``d`` (run under ``jax.enable_x64``), and is not zero."""
    grad = jax.jit(jax.grad(loss))(theta)
    keys = jax.random.split(key, len(jax.tree.leaves(theta)))
    direction = jax.tree.unflatten(jax.tree.structure(theta), [
        jax.random.normal(k, x.shape, x.dtype) for x, k in zip(jax.tree.leaves(theta), keys)
    ])
    plus = loss(jax.tree.map(lambda x, d: x + eps * d, theta, direction))
    minus = loss(jax.tree.map(lambda x, d: x - eps * d, theta, direction))
    numeric = float((plus - minus) / (2 * eps))
    analytic = float(sum(jnp.vdot(g, d) for g, d in zip(
        jax.tree.leaves(grad), jax.tree.leaves(direction))))
    assert abs(analytic) > 1e-8
    np.testing.assert_allclose(analytic, numeric, rtol=rtol)
