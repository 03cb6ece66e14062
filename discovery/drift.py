"""Drift functions: the learnable part of a Mirror Learning policy update.

Mirror Learning (Kuba et al., 2022) updates a policy by maximising
``E[r * A] - E[D(r, A)]`` with ``r = pi(a|s) / pi_old(a|s)``. A drift ``D`` is valid
when it is ``>= 0`` everywhere and is zero with zero gradient at ``r = 1``.
"Discovered Policy Optimisation" (Lu et al., 2022) writes PPO-clip as such a drift,
learns one (LPO) and distils it into a closed form (DPO); the temporally-aware variant
(TA-LPO, Jackson et al., 2024) also sees the training progress ``n / N``.

Every drift here is a :class:`Drift`: ``init(key) -> params`` and
``apply(params, ratio, advantage, progress) -> drift``, elementwise over arrays of any
(equal) shape, so agents take the drift as an argument and the params as a pytree that
a meta-optimiser can search over or vmap across a population.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

Params = Any
# apply(params, ratio, advantage, progress[, log_ratio]) -> drift
DriftApply = Callable[..., jax.Array]

#: Margin subtracted inside the learned drifts' ReLU so they are exactly zero (with zero
#: gradient) in a neighbourhood of ``r = 1`` (Lu et al., 2022, LPO code).
LPO_MARGIN = 1e-4


@dataclass(frozen=True, eq=False)
class Drift:
    """A drift function and how to initialise its parameters.

    Attributes:
      name: registry name (``"ppo"``, ``"dpo"``, ``"lpo"``, ``"ta_lpo"``).
      init: ``init(key) -> params``, the starting parameters (a pytree).
      apply: ``apply(params, ratio, advantage, progress) -> drift``; ``ratio`` and
        ``advantage`` share a shape, ``progress`` is a scalar in ``[0, 1]``.
      learnable: whether a meta-optimiser should search over the params.
      uses_log_ratio: ``apply`` takes the log-ratio as a fifth argument, which the
        caller computes as ``log_prob - old_log_prob`` (finite where ``ratio`` itself
        under- or overflows).
    """

    name: str
    init: Callable[[jax.Array], Params]
    apply: DriftApply
    learnable: bool = False
    uses_log_ratio: bool = False

    def __call__(
        self, params: Params, ratio: jax.Array, advantage: jax.Array, progress: jax.Array,
        log_ratio: jax.Array | None = None,
    ) -> jax.Array:
        """The drift at ``ratio``; ``log_ratio`` (the same shape), where the caller has
        it, reaches drifts that take logs of the ratio."""
        if self.uses_log_ratio and log_ratio is not None:
            return self.apply(params, ratio, advantage, progress, log_ratio)
        return self.apply(params, ratio, advantage, progress)


# --- PPO-clip -----------------------------------------------------------------------


def ppo_clip_drift(
    ratio: jax.Array, advantage: jax.Array, clip_eps: float | jax.Array = 0.2
) -> jax.Array:
    """PPO's clipping as a drift: ``ReLU((r - clip(r, 1-eps, 1+eps)) * A)``.

    With it, ``r A - D`` equals PPO's clipped surrogate ``min(r A, clip(r) A)``
    (Lu et al., 2022, Sec. 3).
    """
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return jax.nn.relu((ratio - clipped) * advantage)


def make_ppo_drift(clip_eps: float = 0.2) -> Drift:
    """PPO-clip drift; its one parameter is the clip range ``clip_eps``."""

    def init(key: jax.Array) -> Params:
        del key
        return {"clip_eps": jnp.asarray(clip_eps, jnp.float32)}

    def apply(params, ratio, advantage, progress):
        del progress
        return ppo_clip_drift(ratio, advantage, params["clip_eps"])

    return Drift("ppo", init, apply)


# --- DPO (closed form) --------------------------------------------------------------


def dpo_drift(
    ratio: jax.Array,
    advantage: jax.Array,
    alpha: float | jax.Array = 2.0,
    beta: float | jax.Array = 0.6,
    log_ratio: jax.Array | None = None,
) -> jax.Array:
    """Discovered Policy Optimisation's drift (Lu et al., 2022, Eq. 9).

    ``A >= 0``: ``ReLU((r-1)A - alpha * tanh((r-1)A / alpha))``;
    ``A < 0``: ``ReLU(log(r) A - beta * tanh(log(r) A / beta))``, with ``log(r)`` the
    ``log_ratio`` given (``log_prob - old_log_prob``, as DPO's public code computes it),
    else ``log(ratio)``, which is ``-inf`` where the ratio underflowed to 0 and then
    makes the gradient NaN.
    """
    positive = (ratio - 1.0) * advantage
    negative = (jnp.log(ratio) if log_ratio is None else log_ratio) * advantage
    drift_pos = jax.nn.relu(positive - alpha * jnp.tanh(positive / alpha))
    drift_neg = jax.nn.relu(negative - beta * jnp.tanh(negative / beta))
    return jnp.where(advantage >= 0.0, drift_pos, drift_neg)


def make_dpo_drift(alpha: float = 2.0, beta: float = 0.6) -> Drift:
    """DPO's drift with its published constants ``alpha = 2``, ``beta = 0.6``."""

    def init(key: jax.Array) -> Params:
        del key
        return {"alpha": jnp.asarray(alpha, jnp.float32), "beta": jnp.asarray(beta, jnp.float32)}

    def apply(params, ratio, advantage, progress, log_ratio=None):
        del progress
        return dpo_drift(ratio, advantage, params["alpha"], params["beta"], log_ratio)

    return Drift("dpo", init, apply, uses_log_ratio=True)


# --- LPO and TA-LPO (learned) -------------------------------------------------------


def lpo_features(ratio: jax.Array, advantage: jax.Array, clip: float | None = None) -> jax.Array:
    """LPO's drift-network inputs, all zero at ``r = 1`` (Lu et al., 2022, App. B).

    ``x = [log r, (log r)^2, 1 - r, (1 - r)^2]`` and the input is ``[x, A * x]``.
    Shape: ``ratio.shape + (8,)``. ``clip`` optionally bounds each feature.
    """
    log_r = jnp.log(ratio)
    one_minus_r = 1.0 - ratio
    base = jnp.stack([log_r, log_r**2, one_minus_r, one_minus_r**2], axis=-1)
    features = jnp.concatenate([base, advantage[..., None] * base], axis=-1)
    if clip is not None:
        features = jnp.clip(features, -clip, clip)
    return features


def _drift_network(params: Params, features: jax.Array) -> jax.Array:
    """``Dense(H, no bias) -> tanh -> Dense(1, no bias)``: exactly 0 when features are 0."""
    hidden = jnp.tanh(features @ params["w1"])
    return (hidden @ params["w2"])[..., 0]


def _init_drift_network(
    key: jax.Array, num_inputs: int, hidden: int, output_scale: float
) -> Params:
    """Random first layer; the output layer is ``output_scale`` times a LeCun-normal draw.

    With ``output_scale = 0`` the network outputs exactly 0 (so LPO starts as PPO-clip),
    yet the output layer's ES / gradient signal is non-zero: an all-zero init would sit
    on a saddle of the bilinear ``w2 . tanh(w1 x)`` where every first-order signal is 0.
    """
    key1, key2 = jax.random.split(key)
    init = jax.nn.initializers.lecun_normal()
    return {
        "w1": init(key1, (num_inputs, hidden), jnp.float32),
        "w2": output_scale * init(key2, (hidden, 1), jnp.float32),
    }


def make_lpo_drift(
    hidden: int = 128,
    init_at_ppo: bool = True,
    clip_eps: float = 0.2,
    feature_clip: float | None = None,
    temporally_aware: bool = False,
    output_scale: float = 0.0,
) -> Drift:
    """Learned Policy Optimisation's drift network (Lu et al., 2022).

    ``D = ReLU(ppo_clip(r, A) + net(r, A) - 1e-4)`` when ``init_at_ppo`` (so a zero output layer
    reproduces PPO-clip, the recommended ES starting point), else
    ``ReLU(net(r, A) - 1e-4)``. The network has no biases and its inputs vanish at
    ``r = 1``, so ``D`` is zero with zero gradient around ``r = 1`` for *any* params:
    the Mirror Learning conditions hold by construction. ``init`` draws the first layer
    at random and scales the output layer by ``output_scale`` (0: start exactly at PPO).

    With ``temporally_aware`` (TA-LPO, Jackson et al., 2024) the input becomes
    ``[x, progress * x]`` (16 values), letting the drift change over the lifetime.
    """
    num_inputs = 16 if temporally_aware else 8

    def init(key: jax.Array) -> Params:
        return _init_drift_network(key, num_inputs, hidden, output_scale)

    def apply(params, ratio, advantage, progress):
        features = lpo_features(ratio, advantage, feature_clip)
        if temporally_aware:
            features = jnp.concatenate([features, progress * features], axis=-1)
        drift = _drift_network(params, features) - LPO_MARGIN
        if init_at_ppo:
            drift = drift + ppo_clip_drift(ratio, advantage, clip_eps)
        return jax.nn.relu(drift)

    name = "ta_lpo" if temporally_aware else "lpo"
    return Drift(name, init, apply, learnable=True)


# --- registry -----------------------------------------------------------------------

_DRIFTS: dict[str, Callable[..., Drift]] = {
    "ppo": make_ppo_drift,
    "dpo": make_dpo_drift,
    "lpo": make_lpo_drift,
    "ta_lpo": lambda **kw: make_lpo_drift(temporally_aware=True, **kw),
}


def make_drift_choice(drifts: Sequence[Drift]) -> Drift:
    """One drift that acts as any of ``drifts``, picked by a traced index in its params.

    Params are ``{"index": int32, "members": (params of each drift, ...)}``. Vmapping an
    agent over ``index`` alone trains agents with every drift in one compiled program
    (same keys, so the comparison is paired) instead of one program per drift; under
    vmap every drift is computed and the chosen one selected, cheap beside the agent's
    network and environment.
    """
    drifts = tuple(drifts)

    def init(key: jax.Array) -> Params:
        keys = jax.random.split(key, len(drifts))
        return {"index": jnp.int32(0),
                "members": tuple(d.init(k) for d, k in zip(drifts, keys))}

    def branch(position: int) -> Callable[..., jax.Array]:
        def apply_one(members, ratio, advantage, progress, log_ratio):
            return drifts[position](members[position], ratio, advantage, progress, log_ratio)

        return apply_one

    branches = [branch(position) for position in range(len(drifts))]

    def apply(params, ratio, advantage, progress, log_ratio=None):
        log_ratio = jnp.log(ratio) if log_ratio is None else log_ratio
        return jax.lax.switch(
            params["index"], branches, params["members"], ratio, advantage, progress, log_ratio
        )

    return Drift("choice(" + ",".join(d.name for d in drifts) + ")", init, apply,
                 uses_log_ratio=any(d.uses_log_ratio for d in drifts))


def list_drifts() -> list[str]:
    """Names accepted by :func:`make_drift`."""
    return sorted(_DRIFTS)


def make_drift(name: str, **kwargs: Any) -> Drift:
    """Build a registered drift by name (``ppo``, ``dpo``, ``lpo``, ``ta_lpo``)."""
    if name not in _DRIFTS:
        raise ValueError(f"drift={name!r} is not a known drift; allowed: {list_drifts()}")
    return _DRIFTS[name](**kwargs)
