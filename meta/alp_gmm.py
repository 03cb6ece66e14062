"""ALP-GMM teacher: propose tasks where the student's competence is changing.

Portelas, Colas, Hofmann and Oudeyer (2019), "Teacher algorithms for curriculum learning
of Deep RL in continuously parameterized environments" (CoRL), Section 4. A task is a
point ``p`` in the unit cube ``[0, 1]^d`` (e.g. a normalised vector of ``EnvParams``). After
each episode the teacher records the student's competence ``c`` on ``p`` and its absolute
learning progress

    ALP(p) = |c - c_old|,   c_old = competence on the nearest earlier task in the history,

then, every ``fit_every`` tasks, fits Gaussian mixtures with ``k = min..max`` components to
the most recent ``(p, ALP)`` pairs and keeps the one with the lowest AIC. New tasks come
from the component picked with probability proportional to its mean ALP (the last
coordinate of its mean), so the teacher follows progress wherever it appears, plus a
fraction drawn uniformly so that it keeps finding new progress (paper: 20%).

The teacher runs in NumPy outside the jitted training step (EM with model selection is
cheap on a few hundred points and awkward to jit), yet keeps the pure
``init / sample / update`` shape of Discovery's curricula over an explicit
:class:`ALPGMMState`: every field is a NumPy array whose shape is fixed by the config and
``num_dims``, so the state checkpoints with ``flax.serialization`` and restores exactly.

    config = ALPGMMConfig()
    state = init(config, num_dims=2)
    tasks = sample(config, key, state, n=16)          # [16, 2] float32 in [0, 1]
    state = update(config, state, tasks, competence)  # competence [16]

One module (~420 lines): the Gaussian-mixture fit, the history of learning progress it
is fit to, and the proposal rule that reads both are one teacher's state and step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

__all__ = [
    "ALPGMMConfig",
    "ALPGMMState",
    "fit_mixture",
    "init",
    "sample",
    "stats",
    "update",
]

# Added to every covariance's diagonal: keeps Cholesky factors finite when a component
# collapses onto a flat direction (e.g. ALP identically zero), as sklearn's ``reg_covar``.
_COVARIANCE_REGULARISER = 1e-6
# EM stops once the mean log-likelihood per point improves by less than this.
_EM_TOLERANCE = 1e-4
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class ALPGMMConfig:
    """Static configuration of the ALP-GMM teacher (frozen, hashable).

    Defaults are the paper's (Portelas et al., 2019, Section 4 and Appendix): refit every
    250 episodes on the last 250 ``(p, ALP)`` pairs, ``k`` in 2..10 chosen by AIC, 20% of
    tasks uniform.

    Attributes:
      fit_every: refit the mixture after this many new (valid) tasks.
      min_components, max_components: range of mixture sizes tried; AIC picks one.
        ``max_components`` also fixes the padded size ``K`` of the mixture in the state.
      random_fraction: share of sampled tasks drawn uniformly from the unit cube.
      history_size: ``(p, competence)`` pairs kept for the nearest-neighbour ALP
        (a ring buffer; the oldest are overwritten).
      fit_window: the most recent ``(p, ALP)`` pairs the mixture is fitted on.
      em_iterations: maximum EM iterations per mixture size.
    """

    fit_every: int = field(default=250, metadata={"min": 1})
    min_components: int = field(default=2, metadata={"min": 1})
    max_components: int = field(default=10, metadata={"min": 1})
    random_fraction: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})
    history_size: int = field(default=10000, metadata={"min": 1})
    fit_window: int = field(default=250, metadata={"min": 1})
    em_iterations: int = field(default=100, metadata={"min": 1})

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> ValueError:
            value = getattr(self, name)
            return ValueError(f"ALPGMMConfig.{name}={value!r} is invalid; allowed: {allowed}")

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = "an int" if f.type in ("int", int) else "a number"
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            allowed = kind + "".join(
                [f" >= {lo}" if lo is not None else "", f" <= {hi}" if hi is not None else ""]
            )
            if kind == "an int":
                ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            else:
                ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
                ok = ok and math.isfinite(value)
            if not ok or (lo is not None and value < lo) or (hi is not None and value > hi):
                raise bad(f.name, allowed)
        if self.min_components > self.max_components:
            raise bad("min_components", f"an int <= max_components={self.max_components}")
        if self.fit_window > self.history_size:
            raise bad("fit_window", f"an int <= history_size={self.history_size}")
        # Every fit then sees at least min_components points, so every k can be tried.
        if self.min_components > min(self.fit_every, self.fit_window):
            raise bad(
                "min_components",
                f"an int <= min(fit_every, fit_window)={min(self.fit_every, self.fit_window)}",
            )


@struct.dataclass
class ALPGMMState:
    """The teacher's state; NumPy arrays of fixed shapes, ``H = history_size``,
    ``K = max_components``, ``d = num_dims``.

    The history is a ring buffer: the ``i``-th task ever recorded (0-based) sits in row
    ``i % H``, and rows ``>= min(count, H)`` are unused (zeros).

    Attributes:
      points: [H, d] float64, recorded tasks.
      competence: [H] float64, the student's competence on each.
      alp: [H] float64, absolute learning progress of each.
      count: [] int64, tasks recorded so far.
      weights: [K] float64, mixture weights (0 for inactive components).
      means: [K, d + 1] float64, component means over ``(p, ALP)``.
      covariances: [K, d + 1, d + 1] float64, full covariances (identity when inactive).
      active: [K] bool, components of the fitted mixture (the first ``k`` rows).
      fitted: [] bool, whether a mixture has been fitted yet.
      since_fit: [] int64, tasks recorded since the last fit.
    """

    points: np.ndarray
    competence: np.ndarray
    alp: np.ndarray
    count: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    active: np.ndarray
    fitted: np.ndarray
    since_fit: np.ndarray


def init(config: ALPGMMConfig, num_dims: int) -> ALPGMMState:
    """An empty teacher over ``[0, 1]^num_dims``: no history, no mixture (samples uniform)."""
    if isinstance(num_dims, bool) or not isinstance(num_dims, (int, np.integer)) or num_dims < 1:
        raise ValueError(f"num_dims={num_dims!r} is invalid; allowed: an int >= 1")
    h, k, d = config.history_size, config.max_components, int(num_dims)
    return ALPGMMState(
        points=np.zeros((h, d), np.float64),
        competence=np.zeros((h,), np.float64),
        alp=np.zeros((h,), np.float64),
        count=np.array(0, np.int64),
        weights=np.zeros((k,), np.float64),
        means=np.zeros((k, d + 1), np.float64),
        covariances=np.tile(np.eye(d + 1), (k, 1, 1)),
        active=np.zeros((k,), bool),
        fitted=np.array(False),
        since_fit=np.array(0, np.int64),
    )


def sample(config: ALPGMMConfig, key: jax.Array, state: ALPGMMState, n: int) -> np.ndarray:
    """Propose ``n`` tasks, [n, d] float32 in ``[0, 1]``.

    Before the first fit every task is uniform. After it, each task is uniform with
    probability ``random_fraction``; otherwise a component is picked with probability
    proportional to its mean ALP (clipped at 0; by the mixture weights if every mean ALP
    is 0) and ``p ~ N(mean[:d], cov[:d, :d])`` is drawn from its marginal over tasks and
    clipped to the cube (Portelas et al., 2019, Algorithm 1).

    Randomness comes from a NumPy generator seeded with bits of ``key``, so the same key
    and state give the same tasks. Every draw consumes the same random numbers whatever
    branch it takes.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n={n} is invalid; allowed: an int >= 0")
    d = state.points.shape[1]
    seed = np.asarray(jax.random.bits(key, (4,), jnp.uint32)).tolist()
    rng = np.random.default_rng(seed)
    uniform = rng.random((n, d))
    if not bool(state.fitted):
        return uniform.astype(np.float32)
    explore = rng.random(n) < config.random_fraction
    probs = _component_probabilities(state)
    component = rng.choice(probs.shape[0], size=n, p=probs)
    noise = rng.standard_normal((n, d))
    chol = np.linalg.cholesky(state.covariances[:, :d, :d])  # [K, d, d]
    gaussian = state.means[component, :d] + np.einsum("nij,nj->ni", chol[component], noise)
    tasks = np.where(explore[:, None], uniform, np.clip(gaussian, 0.0, 1.0))
    return tasks.astype(np.float32)


