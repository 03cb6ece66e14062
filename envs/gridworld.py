"""Tabular gridworlds of LPG (Oh et al., 2020) and GROOVE (Jackson et al., 2023).

An agent walks a grid of at most ``max_size x max_size`` cells and collects objects
by stepping onto them. Each object slot has its own reward, termination probability
and respawn probability (Oh et al., 2020, App. B; GROOVE's ``all`` level family).
Per step:

1. the action (0 up, 1 down, 2 left, 3 right, 4 no-op) moves the agent one cell;
   walls, the level's edges and every cell outside ``height x width`` block it;
2. ``collected`` = objects that existed before the step and sit on the agent's new cell;
3. every used object that did not exist before the step respawns at its fixed cell
   with probability ``p_respawn`` (so an object collected now cannot respawn now);
4. reward = sum of the collected objects' rewards; terminated ~
   Bernoulli(min(1, sum of their ``p_terminate``)); gymnax truncates once
   ``time >= max_steps_in_episode``.

A level is a :class:`GridParams` value whose leaves are all arrays of fixed shapes, so
one compiled ``step`` serves every level of an env shape, and levels can be vmapped,
sampled (:func:`sample_level`, GROOVE's random distribution; :func:`generate_level`, the
same with size, wall count, object count and episode length given) and mutated by
curricula (``discovery.envs.levels``).
The static shape lives in :class:`GridWorld` (gymnax's constructor-vs-EnvParams split).

Observations (static ``observation``):

- ``"tabular"`` (LPG's tabular agents): one-hot of the state index
  ``cell + max_size**2 * bitmask(object exists)`` with ``cell = row * max_size + col``,
  length ``max_size**2 * 2**max_objects``, then ``time * 0.001``.
- ``"features"``: one-hot agent cell [max_size**2], object-exists flags [max_objects],
  ``time * 0.001``; for function-approximation agents.

The hand-made held-out levels (Oh et al., 2020, "Discovering Reinforcement Learning
Algorithms", as used by GROOVE; objects as [reward, p_term, p_respawn])
give sizes, objects and lengths but no positions; the positions below are ours.
Maps: ``#`` wall, ``S`` start, digit = object slot, ``.`` floor.

======================  =========================================  ==========
layout                  objects by slot                            max steps
======================  =========================================  ==========
dense (11x11)           0,1: [1, 0, .05]; 2: [-1, .5, .1];          500
                        3: [-1, 0, .5]
sparse (13x13)          0: [1, 1, 0]; 1: [-1, 1, 0]                 50
long (11x11)            0,1: [1, 0, .01]; 2,3: [-1, .5, 1]          1000
longer (9x9)            0,1: [1, .1, .01]; 2-6: [-1, .8, 1];        2000
                        wall down the middle with two gaps
long_dense (11x11)      0-3: [1, 0, .005]; cross of walls with      2000
                        one gap per arm
======================  =========================================  ==========

One module (~690 lines): the dynamics, the level families and the fixed layouts share
one level encoding (``GridParams``).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

OBSERVATIONS = ("tabular", "features")
NUM_ACTIONS = 5
# (d_row, d_col) for up, down, left, right, no-op.
_MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], dtype=np.int32)
TIME_SCALE = 0.001

# GROOVE's random level distribution (Jackson et al., 2023, App. C).
MIN_RANDOM_SIZE = 4
MAX_RANDOM_WALLS = 15
EPISODE_LENGTH_RANGE = (20, 750)
P_TERMINATE_RANGE = (1e-2, 1.0)
P_RESPAWN_RANGE = (1e-3, 1e-1)

RANDOM_LEVEL = "random"
RANDOM_SHAPE = (10, 5)  # (max_size, max_objects) of GROOVE's random levels


@struct.dataclass
class GridParams:
    """One level. Every field is an array, so levels batch and vmap.

    Shapes for an env with ``S = max_size`` and ``K = max_objects``: ``height``, ``width``,
    ``max_steps_in_episode`` int32[]; ``walls`` bool[S, S]; ``start`` int32[2] (row, col);
    ``object_position`` int32[K, 2]; ``object_used`` bool[K] (slot holds an object in this
    level); ``object_reward``, ``object_p_terminate``, ``object_p_respawn`` float32[K].
    Unused slots hold zeros. Cells outside ``height x width`` behave as walls.
    """

    height: jax.Array
    width: jax.Array
    walls: jax.Array
    start: jax.Array
    object_position: jax.Array
    object_used: jax.Array
    object_reward: jax.Array
    object_p_terminate: jax.Array
    object_p_respawn: jax.Array
    max_steps_in_episode: jax.Array


@struct.dataclass
class GridState:
    """Agent cell int32[2] (row, col), which objects exist bool[K], step count int32[]."""

    position: jax.Array
    object_exists: jax.Array
    time: jax.Array


class GridWorld(environment.Environment[GridState, GridParams]):
    """LPG/GROOVE gridworld with gymnax's API; the level is the ``GridParams`` argument.

    Args:
        max_size: side of the padded grid; levels may be smaller (``height, width <=
            max_size``).
        max_objects: number of object slots; levels may use fewer.
        observation: ``"tabular"`` or ``"features"`` (see the module docstring).

    The three arguments fix every shape; they are read-only, and equality and hashing use
    them, so ``jax.jit(..., static_argnames="self")`` caches per shape, not per instance.
    """

    def __init__(self, max_size: int = 10, max_objects: int = 5, observation: str = "tabular"):
        super().__init__()
        if int(max_size) < 1 or int(max_objects) < 1:
            raise ValueError(
                f"GridWorld needs max_size >= 1 and max_objects >= 1, got max_size={max_size}, "
                f"max_objects={max_objects}."
            )
        if observation not in OBSERVATIONS:
            raise ValueError(
                f"GridWorld observation must be one of {OBSERVATIONS}, got {observation!r}."
            )
        self._max_size = int(max_size)
        self._max_objects = int(max_objects)
        self._observation = observation

    @property
    def max_size(self) -> int:
        return self._max_size

    @property
    def max_objects(self) -> int:
        return self._max_objects

    @property
    def observation(self) -> str:
        return self._observation

    def _static(self) -> tuple[Any, ...]:
        return (self._max_size, self._max_objects, self._observation)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._static() == self._static()

    def __hash__(self) -> int:
        return hash((type(self), self._static()))

    def __repr__(self) -> str:
        return (
            f"GridWorld(max_size={self._max_size}, max_objects={self._max_objects}, "
            f"observation={self._observation!r})"
        )

    @property
    def num_states(self) -> int:
        """Number of tabular states: cells times object-existence patterns."""
        return self._max_size**2 * 2**self._max_objects

    @property
    def default_params(self) -> GridParams:
        """The ``dense`` layout padded to this env's shape (ValueError if it does not fit)."""
        try:
            return make_layout("dense", self._max_size, self._max_objects)
        except ValueError as err:
            raise ValueError(
                f"{self!r} has no default level: {err} Pass params explicitly, e.g. "
                "sample_level(key, max_size, max_objects) or make_layout(name, max_size, "
                "max_objects)."
            ) from err

    def step_env(
        self, key: jax.Array, state: GridState, action: int | jax.Array, params: GridParams
    ) -> tuple[jax.Array, GridState, jax.Array, jax.Array, dict[str, Any]]:
        """One transition (module docstring, steps 1-4); gymnax adds truncation/reset."""
        key_respawn, key_terminate = jax.random.split(key)
        position = self._move(state.position, action, params)
        here = jnp.all(params.object_position == position, axis=-1)
        collected = state.object_exists & here
        respawn_draw = jax.random.uniform(key_respawn, (self._max_objects,))
        respawned = (
            params.object_used & ~state.object_exists & (respawn_draw < params.object_p_respawn)
        )
        object_exists = (state.object_exists & ~collected) | respawned
        reward = jnp.sum(jnp.where(collected, params.object_reward, 0.0))
        p_terminate = jnp.minimum(
            1.0, jnp.sum(jnp.where(collected, params.object_p_terminate, 0.0))
        )
        terminated = jax.random.uniform(key_terminate) < p_terminate
        state = GridState(position=position, object_exists=object_exists, time=state.time + 1)
        info = {"discount": 1.0 - terminated.astype(jnp.float32)}
        return self.get_obs(state, params), state, reward, terminated, info

    def _move(self, position: jax.Array, action: int | jax.Array, params: GridParams) -> jax.Array:
        target = position + jnp.asarray(_MOVES)[action]
        row, col = target[0], target[1]
        inside = (row >= 0) & (row < params.height) & (col >= 0) & (col < params.width)
        last = self._max_size - 1
        wall = params.walls[jnp.clip(row, 0, last), jnp.clip(col, 0, last)]
        return jnp.where(inside & ~wall, target, position)

    def reset_env(self, key: jax.Array, params: GridParams) -> tuple[jax.Array, GridState]:
        """Agent at ``start``, every used object present, time 0 (deterministic)."""
        del key
        state = GridState(
            position=jnp.asarray(params.start, jnp.int32),
            object_exists=jnp.asarray(params.object_used, bool),
            time=jnp.zeros((), jnp.int32),
        )
        return self.get_obs(state, params), state

    def state_index(self, state: GridState) -> jax.Array:
        """Tabular state index ``cell + max_size**2 * bitmask(object exists)``, int32[]."""
        size = self._max_size
        cell = state.position[0] * size + state.position[1]
        bits = jnp.left_shift(1, jnp.arange(self._max_objects, dtype=jnp.int32))
        bitmask = jnp.sum(jnp.where(state.object_exists, bits, 0))
        return cell + size * size * bitmask

    def get_obs(self, state: GridState, params: GridParams | None = None, key: Any = None):
        """float32[num_states + 1] (tabular) or float32[max_size**2 + max_objects + 1]."""
        time = (state.time * TIME_SCALE).astype(jnp.float32)[None]
        if self._observation == "tabular":
            one_hot = jax.nn.one_hot(self.state_index(state), self.num_states, dtype=jnp.float32)
            return jnp.concatenate([one_hot, time])
        cell = state.position[0] * self._max_size + state.position[1]
        one_hot = jax.nn.one_hot(cell, self._max_size**2, dtype=jnp.float32)
        return jnp.concatenate([one_hot, state.object_exists.astype(jnp.float32), time])

    def observation_size(self) -> int:
        if self._observation == "tabular":
            return self.num_states + 1
        return self._max_size**2 + self._max_objects + 1

    def observation_space(self, params: GridParams | None = None) -> spaces.Box:
        """Box in [0, 1], except the last (time) element, bounded by the episode length."""
        size = self.observation_size()
        time_high = (
            jnp.inf
            if params is None
            else jnp.maximum(1.0, params.max_steps_in_episode * TIME_SCALE)
        )
        high = jnp.ones((size,), jnp.float32).at[-1].set(time_high)
        return spaces.Box(0.0, high, (size,), jnp.float32)

    def action_space(self, params: GridParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(NUM_ACTIONS)

    def is_terminated(self, state: GridState, params: GridParams) -> jax.Array:
        """Termination is random (drawn in ``step_env``); no state is terminal by itself."""
        return jnp.zeros((), bool)

    @property
    def name(self) -> str:
        return "GridWorld"

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS


@dataclasses.dataclass(frozen=True)
class Layout:
    """A hand-made level as a text map.

    ``grid`` rows use ``#`` wall, ``S`` start (exactly one), ``.`` floor and digits for
    object slots (each of ``0 .. len(objects) - 1`` exactly once); ``objects[i]`` is slot
    i's ``(reward, p_terminate, p_respawn)``.
    """

    grid: tuple[str, ...]
    objects: tuple[tuple[float, float, float], ...]
    max_steps_in_episode: int

    @property
    def height(self) -> int:
        return len(self.grid)

    @property
    def width(self) -> int:
        return len(self.grid[0])

    @property
    def num_objects(self) -> int:
        return len(self.objects)

    def to_params(
        self, max_size: int | None = None, max_objects: int | None = None, name: str = "layout"
    ) -> GridParams:
        """This level padded to ``max_size`` x ``max_size`` cells and ``max_objects`` slots.

        Defaults: the layout's own size and object count. ValueError if it does not fit.
        """
        size = max(self.height, self.width) if max_size is None else int(max_size)
        slots = self.num_objects if max_objects is None else int(max_objects)
        if max(self.height, self.width) > size:
            raise ValueError(
                f"Layout {name!r} is {self.height}x{self.width}, larger than max_size={size}."
            )
        if self.num_objects > slots:
            raise ValueError(
                f"Layout {name!r} has {self.num_objects} objects, more than max_objects={slots}."
            )
        if any(len(row) != self.width for row in self.grid):
            raise ValueError(f"Layout {name!r}: rows of the map differ in length.")
        walls = np.zeros((size, size), bool)
        position = np.zeros((slots, 2), np.int32)
        seen: set[int] = set()
        start = None
        for r, row in enumerate(self.grid):
            for c, char in enumerate(row):
                if char == "#":
                    walls[r, c] = True
                elif char == "S":
                    if start is not None:
                        raise ValueError(f"Layout {name!r}: more than one start 'S'.")
                    start = (r, c)
                elif char.isdigit() and int(char) < self.num_objects and int(char) not in seen:
                    seen.add(int(char))
                    position[int(char)] = (r, c)
                elif char != ".":
                    raise ValueError(f"Layout {name!r}: unexpected {char!r} at ({r}, {c}).")
        if start is None or len(seen) != self.num_objects:
            raise ValueError(
                f"Layout {name!r} needs one 'S' and digits 0..{self.num_objects - 1} once each."
            )
        used = np.arange(slots) < self.num_objects
        table = np.zeros((slots, 3), np.float32)
        table[: self.num_objects] = np.asarray(self.objects, np.float32).reshape(-1, 3)
        return GridParams(
            height=jnp.asarray(self.height, jnp.int32),
            width=jnp.asarray(self.width, jnp.int32),
            walls=jnp.asarray(walls),
            start=jnp.asarray(start, jnp.int32),
            object_position=jnp.asarray(position),
            object_used=jnp.asarray(used),
            object_reward=jnp.asarray(table[:, 0]),
            object_p_terminate=jnp.asarray(table[:, 1]),
            object_p_respawn=jnp.asarray(table[:, 2]),
            max_steps_in_episode=jnp.asarray(self.max_steps_in_episode, jnp.int32),
        )


LAYOUTS: dict[str, Layout] = {
    "dense": Layout(
        grid=(
            "...........",
            ".0.......2.",
            "...........",
            "...........",
            "...........",
            ".....S.....",
            "...........",
            "...........",
            "...........",
            ".3.......1.",
            "...........",
        ),
        objects=((1.0, 0.0, 0.05), (1.0, 0.0, 0.05), (-1.0, 0.5, 0.1), (-1.0, 0.0, 0.5)),
        max_steps_in_episode=500,
    ),
    "sparse": Layout(
        grid=(
            ".............",
            ".S...........",
            ".............",
            ".............",
            ".............",
            ".............",
            "......1......",
            ".............",
            ".............",
            ".............",
            ".............",
            "...........0.",
            ".............",
        ),
        objects=((1.0, 1.0, 0.0), (-1.0, 1.0, 0.0)),
        max_steps_in_episode=50,
    ),
    "long": Layout(
        grid=(
            "0..........",
            "...........",
            "........2..",
            "...........",
            "...........",
            ".....S.....",
            "...........",
            "...........",
            "..3........",
            "...........",
            "..........1",
        ),
        objects=((1.0, 0.0, 0.01), (1.0, 0.0, 0.01), (-1.0, 0.5, 1.0), (-1.0, 0.5, 1.0)),
        max_steps_in_episode=1000,
    ),
    "longer": Layout(
        grid=(
            "..2.#...0",
            ".........",
            "....#.3..",
            "....#....",
            ".S..#..4.",
            "....#....",
            "....#.5..",
            ".........",
            "..6.#...1",
        ),
        objects=((1.0, 0.1, 0.01),) * 2 + ((-1.0, 0.8, 1.0),) * 5,
        max_steps_in_episode=2000,
    ),
    "long_dense": Layout(
        grid=(
            "0....#....1",
            ".....#.....",
            "..S........",
            ".....#.....",
            ".....#.....",
            "##.#####.##",
            ".....#.....",
            ".....#.....",
            "...........",
            ".....#.....",
            "2....#....3",
        ),
        objects=((1.0, 0.0, 0.005),) * 4,
        max_steps_in_episode=2000,
    ),
}


def make_layout(
    name: str, max_size: int | None = None, max_objects: int | None = None
) -> GridParams:
    """Hand-made level ``name`` from :data:`LAYOUTS`, padded to the given env shape.

    Defaults: the layout's own size and object count. ValueError for an unknown name
    (listing the known ones) or a layout that does not fit.
    """
    if name not in LAYOUTS:
        raise ValueError(f"Unknown gridworld layout {name!r}. Known layouts: {', '.join(LAYOUTS)}.")
    return LAYOUTS[name].to_params(max_size, max_objects, name=name)


def _log_uniform(key: jax.Array, low: float, high: float, shape: tuple[int, ...] = ()):
    return jnp.exp(jax.random.uniform(key, shape, minval=math.log(low), maxval=math.log(high)))


def _reachable(start: jax.Array, free: jax.Array) -> jax.Array:
    """bool[S, S]: cells of ``free`` reachable from ``start`` in 4-neighbour steps."""
    reach = jnp.zeros_like(free).at[start[0], start[1]].set(True) & free

    def grow(carry):
        reach, _ = carry
        p = jnp.pad(reach, 1)
        new = free & (reach | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:])
        return new, jnp.any(new != reach)

    reach, _ = jax.lax.while_loop(lambda carry: carry[1], grow, (reach, jnp.bool_(True)))
    return reach


