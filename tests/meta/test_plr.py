"""Tests for meta/plr.py: prioritised level replay on a level buffer."""

import functools

import chex
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

# Importing meta sets the XLA CPU flag; nothing above runs a JAX computation.
from discovery.meta import plr
from discovery.meta.plr import PLRConfig, PLRState

pytestmark = pytest.mark.timeout(120)

EXAMPLE = {"x": jnp.float32(0.0)}


def new_level(key: jax.Array) -> dict:
    """Fresh levels live in [100, 101), so they are never mistaken for buffered ones."""
    return {"x": 100.0 + jax.random.uniform(key)}


def buffer_state(scores, filled=None, last_visit=None, visits=0) -> PLRState:
    """A buffer whose level in slot i is {"x": i}, with the given bookkeeping."""
    size = len(scores)
    filled = np.ones(size, bool) if filled is None else np.asarray(filled)
    last_visit = np.zeros(size) if last_visit is None else np.asarray(last_visit)
    return PLRState(
        levels={"x": jnp.arange(size, dtype=jnp.float32)},
        scores=jnp.asarray(scores, jnp.float32),
        last_visit=jnp.asarray(last_visit, jnp.int32),
        filled=jnp.asarray(filled, bool),
        visits=jnp.asarray(visits, jnp.int32),
    )


def jit_distribution(config: PLRConfig):
    return jax.jit(functools.partial(plr.replay_distribution, config))


def jit_update(config: PLRConfig):
    return jax.jit(functools.partial(plr.update, config))


def jit_sample(config: PLRConfig, n: int):
    return jax.jit(
        functools.partial(plr.sample, config, n=n, sample_new_level=new_level),
    )


@functools.lru_cache
def jit_many_draws(config: PLRConfig, n: int):
    """Batches of ``n`` draws from one buffer, one batch per key (compiled once)."""
    draw = functools.partial(plr.draw, config, n=n, sample_new_level=new_level)
    return jax.jit(jax.vmap(draw, in_axes=(0, None)))


def many_draws(config: PLRConfig, state: PLRState, n: int, batches: int, seed: int = 0):
    """``batches`` independent batches of ``n`` draws from the same buffer, flattened."""
    keys = jax.random.split(jax.random.key(seed), batches)
    levels, slots = jit_many_draws(config, n)(keys, state)
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), levels), slots.reshape(-1)


def add(config, state, xs, scores, slots=None, valid=None):
    """Score levels {"x": xs[i]} (fresh unless ``slots`` says otherwise)."""
    n = len(xs)
    slots = jnp.full(n, -1, jnp.int32) if slots is None else jnp.asarray(slots, jnp.int32)
    valid = jnp.ones(n, bool) if valid is None else jnp.asarray(valid, bool)
    levels = {"x": jnp.asarray(xs, jnp.float32)}
    return jit_update(config)(state, levels, slots, jnp.asarray(scores, jnp.float32), valid)


# --------------------------------------------------------------------------- config


def test_defaults_are_groove():
    config = PLRConfig()
    assert config.buffer_size == 4000
    assert config.replay_prob == 0.5
    assert config.prioritization == "rank"
    assert config.temperature == 1.0
    assert config.min_fill == 0.0
    # GROOVE's 512 agents: replay once 512 levels are buffered; never from one level.
    assert config.replay_threshold(512) == 512
    assert config.replay_threshold(1) == 2


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"buffer_size": 0}, "buffer_size"),
        ({"buffer_size": 1}, "buffer_size"),  # replay needs two levels to choose from
        ({"buffer_size": 8.0}, "buffer_size"),
        ({"buffer_size": True}, "buffer_size"),
        ({"replay_prob": 1.5}, "replay_prob"),
        ({"replay_prob": -0.1}, "replay_prob"),
        ({"prioritization": "softmax"}, "prioritization"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"staleness_coef": 1.1}, "staleness_coef"),
        ({"min_fill": 2.0}, "min_fill"),
    ],
)
def test_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=rf"PLRConfig\.{field}=.*allowed"):
        PLRConfig(**kwargs)


def test_config_metadata_checked_by_config_loader():
    from discovery.config import ConfigError, from_dict

    assert from_dict(PLRConfig, {"buffer_size": 8, "min_fill": 0.5}).replay_threshold(1) == 4
    with pytest.raises(ConfigError, match="replay_prob"):
        from_dict(PLRConfig, {"replay_prob": 2.0})


