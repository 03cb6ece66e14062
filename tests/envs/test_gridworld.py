"""Tests for discovery.envs.gridworld: dynamics on hand-made 3x3 levels, observations, no-retrace
across levels, GROOVE's random level distribution, the named layouts and the registry."""

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before any JAX computation)

# isort: split
from collections import deque
from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery.envs.gridworld import (
    LAYOUTS,
    GridParams,
    GridWorld,
    Layout,
    make_layout,
    render,
    sample_level,
)
from discovery.envs.registry import list_envs, make

ENV = GridWorld(max_size=3, max_objects=2)
UP, DOWN, LEFT, RIGHT, NOOP = range(5)
NUM_KEYS = 64


def level(grid, objects=((1.0, 0.0, 0.0),), max_steps=100, max_size=3, max_objects=2):
    layout = Layout(grid=tuple(grid), objects=tuple(objects), max_steps_in_episode=max_steps)
    return layout.to_params(max_size, max_objects)


def play(params, actions, env=ENV, seed=0):
    """Reset, then step through ``actions``; returns the reset obs/state and each step."""
    obs, state = env.reset(jax.random.key(seed), params)
    first = (obs, state)
    steps = []
    for i, action in enumerate(actions):
        out = env.step(jax.random.key(seed * 1000 + i + 1), state, action, params)
        state = out[1]
        steps.append(out)
    return first, steps


def batch_step(state, action, params, env=ENV):
    """One step from ``state`` under NUM_KEYS different keys."""
    keys = jax.random.split(jax.random.key(7), NUM_KEYS)
    return jax.vmap(env.step, in_axes=(0, None, None, None))(keys, state, action, params)


def positions(steps):
    return [tuple(int(x) for x in s[1].position) for s in steps]


def reachable(params, start):
    """Python BFS over the level's free cells: set of reachable (row, col)."""
    walls = np.asarray(params.walls)
    height, width = int(params.height), int(params.width)
    seen, queue = {start}, deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            nr, nc = r + dr, c + dc
            if 0 <= nr < height and 0 <= nc < width and not walls[nr, nc]:
                if (nr, nc) not in seen:
                    seen.add((nr, nc))
                    queue.append((nr, nc))
    return seen


# ---------------------------------------------------------------- dynamics


def test_edges_and_walls_block_movement():
    params = level(["S#.", "...", "..0"])
    _, steps = play(params, [UP, LEFT, RIGHT, DOWN, NOOP, RIGHT, UP])
    assert positions(steps) == [(0, 0), (0, 0), (0, 0), (1, 0), (1, 0), (1, 1), (1, 1)]


def test_cells_outside_the_level_block_movement():
    params = level(["S.", "0."])  # 2x2 level in a 3x3 env
    assert int(params.height) == 2 and int(params.width) == 2
    _, steps = play(params, [RIGHT, RIGHT, DOWN, DOWN])
    assert positions(steps) == [(0, 1), (0, 1), (1, 1), (1, 1)]


def test_collecting_gives_reward_and_removes_object():
    params = level(["S0.", "...", "..."], objects=((0.5, 0.0, 0.0),))
    (_, state0), steps = play(params, [RIGHT, NOOP, LEFT, RIGHT])
    assert state0.object_exists.tolist() == [True, False]
    rewards = [float(s[2]) for s in steps]
    assert rewards == [0.5, 0.0, 0.0, 0.0]
    assert steps[0][1].object_exists.tolist() == [False, False]
    assert steps[0][2].dtype == jnp.float32
    for s in steps:
        assert s[3].dtype == jnp.bool_ and s[4].dtype == jnp.bool_
        assert not bool(s[3])


@pytest.mark.parametrize("p_terminate,expected", [(1.0, True), (0.0, False)])
def test_termination_probability(p_terminate, expected):
    params = level(["S0.", "...", "..."], objects=((1.0, p_terminate, 0.0),))
    _, state = ENV.reset(jax.random.key(0), params)
    _, state_after, reward, terminated, truncated, info = batch_step(state, RIGHT, params)
    assert bool(jnp.all(terminated == expected))
    assert not bool(jnp.any(truncated))
    assert bool(jnp.all(reward == 1.0))
    assert bool(jnp.all(info["discount"] == (0.0 if expected else 1.0)))
    if expected:  # auto-reset: back at the start with the object restored
        assert bool(jnp.all(state_after.position == jnp.array([0, 0])))
        assert bool(jnp.all(state_after.object_exists[:, 0]))


