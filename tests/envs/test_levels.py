"""Tests for discovery.envs.levels: every level space's sample / decode / mutate / encode under jit
and vmap, bounds and ranges, the unit-cube round trip, one compiled step for a batch of
levels, CartPole's derived fields, gridworld reachability, and the errors."""

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before any JAX computation)

# isort: split
import functools
import math
from collections import deque
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery.envs import gridworld
from discovery.envs.levels import LEVEL_SPACES, LevelError, LevelSpace, make_level_space

BATCH = 16
CLASSIC = [name for name in LEVEL_SPACES if name != "gridworld"]


class Traced:
    """``fn`` that counts how often it is traced (chex.assert_max_traces keys its count by
    source code, which every space's ``sample`` closure shares)."""

    def __init__(self, fn: Any):
        self.fn, self.count = fn, 0

    def __call__(self, *args: Any) -> Any:
        self.count += 1
        return self.fn(*args)


class Compiled(NamedTuple):
    """A space, its jitted batch functions and one batch of their outputs."""

    space: LevelSpace
    traced: dict[str, Traced]
    sample: Any
    decode: Any
    mutate: Any
    encode: Any
    levels: Any
    points: jax.Array
    decoded: Any
    mutated: Any


@functools.cache
def compiled(name: str) -> Compiled:
    """Compiled once per space for the whole module: gridworld compiles take seconds."""
    space = make_level_space(name)
    traced = {f: Traced(getattr(space, f)) for f in ("sample", "decode", "mutate")}
    sample, decode, mutate = (jax.jit(jax.vmap(t)) for t in traced.values())
    encode = jax.jit(jax.vmap(space.encode))
    keys = jax.random.split(jax.random.key(0), (3, BATCH))
    levels = sample(keys[0])
    points = jax.random.uniform(jax.random.key(1), (BATCH, space.num_dims))
    return Compiled(
        space=space,
        traced=traced,
        sample=sample,
        decode=decode,
        mutate=mutate,
        encode=encode,
        levels=levels,
        points=points,
        decoded=decode(keys[1], points),
        mutated=mutate(keys[2], levels),
    )


def unstack(batch: Any) -> list[Any]:
    size = jax.tree.leaves(batch)[0].shape[0]
    return [jax.tree.map(lambda x, i=i: x[i], batch) for i in range(size)]


def quantities(space: LevelSpace, level: Any) -> dict[str, np.ndarray]:
    """The value of each dim of a level (or batch of levels), as the ranges give it."""
    if space.name != "gridworld":
        return {d: np.asarray(getattr(level, d)) for d in space.dims}
    walls = np.asarray(level.walls)
    return {
        "size": np.asarray(level.height),
        "walls": walls.sum(axis=(-2, -1)),
        "objects": np.asarray(level.object_used).sum(-1),
        "episode_length": np.asarray(level.max_steps_in_episode),
    }


def assert_in_ranges(space: LevelSpace, level: Any) -> None:
    for dim, values in quantities(space, level).items():
        low, high = space.ranges[dim]
        assert (values >= low * (1 - 1e-6)).all() and (values <= high * (1 + 1e-6)).all(), (
            dim,
            values,
            (low, high),
        )


def reachable(level: Any) -> set[tuple[int, int]]:
    """Python BFS over the free cells of one gridworld level."""
    height, width = int(level.height), int(level.width)
    walls = np.asarray(level.walls)
    start = tuple(int(x) for x in level.start)
    seen, queue = {start}, deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            cell = (r + dr, c + dc)
            if 0 <= cell[0] < height and 0 <= cell[1] < width and not walls[cell]:
                if cell not in seen:
                    seen.add(cell)
                    queue.append(cell)
    return seen


def object_cells(level: Any) -> list[tuple[int, int]]:
    used = np.asarray(level.object_used)
    return [tuple(int(x) for x in p) for p in np.asarray(level.object_position)[used]]


# ---------------------------------------------------------------- every space


