"""Curricula over levels: which ``EnvParams`` the next agents train on.

Every curriculum is the same few pure functions on an explicit state pytree, so the
outer loop treats them alike and checkpoints their state with everything else:

    state = curriculum.init()
    batch, state = curriculum.sample(key, state, n)    # LevelBatch: levels [n], slots [n]
    ...train agents on batch.levels, score the levels they finished...
    state = curriculum.update(state, finished, scores, valid)

Sampling returns a new state because PLR's staleness counts draws (Jiang et al., 2021):
a level's staleness resets when it is drawn for replay. A caller that starts agents on
only some of the ``n`` draws (meta-gradient training, where only the agents whose
lifetime ended move to a new level) calls ``batch = curriculum.draw(key, state, n)``
and, once it knows which draws were used, ``state = curriculum.mark_sampled(state,
batch, used)``; ``sample`` is exactly ``draw`` then ``mark_sampled`` of every draw.

* ``"none"``: no curriculum; the task trains on its own fixed levels (a drift task's
  environments at their default parameters). Nothing is built for it.
* ``"dr"``, domain randomisation: a fresh level from the generator for every agent.
* ``"plr"``, prioritised level replay (:mod:`discovery.meta.plr`; Jiang et al., 2021) over a
  buffer scored by algorithmic regret (GROOVE, Jackson et al., 2023), positive value
  loss or MaxMC.
* ``"alp_gmm"``, the ALP-GMM teacher (:mod:`discovery.meta.alp_gmm`; Portelas et al., 2019):
  proposes points of the level space's unit cube where the score (the agents'
  competence) changes most. It runs in numpy outside the jitted step; the level space
  decodes its points into levels.

DR and PLR are jitted; ALP-GMM's ``draw`` and ``update`` are host functions. Slots
are the curriculum's ids for levels (PLR's buffer index, ``-1`` for a fresh level) and
must come back to ``update`` with the levels they were sampled with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from discovery.envs.levels import LevelSpace
from discovery.meta import alp_gmm, plr
from discovery.meta.alp_gmm import ALPGMMConfig
from discovery.meta.plr import PLRConfig

CURRICULA = ("none", "dr", "plr", "alp_gmm")
SCORES = ("algorithmic_regret", "positive_value_loss", "max_mc", "return")


@dataclass(frozen=True)
class CurriculumConfig:
    """Which curriculum picks the training levels, and what scores a level.

    Attributes:
      kind: ``"none"``, ``"dr"``, ``"plr"`` or ``"alp_gmm"`` (see the module docstring).
      score: what a finished level is scored by: ``"algorithmic_regret"`` (an A2C
        antagonist's return minus the learned algorithm's; GROOVE), ``"positive_value_loss"``,
        ``"max_mc"`` (robust PLR), or ``"return"`` (the agents' competence, ALP-GMM's
        signal). DR ignores it.
      plr: prioritised level replay settings (``kind="plr"``).
      alp_gmm: ALP-GMM settings (``kind="alp_gmm"``).
    """

    kind: Literal["none", "dr", "plr", "alp_gmm"] = "dr"
    score: Literal["algorithmic_regret", "positive_value_loss", "max_mc", "return"] = (
        "algorithmic_regret"
    )
    plr: PLRConfig = field(default_factory=PLRConfig)
    alp_gmm: ALPGMMConfig = field(default_factory=ALPGMMConfig)

    @property
    def needs_antagonist(self) -> bool:
        """Whether levels must be scored against an A2C antagonist."""
        return self.kind in ("plr", "alp_gmm") and self.score == "algorithmic_regret"

    @property
    def learns_from(self) -> str:
        """The level score the curriculum updates on (DR ignores scores, so its
        statistics follow the agents' ``"return"``)."""
        return "return" if self.kind == "dr" else self.score


@struct.dataclass
class LevelBatch:
    """Levels for ``n`` agents (leading axis ``n``) and their curriculum slots ``[n]``."""

    levels: Any
    slots: jax.Array


@struct.dataclass
class FinishedLevels:
    """The levels whose agents finished in a meta-optimiser's step, with their scores;
    each ``[A]`` (what a curriculum learns from).

    ``valid`` marks the agents that finished with finite params and a scored window;
    ``restarted`` the agents that moved to the step's next levels (finished, or broken);
    ``slots`` are the curriculum's ids the levels came with; ``scores`` maps
    ``"return"`` (reward per step), ``"antagonist_return"`` and ``"algorithmic_regret"``
    (NaN without an antagonist),
    ``"positive_value_loss"`` and ``"max_mc"`` to ``[A]`` arrays.
    """

    levels: Any
    slots: jax.Array
    valid: jax.Array
    restarted: jax.Array
    scores: dict[str, jax.Array]


@struct.dataclass
class DRState:
    """Domain randomisation keeps only counts and the last finished levels' scores."""

    visits: jax.Array
    score_mean: jax.Array
    score_std: jax.Array


@dataclass(frozen=True, eq=False)
class Curriculum:
    """A built curriculum (see :func:`make_curriculum` and the module docstring).

    Attributes:
      init: ``init() -> state``.
      draw: ``draw(key, state, n) -> LevelBatch``: ``n`` levels, state unchanged.
      mark_sampled: ``mark_sampled(state, batch: LevelBatch, used [n]) -> state``:
        record that agents started on the ``used`` draws of ``batch`` (drawn from
        ``state``); PLR resets the staleness of the replayed ones. Identity for DR and
        ALP-GMM.
      update: ``update(state, finished: LevelBatch, scores [n], valid [n]) -> state``.
      stats: ``stats(state) -> {name: float}``: buffer statistics for the log (score
        distribution, level diversity).
    """

    config: CurriculumConfig
    init: Callable[[], Any]
    draw: Callable[[jax.Array, Any, int], LevelBatch]
    mark_sampled: Callable[[Any, LevelBatch, jax.Array], Any]
    update: Callable[[Any, LevelBatch, jax.Array, jax.Array], Any]
    stats: Callable[[Any], dict[str, float]]

    def sample(self, key: jax.Array, state: Any, n: int) -> tuple[LevelBatch, Any]:
        """``n`` levels for ``n`` agents that all start on them now: :attr:`draw`, then
        :attr:`mark_sampled` of every draw. Returns ``(batch, state)``; carry on from
        the returned state (PLR's staleness was reset for the replayed levels)."""
        batch = self.draw(key, state, n)
        return batch, self.mark_sampled(state, batch, jnp.ones(n, bool))


def make_curriculum(
    config: CurriculumConfig,
    sample_level: Callable[[jax.Array], Any],
    space: LevelSpace | None = None,
) -> Curriculum:
    """Build ``config``'s curriculum over levels from ``sample_level(key)``.

    ``space`` (the level space ``sample_level`` draws from) is needed by ALP-GMM, which
    proposes points of its unit cube, and gives the other curricula a level-diversity
    statistic (mean spread of the encoded levels).
    """
    if config.kind == "none":
        raise ValueError(
            "curriculum.kind='none' builds no curriculum: the task keeps its own levels"
        )
    if config.kind == "dr":
        return _domain_randomisation(config, sample_level)
    if config.kind == "plr":
        return _prioritised_level_replay(config, sample_level, space)
    if space is None:
        raise ValueError(
            "curriculum.kind='alp_gmm' needs a parameterised level space; train on "
            "'gridworld/random' or '<env>/random' for a classic-control env"
        )
    return _alp_gmm(config, space)


def score_population(scores: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Members' fitness and per-level scores from agents' scores ``[P, L]``, one agent
    per member and level (NaN: the agent diverged).

    A member's fitness is the mean of its ``L`` agents' scores when all are finite and
    ``-inf`` otherwise: divergence is the worst outcome, and every member is scored on
    the same levels. Per level, ``"return"`` is the mean over the members whose agent
    stayed finite (NaN when none did) and ``"diverged_fraction"`` the fraction that did
    not, so a curriculum still scores a level on which a few perturbed members broke,
    while the breakage is reported rather than averaged away.
    """
    finite = jnp.isfinite(scores)
    fitness = jnp.where(jnp.all(finite, axis=-1), jnp.mean(scores, axis=-1), -jnp.inf)
    count = jnp.sum(finite, axis=0)
    total = jnp.sum(jnp.where(finite, scores, 0.0), axis=0)
    level_return = jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)
    diverged = 1.0 - count.astype(jnp.float32) / scores.shape[0]
    return fitness, {"return": level_return, "diverged_fraction": diverged}


def _score_stats(scores: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    weight = valid & jnp.isfinite(scores)
    count = jnp.maximum(jnp.sum(weight), 1)
    mean = jnp.sum(jnp.where(weight, scores, 0.0)) / count
    var = jnp.sum(jnp.where(weight, (scores - mean) ** 2, 0.0)) / count
    nothing = jnp.sum(weight) == 0
    return jnp.where(nothing, jnp.nan, mean), jnp.where(nothing, jnp.nan, jnp.sqrt(var))


def _sample_fresh(sample_level: Callable[[jax.Array], Any], key: jax.Array, n: int) -> LevelBatch:
    levels = jax.vmap(sample_level)(jax.random.split(key, n))
    return LevelBatch(levels=levels, slots=jnp.full(n, -1, jnp.int32))


def _unchanged(state: Any, batch: LevelBatch, used: jax.Array) -> Any:
    """``mark_sampled`` of curricula whose state does not depend on what was drawn."""
    return state


def _domain_randomisation(
    config: CurriculumConfig, sample_level: Callable[[jax.Array], Any]
) -> Curriculum:
    def init() -> DRState:
        nan = jnp.float32(jnp.nan)
        return DRState(visits=jnp.int32(0), score_mean=nan, score_std=nan)

    @jax.jit
    def update(state: DRState, finished: LevelBatch, scores: jax.Array, valid: jax.Array):
        mean, std = _score_stats(scores, valid)
        return DRState(
            visits=state.visits + jnp.sum(valid).astype(jnp.int32), score_mean=mean, score_std=std
        )

    def stats(state: DRState) -> dict[str, float]:
        return {
            "visits": float(state.visits),
            "score_mean": float(state.score_mean),
            "score_std": float(state.score_std),
        }

    draw = jax.jit(lambda key, state, n: _sample_fresh(sample_level, key, n), static_argnums=2)
    return Curriculum(config, init, draw, _unchanged, update, stats)


def _diversity(space: LevelSpace | None, levels: Any, mask: jax.Array) -> jax.Array:
    """Mean over the space's dimensions of the spread (std) of the masked levels."""
    if space is None:
        return jnp.float32(jnp.nan)
    points = jax.vmap(space.encode)(levels)
    weight = mask.astype(jnp.float32)[:, None]
    count = jnp.maximum(jnp.sum(weight), 1.0)
    mean = jnp.sum(points * weight, axis=0) / count
    var = jnp.sum(weight * (points - mean) ** 2, axis=0) / count
    return jnp.where(jnp.sum(mask) > 0, jnp.mean(jnp.sqrt(var)), jnp.nan)


def _prioritised_level_replay(
    config: CurriculumConfig, sample_level: Callable[[jax.Array], Any], space: LevelSpace | None
) -> Curriculum:
    plr_config = config.plr
    example = sample_level(jax.random.key(0))

    def init() -> plr.PLRState:
        return plr.init(plr_config, example)

    @partial(jax.jit, static_argnums=2)
    def draw(key: jax.Array, state: plr.PLRState, n: int) -> LevelBatch:
        levels, slots = plr.draw(plr_config, key, state, n, sample_level)
        return LevelBatch(levels=levels, slots=slots)

    @jax.jit
    def mark_sampled(state: plr.PLRState, batch: LevelBatch, used: jax.Array) -> plr.PLRState:
        return plr.mark_sampled(state, batch.slots, used)

    @jax.jit
    def update(state: plr.PLRState, finished: LevelBatch, scores: jax.Array, valid: jax.Array):
        return plr.update(plr_config, state, finished.levels, finished.slots, scores, valid)

    @jax.jit
    def buffer_stats(state: plr.PLRState) -> dict[str, jax.Array]:
        scores = jnp.where(state.filled, state.scores, jnp.nan)
        return plr.stats(state) | {
            "score_p10": jnp.nanpercentile(scores, 10),
            "score_p50": jnp.nanpercentile(scores, 50),
            "score_p90": jnp.nanpercentile(scores, 90),
            "diversity": _diversity(space, state.levels, state.filled),
        }

    def stats(state: plr.PLRState) -> dict[str, float]:
        return {name: float(value) for name, value in jax.device_get(buffer_stats(state)).items()}

    return Curriculum(config, init, draw, mark_sampled, update, stats)


def _alp_gmm(config: CurriculumConfig, space: LevelSpace) -> Curriculum:
    teacher = config.alp_gmm

    def init() -> alp_gmm.ALPGMMState:
        return alp_gmm.init(teacher, space.num_dims)

    @jax.jit
    def decode(key: jax.Array, points: jax.Array) -> Any:
        return jax.vmap(space.decode)(jax.random.split(key, points.shape[0]), points)

    encode = jax.jit(jax.vmap(space.encode))

    def draw(key: jax.Array, state: alp_gmm.ALPGMMState, n: int) -> LevelBatch:
        key_points, key_levels = jax.random.split(key)
        points = alp_gmm.sample(teacher, key_points, state, n)
        levels = decode(key_levels, jnp.asarray(points, jnp.float32))
        return LevelBatch(levels=levels, slots=jnp.full(n, -1, jnp.int32))

    def update(state, finished: LevelBatch, scores: jax.Array, valid: jax.Array):
        points = np.asarray(encode(finished.levels))
        return alp_gmm.update(teacher, state, points, np.asarray(scores), np.asarray(valid))

    def stats(state: alp_gmm.ALPGMMState) -> dict[str, float]:
        figures = alp_gmm.stats(state, window=teacher.fit_window)
        return {name: float(value) for name, value in figures.items()}

    return Curriculum(config, init, draw, _unchanged, update, stats)