# --------------------------------------------------------------- replay distribution


def test_rank_distribution_hand_computed():
    # Filled scores 1, 3, 2 (slot 2 empty) rank 3, 1, 2: h = 1/3, 1, 1/2, sum 11/6.
    state = buffer_state([1.0, 3.0, 9.0, 2.0], filled=[True, True, False, True])
    config = PLRConfig(buffer_size=4, staleness_coef=0.0)
    probs = jit_distribution(config)(state)
    chex.assert_shape(probs, (4,))
    chex.assert_trees_all_close(probs, jnp.array([2, 6, 0, 3]) / 11.0, atol=1e-6)


def test_rank_ties_go_to_the_lower_slot():
    state = buffer_state([2.0, 2.0])
    probs = jit_distribution(PLRConfig(buffer_size=2, staleness_coef=0.0))(state)
    chex.assert_trees_all_close(probs, jnp.array([2.0, 1.0]) / 3.0, atol=1e-6)


def test_temperature_sharpens_and_flattens():
    state = buffer_state([1.0, 3.0, 9.0, 2.0], filled=[True, True, False, True])
    # beta = 0.5: h^2 = 1/9, 1, 1/4, sum 49/36.
    sharp = jit_distribution(PLRConfig(buffer_size=4, temperature=0.5, staleness_coef=0.0))(state)
    chex.assert_trees_all_close(sharp, jnp.array([4, 36, 0, 9]) / 49.0, atol=1e-6)
    # A tiny temperature is greedy without underflowing to NaN.
    greedy = jit_distribution(PLRConfig(buffer_size=4, temperature=1e-3, staleness_coef=0.0))(state)
    chex.assert_trees_all_close(greedy, jnp.array([0.0, 1.0, 0.0, 0.0]), atol=1e-6)
    # A huge temperature is uniform over the filled slots.
    flat = jit_distribution(PLRConfig(buffer_size=4, temperature=1e6, staleness_coef=0.0))(state)
    chex.assert_trees_all_close(flat, jnp.array([1, 1, 0, 1]) / 3.0, atol=1e-4)


def test_topk_distribution_hand_computed():
    state = buffer_state([1.0, 3.0, 9.0, 2.0], filled=[True, True, False, True])
    top2 = jit_distribution(
        PLRConfig(buffer_size=4, prioritization="topk", top_k=2, staleness_coef=0.0)
    )(state)
    chex.assert_trees_all_close(top2, jnp.array([0.0, 0.5, 0.0, 0.5]), atol=1e-6)
    # k above the number of filled levels: uniform over what is there.
    top16 = jit_distribution(
        PLRConfig(buffer_size=4, prioritization="topk", top_k=16, staleness_coef=0.0)
    )(state)
    chex.assert_trees_all_close(top16, jnp.array([1, 1, 0, 1]) / 3.0, atol=1e-6)


def test_staleness_mixture_hand_computed():
    # Staleness c - C_i = 6, 1, (empty), 3: P_C = 0.6, 0.1, 0, 0.3.
    state = buffer_state(
        [1.0, 3.0, 9.0, 2.0],
        filled=[True, True, False, True],
        last_visit=[4, 9, 0, 7],
        visits=10,
    )
    p_c = jnp.array([0.6, 0.1, 0.0, 0.3])
    rank = jit_distribution(PLRConfig(buffer_size=4, staleness_coef=0.3))(state)
    expected = 0.7 * jnp.array([2, 6, 0, 3]) / 11.0 + 0.3 * p_c
    chex.assert_trees_all_close(rank, expected, atol=1e-6)
    topk = jit_distribution(
        PLRConfig(buffer_size=4, prioritization="topk", top_k=2, staleness_coef=0.5)
    )(state)
    chex.assert_trees_all_close(topk, 0.5 * jnp.array([0.0, 0.5, 0.0, 0.5]) + 0.5 * p_c, atol=1e-6)
    chex.assert_trees_all_close(jnp.sum(rank), 1.0, atol=1e-6)


def test_zero_staleness_falls_back_to_scores_and_empty_buffer_is_zero():
    config = PLRConfig(buffer_size=4, staleness_coef=0.3)
    fresh = buffer_state([1.0, 3.0, 9.0, 2.0], filled=[True, True, False, True], visits=0)
    probs = jit_distribution(config)(fresh)
    chex.assert_trees_all_close(probs, jnp.array([2, 6, 0, 3]) / 11.0, atol=1e-6)
    empty = plr.init(config, EXAMPLE)
    chex.assert_trees_all_equal(jit_distribution(config)(empty), jnp.zeros(4))