def test_level_spaces_and_their_dims():
    assert LEVEL_SPACES == (
        "gridworld",
        "CartPole-v1",
        "Acrobot-v1",
        "Pendulum-v1",
        "MountainCar-v0",
    )
    expected_dims = {
        "gridworld": ("size", "walls", "objects", "episode_length"),
        "CartPole-v1": ("gravity", "masscart", "masspole", "length", "force_mag"),
        "Acrobot-v1": ("link_length_1", "link_length_2", "link_mass_1", "link_mass_2"),
        "Pendulum-v1": ("g", "m", "l", "max_torque"),
        "MountainCar-v0": ("force", "gravity"),
    }
    for name, dims in expected_dims.items():
        space = compiled(name).space
        assert space.name == name and space.dims == dims and space.num_dims == len(dims)
        assert tuple(space.ranges) == dims
        space.validate(space.default)
    assert compiled("gridworld").space.env == gridworld.GridWorld(10, 5, "tabular")
    assert compiled("CartPole-v1").space.ranges["masspole"] == (0.05, 0.2)


@pytest.mark.parametrize("name", LEVEL_SPACES)
def test_sample_is_jittable_vmappable_and_in_ranges(name):
    c = compiled(name)
    space = c.space
    chex.assert_trees_all_equal_shapes_and_dtypes(unstack(c.levels)[0], space.default)
    for level in unstack(c.levels):
        space.validate(level)
    assert_in_ranges(space, c.levels)
    for dim, values in quantities(space, c.levels).items():
        assert len(np.unique(values)) > 1, dim  # a batch of different levels
    points = c.encode(c.levels)
    chex.assert_shape(points, (BATCH, space.num_dims))
    assert points.dtype == jnp.float32
    assert ((points >= 0) & (points <= 1)).all()
    again = c.sample(jax.random.split(jax.random.key(9), BATCH))
    assert c.traced["sample"].count == 1  # new keys, no retrace
    assert not np.array_equal(
        quantities(space, again)[space.dims[0]], quantities(space, c.levels)[space.dims[0]]
    )


@pytest.mark.parametrize("name", LEVEL_SPACES)
def test_decode_is_jittable_and_encode_inverts_it(name):
    c = compiled(name)
    space = c.space
    for level in unstack(c.decoded):
        space.validate(level)
    assert_in_ranges(space, c.decoded)
    error = np.abs(np.asarray(c.encode(c.decoded)) - np.asarray(c.points))
    if name != "gridworld":
        assert error.max() < 1e-5
        other_keys = jax.random.split(jax.random.key(5), BATCH)
        chex.assert_trees_all_equal(c.decode(other_keys, c.points), c.decoded)  # key unused
        return
    # Integer dims come back as the centre of their bin; episode length is rounded.
    half_bin = {d: 0.5 / (high - low + 1) + 1e-6 for d, (low, high) in space.ranges.items()}
    low, high = space.ranges["episode_length"]
    half_bin["episode_length"] = 0.5 / low / math.log(high / low) + 1e-6
    for i, dim in enumerate(space.dims):
        if dim == "walls":
            # Redraws can only remove walls, so that the objects stay reachable.
            signed = np.asarray(c.encode(c.decoded))[:, i] - np.asarray(c.points)[:, i]
            assert (signed <= half_bin[dim]).all()
            assert (error[:, i] <= half_bin[dim]).mean() >= 0.5
        else:
            assert (error[:, i] <= half_bin[dim]).all(), (dim, error[:, i])


@pytest.mark.parametrize("name", CLASSIC)
def test_classic_decode_maps_the_cube_corners_to_the_range_ends(name):
    space = compiled(name).space
    key = jax.random.key(0)
    for corner, end in ((0.0, 0), (1.0, 1)):
        level = space.decode(key, jnp.full((space.num_dims,), corner))
        for dim in space.dims:
            np.testing.assert_allclose(getattr(level, dim), space.ranges[dim][end], rtol=1e-6)
    middle = space.decode(key, jnp.full((space.num_dims,), 0.5))
    for dim in space.dims:  # log scale: the middle is the geometric mean
        low, high = space.ranges[dim]
        np.testing.assert_allclose(getattr(middle, dim), math.sqrt(low * high), rtol=1e-5)


@pytest.mark.parametrize("name", LEVEL_SPACES)
def test_mutate_makes_a_small_edit_within_ranges(name):
    c = compiled(name)
    space = c.space
    for level in unstack(c.mutated):
        space.validate(level)
    assert_in_ranges(space, c.mutated)
    changed = [
        not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)))
        for x, y in zip(unstack(c.levels), unstack(c.mutated))
    ]
    if name != "gridworld":
        assert all(changed)
        step = np.abs(np.asarray(c.encode(c.mutated)) - np.asarray(c.encode(c.levels)))
        assert 0 < step.mean() < 0.2  # Gaussian steps of scale 0.1 in the cube
        for field in ("max_steps_in_episode", *_untouched(name)):
            np.testing.assert_array_equal(getattr(c.mutated, field), getattr(c.levels, field))
        return
    assert np.mean(changed) >= 0.5
    for before, after in zip(unstack(c.levels), unstack(c.mutated)):
        walls_flipped = int((np.asarray(before.walls) != np.asarray(after.walls)).sum())
        objects_moved = int(
            (np.asarray(before.object_position) != np.asarray(after.object_position)).any(-1).sum()
        )
        assert walls_flipped + objects_moved <= 1  # one wall cell or one object
        for field in ("height", "start", "object_used", "object_reward", "max_steps_in_episode"):
            np.testing.assert_array_equal(getattr(after, field), getattr(before, field))


