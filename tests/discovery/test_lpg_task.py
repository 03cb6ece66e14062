"""Where LPG agents train (level samplers) and how ES scores an objective."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery.agents.lpg_agent import LPGAgentConfig
from discovery.envs.gridworld import GridWorld, Layout
from discovery.lpg_task import (
    LevelsConfig,
    ObjectiveTaskConfig,
    level_space,
    make_level_sampler,
    make_objective_task,
)
from discovery.meta.es import ESConfig, make_es
from discovery.objective import ObjectiveConfig, make_objective


def test_random_levels_share_one_env_shape():
    env, sample = make_level_sampler(LevelsConfig(max_size=6, max_objects=3))
    assert env == GridWorld(6, 3)
    levels = jax.vmap(sample)(jax.random.split(jax.random.key(0), 32))
    assert levels.walls.shape == (32, 6, 6)
    assert len(set(np.asarray(levels.height).tolist())) > 1


def test_named_layouts_and_random_levels_mix():
    config = LevelsConfig(train=("gridworld/sparse", "gridworld/random"), max_size=13,
                          max_objects=2)
    _, sample = make_level_sampler(config)
    levels = jax.jit(jax.vmap(sample))(jax.random.split(jax.random.key(1), 64))
    # sparse's objects end the episode surely; a random level's p_term is log-uniform.
    sparse = np.all(np.asarray(levels.object_p_terminate) == 1.0, axis=-1)
    assert 10 < sparse.sum() < 54  # about half of each
    np.testing.assert_array_equal(np.asarray(levels.max_steps_in_episode)[sparse], 50)
    np.testing.assert_array_equal(np.asarray(levels.height)[sparse], 13)


def test_a_single_registered_env_gives_its_default_params():
    env, sample = make_level_sampler(LevelsConfig(train=("Catch-bsuite",)))
    assert env.name == "Catch-bsuite"
    assert sample(jax.random.key(2)) == env.default_params


def test_random_physics_come_from_the_level_space():
    config = LevelsConfig(train=("CartPole-v1/random",))
    env, sample = make_level_sampler(config)
    assert level_space(config).name == "CartPole-v1"
    levels = jax.vmap(sample)(jax.random.split(jax.random.key(3), 16))
    masspole = np.asarray(levels.masspole)
    assert len(set(masspole.tolist())) == 16 and masspole.min() >= 0.05 and masspole.max() <= 0.2
    np.testing.assert_allclose(levels.total_mass, levels.masscart + levels.masspole, rtol=1e-6)
    assert level_space(LevelsConfig(train=("gridworld/dense",), max_size=11)) is None
    with pytest.raises(ValueError, match="Pong-misc"):
        make_level_sampler(LevelsConfig(train=("Pong-misc/random",)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"train": ()}, "levels.train"),
        ({"train": ("gridworld/random", "Catch-bsuite")}, "all be gridworlds"),
        ({"held_out": ("dense", "mazy")}, "mazy"),
    ],
)
def test_bad_level_configs_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LevelsConfig(**kwargs)


def test_unknown_training_layout_is_named():
    with pytest.raises(ValueError, match="gridworld/'?nope|'nope'"):
        make_level_sampler(LevelsConfig(train=("gridworld/nope",)))


@pytest.fixture(scope="module")
def tiny_task():
    objective = make_objective(ObjectiveConfig(prediction_size=4, hidden_size=8))
    return make_objective_task(
        ObjectiveTaskConfig(agents=2, lifetime_min=3, lifetime_max=5),
        objective,
        LPGAgentConfig(num_envs=4, rollout_len=5),
        LevelsConfig(max_size=4, max_objects=1),
    )


def test_es_fitness_uses_common_levels_and_keys_across_the_population(tiny_task):
    member = tiny_task.init_params(jax.random.key(3))
    population = jax.tree.map(lambda x: np.stack([x, x]), member)
    fitness, returns = jax.jit(tiny_task.fitness)(population, jax.random.key(4))
    assert fitness.shape == (2,) and returns.shape == (2, 2)
    # Identical members on common random numbers score identically.
    np.testing.assert_array_equal(np.asarray(returns[0]), np.asarray(returns[1]))
    # Every agent has a score (a reward rate), so fitness is their plain mean.
    assert np.all(np.isfinite(returns))
    np.testing.assert_allclose(fitness, np.asarray(returns).mean(axis=-1), rtol=1e-6)


# Episodes end within 12 steps (the object ends them) / never in a lifetime (no object
# ends them and the time limit is far away): the final episode return is missing there.
ENDING = Layout(grid=("S..0",), objects=((1.0, 1.0, 0.0),), max_steps_in_episode=12)
ENDLESS = Layout(grid=("S..0",), objects=((1.0, 0.0, 0.0),), max_steps_in_episode=1000)


def test_es_fitness_scores_every_level_and_ranks_divergence_last(tiny_task):
    levels = jax.tree.map(
        lambda *xs: jnp.stack(xs), ENDING.to_params(4, 1), ENDLESS.to_params(4, 1)
    )
    member = tiny_task.init_params(jax.random.key(3))
    # Member 1's objective outputs NaN targets, so its agents' params diverge.
    population = jax.tree.map(lambda x: jnp.stack([x, x * jnp.nan]), member)
    fitness, scores, level_scores = jax.jit(tiny_task.fitness_on_levels)(
        population, jax.random.key(4), levels
    )
    fitness, scores = np.asarray(fitness), np.asarray(scores)
    # A final return would be missing on the endless level; the reward rate is not.
    assert np.all(np.isfinite(scores[0])), scores
    np.testing.assert_allclose(fitness[0], scores[0].mean(), rtol=1e-6)
    # Divergence is the worst outcome, not a skipped level: NaN scores, fitness -inf.
    assert np.all(np.isnan(scores[1])), scores
    assert fitness[1] == -np.inf
    # Per level: the mean over the finite members, and the fraction that diverged.
    np.testing.assert_allclose(level_scores["return"], scores[0], rtol=1e-6)
    np.testing.assert_allclose(level_scores["diverged_fraction"], [0.5, 0.5])
    # The ES counts the diverged member as non-finite and ranks it below the other.
    es = make_es(ESConfig(population_size=2, sigma_init=0.1), member)
    _, metrics = es.tell(es.init(jax.random.key(5), member), population, fitness)
    assert int(metrics.num_nonfinite) == 1 and int(metrics.best_index) == 0
    np.testing.assert_allclose(metrics.fitness_max, fitness[0], rtol=1e-6)


def test_es_scores_curriculum_levels_by_algorithmic_regret():
    from discovery.objective_training import a2c_like

    agent_config = LPGAgentConfig(num_envs=4, rollout_len=5)
    objective = make_objective(ObjectiveConfig(prediction_size=4, hidden_size=8))
    task = make_objective_task(
        ObjectiveTaskConfig(agents=3, lifetime_min=4, lifetime_max=4, final_fraction=0.5),
        objective,
        agent_config,
        LevelsConfig(max_size=4, max_objects=1),
        antagonist=a2c_like(agent_config),
    )
    _, sample = make_level_sampler(LevelsConfig(max_size=4, max_objects=1))
    levels = jax.vmap(sample)(jax.random.split(jax.random.key(5), 3))
    population = jax.tree.map(lambda x: np.stack([x, x]), task.init_params(jax.random.key(6)))
    fitness, returns, scores = jax.jit(task.fitness_on_levels)(
        population, jax.random.key(7), levels
    )
    assert fitness.shape == (2,) and returns.shape == (2, 3)
    assert set(scores) == {
        "return", "diverged_fraction", "antagonist_return", "algorithmic_regret"
    }
    for value in scores.values():
        assert value.shape == (3,) and np.all(np.isfinite(value))
    np.testing.assert_allclose(
        scores["algorithmic_regret"], scores["antagonist_return"] - scores["return"], rtol=1e-6
    )
    # The antagonist is A2C trained on each level: reward rates differ between levels.
    assert len(set(np.asarray(scores["antagonist_return"]).tolist())) > 1