def level_cells(params: GridParams) -> jax.Array:
    """bool[S, S]: the cells inside the level's ``height x width``."""
    size = params.walls.shape[-1]
    rows = jnp.arange(size)
    return (rows[:, None] < params.height) & (rows[None, :] < params.width)


def reachable_cells(params: GridParams) -> jax.Array:
    """bool[S, S]: cells the agent can reach from ``params.start`` (walls and edges block).

    Jittable; vmap it over a batch of levels.
    """
    return _reachable(params.start, level_cells(params) & ~params.walls)


# sample_level draws its four quantities from keys 0, 2, 3 and 10 of one split and
# _generate uses the other seven, so that a key gives the same level as in earlier
# versions (reproducible runs).
_NUM_LEVEL_KEYS = 11


@partial(jax.jit, static_argnames=("max_size", "max_objects"))
def sample_level(key: jax.Array, max_size: int = 10, max_objects: int = 5) -> GridParams:
    """A level from GROOVE's random distribution (Jackson et al., 2023), padded to shape.

    Square side U{4..max_size}; 1..max_objects objects (uniform count); a uniform wall
    count in 0..15; episode length round(log-U[20, 750]). :func:`generate_level` draws the
    rest (cells, object properties) and keeps every object reachable.

    Jittable and vmappable over ``key``; ``max_size`` and ``max_objects`` are static.
    """
    size_max, slots = int(max_size), int(max_objects)
    if size_max < MIN_RANDOM_SIZE or slots + 1 > MIN_RANDOM_SIZE**2:
        raise ValueError(
            f"sample_level needs max_size >= {MIN_RANDOM_SIZE} and max_objects <= "
            f"{MIN_RANDOM_SIZE**2 - 1}, got max_size={max_size}, max_objects={max_objects}."
        )
    keys = jax.random.split(key, _NUM_LEVEL_KEYS)
    size = jax.random.randint(keys[0], (), MIN_RANDOM_SIZE, size_max + 1)
    num_objects = jax.random.randint(keys[2], (), 1, slots + 1)
    num_walls = jax.random.randint(keys[3], (), 0, MAX_RANDOM_WALLS + 1)
    length = jnp.round(_log_uniform(keys[10], *EPISODE_LENGTH_RANGE))
    length = jnp.clip(length, *EPISODE_LENGTH_RANGE).astype(jnp.int32)
    return _generate(keys, size, num_walls, num_objects, length, size_max, slots)