def _untouched(name: str) -> tuple[str, ...]:
    """EnvParams fields no dim sets and none derives from dims."""
    default = compiled(name).space.default
    derived = ("total_mass", "polemass_length") if name == "CartPole-v1" else ()
    fields = [f for f in default.__dataclass_fields__ if f != "max_steps_in_episode"]
    return tuple(f for f in fields if f not in compiled(name).space.dims and f not in derived)


@pytest.mark.parametrize("name", LEVEL_SPACES)
def test_one_jitted_step_serves_a_batch_of_different_levels(name):
    c = compiled(name)
    env = c.space.env
    reset = jax.jit(jax.vmap(env.reset))
    traced_step = Traced(env.step)
    step = jax.jit(jax.vmap(traced_step))
    same_key = jnp.broadcast_to(jax.random.key(3), (BATCH,))
    action = env.action_space(c.space.default).sample(jax.random.key(4))
    actions = jnp.broadcast_to(action, (BATCH, *action.shape))
    for levels in (c.levels, c.mutated):  # two batches of levels, one trace
        _, state = reset(same_key, levels)
        obs, state, reward, terminated, truncated, _ = step(same_key, state, actions, levels)
        chex.assert_shape([reward, terminated, truncated], (BATCH,))
        assert obs.shape[0] == BATCH
        # Same key and action everywhere: the levels alone make the observations differ.
        assert len(np.unique(np.asarray(obs), axis=0)) > BATCH // 2
    assert traced_step.count == 1


def test_cartpole_derived_quantities_are_recomputed():
    c = compiled("CartPole-v1")
    top = c.space.decode(jax.random.key(0), jnp.ones(5))
    np.testing.assert_allclose(top.total_mass, 2.0 + 0.2, rtol=1e-6)
    np.testing.assert_allclose(top.polemass_length, 0.2 * 1.0, rtol=1e-6)
    for levels in (c.levels, c.decoded, c.mutated):
        masscart, masspole, length = (
            np.asarray(getattr(levels, f)) for f in ("masscart", "masspole", "length")
        )
        np.testing.assert_allclose(levels.total_mass, masscart + masspole, rtol=1e-6)
        np.testing.assert_allclose(levels.polemass_length, masspole * length, rtol=1e-6)
        assert not np.allclose(levels.total_mass, 1.1)  # not the default's stale value


# ---------------------------------------------------------------- gridworld


def test_gridworld_decode_size_four_is_a_four_by_four_level():
    c = compiled("gridworld")
    points = c.points.at[:, 0].set(0.0)  # the smallest size of the range 4..10
    levels = c.decode(jax.random.split(jax.random.key(6), BATCH), points)
    np.testing.assert_array_equal(levels.height, 4)
    np.testing.assert_array_equal(levels.width, 4)
    outside = np.ones((10, 10), bool)
    outside[:4, :4] = False
    assert not np.asarray(levels.walls)[:, outside].any()
    assert (np.asarray(levels.start) < 4).all()
    used = np.asarray(levels.object_used)
    assert (np.asarray(levels.object_position)[used] < 4).all()
    largest = c.decode(jax.random.split(jax.random.key(6), BATCH), points.at[:, 0].set(1.0))
    np.testing.assert_array_equal(largest.height, 10)


def test_gridworld_sample_has_groove_ranges():
    space = compiled("gridworld").space
    keys = jax.random.split(jax.random.key(11), 96)
    levels = [space.sample(key) for key in keys]  # eager: reuses the compiled generator
    q = {d: np.array([quantities(space, lv)[d] for lv in levels]) for d in space.dims}
    assert set(q["size"]) == set(range(4, 11))
    assert set(q["objects"]) == set(range(1, 6))
    assert q["walls"].max() <= 15 and q["walls"].max() > 8 and q["walls"].min() == 0
    length = q["episode_length"]
    assert length.min() >= 20 and length.max() <= 750
    assert (length < 60).any() and (length > 300).any()  # log-uniform spreads both ways


