"""Where LPG agents train (level samplers) and how ES scores an objective."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from agents.lpg_agent import LPGAgentConfig
from discovery.lpg_task import (
    LevelsConfig,
    ObjectiveTaskConfig,
    make_level_sampler,
    make_objective_task,
)
from discovery.objective import ObjectiveConfig, make_objective
from envs.gridworld import GridWorld


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


def test_es_fitness_uses_common_levels_and_keys_across_the_population():
    objective = make_objective(ObjectiveConfig(prediction_size=4, hidden_size=8))
    task = make_objective_task(
        ObjectiveTaskConfig(agents=2, lifetime_min=3, lifetime_max=5),
        objective,
        LPGAgentConfig(num_envs=4, rollout_len=5),
        LevelsConfig(max_size=4, max_objects=1),
    )
    member = task.init_params(jax.random.key(3))
    population = jax.tree.map(lambda x: np.stack([x, x]), member)
    fitness, returns = jax.jit(task.fitness)(population, jax.random.key(4))
    assert fitness.shape == (2,) and returns.shape == (2, 2)
    # Identical members on common random numbers score identically.
    np.testing.assert_array_equal(np.asarray(returns[0]), np.asarray(returns[1]))