# --------------------------------------------------------------------------- sampling


def test_sampled_slots_follow_replay_distribution():
    config = PLRConfig(buffer_size=8, replay_prob=0.5, staleness_coef=0.3)
    scores = [0.3, 2.0, -1.0, 5.0, 0.9, 1.5, 0.0, 4.0]
    state = buffer_state(scores, last_visit=[0, 10, 3, 12, 7, 11, 2, 12], visits=12)
    expected = np.asarray(jit_distribution(config)(state))
    n = 8  # a full buffer of 8 may replay batches of up to 8 draws
    levels, slots = many_draws(config, state, n, batches=5000)
    chex.assert_shape(slots, (40_000,))
    assert slots.dtype == jnp.int32
    slots = np.asarray(slots)
    replayed = slots >= 0
    # Replay fraction: standard error 0.0025 at 40000 draws.
    assert abs(replayed.mean() - 0.5) < 0.015
    freq = np.bincount(slots[replayed], minlength=8) / replayed.sum()
    # Standard error <= 0.0035 per slot at ~20000 replays; uniform sampling (0.125
    # each) or score-blind sampling misses the top slot's ~0.39 by far more.
    np.testing.assert_allclose(freq, expected, atol=0.015)
    assert abs(expected[3] - 1 / 8) > 0.1
    # Replayed draws carry their buffered level, fresh draws a new one.
    x = np.asarray(levels["x"])
    np.testing.assert_array_equal(x[replayed], slots[replayed].astype(np.float32))
    assert np.all((x[~replayed] >= 100.0) & (x[~replayed] < 101.0))


@pytest.mark.parametrize(
    "buffer_size, min_fill, n, threshold",
    [(8, 0.0, 3, 3), (8, 0.0, 1, 2), (8, 0.5, 1, 4), (8, 0.5, 6, 6), (2, 0.0, 1, 2)],
)
def test_replay_threshold_is_batch_size_or_fill_fraction_never_one_level(
    buffer_size, min_fill, n, threshold
):
    assert PLRConfig(buffer_size=buffer_size, min_fill=min_fill).replay_threshold(n) == threshold


@pytest.mark.parametrize("min_fill, n", [(0.0, 3), (0.5, 1), (0.5, 3), (0.0, 1)])
def test_no_replay_before_the_buffer_holds_the_threshold(min_fill, n):
    config = PLRConfig(buffer_size=8, replay_prob=1.0, min_fill=min_fill)
    threshold = config.replay_threshold(n)  # 3, 4, 4, 2
    draws = 256 // n
    for filled in range(9):
        state = buffer_state([1.0] * 8, filled=[True] * filled + [False] * (8 - filled))
        _, slots = many_draws(config, state, n, batches=draws, seed=filled)
        slots = np.asarray(slots)
        if filled < threshold:
            np.testing.assert_array_equal(slots, -1, err_msg=f"replayed with {filled} filled")
        else:  # replay_prob 1: every draw replays a filled slot
            assert np.all((slots >= 0) & (slots < filled)), filled


def test_a_one_level_buffer_never_replays():
    # A batch of one draw from a buffer holding one level: "prioritised" replay would
    # hand that level back every time.
    config = PLRConfig(buffer_size=4, replay_prob=1.0)
    state = add(config, plr.init(config, EXAMPLE), [7.0], [1.0])
    assert int(jnp.sum(state.filled)) == 1
    levels, slots = many_draws(config, state, 1, batches=64)
    np.testing.assert_array_equal(slots, -1)
    assert np.all(np.asarray(levels["x"]) >= 100.0)


def test_batches_larger_than_the_buffer_are_refused():
    config = PLRConfig(buffer_size=8)
    with pytest.raises(ValueError, match="n=9.*buffer_size=8"):
        plr.draw(config, jax.random.key(0), plr.init(config, EXAMPLE), 9, new_level)