def update(
    config: ALPGMMConfig,
    state: ALPGMMState,
    points: np.ndarray,
    competence: np.ndarray,
    valid: np.ndarray | None = None,
) -> ALPGMMState:
    """Record episodes and refit the mixture when due; returns a new state.

    Args:
      points: [n, d] tasks the student played.
      competence: [n] its competence (e.g. normalised return) on each.
      valid: [n] bool, entries to record (default all). Entries with a non-finite point
        or competence are skipped as well.

    Entries are recorded in order. Each gets ``ALP = |c - c_nn|``, ``c_nn`` the competence of
    the nearest (Euclidean) task already in the history, earlier entries of this batch
    included (0 for the very first task); then it joins the history. After every
    ``fit_every`` recorded tasks the mixture is refitted on the last ``fit_window``
    ``(p, ALP)`` pairs (:func:`fit_mixture`, seeded by ``count`` at that moment). The
    result does not depend on how episodes are split into batches; a fit that a later
    fit in the same batch would replace is skipped.

    The input state is never modified.
    """
    h, d = state.points.shape
    points = np.asarray(points, np.float64)
    competence = np.asarray(competence, np.float64)
    n = competence.shape[0] if competence.ndim == 1 else -1
    if points.shape != (n, d):
        raise ValueError(
            f"points has shape {points.shape} and competence {competence.shape}; "
            f"expected [n, {d}] and [n]"
        )
    keep = np.isfinite(competence) & np.all(np.isfinite(points), axis=1)
    if valid is not None:
        valid = np.asarray(valid, bool)
        if valid.shape != (n,):
            raise ValueError(f"valid has shape {valid.shape}; expected [{n}]")
        keep &= valid
    rows = np.flatnonzero(keep)

    history = state.points.copy()
    past_competence = state.competence.copy()
    alp = state.alp.copy()
    count = int(state.count)
    since_fit = int(state.since_fit)
    mixture = None
    for j, i in enumerate(rows):
        size = min(count, h)
        if size == 0:
            progress = 0.0
        else:
            distances = np.sum((history[:size] - points[i]) ** 2, axis=1)
            progress = abs(competence[i] - past_competence[int(np.argmin(distances))])
        slot = count % h
        history[slot] = points[i]
        past_competence[slot] = competence[i]
        alp[slot] = progress
        count += 1
        since_fit += 1
        if since_fit == config.fit_every:
            since_fit = 0
            if len(rows) - 1 - j < config.fit_every:  # no later fit in this batch replaces it
                window = _recent(np.arange(h), count, h, config.fit_window)
                data = np.concatenate([history[window], alp[window, None]], axis=1)
                mixture = fit_mixture(config, data, seed=count)

    new = state.replace(
        points=history,
        competence=past_competence,
        alp=alp,
        count=np.array(count, np.int64),
        since_fit=np.array(since_fit, np.int64),
    )
    if mixture is not None:
        weights, means, covariances, active = mixture
        new = new.replace(
            weights=weights,
            means=means,
            covariances=covariances,
            active=active,
            fitted=np.array(True),
        )
    return new


