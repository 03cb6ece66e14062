"""Actor-critic networks: an MLP for vector observations and a CNN for MinAtar.

Actor and critic are separate towers (as in the DPO/LPO and purejaxrl PPO setups).
The actor ends in a discrete head (logits) or a Gaussian head (mean and a
state-independent log standard deviation); :class:`PolicyOutput` carries either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from discovery.agents import distributions


@struct.dataclass
class PolicyOutput:
    """Action-distribution parameters: ``logits`` (discrete) or ``mean, log_std``."""

    logits: jax.Array | None = None
    mean: jax.Array | None = None
    log_std: jax.Array | None = None

    @property
    def discrete(self) -> bool:
        return self.logits is not None

    def sample(self, key: jax.Array) -> jax.Array:
        if self.discrete:
            return distributions.categorical_sample(key, self.logits)
        return distributions.gaussian_sample(key, self.mean, self.log_std)

    def log_prob(self, action: jax.Array) -> jax.Array:
        if self.discrete:
            return distributions.categorical_log_prob(self.logits, action)
        return distributions.gaussian_log_prob(self.mean, self.log_std, action)

    def entropy(self) -> jax.Array:
        if self.discrete:
            return distributions.categorical_entropy(self.logits)
        return distributions.gaussian_entropy(self.mean, self.log_std)

    def mode(self) -> jax.Array:
        if self.discrete:
            return jnp.argmax(self.logits, axis=-1)
        return self.mean


_ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu}


def orthogonal(scale: float = 1.0) -> Callable[..., jax.Array]:
    """Flax's orthogonal initialiser (Saxe et al., 2014), computed one matrix at a time
    under ``vmap``: the same values, bit for bit, without a batched LAPACK QR.

    Vmapped over seeds or population members, flax's initialiser becomes one batched
    QR, which jaxlib 0.10 on CPU splits over the same thread pool that runs the
    program (``ParallelBatchMap``); two such calls at once (two host devices, or XLA's
    concurrency-optimised scheduler) wait on each other's queued work forever.
    ``sequential_vmap`` turns the batch into a loop of single QRs, which never split.
    """
    base = nn.initializers.orthogonal(scale)

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        one = jax.custom_batching.sequential_vmap(lambda k: base(k, shape, dtype))
        return one(key)

    return init


def _dense(features: int, scale: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal(scale), bias_init=nn.initializers.zeros)


class _Torso(nn.Module):
    """MLP torso over flat observations ``[..., obs_dim]``.

    With ``conv``, observations are images ``[..., H, W, C]`` and pass first through a
    3x3 convolution with 16 channels (the MinAtar network, Young & Tian, 2019).
    """

    hidden_sizes: Sequence[int]
    activation: str
    conv: bool

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        x = obs
        if self.conv:
            x = nn.Conv(16, kernel_size=(3, 3), padding="VALID")(x)
            x = act(x).reshape(x.shape[:-3] + (-1,))
        for size in self.hidden_sizes:
            x = act(_dense(size, np.sqrt(2.0))(x))
        return x


class ActorCritic(nn.Module):
    """Separate actor and critic towers.

    Attributes:
      action_dim: number of discrete actions, or the continuous action dimension.
      discrete: categorical head if True, Gaussian head otherwise.
      hidden_sizes: widths of the MLP layers of each tower.
      activation: ``"tanh"`` or ``"relu"``.
      conv: put a MinAtar-style conv layer in front of each tower (image observations).

    ``__call__(obs[..., *obs_shape]) -> (PolicyOutput, value[...])``.
    """

    action_dim: int
    discrete: bool = True
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    conv: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[PolicyOutput, jax.Array]:
        actor = _Torso(self.hidden_sizes, self.activation, self.conv, name="actor_torso")(obs)
        head = _dense(self.action_dim, 0.01)(actor)
        if self.discrete:
            policy = PolicyOutput(logits=head)
        else:
            log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
            policy = PolicyOutput(mean=head, log_std=jnp.broadcast_to(log_std, head.shape))
        critic = _Torso(self.hidden_sizes, self.activation, self.conv, name="critic_torso")(obs)
        value = _dense(1, 1.0)(critic)[..., 0]
        return policy, value


def all_finite(tree: Any) -> jax.Array:
    """Whether every leaf of a pytree (e.g. an agent's params) is finite: a scalar bool,
    the test for a diverged agent."""
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))