def test_sampling_resets_staleness_of_replayed_slots_scoring_does_not():
    config = PLRConfig(buffer_size=4, replay_prob=1.0, staleness_coef=0.5)
    last_visit = np.array([4, 9, 1, 7])
    state = buffer_state([1.0, 3.0, 0.5, 2.0], last_visit=last_visit, visits=10)
    n = 4
    levels, slots, sampled = jit_sample(config, n)(jax.random.key(3), state=state)
    slots = np.asarray(slots)
    assert np.all(slots >= 0)  # replay_prob 1 and a full buffer: every draw replays
    # c advanced once per draw; a drawn slot's C_i is c just after its last draw.
    assert int(sampled.visits) == 10 + n
    expected = last_visit.copy()
    for index, slot in enumerate(slots):
        expected[slot] = 10 + index + 1
    np.testing.assert_array_equal(sampled.last_visit, expected)
    staleness = np.asarray(sampled.visits - sampled.last_visit)
    assert staleness[slots[-1]] == 0
    undrawn = np.setdiff1d(np.arange(4), slots)
    np.testing.assert_array_equal(staleness[undrawn], 14 - last_visit[undrawn])
    # Sampling leaves scores and levels alone.
    chex.assert_trees_all_equal(sampled.scores, state.scores)
    chex.assert_trees_all_equal(sampled.levels, state.levels)

    # Scoring the replays replaces the scores but leaves staleness as sampling set it.
    scores = jnp.arange(n, dtype=jnp.float32) + 10.0
    scored = jit_update(config)(sampled, levels, jnp.asarray(slots), scores, jnp.ones(n, bool))
    np.testing.assert_array_equal(scored.last_visit, sampled.last_visit)
    assert int(scored.visits) == int(sampled.visits)
    for index, slot in enumerate(slots):
        if index == max(i for i, s in enumerate(slots) if s == slot):
            assert float(scored.scores[slot]) == float(scores[index])
    # And scoring a level that was never sampled again does not make it fresh.
    rescored = add(config, state, [2.0], [9.0], slots=[2])
    np.testing.assert_array_equal(rescored.last_visit, state.last_visit)
    assert int(rescored.visits) == 10


def test_mark_sampled_counts_only_the_draws_agents_started_on():
    state = buffer_state([1.0, 2.0, 3.0, 4.0], last_visit=[1, 2, 3, 4], visits=5)
    mark = jax.jit(plr.mark_sampled)
    # Draws: slot 2, fresh, slot 0, slot 3; only the first two and the last were used.
    after = mark(state, jnp.array([2, -1, 0, 3]), jnp.array([True, True, False, True]))
    assert int(after.visits) == 8
    np.testing.assert_array_equal(after.last_visit, [1, 2, 6, 8])
    # No draw used: nothing changes.
    chex.assert_trees_all_equal(mark(state, jnp.array([2, 0]), jnp.zeros(2, bool)), state)
    # The same slot drawn twice keeps the later count.
    twice = mark(state, jnp.array([1, -1, 1]), jnp.ones(3, bool))
    np.testing.assert_array_equal(twice.last_visit, [1, 8, 3, 4])


def test_staleness_grows_until_the_level_is_sampled_again():
    config = PLRConfig(buffer_size=4, staleness_coef=0.5)
    state = plr.init(config, EXAMPLE)
    state = add(config, state, [0.0, 1.0, 2.0, 3.0], [0.1, 1.0, 2.0, 3.0])
    # Entering the buffer counts as just played: nothing is stale yet.
    np.testing.assert_array_equal(state.visits - state.last_visit, 0)
    distribution = jit_distribution(config)
    mark = jax.jit(plr.mark_sampled)
    probs = [float(distribution(state)[0])]
    for _ in range(5):  # replay slots 1..3 (and score them), never slot 0
        state = mark(state, jnp.array([1, 2, 3]))
        state = add(config, state, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], slots=[1, 2, 3])
        probs.append(float(distribution(state)[0]))
    assert all(b > a for a, b in zip(probs, probs[1:])), probs
    assert int(state.visits - state.last_visit[0]) == 15
    # Scoring slot 0 again does not reset it; sampling it does.
    state = add(config, state, [0.0], [0.1], slots=[0])
    assert int(state.visits - state.last_visit[0]) == 15
    state = mark(state, jnp.array([0]))
    assert int(state.visits - state.last_visit[0]) == 0
    assert float(distribution(state)[0]) < probs[0]


# ----------------------------------------------------------------------------- update


