"""Curricula over gridworld levels, and meta-gradient steps that move agents to them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery import checkpoint as ckpt
from discovery.agents.a2c import make_a2c
from discovery.agents.lpg_agent import LPGAgentConfig, make_lpg_agent
from discovery.envs.levels import make_level_space
from discovery.meta import plr
from discovery.meta.alp_gmm import ALPGMMConfig
from discovery.meta.curricula import CurriculumConfig, LevelBatch, make_curriculum
from discovery.meta.metagrad import MetaGradConfig, make_metagrad
from discovery.meta.plr import PLRConfig
from discovery.objective import ObjectiveConfig, make_objective
from discovery.objective_training import a2c_like

SPACE = make_level_space("gridworld", max_size=5, max_objects=2)
CONFIGS = {
    "dr": CurriculumConfig(),
    "plr": CurriculumConfig(kind="plr", plr=PLRConfig(buffer_size=16, replay_prob=0.5)),
    "alp_gmm": CurriculumConfig(
        kind="alp_gmm",
        score="return",
        alp_gmm=ALPGMMConfig(
            fit_every=4, fit_window=8, history_size=64, min_components=1, max_components=2
        ),
    ),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def curriculum(request):
    return make_curriculum(CONFIGS[request.param], SPACE.sample, SPACE)


def _score(levels) -> jax.Array:
    """A planted score: levels with more objects score higher."""
    return jnp.sum(levels.object_used, axis=-1).astype(jnp.float32)


def test_contract_sample_update_stats_and_checkpoint(curriculum, tmp_path):
    state = curriculum.init()
    for generation in range(4):
        batch, state = curriculum.sample(jax.random.key(generation), state, 6)
        assert batch.slots.shape == (6,)
        assert jax.tree.leaves(batch.levels)[0].shape[0] == 6
        for index in range(6):
            SPACE.validate(jax.tree.map(lambda x, i=index: x[i], batch.levels))
        valid = jnp.arange(6) < 5  # the last agent did not finish
        state = curriculum.update(state, batch, _score(batch.levels), valid)
    stats = curriculum.stats(state)
    assert stats and all(isinstance(v, float) for v in stats.values())
    # The state survives a checkpoint exactly, and sampling carries on identically.
    path = ckpt.save_checkpoint(tmp_path, 4, state)
    restored, _ = ckpt.load_checkpoint(path, curriculum.init())
    jax.tree.map(np.testing.assert_array_equal, state, restored)
    key = jax.random.key(99)
    jax.tree.map(
        np.testing.assert_array_equal,
        curriculum.sample(key, state, 6),
        curriculum.sample(key, restored, 6),
    )


@pytest.fixture(scope="module")
def full_plr_buffer():
    """The PLR curriculum with its 16 slots filled by fresh levels scored 0..15."""
    curriculum = make_curriculum(CONFIGS["plr"], SPACE.sample, SPACE)
    state = curriculum.init()
    fresh = jax.jit(jax.vmap(SPACE.sample))(jax.random.split(jax.random.key(0), 16))
    scores = jnp.arange(16, dtype=jnp.float32)
    new = LevelBatch(fresh, jnp.full(16, -1))
    return curriculum, curriculum.update(state, new, scores, jnp.ones(16, bool))


def test_plr_over_gridworlds_replays_high_scoring_levels_more(full_plr_buffer):
    config = CONFIGS["plr"]
    curriculum, state = full_plr_buffer
    # 250 batches of 16 draws (a batch may not outnumber the 16 buffered levels).
    keys = jax.random.split(jax.random.key(1), 250)
    batch = jax.vmap(lambda key: curriculum.draw(key, state, 16))(keys)
    batch = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
    slots = np.asarray(batch.slots)
    replayed = slots[slots >= 0]
    assert abs(replayed.size / slots.size - 0.5) < 0.03
    frequency = np.bincount(replayed, minlength=16) / replayed.size
    expected = np.asarray(plr.replay_distribution(config.plr, state))
    assert np.abs(frequency - expected).max() < 0.03
    assert frequency[np.argmax(np.asarray(state.scores))] > 3 * frequency.min()
    # Replayed draws hand back the buffered level itself.
    first = int(np.argmax(slots >= 0))
    np.testing.assert_array_equal(
        batch.levels.walls[first], np.asarray(state.levels.walls[slots[first]])
    )


def test_domain_randomisation_ignores_scores():
    curriculum = make_curriculum(CONFIGS["dr"], SPACE.sample, SPACE)
    state = curriculum.init()
    before, sampled = curriculum.sample(jax.random.key(2), state, 2000)
    jax.tree.map(np.testing.assert_array_equal, sampled, state)  # sampling keeps no record
    # Scoring the small levels highly changes nothing: DR draws from the generator alone.
    scores = jnp.where(before.levels.height == 4, 100.0, -100.0)
    state = curriculum.update(state, before, scores, jnp.ones(2000, bool))
    after, _ = curriculum.sample(jax.random.key(2), state, 2000)
    jax.tree.map(np.testing.assert_array_equal, before, after)
    share_small = float(np.mean(np.asarray(after.levels.height) == 4))
    assert abs(share_small - 0.5) < 0.04  # side U{4, 5} on 5x5 spaces
    assert np.all(np.asarray(after.slots) == -1)


def test_plr_sampling_resets_the_staleness_of_replayed_levels(full_plr_buffer):
    curriculum, state = full_plr_buffer
    state = state.replace(visits=jnp.int32(40))  # 40 draws since the levels entered
    batch, sampled = curriculum.sample(jax.random.key(3), state, 16)
    slots = np.asarray(batch.slots)
    replayed = slots[slots >= 0]
    assert replayed.size > 0
    # Every draw counts; each replayed level is fresh again, the others grew staler.
    assert int(sampled.visits) == 56
    staleness = np.asarray(sampled.visits - sampled.last_visit)
    assert np.all(staleness[replayed] < 16)
    others = np.setdiff1d(np.arange(16), replayed)
    np.testing.assert_array_equal(staleness[others], 56)
    # Scoring the replays afterwards leaves staleness as sampling set it.
    scored = curriculum.update(sampled, batch, jnp.full(16, 20.0), jnp.asarray(slots >= 0))
    np.testing.assert_array_equal(scored.scores[replayed], 20.0)
    np.testing.assert_array_equal(scored.last_visit, sampled.last_visit)
    assert int(scored.visits) == 56


def test_plr_marks_only_the_draws_agents_started_on(full_plr_buffer):
    # Meta-gradient training draws a level for every agent each step, but only the
    # agents whose lifetime ended move to theirs: only those draws count as sampled.
    curriculum, state = full_plr_buffer
    batch = curriculum.draw(jax.random.key(4), state, 16)
    slots = np.asarray(batch.slots)
    assert np.any(slots >= 0) and np.any(slots < 0)
    used = np.zeros(16, bool)
    used[np.flatnonzero(slots >= 0)[:1]] = True  # one replayed draw was used
    used[np.flatnonzero(slots < 0)[:1]] = True  # and one fresh one
    after = curriculum.mark_sampled(state, batch, jnp.asarray(used))
    assert int(after.visits) == 2
    changed = np.flatnonzero(np.asarray(after.last_visit != state.last_visit))
    np.testing.assert_array_equal(changed, slots[used & (slots >= 0)])
    # With no draw used, nothing changes; DR and ALP-GMM keep no record at all.
    jax.tree.map(
        np.testing.assert_array_equal,
        curriculum.mark_sampled(state, batch, jnp.zeros(16, bool)),
        state,
    )


def test_alp_gmm_needs_a_level_space():
    with pytest.raises(ValueError, match="alp_gmm.*level space"):
        make_curriculum(CONFIGS["alp_gmm"], SPACE.sample, None)


@pytest.fixture(scope="module")
def metagrad_with_antagonist():
    config = MetaGradConfig(
        num_agents=4, num_minibatches=2, unroll=2, lifetime_min=4, lifetime_max=4, lr=1e-3
    )
    objective = make_objective(ObjectiveConfig(prediction_size=4, hidden_size=8))
    agent_config = LPGAgentConfig(num_envs=4, rollout_len=5)
    example = SPACE.default
    agent = make_lpg_agent(agent_config, SPACE.env, example, objective)
    antagonist = make_a2c(a2c_like(agent_config), SPACE.env, example)
    metagrad = make_metagrad(config, agent, SPACE.sample, antagonist)
    levels = jax.vmap(SPACE.sample)(jax.random.split(jax.random.key(5), 4))
    state = metagrad.init(
        jax.random.key(0), objective.init(jax.random.key(1)), levels, jnp.arange(4)
    )
    return metagrad, state, jax.jit(metagrad.step_with_levels)


def test_restarting_agents_move_to_the_given_levels_and_finished_levels_are_scored(
    metagrad_with_antagonist,
):
    metagrad, state, step = metagrad_with_antagonist
    next_levels = jax.vmap(SPACE.sample)(jax.random.split(jax.random.key(7), 4))
    next_slots = jnp.arange(10, 14)
    before = state
    finished_any = antagonists_moved = False
    for _ in range(4):
        old_levels, old_slots = state.agents.env_params, state.level_slots
        old_antagonist = state.antagonists.params
        state, metrics, finished = step(state, next_levels, next_slots)
        done = np.asarray(state.agents.update_idx) == 0  # restarted this step
        assert int(metrics["agents_reset"]) == done.sum()
        for i in range(4):
            expected = next_levels if done[i] else old_levels
            np.testing.assert_array_equal(state.agents.env_params.walls[i], expected.walls[i])
        np.testing.assert_array_equal(
            np.asarray(state.level_slots), np.where(done, next_slots, old_slots)
        )
        # Each antagonist lives exactly as long as its agent, restarting with it.
        np.testing.assert_array_equal(state.antagonists.update_idx, state.agents.update_idx)
        # What finished is reported with the level and slot it ran on.
        np.testing.assert_array_equal(np.asarray(finished.slots), np.asarray(old_slots))
        np.testing.assert_array_equal(finished.levels.walls, old_levels.walls)
        valid = np.asarray(finished.valid)
        assert not np.any(valid & ~done)
        scores = {k: np.asarray(v) for k, v in finished.scores.items()}
        if valid.any():
            finished_any = True
            for name in ("return", "algorithmic_regret", "positive_value_loss"):
                assert np.all(np.isfinite(scores[name][valid])), name
            # GROOVE's algorithmic regret: the antagonist's return minus the agent's.
            np.testing.assert_allclose(
                scores["algorithmic_regret"][valid],
                scores["antagonist_return"][valid] - scores["return"][valid],
                rtol=1e-6,
            )
            assert np.all(scores["positive_value_loss"][valid] >= 0)
        # The antagonists train beside the agents (tables stay at zero until a reward is seen).
        moved = jax.tree.map(
            lambda a, b: np.abs(np.asarray(a - b)).max(), state.antagonists.params, old_antagonist
        )
        antagonists_moved |= max(jax.tree.leaves(moved)) > 0
    assert finished_any and antagonists_moved
    assert before.records.updates.sum() == 0
