"""Prioritised Level Replay: a scored level buffer as pure, jittable functions.

PLR (Jiang et al., 2021, "Prioritized Level Replay") keeps a buffer of levels with a
score each (a regret estimate: positive value loss, MaxMC, or GROOVE's algorithmic
regret) and, for each new agent, either *replays* a buffered level drawn from

    P_replay(l_i) = (1 - rho) * P_S(l_i) + rho * P_C(l_i)                     (eq. 3)

or samples a fresh level. The score distribution is rank-based (eq. 1, 2),

    h(S_i) = 1 / rank(S_i),    P_S(l_i) = h(S_i)^(1/beta) / sum_j h(S_j)^(1/beta),

or, with ``prioritization="topk"``, uniform over the k highest-scoring levels. The
staleness distribution (eq. 4) favours levels that have not been *sampled* for long,

    P_C(l_i) = (c - C_i) / sum_j (c - C_j),

where ``c`` counts the levels sampled so far (every draw, replayed or fresh) and
``C_i`` is the value of ``c`` when ``l_i`` was last sampled. As in the paper's
reference code (``level_replay/level_sampler.py``, ``_update_staleness``), staleness
resets when a level is drawn for replay, not when its score comes back: a level that
is being replayed is not stale even while its agent is still training on it. Replay
starts only once the buffer holds enough levels to draw a batch from (see
:meth:`PLRConfig.replay_threshold`), never from a one-level buffer. Robust PLR (PLR-perp;
Jiang et al., 2021, "Replay-Guided Adversarial Environment Design") keeps a fixed-size
buffer: a fresh level enters the first empty slot, else replaces the lowest-scoring
level if its score is higher. GROOVE (Jackson et al., 2023) runs this with 4000
levels, replay probability 0.5, rank prioritisation and temperature 1.

Levels are any pytree of arrays (e.g. gymnax ``EnvParams``); the buffer stores them
with a leading ``[B]`` axis. ``config`` is static: close over it, or pass it (and
``n`` and ``sample_new_level`` for :func:`sample`) as static arguments to ``jax.jit``.

    state = init(config, example_level)
    levels, slots, state = sample(config, key, state, n, sample_new_level)  # [n], [n]
    scores = ...  # train agents on ``levels``, score each level: [n]
    state = update(config, state, levels, slots, scores, valid)

A caller that starts agents on only some of the ``n`` draws (e.g. meta-gradient
training, where only the agents whose lifetime ended take a new level) uses
:func:`draw` and then :func:`mark_sampled` with the draws actually used, so unused
draws neither reset staleness nor count towards ``c``.

One module (~440 lines): the buffer's state, scores, staleness and the replay-or-new
decision are one data structure's functions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import struct

Level = Any  # a pytree of arrays, e.g. gymnax EnvParams

PRIORITIZATIONS = ("rank", "topk")
_INT_FIELDS = ("buffer_size", "top_k")


@dataclass(frozen=True)
class PLRConfig:
    """Static configuration of prioritised level replay (frozen, hashable).

    Defaults are GROOVE's (Jackson et al., 2023): a 4000-level buffer, replay
    probability 0.5, rank prioritisation with temperature 1, and PLR's staleness
    coefficient 0.3 (Jiang et al., 2021).

    Attributes:
      buffer_size: ``B``, levels the buffer holds; at least 2 (replay needs a choice).
      replay_prob: probability that a draw replays a buffered level (once the buffer
        holds enough levels; see :meth:`replay_threshold`) instead of sampling a fresh
        one.
      prioritization: ``"rank"`` (``h = 1 / rank``, sharpened by ``temperature``) or
        ``"topk"`` (uniform over the ``top_k`` highest scores; ignores temperature).
      temperature: ``beta`` in ``P_S ∝ h^(1/beta)``; > 0, lower is greedier.
      top_k: ``k`` for ``"topk"``; uniform over ``min(k, filled)`` levels.
      staleness_coef: ``rho``, weight of the staleness distribution.
      min_fill: fraction of the buffer that must be filled before any replay, on top
        of the batch-size rule of :meth:`replay_threshold` (0: the batch size alone).
    """

    buffer_size: int = field(default=4000, metadata={"min": 2})
    replay_prob: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    prioritization: Literal["rank", "topk"] = field(
        default="rank", metadata={"choices": PRIORITIZATIONS}
    )
    temperature: float = field(default=1.0, metadata={"min": 0.0, "exclusive_min": True})
    top_k: int = field(default=16, metadata={"min": 1})
    staleness_coef: float = field(default=0.3, metadata={"min": 0.0, "max": 1.0})
    min_fill: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})

    def __post_init__(self) -> None:
        # The same bounds discovery/config.py checks on YAML input, so that a config
        # built in Python fails just as early.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata

            def bad(allowed: str, name: str = f.name, value: Any = value) -> ValueError:
                return ValueError(f"PLRConfig.{name}={value!r} is invalid; allowed: {allowed}")

            if "choices" in meta:
                if value not in meta["choices"]:
                    raise bad("one of " + ", ".join(repr(c) for c in meta["choices"]))
                continue
            kind = "an int" if f.name in _INT_FIELDS else "a float"
            wanted = int if f.name in _INT_FIELDS else (int, float)
            lo, hi = meta.get("min"), meta.get("max")
            strict = meta.get("exclusive_min", False)
            if lo is not None and hi is not None:
                allowed = f"{kind} in [{lo}, {hi}]"
            else:
                allowed = f"{kind} {'>' if strict else '>='} {lo}"
            if isinstance(value, bool) or not isinstance(value, wanted):
                raise bad(allowed)
            if not math.isfinite(value):
                raise bad(allowed)
            if lo is not None and (value <= lo if strict else value < lo):
                raise bad(allowed)
            if hi is not None and value > hi:
                raise bad(allowed)

    def replay_threshold(self, n: int) -> int:
        """Filled levels the buffer needs before a batch of ``n`` draws may replay:
        ``max(2, n, ceil(min_fill * B))``.

        PLR replays only from a buffer that holds at least as many levels as agents
        restart together (the reference code waits until a ``rho`` fraction of its
        levels has been seen; GROOVE's code until a batch of levels has been scored),
        so one early level is not handed to a whole batch of agents; and never from a
        one-level buffer, where "prioritised" replay would have no choice to make.
        """
        return max(2, n, math.ceil(self.min_fill * self.buffer_size))


@struct.dataclass
class PLRState:
    """The level buffer: a pytree, serialisable with ``flax.serialization``.

    Attributes:
      levels: the level pytree with a leading ``[B]`` axis on every leaf; empty slots
        hold zeros.
      scores: ``[B]`` float32, the latest score of each level (0 in empty slots).
      last_visit: ``[B]`` int32, ``C_i``: the value of ``visits`` just after the level
        was last sampled for replay (or, for a level not replayed since it entered the
        buffer, when it entered), so its staleness ``visits - last_visit`` is 0 then.
      filled: ``[B]`` bool, which slots hold a level.
      visits: ``[]`` int32, ``c``: draws made so far, replayed or fresh (the ones
        :func:`mark_sampled` was told agents started on).
    """

    levels: Any
    scores: jax.Array
    last_visit: jax.Array
    filled: jax.Array
    visits: jax.Array


def init(config: PLRConfig, example_level: Level) -> PLRState:
    """An empty buffer of ``config.buffer_size`` levels shaped like ``example_level``
    (each leaf gets a leading ``[B]`` axis, zeros, the leaf's dtype kept).
    """
    size = config.buffer_size
    levels = jax.tree.map(
        lambda x: jnp.zeros((size, *jnp.shape(x)), jnp.asarray(x).dtype), example_level
    )
    return PLRState(
        levels=levels,
        scores=jnp.zeros(size, jnp.float32),
        last_visit=jnp.zeros(size, jnp.int32),
        filled=jnp.zeros(size, bool),
        visits=jnp.zeros((), jnp.int32),
    )


def _ranks(scores: jax.Array, filled: jax.Array) -> jax.Array:
    """1-based rank of each filled slot by descending score, ``[B]`` int32; ties go to
    the lower slot index; empty slots rank after every filled one.
    """
    keyed = jnp.where(filled, scores, -jnp.inf)
    order = jnp.argsort(-keyed, stable=True)
    size = scores.shape[0]
    return jnp.zeros(size, jnp.int32).at[order].set(jnp.arange(1, size + 1, dtype=jnp.int32))


def score_distribution(config: PLRConfig, state: PLRState) -> jax.Array:
    """``P_S``, ``[B]`` float32 (Jiang et al., 2021, eq. 1-2), 0 on empty slots.

    ``rank``: ``P_S(l_i) ∝ (1 / rank_i)^(1/beta)``, computed in log space so a small
    temperature cannot underflow to 0/0. ``topk``: uniform over the ``min(k, filled)``
    best levels. All zeros when the buffer is empty.
    """
    ranks = _ranks(state.scores, state.filled)
    if config.prioritization == "rank":
        logits = -jnp.log(ranks.astype(jnp.float32)) / config.temperature
    else:
        logits = jnp.where(ranks <= config.top_k, 0.0, -jnp.inf)
    logits = jnp.where(state.filled, logits, -jnp.inf)
    any_filled = jnp.any(state.filled)
    probs = jax.nn.softmax(jnp.where(any_filled, logits, 0.0))
    return jnp.where(any_filled & state.filled, probs, 0.0)


def staleness_distribution(state: PLRState) -> jax.Array:
    """``P_C(l_i) = (c - C_i) / sum_j (c - C_j)`` over filled slots, ``[B]`` float32
    (Jiang et al., 2021, eq. 4). All zeros when no filled level is stale.
    """
    staleness = jnp.where(state.filled, state.visits - state.last_visit, 0).astype(jnp.float32)
    total = jnp.sum(staleness)
    return jnp.where(total > 0, staleness / jnp.where(total > 0, total, 1.0), 0.0)


def replay_distribution(config: PLRConfig, state: PLRState) -> jax.Array:
    """``P_replay = (1 - rho) * P_S + rho * P_C`` over the buffer, ``[B]`` float32
    (Jiang et al., 2021, eq. 3).

    Sums to 1 when any slot is filled, all zeros when none is. When no filled level is
    stale (every one was scored in the latest update entry) ``P_C`` is undefined and
    ``P_S`` is used alone.
    """
    p_score = score_distribution(config, state)
    if config.staleness_coef == 0:
        return p_score
    p_stale = staleness_distribution(state)
    rho = config.staleness_coef
    mixed = (1.0 - rho) * p_score + rho * p_stale
    return jnp.where(jnp.any(p_stale > 0), mixed, p_score)


def draw(
    config: PLRConfig,
    key: jax.Array,
    state: PLRState,
    n: int,
    sample_new_level: Callable[[jax.Array], Level],
) -> tuple[Level, jax.Array]:
    """Draw ``n`` levels, each independently a replay or a fresh level; the buffer is
    left as it is (see :func:`sample` and :func:`mark_sampled`).

    A draw replays with probability ``replay_prob`` once the buffer holds at least
    ``config.replay_threshold(n)`` levels, its slot drawn from
    :func:`replay_distribution` (with replacement: the ``n`` draws of a batch share one
    distribution, where the reference code redraws after each); otherwise it is
    ``sample_new_level(key)`` (vmapped over ``n`` keys; evaluated for every draw, as
    jit needs fixed shapes).

    Returns ``(levels, slots)``: the level pytree with a leading ``[n]`` axis and the
    ``[n]`` int32 buffer slot of each replayed level, ``-1`` for fresh ones.

    Raises:
      ValueError: if ``n`` exceeds ``buffer_size``: such a buffer could never hold a
        batch's worth of levels, so PLR would silently never replay.
    """
    threshold = config.replay_threshold(n)
    if threshold > config.buffer_size:
        raise ValueError(
            f"PLR cannot replay batches of n={n} levels from a buffer of "
            f"buffer_size={config.buffer_size}: replay waits until the buffer holds "
            f"{threshold} levels; use buffer_size >= {threshold}"
        )
    key_replay, key_slot, key_new = jax.random.split(key, 3)
    enough = jnp.sum(state.filled) >= threshold
    replay = enough & jax.random.bernoulli(key_replay, config.replay_prob, (n,))
    probs = replay_distribution(config, state)
    # An empty buffer gives all -inf logits; those draws are never replays.
    replay_slots = jax.random.categorical(key_slot, jnp.log(probs), shape=(n,))
    slots = jnp.where(replay, replay_slots, -1).astype(jnp.int32)
    new_levels = jax.vmap(sample_new_level)(jax.random.split(key_new, n))
    take = jnp.maximum(slots, 0)

    def pick(buffer: jax.Array, new: jax.Array) -> jax.Array:
        mask = replay.reshape((n,) + (1,) * (new.ndim - 1))
        return jnp.where(mask, buffer[take], new)

    return jax.tree.map(pick, state.levels, new_levels), slots


def mark_sampled(
    state: PLRState, slots: jax.Array, used: jax.Array | None = None
) -> PLRState:
    """Staleness bookkeeping for draws that agents start on (Jiang et al., 2021, eq. 4).

    Draws are taken in order; each used one advances ``c`` by 1, and a used replay of
    slot ``i`` sets ``C_i`` to ``c`` just after that draw (so a slot drawn twice keeps
    the later count), as the reference code's ``_update_staleness`` does per sample.
    Fresh draws (slot ``-1``) advance ``c`` only: their level is not in the buffer yet.

    Args:
      state: the buffer ``slots`` were drawn from (by :func:`draw`).
      slots: ``[n]`` int32, as :func:`draw` returned them.
      used: ``[n]`` bool, the draws an agent actually started on (default: all).
        Unused draws change nothing.
    """
    n = slots.shape[0]
    size = state.filled.shape[0]
    slots = slots.astype(jnp.int32)
    used = jnp.ones(n, bool) if used is None else jnp.asarray(used, bool)
    if used.shape != (n,):
        raise ValueError(f"used must have shape ({n},), got {used.shape}")
    used = used & (slots >= -1) & (slots < size)
    stamps = state.visits + jnp.cumsum(used.astype(jnp.int32))  # c just after each draw
    replayed = used & (slots >= 0)
    targets = jnp.where(replayed, slots, size)  # out of range: dropped
    last_visit = state.last_visit.at[targets].max(stamps, mode="drop")
    return state.replace(
        last_visit=last_visit, visits=state.visits + jnp.sum(used).astype(jnp.int32)
    )


def sample(
    config: PLRConfig,
    key: jax.Array,
    state: PLRState,
    n: int,
    sample_new_level: Callable[[jax.Array], Level],
) -> tuple[Level, jax.Array, PLRState]:
    """:func:`draw` ``n`` levels and :func:`mark_sampled` all of them: the sampling
    step of PLR, for callers that start an agent on every draw.

    Returns ``(levels, slots, state)``: the levels with a leading ``[n]`` axis, the
    ``[n]`` int32 slot of each replayed level (``-1`` for fresh ones), and the buffer
    with the replayed levels' staleness reset and ``c`` advanced by ``n``. Hand
    ``levels`` and ``slots`` back to :func:`update`, with the levels' scores, on the
    returned state.
    """
    levels, slots = draw(config, key, state, n, sample_new_level)
    return levels, slots, mark_sampled(state, slots)


def update(
    config: PLRConfig,
    state: PLRState,
    levels: Level,
    slots: jax.Array,
    scores: jax.Array,
    valid: jax.Array,
) -> PLRState:
    """Record the scores of ``n`` levels, in order (a ``lax.scan`` over entries).

    Scoring leaves staleness alone: it was reset when the level was sampled
    (:func:`mark_sampled`), not when its score comes back.

    Args:
      levels: the level pytree, leading ``[n]`` axis, as :func:`sample` returned it.
      slots: ``[n]`` int32, the slot each level was replayed from, ``-1`` for fresh.
      scores: ``[n]`` float, each level's new score (e.g. regret).
      valid: ``[n]`` bool; invalid entries change nothing.

    Per entry: an invalid entry, a non-finite score or a slot outside ``[-1, B)`` is
    skipped. Otherwise

    - a replayed level whose slot still holds it gets its score replaced; ``C_i``
      stays as sampling left it;
    - a fresh level (and a replayed one whose slot was overwritten since it was
      sampled, e.g. evicted by an earlier entry of the same update) enters the first
      empty slot, else replaces the lowest-scoring level (the lowest slot among ties)
      if its score is strictly higher, else is dropped (robust PLR); it enters with
      ``C_i = c``, staleness 0, as a level just played.

    ``c`` itself counts draws (:func:`mark_sampled`) and is not changed here.
    """
    n = slots.shape[0]
    size = config.buffer_size
    for leaf in jax.tree.leaves(levels):
        if leaf.shape[:1] != (n,):
            raise ValueError(f"every level leaf needs a leading axis of {n}, got {leaf.shape}")
    if scores.shape != (n,) or valid.shape != (n,):
        raise ValueError(
            f"slots, scores and valid must all have shape ({n},), got "
            f"{slots.shape}, {scores.shape}, {valid.shape}"
        )

    def step(state: PLRState, entry: tuple) -> tuple[PLRState, None]:
        level, slot, score, ok = entry
        score = score.astype(jnp.float32)
        ok = ok & jnp.isfinite(score) & (slot >= -1) & (slot < size)
        replay_slot = jnp.clip(slot, 0, size - 1)
        stored = jax.tree.map(lambda buf: buf[replay_slot], state.levels)
        same = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.all(a == b), stored, level))
        still_there = state.filled[replay_slot] & jnp.all(jnp.stack(same))
        replay_hit = ok & (slot >= 0) & still_there

        empty = ~state.filled
        any_empty = jnp.any(empty)
        lowest = jnp.argmin(jnp.where(state.filled, state.scores, jnp.inf))
        insert_slot = jnp.where(any_empty, jnp.argmax(empty), lowest)
        insert = ok & ~replay_hit & (any_empty | (score > state.scores[lowest]))

        write = replay_hit | insert
        target = jnp.where(replay_hit, replay_slot, insert_slot)

        def put(buffer: jax.Array, value: jax.Array, when: jax.Array = write) -> jax.Array:
            return buffer.at[target].set(jnp.where(when, value, buffer[target]))

        state = PLRState(
            levels=jax.tree.map(put, state.levels, level),
            scores=put(state.scores, score),
            last_visit=put(state.last_visit, state.visits, insert),
            filled=put(state.filled, jnp.bool_(True)),
            visits=state.visits,
        )
        return state, None

    entries = (levels, slots.astype(jnp.int32), scores, valid.astype(bool))
    state, _ = jax.lax.scan(step, state, entries)
    return state


def stats(state: PLRState) -> dict[str, jax.Array]:
    """Buffer statistics for logging, float32 scalars.

    ``fill``: fraction of slots filled; ``score_mean`` / ``score_std`` / ``score_max``
    / ``score_min`` and ``staleness_mean`` (``c - C_i``): over filled slots, NaN when
    the buffer is empty.
    """
    filled = state.filled
    count = jnp.sum(filled)
    denom = jnp.maximum(count, 1).astype(jnp.float32)
    any_filled = count > 0
    nan = jnp.float32(jnp.nan)
    scores = jnp.where(filled, state.scores, 0.0)
    mean = jnp.sum(scores) / denom
    var = jnp.sum(jnp.where(filled, (state.scores - mean) ** 2, 0.0)) / denom
    staleness = jnp.where(filled, state.visits - state.last_visit, 0).astype(jnp.float32)

    def when_filled(x: jax.Array) -> jax.Array:
        return jnp.where(any_filled, x, nan).astype(jnp.float32)

    return {
        "fill": (count / filled.shape[0]).astype(jnp.float32),
        "score_mean": when_filled(mean),
        "score_std": when_filled(jnp.sqrt(var)),
        "score_max": when_filled(jnp.max(jnp.where(filled, state.scores, -jnp.inf))),
        "score_min": when_filled(jnp.min(jnp.where(filled, state.scores, jnp.inf))),
        "staleness_mean": when_filled(jnp.sum(staleness) / denom),
    }