def test_gridworld_mutate_keeps_objects_reachable():
    c = compiled("gridworld")
    levels = c.levels
    added = removed = moved = 0
    for i in range(25):
        keys = jax.random.split(jax.random.key(100 + i), BATCH)
        mutated = c.mutate(keys, levels)
        for before, after in zip(unstack(levels), unstack(mutated)):
            c.space.validate(after)
            assert set(object_cells(after)) <= reachable(after)
            flipped = np.asarray(after.walls) != np.asarray(before.walls)
            added += int((flipped & np.asarray(after.walls)).sum())
            removed += int((flipped & np.asarray(before.walls)).sum())
            moved += object_cells(after) != object_cells(before)
        assert_in_ranges(c.space, mutated)
        levels = mutated
    assert c.traced["mutate"].count == 1
    assert added > 0 and removed > 0 and moved > 0
    assert 0.1 < moved / (added + removed + moved) < 0.35  # P_MOVE_OBJECT = 0.2


def test_gridworld_mutate_refuses_a_wall_that_cuts_an_object_off():
    # Start top left, object bottom right, one wall: (0, 1) is the only way through.
    layout = gridworld.Layout(grid=("S.", "#0"), objects=((1.0, 0.0, 0.0),), max_steps_in_episode=9)
    level = layout.to_params(10, 5)
    c = compiled("gridworld")
    c.space.validate(level)
    batch = jax.tree.map(lambda x: jnp.broadcast_to(x, (BATCH, *x.shape)), level)
    walls_removed = 0
    for i in range(4):
        mutated = c.mutate(jax.random.split(jax.random.key(200 + i), BATCH), batch)
        walls = np.asarray(mutated.walls)
        assert not walls[:, 0, 1].any()
        walls_removed += int((~walls[:, 1, 0]).sum())
        for after in unstack(mutated):
            assert set(object_cells(after)) <= reachable(after)
    assert walls_removed > 0  # removing the other wall is allowed


def test_gridworld_ranges_restrict_the_levels():
    space = make_level_space(
        "gridworld",
        ranges={"size": (5, 5), "walls": (0, 0), "objects": (2, 2), "episode_length": (100, 100)},
    )
    assert space.ranges["size"] == (5, 5)
    for key in jax.random.split(jax.random.key(12), 4):
        level = space.sample(key)
        space.validate(level)
        assert int(level.height) == 5 and int(level.width) == 5
        assert not np.asarray(level.walls).any()
        assert int(np.asarray(level.object_used).sum()) == 2
        assert int(level.max_steps_in_episode) == 100
        np.testing.assert_allclose(space.encode(level), [0.5, 0.5, 0.5, 0.0])


# ---------------------------------------------------------------- classic control ranges


def test_classic_ranges_override_the_defaults():
    space = make_level_space(
        "CartPole-v1", ranges={"masspole": (0.3, 0.3), "masscart": (0.1, 50.0)}
    )
    assert space.ranges["masspole"] == (0.3, 0.3) and space.ranges["gravity"] == (4.9, 19.6)
    levels = jax.jit(jax.vmap(space.sample))(jax.random.split(jax.random.key(13), BATCH))
    np.testing.assert_allclose(levels.masspole, 0.3, rtol=1e-6)
    assert_in_ranges(space, levels)
    assert np.asarray(levels.masscart).max() > 2.0  # beyond the default range
    points = jax.vmap(space.encode)(levels)
    np.testing.assert_array_equal(points[:, 2], 0.0)  # a fixed dim encodes as 0


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name, ranges",
    [
        ("CartPole-v1", {"masspole": (0.0, 2.0)}),
        ("CartPole-v1", {"mass_pole": (0.1, 0.2)}),
        ("CartPole-v1", {"gravity": (20.0, 10.0)}),
        ("CartPole-v1", {"length": (0.1, math.inf)}),
        ("Pendulum-v1", {"g": (math.nan, 10.0)}),
        ("Acrobot-v1", {"link_mass_1": (1.0, 11.0)}),
        ("MountainCar-v0", {"force": 0.001}),
        ("MountainCar-v0", {"gravity": (-0.001, 0.002)}),
        ("gridworld", {"size": (1, 6)}),
        ("gridworld", {"size": (4, 11)}),
        ("gridworld", {"size": (4.5, 6)}),
        ("gridworld", {"walls": (0, 99)}),
        ("gridworld", {"objects": (0, 3)}),
        ("gridworld", {"objects": (1, 6)}),
        ("gridworld", {"episode_length": (0, 100)}),
        ("gridworld", {"episode_length": (10, 100_001)}),
        ("gridworld", {"episode_length": (100, 10)}),
    ],
)
def test_bad_ranges_name_the_field_and_value(name, ranges):
    ((field, value),) = ranges.items()
    with pytest.raises(LevelError) as info:
        make_level_space(name, ranges=ranges)
    message = str(info.value)
    assert message.startswith(f"ranges.{field}: ") and repr(value) in message, message
    assert "allowed" in message.lower()
    assert info.value.field == f"ranges.{field}"