@partial(jax.jit, static_argnames=("max_size", "max_objects"))
def generate_level(
    key: jax.Array,
    size: int | jax.Array,
    num_walls: int | jax.Array,
    num_objects: int | jax.Array,
    max_steps: int | jax.Array,
    max_size: int = 10,
    max_objects: int = 5,
) -> GridParams:
    """A square level of GROOVE's random kind with its four shape quantities given.

    Args:
        key: draws the cells (start, objects, walls) and the object properties.
        size: int[], side of the square level, clipped to 2..max_size.
        num_walls: int[], walls wanted; capped by the free cells, then lowered by redraws
            until every object is reachable (see below).
        num_objects: int[], used object slots, clipped to 1..min(max_objects, size**2 - 1).
        max_steps: int[], episode length, at least 1.
        max_size, max_objects: the env shape (static).

    Start and objects sit on distinct cells of the level; the first object's reward is
    U[0, 1], the others' U[-1, 1]; p_terminate log-U[1e-2, 1]; p_respawn log-U[1e-3, 1e-1].
    Walls lie on distinct cells other than the start and the objects. Walls that cut an
    object off from the start are redrawn with one wall fewer until every object is
    reachable (a choice of ours: the sources we follow do not say how GROOVE handles it).
    Redraws lower the wall count mostly on 4x4 and 5x5 levels (mean 5.3 walls instead of
    7.5 on 4x4 in :func:`sample_level`); cells without objects may still be walled off.

    Jittable and vmappable over every traced argument.
    """
    size_max, slots = int(max_size), int(max_objects)
    if size_max < 2 or slots < 1:
        raise ValueError(
            f"generate_level needs max_size >= 2 and max_objects >= 1, got "
            f"max_size={max_size}, max_objects={max_objects}."
        )
    keys = jax.random.split(key, _NUM_LEVEL_KEYS)
    return _generate(keys, size, num_walls, num_objects, max_steps, size_max, slots)