def test_respawn_probability_one_returns_next_step_never_same_step():
    params = level(["S0.", "...", "..."], objects=((1.0, 0.0, 1.0),))
    _, steps = play(params, [RIGHT, LEFT, RIGHT])
    exists = [s[1].object_exists.tolist()[0] for s in steps]
    assert exists == [False, True, False]
    assert [float(s[2]) for s in steps] == [1.0, 0.0, 1.0]


def test_respawn_probability_zero_never_returns():
    params = level(["S0.", "...", "..."], objects=((1.0, 0.0, 0.0),))
    _, steps = play(params, [RIGHT] + [LEFT, RIGHT] * 5)
    assert not any(s[1].object_exists.tolist()[0] for s in steps)
    state = steps[0][1]
    _, after, *_ = batch_step(state, LEFT, params)
    assert not bool(jnp.any(after.object_exists))


def test_unused_slots_never_exist():
    params = level(["S0.", "...", "..."], objects=((1.0, 0.0, 1.0),))
    _, steps = play(params, [NOOP, RIGHT, LEFT, NOOP])
    assert not any(s[1].object_exists.tolist()[1] for s in steps)


def test_truncation_and_auto_reset():
    params = level(["S..", "...", "..0"], max_steps=3)
    (obs0, _), steps = play(params, [DOWN, DOWN, RIGHT])
    assert [bool(s[4]) for s in steps] == [False, False, True]
    assert [bool(s[3]) for s in steps] == [False, False, False]
    assert [int(s[1].time) for s in steps[:2]] == [1, 2]
    obs, state, _, _, _, info = steps[-1]
    assert int(state.time) == 0
    assert state.position.tolist() == [0, 0]
    assert state.object_exists.tolist() == [True, False]
    chex.assert_trees_all_close(obs, obs0)
    final = info["final_observation"]
    assert float(final[-1]) == pytest.approx(0.003)
    assert int(jnp.argmax(final[:-1])) == 2 * 3 + 1 + 9 * 1  # cell (2, 1), object 0 present


# ---------------------------------------------------------------- observations


def test_tabular_observation_index_and_time():
    params = level(["S0.", "..1", "..."], objects=((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0)))
    (obs0, state0), steps = play(params, [RIGHT, DOWN, RIGHT])
    # index = row * 3 + col + 9 * bitmask(object exists)
    expected = [0 + 9 * 3, 1 + 9 * 2, 4 + 9 * 2, 5 + 9 * 0]
    observations = [obs0] + [s[0] for s in steps]
    for t, (obs, index) in enumerate(zip(observations, expected)):
        chex.assert_shape(obs, (3 * 3 * 2**2 + 1,))
        assert obs.dtype == jnp.float32
        assert float(jnp.sum(obs[:-1])) == 1.0
        assert int(jnp.argmax(obs[:-1])) == index
        assert float(obs[-1]) == pytest.approx(0.001 * t)
    assert int(ENV.state_index(state0)) == expected[0]
    assert [float(s[2]) for s in steps] == [1.0, 0.0, -1.0]


def test_features_observation():
    env = GridWorld(max_size=3, max_objects=2, observation="features")
    params = level(["S0.", "..1", "..."], objects=((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0)))
    (obs0, _), steps = play(params, [RIGHT], env=env)
    chex.assert_shape(obs0, (9 + 2 + 1,))
    expected = np.zeros(12, np.float32)
    expected[1], expected[9 + 1], expected[-1] = 1.0, 1.0, 0.001  # cell 1, object 1 only
    chex.assert_trees_all_close(steps[0][0], jnp.asarray(expected))
    assert obs0[:9].tolist() == [1.0] + [0.0] * 8 and obs0[9:11].tolist() == [1.0, 1.0]