def full_buffer(config):
    """Levels 1..4 with scores 0.5, 2, 1, 3, all entered at c = 0; then 10 draws made."""
    state = plr.init(config, EXAMPLE)
    state = add(config, state, [1.0, 2.0, 3.0, 4.0], [0.5, 2.0, 1.0, 3.0])
    return state.replace(visits=jnp.int32(10))


def test_new_levels_fill_empty_slots_in_order():
    config = PLRConfig(buffer_size=4)
    state = add(config, plr.init(config, EXAMPLE), [1.0, 2.0, 3.0, 4.0], [0.5, 2.0, 1.0, 3.0])
    chex.assert_trees_all_equal(state.levels["x"], jnp.array([1.0, 2.0, 3.0, 4.0]))
    chex.assert_trees_all_equal(state.scores, jnp.array([0.5, 2.0, 1.0, 3.0]))
    # Scoring counts no draws: c stays 0, and every level enters with C_i = c.
    chex.assert_trees_all_equal(state.last_visit, jnp.zeros(4, jnp.int32))
    assert bool(jnp.all(state.filled)) and int(state.visits) == 0


def test_higher_score_replaces_the_minimum_lower_is_dropped():
    config = PLRConfig(buffer_size=4)
    state = full_buffer(config)
    higher = add(config, state, [10.0], [0.7])
    chex.assert_trees_all_equal(higher.levels["x"], jnp.array([10.0, 2.0, 3.0, 4.0]))
    chex.assert_trees_all_equal(higher.scores, jnp.array([0.7, 2.0, 1.0, 3.0]))
    # The new level enters with staleness 0 (C_i = c = 10); c itself is unchanged.
    chex.assert_trees_all_equal(higher.last_visit, jnp.array([10, 0, 0, 0], jnp.int32))
    assert int(higher.visits) == 10
    for score in (0.1, 0.5):  # below, and equal to, the minimum
        dropped = add(config, state, [11.0], [score])
        chex.assert_trees_all_equal(dropped, state)


def test_invalid_entries_and_nonfinite_scores_change_nothing():
    config = PLRConfig(buffer_size=4)
    state = full_buffer(config)
    after = add(
        config,
        state,
        [10.0, 11.0, 12.0, 13.0, 2.0, 14.0],
        [9.0, jnp.nan, jnp.inf, -jnp.inf, 9.0, 9.0],
        slots=[-1, -1, -1, 1, 1, 4],  # slot 4 is outside the buffer
        valid=[False, True, True, True, False, True],
    )
    chex.assert_trees_all_equal(after, state)


def test_several_new_levels_are_inserted_in_order():
    config = PLRConfig(buffer_size=4)
    state = full_buffer(config)  # scores 0.5, 2, 1, 3
    # 1.5 evicts 0.5 (slot 0); then 1.2 evicts 1.0 (slot 2); then 1.1 < min 1.2: dropped.
    after = add(config, state, [10.0, 11.0, 12.0], [1.5, 1.2, 1.1])
    chex.assert_trees_all_equal(after.levels["x"], jnp.array([10.0, 2.0, 11.0, 4.0]))
    chex.assert_trees_all_equal(after.scores, jnp.array([1.5, 2.0, 1.2, 3.0]))
    chex.assert_trees_all_equal(after.last_visit, jnp.array([10, 0, 10, 0], jnp.int32))
    assert int(after.visits) == 10
    # Two empty slots, three new levels: slots 2 and 3 in order, then the minimum.
    partial = add(config, plr.init(config, EXAMPLE), [1.0, 2.0], [0.5, 2.0])
    after = add(config, partial, [10.0, 11.0, 12.0], [0.6, 0.7, 0.4])
    chex.assert_trees_all_equal(after.levels["x"], jnp.array([1.0, 2.0, 10.0, 11.0]))
    chex.assert_trees_all_equal(after.scores, jnp.array([0.5, 2.0, 0.6, 0.7]))
    after = add(config, partial, [10.0, 11.0, 12.0], [0.6, 0.7, 0.8])
    chex.assert_trees_all_equal(after.levels["x"], jnp.array([12.0, 2.0, 10.0, 11.0]))


def test_replayed_level_gets_its_score_replaced_and_keeps_its_staleness():
    config = PLRConfig(buffer_size=4)
    state = full_buffer(config)
    after = add(config, state, [3.0], [-2.0], slots=[2])
    chex.assert_trees_all_equal(after.scores, jnp.array([0.5, 2.0, -2.0, 3.0]))
    chex.assert_trees_all_equal(after.last_visit, state.last_visit)
    chex.assert_trees_all_equal(after.levels, state.levels)
    assert int(after.visits) == 10