def _generate(
    keys: jax.Array,
    size: int | jax.Array,
    num_walls: int | jax.Array,
    num_objects: int | jax.Array,
    max_steps: int | jax.Array,
    size_max: int,
    slots: int,
) -> GridParams:
    size = jnp.clip(jnp.asarray(size, jnp.int32), 2, size_max)
    num_objects = jnp.clip(
        jnp.asarray(num_objects, jnp.int32), 1, jnp.minimum(slots, size * size - 1)
    )
    rows, cols = jnp.divmod(jnp.arange(size_max * size_max), size_max)
    in_level = (rows < size) & (cols < size)
    order = jnp.argsort(jnp.where(in_level, jax.random.uniform(keys[1], in_level.shape), 2.0))
    start_cell, object_cells = order[0], order[1 : slots + 1]
    used = jnp.arange(slots) < num_objects

    occupied = jnp.zeros_like(in_level).at[start_cell].set(True)
    occupied = occupied.at[object_cells].max(used)
    candidates = in_level & ~occupied
    num_walls = jnp.clip(jnp.asarray(num_walls, jnp.int32), 0, jnp.sum(candidates))
    start = jnp.stack(jnp.divmod(start_cell, size_max)).astype(jnp.int32)
    position = jnp.stack(jnp.divmod(object_cells, size_max), axis=-1).astype(jnp.int32)
    in_level_2d = in_level.reshape(size_max, size_max)

    def draw_walls(key, count):
        noise = jax.random.uniform(key, candidates.shape)
        wall_order = jnp.argsort(jnp.where(candidates, noise, 2.0))
        walls = jnp.zeros_like(candidates).at[wall_order].set(jnp.arange(candidates.size) < count)
        return walls.reshape(size_max, size_max)

    def objects_reachable(walls):
        reach = _reachable(start, in_level_2d & ~walls)
        return jnp.all(reach[position[:, 0], position[:, 1]] | ~used)

    def redraw(carry):
        _, key, count, _ = carry
        key, sub = jax.random.split(key)
        count = count - 1
        walls = draw_walls(sub, count)
        return walls, key, count, objects_reachable(walls)

    # Redraw with one wall fewer until every object is reachable; zero walls always is.
    walls = draw_walls(keys[4], num_walls)
    walls, _, _, _ = jax.lax.while_loop(
        lambda carry: ~carry[3],
        redraw,
        (walls, keys[5], num_walls, objects_reachable(walls)),
    )

    reward = jax.random.uniform(keys[6], (slots,), minval=-1.0, maxval=1.0)
    reward = reward.at[0].set(jax.random.uniform(keys[7]))
    p_terminate = _log_uniform(keys[8], *P_TERMINATE_RANGE, (slots,))
    p_respawn = _log_uniform(keys[9], *P_RESPAWN_RANGE, (slots,))
    return GridParams(
        height=size,
        width=size,
        walls=walls,
        start=start,
        object_position=jnp.where(used[:, None], position, 0),
        object_used=used,
        object_reward=jnp.where(used, reward, 0.0),
        object_p_terminate=jnp.where(used, p_terminate, 0.0),
        object_p_respawn=jnp.where(used, p_respawn, 0.0),
        max_steps_in_episode=jnp.maximum(jnp.asarray(max_steps, jnp.int32), 1),
    )