def fit_mixture(
    config: ALPGMMConfig, data: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit full-covariance Gaussian mixtures to ``data`` [N, D]; keep the lowest-AIC one.

    Tries ``k = min_components .. min(max_components, N)``, each by EM (Dempster, Laird
    and Rubin, 1977) from a k-means++ initialisation (Arthur and Vassilvitskii, 2007)
    seeded by ``(seed, k)``, with a small ridge on every covariance's diagonal. AIC
    (Akaike, 1974) is ``2 * params - 2 * log-likelihood`` with
    ``params = k * (D + D (D + 1) / 2) + k - 1``, as in the paper's use of sklearn.

    Returns ``(weights [K], means [K, D], covariances [K, D, D], active [K])`` padded to
    ``K = max_components``: the chosen ``k`` components first, then inactive rows with
    weight 0, mean 0 and identity covariance.
    """
    data = np.asarray(data, np.float64)
    num, dim = data.shape
    best = None
    for k in range(config.min_components, min(config.max_components, num) + 1):
        rng = np.random.default_rng([int(seed), k])
        weights, means, covariances, log_likelihood = _em(data, k, config.em_iterations, rng)
        params = k * (dim + dim * (dim + 1) // 2) + k - 1
        aic = 2.0 * params - 2.0 * log_likelihood
        if best is None or aic < best[0]:
            best = (aic, weights, means, covariances)
    if best is None:
        raise ValueError(f"cannot fit {config.min_components}+ components to {num} points")
    _, weights, means, covariances = best
    k, big_k = weights.shape[0], config.max_components
    padded_covariances = np.tile(np.eye(dim), (big_k, 1, 1))
    padded_covariances[:k] = covariances
    return (
        np.concatenate([weights, np.zeros(big_k - k)]),
        np.concatenate([means, np.zeros((big_k - k, dim))]),
        padded_covariances,
        np.arange(big_k) < k,
    )


def stats(state: ALPGMMState, window: int = 250) -> dict[str, float]:
    """Scalars to log: mixture components in use (0 before the first fit), the mean ALP
    of the last ``window`` recorded tasks (pass ``config.fit_window``), how many pairs the
    history holds and how many tasks were recorded in all.
    """
    h = state.points.shape[0]
    count = int(state.count)
    recent = _recent(state.alp, count, h, window)
    return {
        "components": float(np.sum(state.active)) if bool(state.fitted) else 0.0,
        "alp_recent": float(np.mean(recent)) if recent.size else 0.0,
        "history_size": float(min(count, h)),
        "tasks": float(count),
    }


def _recent(buffer: np.ndarray, count: int, size: int, window: int) -> np.ndarray:
    """The last ``min(window, count, size)`` entries of a ring buffer, oldest first."""
    take = min(window, count, size)
    return buffer[np.arange(count - take, count) % size]


def _component_probabilities(state: ALPGMMState) -> np.ndarray:
    """[K] probability of sampling from each component: its mean ALP, clipped at 0."""
    alp = np.where(state.active, np.clip(state.means[:, -1], 0.0, None), 0.0)
    if not alp.sum() > 0:
        alp = np.where(state.active, state.weights, 0.0)
    if not alp.sum() > 0:
        alp = state.active.astype(np.float64)
    return alp / alp.sum()


def _em(
    data: np.ndarray, k: int, iterations: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """EM for a ``k``-component full-covariance mixture on [N, D] data.

    Returns ``(weights [k], means [k, D], covariances [k, D, D], log-likelihood)``, the
    log-likelihood being the data's total under the returned parameters.
    """
    centres = _kmeans_plus_plus(data, k, rng)
    nearest = np.argmin(np.sum((data[:, None] - centres[None]) ** 2, axis=-1), axis=1)
    responsibilities = np.eye(k)[nearest]  # [N, k] hard assignment to the seeds
    weights, means, covariances = _m_step(data, responsibilities)
    previous = -np.inf
    for _ in range(iterations):
        log_joint = _log_gaussian(data, means, covariances) + np.log(weights)  # [N, k]
        log_norm = _logsumexp(log_joint)  # [N]
        mean_log_likelihood = float(np.mean(log_norm))
        weights, means, covariances = _m_step(data, np.exp(log_joint - log_norm[:, None]))
        if abs(mean_log_likelihood - previous) < _EM_TOLERANCE:
            break
        previous = mean_log_likelihood
    log_joint = _log_gaussian(data, means, covariances) + np.log(weights)
    return weights, means, covariances, float(np.sum(_logsumexp(log_joint)))


def _kmeans_plus_plus(data: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """[k, D] seeds: the first uniform, each next with probability ∝ squared distance."""
    num = data.shape[0]
    chosen = [int(rng.integers(num))]
    closest = np.sum((data - data[chosen[0]]) ** 2, axis=1)
    for _ in range(1, k):
        total = closest.sum()
        probs = closest / total if total > 0 else np.full(num, 1.0 / num)
        chosen.append(int(rng.choice(num, p=probs)))
        closest = np.minimum(closest, np.sum((data - data[chosen[-1]]) ** 2, axis=1))
    return data[chosen]


def _m_step(
    data: np.ndarray, responsibilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-likelihood weights [k], means [k, D], ridge-regularised covariances [k, D, D]."""
    num, dim = data.shape
    # A component that owns no point keeps a finite mean; its weight is ~0.
    mass = responsibilities.sum(axis=0) + 10.0 * np.finfo(np.float64).eps  # [k]
    means = responsibilities.T @ data / mass[:, None]
    centred = data[None] - means[:, None]  # [k, N, D]
    covariances = np.einsum("nk,kni,knj->kij", responsibilities, centred, centred)
    covariances = covariances / mass[:, None, None] + _COVARIANCE_REGULARISER * np.eye(dim)
    return mass / mass.sum(), means, covariances


def _log_gaussian(data: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> np.ndarray:
    """[N, k] log-density of each point under each component's Gaussian."""
    dim = data.shape[1]
    chol = np.linalg.cholesky(covariances)  # [k, D, D]
    centred = (data[None] - means[:, None]).transpose(0, 2, 1)  # [k, D, N]
    whitened = np.linalg.solve(chol, centred)  # [k, D, N]
    mahalanobis = np.sum(whitened**2, axis=1)  # [k, N]
    log_det = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)  # [k]
    return (-0.5 * (dim * _LOG_2PI + log_det[:, None] + mahalanobis)).T


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """[N] log of the sum of exp over the last axis of [N, k], computed stably."""
    top = np.max(x, axis=1)
    return top + np.log(np.sum(np.exp(x - top[:, None]), axis=1))