def test_replayed_level_evicted_in_the_same_update_competes_as_new():
    config = PLRConfig(buffer_size=4)
    state = full_buffer(config)  # slot 0 holds x=1 with the minimum score 0.5
    # Entry 0 evicts x=1 from slot 0; entry 1 is x=1's replay with score 2.5: it must
    # not overwrite the score of x=10, and as a fresh level it evicts the minimum (1.0).
    after = add(config, state, [10.0, 1.0], [1.5, 2.5], slots=[-1, 0])
    chex.assert_trees_all_equal(after.levels["x"], jnp.array([10.0, 2.0, 1.0, 4.0]))
    chex.assert_trees_all_equal(after.scores, jnp.array([1.5, 2.0, 2.5, 3.0]))


def test_stats_hand_computed():
    state = buffer_state(
        [1.0, 3.0, 9.0, 2.0], filled=[True, True, False, True], last_visit=[4, 9, 0, 7], visits=10
    )
    out = jax.jit(plr.stats)(state)
    expected = {
        "fill": 0.75,
        "score_mean": 2.0,
        "score_std": np.sqrt(2.0 / 3.0),
        "score_max": 3.0,
        "score_min": 1.0,
        "staleness_mean": 10.0 / 3.0,
    }
    chex.assert_trees_all_close(out, jax.tree.map(jnp.float32, expected), atol=1e-6)
    empty = jax.jit(plr.stats)(plr.init(PLRConfig(buffer_size=4), EXAMPLE))
    assert float(empty["fill"]) == 0.0 and np.isnan(float(empty["score_mean"]))


# ---------------------------------------------------------------- jit, serialisation


@struct.dataclass
class ToyParams:
    """A level shaped like gymnax EnvParams: a float, an int vector, a bool."""

    size: jax.Array
    goal: jax.Array
    slippery: jax.Array


def toy_level(key: jax.Array) -> ToyParams:
    k1, k2, k3 = jax.random.split(key, 3)
    return ToyParams(
        size=jax.random.uniform(k1, minval=4.0, maxval=10.0),
        goal=jax.random.randint(k2, (2,), 0, 4),
        slippery=jax.random.bernoulli(k3),
    )


def test_curriculum_loop_under_jit_and_state_round_trip():
    config = PLRConfig(buffer_size=16, replay_prob=0.5, min_fill=0.25)
    example = toy_level(jax.random.key(0))
    n = 8
    assert config.replay_threshold(n) == 8  # the batch size beats 0.25 * 16

    @jax.jit
    @chex.assert_max_traces(n=1)
    def generation(state: PLRState, key: jax.Array) -> tuple[PLRState, jax.Array]:
        levels, slots, state = plr.sample(config, key, state, n, toy_level)
        scores = levels.size + levels.goal.sum(-1)  # a stand-in for regret
        valid = jnp.arange(n) < n - 1  # one agent per generation "diverged"
        state = plr.update(config, state, levels, slots, scores, valid)
        return state, jnp.sum(slots >= 0)

    state = plr.init(config, example)
    chex.assert_shape(state.levels.goal, (16, 2))
    assert state.levels.slippery.dtype == jnp.bool_
    replays, filled_before = [], []
    for key in jax.random.split(jax.random.key(1), 6):
        filled_before.append(int(jnp.sum(state.filled)))
        state, replayed = generation(state, key)
        replays.append(int(replayed))
    assert int(state.visits) == 6 * n  # every draw counts, replayed or fresh
    assert bool(jnp.all(state.filled))
    # 7 levels enter per generation: none is replayed until 8 are buffered.
    assert filled_before[:3] == [0, 7, 14]
    assert replays[0] == replays[1] == 0 and sum(replays) > 0
    # Every buffered level scores what the stand-in regret says it should.
    np.testing.assert_allclose(
        state.scores, state.levels.size + state.levels.goal.sum(-1), rtol=1e-6
    )

    restored = flax.serialization.from_state_dict(
        plr.init(config, example), flax.serialization.to_state_dict(state)
    )
    chex.assert_trees_all_equal(restored, state)
    chex.assert_trees_all_equal_dtypes(restored, state)
    key = jax.random.key(9)
    chex.assert_trees_all_equal(generation(restored, key), generation(state, key))