def test_spaces_and_static_config():
    params = level(["S0.", "...", "..."])
    space = ENV.observation_space(params)
    assert space.shape == (37,) and space.dtype == jnp.float32
    assert float(space.high[-1]) == 1.0 and float(space.high[0]) == 1.0
    assert float(ENV.observation_space(params.replace(max_steps_in_episode=2000)).high[-1]) == 2.0
    assert ENV.action_space(params).n == 5 and ENV.num_actions == 5
    assert ENV.num_states == 36
    assert GridWorld(3, 2) == ENV and hash(GridWorld(3, 2)) == hash(ENV)
    assert GridWorld(3, 2, "features") != ENV and GridWorld(4, 2) != ENV
    with pytest.raises(AttributeError):
        ENV.max_size = 4
    with pytest.raises(ValueError, match="observation"):
        GridWorld(3, 2, observation="pixels")


def test_render():
    params = level(["S#.", "..1", "0.."], objects=((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0)))
    _, state = ENV.reset(jax.random.key(0), params)
    assert render(state, params) == "\n".join(
        ["#####", "#A#.#", "#..-#", "#+..#", "#####", "time 0/100"]
    )
    with pytest.raises(ValueError, match="unbatched"):
        render(jax.tree.map(lambda x: x[None], state), params)


# ---------------------------------------------------------------- one compile, many levels