def test_bad_range_message_says_what_is_allowed():
    with pytest.raises(LevelError) as info:
        make_level_space("CartPole-v1", ranges={"masspole": (0.0, 2.0)})
    assert str(info.value) == "ranges.masspole: got (0.0, 2.0); allowed: 0 < low <= high <= 10.0"
    with pytest.raises(LevelError, match="Did you mean 'masspole'"):
        make_level_space("CartPole-v1", ranges={"mass_pole": (0.1, 0.2)})


def test_unknown_space_and_keywords_are_refused():
    with pytest.raises(LevelError) as info:
        make_level_space("CartPole-v0")
    assert all(name in str(info.value) for name in LEVEL_SPACES)
    assert "'CartPole-v0'" in str(info.value)
    bad_kwargs = [
        ("CartPole-v1", {"max_size": 3}, "max_size"),
        ("gridworld", {"mutation_scale": 0.1}, "mutation_scale"),
        ("Pendulum-v1", {"mutation_scale": -1.0}, "mutation_scale"),
        ("gridworld", {"max_size": 1}, "max_size"),
        ("gridworld", {"observation": "pixels"}, "observation"),
    ]
    for name, kwargs, field in bad_kwargs:
        with pytest.raises(LevelError, match=field):
            make_level_space(name, **kwargs)


def _gridworld_breakers():
    def wall_on_start(lv):
        return lv.replace(walls=lv.walls.at[lv.start[0], lv.start[1]].set(True))

    def wall_on_object(lv):
        row, col = lv.object_position[0]
        return lv.replace(walls=lv.walls.at[row, col].set(True))

    return [
        (wall_on_start, "level.start"),
        (wall_on_object, "level.object_position[0]"),
        (lambda lv: lv.replace(height=jnp.int32(11)), "level.height: got 11"),
        (lambda lv: lv.replace(width=jnp.int32(1)), "level.width: got 1"),
        (lambda lv: lv.replace(object_used=jnp.zeros(5, bool)), "level.object_used"),
        (
            lambda lv: lv.replace(object_p_terminate=lv.object_p_terminate.at[0].set(1.5)),
            "level.object_p_terminate",
        ),
        (
            lambda lv: lv.replace(object_p_respawn=lv.object_p_respawn.at[1].set(-0.1)),
            "level.object_p_respawn",
        ),
        (
            lambda lv: lv.replace(max_steps_in_episode=jnp.int32(0)),
            "level.max_steps_in_episode: got 0",
        ),
        (lambda lv: jax.tree.map(lambda x: jnp.stack([x, x]), lv), "level.height: got shape (2,)"),
    ]


def _cartpole_breakers():
    return [
        (lambda lv: lv.replace(masspole=jnp.float32(0.2)), "level.total_mass"),  # stale
        (lambda lv: lv.replace(gravity=jnp.float32(math.nan)), "level.gravity"),
        (lambda lv: lv.replace(masscart=jnp.float32(-1.0)), "level.masscart: got -1.0"),
    ]


@pytest.mark.parametrize(
    "name, breaker, message",
    [pytest.param("gridworld", *b, id=b[1]) for b in _gridworld_breakers()]
    + [pytest.param("CartPole-v1", *b, id=b[1]) for b in _cartpole_breakers()],
)
def test_validate_rejects_a_hand_broken_level(name, breaker, message):
    space = compiled(name).space
    level = unstack(compiled(name).levels)[0]
    space.validate(level)
    with pytest.raises(LevelError) as info:
        space.validate(breaker(level))
    assert message in str(info.value)
    assert str(info.value).split(":")[0] == info.value.field