def make_gridworld(
    level: str,
    max_size: int | None = None,
    max_objects: int | None = None,
    observation: str = "tabular",
) -> tuple[GridWorld, GridParams]:
    """``(env, params)`` for a named layout, or for ``"random"``: the level
    ``sample_level(jax.random.key(0), ...)`` on GROOVE's 10x10 / 5-object shape.

    Shape defaults: the layout's own size and object count (``"random"``: 10 and 5).
    """
    if level == RANDOM_LEVEL:
        default_size, default_objects = RANDOM_SHAPE
    elif level in LAYOUTS:
        layout = LAYOUTS[level]
        default_size, default_objects = max(layout.height, layout.width), layout.num_objects
    else:
        raise ValueError(
            f"Unknown gridworld level {level!r}. Known levels: "
            f"{', '.join([*LAYOUTS, RANDOM_LEVEL])}."
        )
    env = GridWorld(
        max_size=default_size if max_size is None else max_size,
        max_objects=default_objects if max_objects is None else max_objects,
        observation=observation,
    )
    if level == RANDOM_LEVEL:
        params = sample_level(jax.random.key(0), env.max_size, env.max_objects)
    else:
        params = make_layout(level, env.max_size, env.max_objects)
    return env, params


def render(state: GridState, params: GridParams) -> str:
    """Text picture of one (unbatched) state: the level framed by its edges.

    ``#`` wall or edge, ``A`` agent, ``+`` / ``-`` / ``o`` a present object with
    positive / negative / zero reward, ``.`` floor; a last line gives the time.
    """
    position = np.asarray(state.position)
    if position.shape != (2,):
        raise ValueError(f"render takes one unbatched state, got position shape {position.shape}.")
    height, width = int(params.height), int(params.width)
    walls = np.asarray(params.walls)
    grid = [["#" if walls[r, c] else "." for c in range(width)] for r in range(height)]
    exists = np.asarray(state.object_exists)
    for (r, c), present, reward in zip(
        np.asarray(params.object_position), exists, np.asarray(params.object_reward)
    ):
        if present:
            grid[r][c] = "+" if reward > 0 else "-" if reward < 0 else "o"
    grid[position[0]][position[1]] = "A"
    border = "#" * (width + 2)
    lines = [border, *("#" + "".join(row) + "#" for row in grid), border]
    lines.append(f"time {int(state.time)}/{int(params.max_steps_in_episode)}")
    return "\n".join(lines)