def test_one_compiled_step_serves_levels_of_different_shapes():
    env = GridWorld(max_size=4, max_objects=2)
    actions = jnp.array([RIGHT, DOWN, RIGHT, DOWN, LEFT])
    small = level(["S0", ".."], max_size=4)  # 2x2, one object
    full = level(
        ["S0..", ".#..", "...1", "...."],
        objects=((1.0, 0.0, 0.0), (-1.0, 1.0, 0.0)),
        max_size=4,
    )
    random = sample_level(jax.random.key(3), max_size=4, max_objects=2)
    chex.assert_trees_all_equal_shapes_and_dtypes(small, full, random)

    def rollout(key, params):
        _, state = env.reset(key, params)

        def body(state, inputs):
            key, action = inputs
            _, state, reward, terminated, _, _ = env.step(key, state, action, params)
            return state, (reward, terminated, state.position)

        keys = jax.random.split(key, actions.shape[0])
        return jax.lax.scan(body, state, (keys, actions))[1]

    batched = jax.jit(jax.vmap(chex.assert_max_traces(rollout, n=1)))
    stack = lambda *levels: jax.tree.map(lambda *x: jnp.stack(x), *levels)
    keys = jax.random.split(jax.random.key(0), 3)
    first = batched(keys, stack(small, full, random))
    second = batched(keys, stack(full, random, small))  # same shapes: no retrace
    rewards, _, position = first
    assert rewards[0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert position[0].tolist() == [[0, 1], [1, 1], [1, 1], [1, 1], [1, 0]]  # edges of 2x2
    assert rewards[1].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert position[1].tolist() == [[0, 1], [0, 1], [0, 2], [1, 2], [1, 2]]  # wall at (1, 1)
    # small and full are deterministic, so their rollouts do not depend on the key
    chex.assert_trees_all_equal(
        jax.tree.map(lambda x: x[jnp.array([1, 0])], first),
        jax.tree.map(lambda x: x[jnp.array([0, 2])], second),
    )


# ---------------------------------------------------------------- random levels


@pytest.fixture(scope="session")
def random_levels():
    keys = jax.random.split(jax.random.key(42), 256)
    sample = jax.jit(jax.vmap(partial(sample_level, max_size=10, max_objects=5)))
    return jax.tree.map(np.asarray, sample(keys))


def test_sample_level_shapes_and_dtypes(random_levels):
    hand_made = level(["S0", ".."], max_size=10, max_objects=5)
    one = sample_level(jax.random.key(0), max_size=10, max_objects=5)
    chex.assert_trees_all_equal_shapes_and_dtypes(one, hand_made)
    batch = jax.tree.map(lambda x: (x.shape, x.dtype), random_levels)
    expected = jax.tree.map(lambda x: ((256, *x.shape), x.dtype), hand_made)
    assert batch == expected


def test_sample_level_ranges(random_levels):
    lv = random_levels
    assert lv.height.min() >= 4 and lv.height.max() <= 10
    assert (lv.height == lv.width).all()
    assert set(np.unique(lv.height)) == set(range(4, 11))  # every size occurs in 256 draws
    used = lv.object_used
    assert used[:, 0].all()
    assert (used[:, :-1] >= used[:, 1:]).all()  # used slots come first
    assert set(used.sum(1)) == {1, 2, 3, 4, 5}
    assert (lv.object_reward[:, 0] >= 0).all() and (lv.object_reward[:, 0] <= 1).all()
    assert (np.abs(lv.object_reward) <= 1).all() and (lv.object_reward[used] < 0).any()
    p_term, p_respawn = lv.object_p_terminate[used], lv.object_p_respawn[used]
    assert p_term.min() >= 1e-2 - 1e-7 and p_term.max() <= 1.0
    assert p_respawn.min() >= 1e-3 - 1e-8 and p_respawn.max() <= 1e-1 + 1e-7
    assert lv.max_steps_in_episode.min() >= 20 and lv.max_steps_in_episode.max() <= 750
    for field in ("object_reward", "object_p_terminate", "object_p_respawn"):
        assert (getattr(lv, field)[~used] == 0).all()
    num_walls = lv.walls.sum((1, 2))
    assert num_walls.max() <= 15 and num_walls.max() > 5 and (num_walls == 0).any()


def test_sample_level_cells_are_consistent_and_objects_reachable(random_levels):
    lv = random_levels
    rows = np.arange(10)
    for i in range(lv.height.shape[0]):
        params = jax.tree.map(lambda x, i=i: x[i], lv)
        size = int(params.height)
        inside = (rows[:, None] < size) & (rows[None, :] < size)
        assert not params.walls[~inside].any()
        start = tuple(int(x) for x in params.start)
        cells = [tuple(int(x) for x in p) for p in params.object_position[params.object_used]]
        assert len(set(cells)) == len(cells) and start not in cells
        for r, c in [start, *cells]:
            assert r < size and c < size and not params.walls[r, c]
        assert set(cells) <= reachable(params, start)


def test_sample_level_rejects_impossible_shape():
    with pytest.raises(ValueError, match="max_size >= 4"):
        sample_level(jax.random.key(0), max_size=3, max_objects=2)


# ---------------------------------------------------------------- named layouts

# REFERENCE.md: size, objects as (reward, p_term, p_respawn), episode length.
EXPECTED_LAYOUTS = {
    "dense": (11, [(1, 0, 0.05)] * 2 + [(-1, 0.5, 0.1), (-1, 0, 0.5)], 500),
    "sparse": (13, [(1, 1, 0), (-1, 1, 0)], 50),
    "long": (11, [(1, 0, 0.01)] * 2 + [(-1, 0.5, 1)] * 2, 1000),
    "longer": (9, [(1, 0.1, 0.01)] * 2 + [(-1, 0.8, 1)] * 5, 2000),
    "long_dense": (11, [(1, 0, 0.005)] * 4, 2000),
}
OBS_SIZES = {
    "dense": 11 * 11 * 2**4 + 1,
    "sparse": 13 * 13 * 2**2 + 1,
    "long": 11 * 11 * 2**4 + 1,
    "longer": 9 * 9 * 2**7 + 1,
    "long_dense": 11 * 11 * 2**4 + 1,
    "random": 10 * 10 * 2**5 + 1,
}


@pytest.mark.parametrize("name", list(EXPECTED_LAYOUTS))
def test_layout_matches_reference_and_is_playable(name):
    size, objects, length = EXPECTED_LAYOUTS[name]
    params = make_layout(name)
    assert int(params.height) == int(params.width) == size
    assert params.walls.shape == (size, size)
    assert int(params.max_steps_in_episode) == length
    table = np.stack(
        [params.object_reward, params.object_p_terminate, params.object_p_respawn], axis=-1
    )
    np.testing.assert_allclose(table, np.asarray(objects, np.float32))
    assert bool(params.object_used.all())
    walls = np.asarray(params.walls)
    start = tuple(int(x) for x in params.start)
    cells = [tuple(int(x) for x in p) for p in params.object_position]
    assert len(set(cells)) == len(cells) and start not in cells
    assert not any(walls[cell] for cell in [start, *cells])
    free = {(r, c) for r in range(size) for c in range(size) if not walls[r, c]}
    assert reachable(params, start) == free  # every free cell, objects included


def test_longer_and_long_dense_walls():
    assert list(LAYOUTS) == list(EXPECTED_LAYOUTS)
    longer = np.asarray(make_layout("longer").walls)
    assert longer[:, 4].sum() == 9 - 2 and longer.sum() == 7  # middle column, two gaps
    cross = np.asarray(make_layout("long_dense").walls)
    assert cross[5].sum() == 11 - 2 and cross[:, 5].sum() == 11 - 2 and cross.sum() == 17
    for name in ("dense", "sparse", "long"):
        assert not make_layout(name).walls.any()


def test_make_layout_padding_and_errors():
    padded = make_layout("sparse", max_size=14, max_objects=4)
    chex.assert_shape(padded.walls, (14, 14))
    assert padded.object_used.tolist() == [True, True, False, False]
    assert padded.object_position[2:].tolist() == [[0, 0], [0, 0]]
    assert int(padded.height) == 13
    with pytest.raises(ValueError, match=r"'dense'.*max_size=10"):
        make_layout("dense", max_size=10)
    with pytest.raises(ValueError, match=r"'longer'.*max_objects=5"):
        make_layout("longer", max_size=9, max_objects=5)
    with pytest.raises(ValueError, match="Known layouts: dense, sparse"):
        make_layout("medium")
    with pytest.raises(ValueError, match="one 'S'"):
        level(["0..", "...", "..."])


def test_default_params_is_dense_when_it_fits():
    chex.assert_trees_all_equal(GridWorld(11, 4).default_params, make_layout("dense"))
    chex.assert_shape(GridWorld(12, 6).default_params.walls, (12, 12))
    with pytest.raises(ValueError, match="dense"):
        GridWorld(10, 5).default_params  # noqa: B018


# ---------------------------------------------------------------- registry


def test_list_envs_has_gridworlds():
    names = list_envs()
    for name in OBS_SIZES:
        assert f"gridworld/{name}" in names


@pytest.mark.parametrize("name", list(OBS_SIZES))
def test_registry_gridworlds_reset_and_step(name):
    env, params = make(f"gridworld/{name}")
    if name == "random":
        assert (env.max_size, env.max_objects) == (10, 5)
        chex.assert_trees_all_equal(params, sample_level(jax.random.key(0), 10, 5))
    else:
        chex.assert_trees_all_equal(params, make_layout(name))
        assert env.max_size == EXPECTED_LAYOUTS[name][0]
        assert env.max_objects == len(EXPECTED_LAYOUTS[name][1])
    assert env.observation_space(params).shape == (OBS_SIZES[name],)
    obs, state = env.reset(jax.random.key(0), params)
    obs, state, reward, terminated, truncated, info = env.step(
        jax.random.key(1), state, NOOP, params
    )
    chex.assert_shape([obs, info["final_observation"]], (OBS_SIZES[name],))
    assert reward.shape == () and terminated.shape == () and truncated.shape == ()


def test_registry_overrides_and_env_kwargs():
    _, params = make("gridworld/dense", max_steps_in_episode=100)
    assert int(params.max_steps_in_episode) == 100
    assert params.max_steps_in_episode.dtype == jnp.int32
    with pytest.raises(ValueError, match="max_steps_in_episode"):
        make("gridworld/dense", max_step=100)
    env, params = make("gridworld/sparse", env_kwargs={"observation": "features"})
    assert env.observation_space(params).shape == (13 * 13 + 2 + 1,)
    env, params = make("gridworld/sparse", env_kwargs={"max_size": 14, "max_objects": 3})
    chex.assert_shape(params.object_used, (3,))
    with pytest.raises(ValueError, match="env_kwargs"):
        make("gridworld/dense", env_kwargs={"size": 11})


def test_registry_unknown_gridworld_lists_levels():
    with pytest.raises(ValueError) as info:
        make("gridworld/dens")
    message = str(info.value)
    assert "Did you mean 'gridworld/dense'" in message
    for name in OBS_SIZES:
        assert f"gridworld/{name}" in message
    assert isinstance(make("gridworld/long")[1], GridParams)
