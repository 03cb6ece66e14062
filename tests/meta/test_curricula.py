"""Curricula over gridworld levels, and meta-gradient steps that move agents to them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.a2c import make_a2c
from agents.lpg_agent import LPGAgentConfig, make_lpg_agent
from discovery import checkpoint as ckpt
from discovery.objective import ObjectiveConfig, make_objective
from envs.levels import make_level_space
from meta import plr
from meta.alp_gmm import ALPGMMConfig
from meta.curricula import CurriculumConfig, LevelBatch, make_curriculum
from meta.metagrad import MetaGradConfig, make_metagrad
from meta.objective_loop import a2c_like
from meta.plr import PLRConfig

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
        batch = curriculum.sample(jax.random.key(generation), state, 6)
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


def test_plr_over_gridworlds_replays_high_scoring_levels_more():
    config = CONFIGS["plr"]
    curriculum = make_curriculum(config, SPACE.sample, SPACE)
    state = curriculum.init()
    fresh = jax.jit(jax.vmap(SPACE.sample))(jax.random.split(jax.random.key(0), 16))
    scores = jnp.arange(16, dtype=jnp.float32)
    new = LevelBatch(fresh, jnp.full(16, -1))
    state = curriculum.update(state, new, scores, jnp.ones(16, bool))
    batch = curriculum.sample(jax.random.key(1), state, 4000)
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
    before = curriculum.sample(jax.random.key(2), state, 2000)
    # Scoring the small levels highly changes nothing: DR draws from the generator alone.
    scores = jnp.where(before.levels.height == 4, 100.0, -100.0)
    state = curriculum.update(state, before, scores, jnp.ones(2000, bool))
    after = curriculum.sample(jax.random.key(2), state, 2000)
    jax.tree.map(np.testing.assert_array_equal, before, after)
    share_small = float(np.mean(np.asarray(after.levels.height) == 4))
    assert abs(share_small - 0.5) < 0.04  # side U{4, 5} on 5x5 spaces
    assert np.all(np.asarray(after.slots) == -1)


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
