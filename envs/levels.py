"""Level spaces: the distributions over ``EnvParams`` that curricula sample, mutate and score.

In gymnax a level is an ``EnvParams`` value (a layout, a pole's mass), so a curriculum is
just a distribution over ``EnvParams``. A :class:`LevelSpace` is one family of levels
that all run in one env, with the same leaf shapes and dtypes, so that one compiled
``step`` serves a vmapped batch of different levels. It gives a curriculum what it needs:

- ``sample(key)``: a level from the space's base distribution (domain randomisation,
  fresh levels for prioritised level replay);
- ``mutate(key, level)``: a small edit of a level, ACCEL's way of growing a replay buffer
  from levels at the frontier of the agent's ability (Parker-Holder et al., 2022);
- ``encode(level)`` / ``decode(key, point)``: a map to and from the unit cube [0, 1]^d
  whose coordinates are named by ``dims``, for teachers that model levels as points
  (ALP-GMM fits its Gaussian mixture there; Portelas et al., 2019). ``decode`` draws what
  the point leaves open (a gridworld's cells) from ``key``;
- ``validate(level)``: a host-side check of one concrete level.

Each function is jittable and vmappable; batch dimensions are added by ``vmap`` at the
call site. ``make_level_space(name, ranges)`` builds a space; ``ranges`` narrows (or,
within hard bounds, widens) the default range of each coordinate.

``"gridworld"``: GROOVE's random gridworlds (Jackson et al., 2023; see
:func:`discovery.envs.gridworld.sample_level`). The coordinates are the square's side ``size``,
the number of ``walls``, the number of ``objects`` and the ``episode_length``
(log scale); :func:`discovery.envs.gridworld.generate_level` draws the rest and keeps every
object reachable, so a level can hold fewer walls (or objects) than its point asks for.

==============  ========================  ===========================================
coordinate      default range             hard bound
==============  ========================  ===========================================
size            4 .. max_size             2 .. max_size
walls           0 .. 15                   0 .. max_size**2 - 2
objects         1 .. max_objects          1 .. max_objects
episode_length  20 .. 750 (log scale)     1 .. 100000
==============  ========================  ===========================================

With the default ranges, ``sample`` is GROOVE's distribution (in law; it draws from the
key differently from ``sample_level``). ``mutate`` is ACCEL's edit: with probability
:data:`P_MOVE_OBJECT` it moves one object to a random free cell reachable from the
start, otherwise it toggles one random cell of the level between wall and floor (never
the start or an object's cell). A toggle that would cut an object off from the start, or
push the wall count out of its range, leaves the level unchanged, as does a move with no
free reachable cell to go to.

Classic control (gymnax, through :func:`discovery.envs.registry.make`): the coordinates are
physical parameters, each sampled log-uniformly (they are all positive scales) within
its range; ``decode`` maps each coordinate log-linearly into its range and ignores the
key, ``encode`` inverts it, and ``mutate`` takes a Gaussian step of scale
``mutation_scale`` (default 0.1) in the unit cube, clipped to it. All other ``EnvParams``
fields keep their defaults, and CartPole's stored ``total_mass`` and ``polemass_length``
are recomputed from the fields they derive from. Ranges are 0.5x .. 2x the gymnax
default, except MountainCar's 0.75x .. 1.5x: at every corner of that box, pushing along
the velocity still reaches the goal within the 200 steps, which fails at half the force
and 1.33x the gravity. Hard bounds are ``0 < low <= high <= limit``:

==============  ===================================  ============================  =====
space           field (default)                      default range                 limit
==============  ===================================  ============================  =====
CartPole-v1     gravity (9.8)                        4.9 .. 19.6                   100
                masscart (1.0)                       0.5 .. 2.0                    100
                masspole (0.1)                       0.05 .. 0.2                   10
                length (0.5)                         0.25 .. 1.0                   10
                force_mag (10.0)                     5.0 .. 20.0                   100
Acrobot-v1      link_length_1, link_length_2 (1.0)   0.5 .. 2.0                    10
                link_mass_1, link_mass_2 (1.0)       0.5 .. 2.0                    10
Pendulum-v1     g (10.0)                             5.0 .. 20.0                   100
                m (1.0), l (1.0)                     0.5 .. 2.0                    10
                max_torque (2.0)                     1.0 .. 4.0                    100
MountainCar-v0  force (0.001)                        0.00075 .. 0.0015             0.1
                gravity (0.0025)                     0.001875 .. 0.00375           0.1
==============  ===================================  ============================  =====

One module (~600 lines): every level space implements the same five functions, read
side by side when a space is added.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from discovery.envs import gridworld, registry

GRIDWORLD = "gridworld"
# Probability that a gridworld mutation moves an object instead of toggling a wall.
P_MOVE_OBJECT = 0.2
DEFAULT_MUTATION_SCALE = 0.1
MAX_EPISODE_LENGTH = 100_000


class LevelError(ValueError):
    """A bad level or range; the message names the field, the value and what is allowed.

    ``field`` is the dotted name of the offending field (``"ranges.masspole"``,
    ``"level.start"``), or None when the error is not about one field.
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclasses.dataclass(frozen=True, eq=False)
class LevelSpace:
    """A family of levels of one env, parametrised by the unit cube [0, 1]^d.

    Attributes:
        name: the space's name, e.g. ``"gridworld"`` or ``"CartPole-v1"``.
        env: the env every level runs in.
        default: a level of the space: gymnax's default params (classic control), or
            the level at the centre of the cube, ``decode(key(0), [0.5] * d)``.
        dims: names of the d coordinates of the unit cube.
        sample: ``sample(key) -> level``, the space's base distribution.
        mutate: ``mutate(key, level) -> level``, a small edit within the ranges.
        encode: ``encode(level) -> float32[d]``, the level's point in [0, 1]^d.
        decode: ``decode(key, point float32[d]) -> level``; ``key`` draws what the point
            leaves open.
        ranges: ``{dim: (low, high)}``, the values that coordinates 0 and 1 of each dim
            map to.

    Levels are ``EnvParams`` pytrees whose leaves have the shapes and dtypes of
    ``default``. All four functions are jittable and vmappable.
    """

    name: str
    env: Any
    default: Any
    dims: tuple[str, ...]
    sample: Callable[[jax.Array], Any]
    mutate: Callable[[jax.Array, Any], Any]
    encode: Callable[[Any], jax.Array]
    decode: Callable[[jax.Array, jax.Array], Any]
    ranges: Mapping[str, tuple[float, float]]
    _check: Callable[[Any], None] = dataclasses.field(repr=False)

    @property
    def num_dims(self) -> int:
        return len(self.dims)

    def validate(self, level: Any) -> None:
        """Check one concrete (unbatched) level on the host; LevelError names what is wrong.

        Checks leaf shapes against ``default`` and that the level is one the env can run
        (hard bounds, not the sampling ranges: a hand-made level may lie outside them).
        """
        _check_structure(self.default, level)
        self._check(level)


class _Bound(NamedTuple):
    """A coordinate's default range and hard bound ``hard_low <(=) low <= high <= hard_high``."""

    low: float
    high: float
    hard_low: float
    hard_high: float
    integer: bool = False  # integer coordinates have a closed hard bound, else 0 < low


_CLASSIC_CONTROL: dict[str, dict[str, _Bound]] = {
    "CartPole-v1": {
        "gravity": _Bound(4.9, 19.6, 0, 100.0),
        "masscart": _Bound(0.5, 2.0, 0, 100.0),
        "masspole": _Bound(0.05, 0.2, 0, 10.0),
        "length": _Bound(0.25, 1.0, 0, 10.0),
        "force_mag": _Bound(5.0, 20.0, 0, 100.0),
    },
    "Acrobot-v1": {
        "link_length_1": _Bound(0.5, 2.0, 0, 10.0),
        "link_length_2": _Bound(0.5, 2.0, 0, 10.0),
        "link_mass_1": _Bound(0.5, 2.0, 0, 10.0),
        "link_mass_2": _Bound(0.5, 2.0, 0, 10.0),
    },
    "Pendulum-v1": {
        "g": _Bound(5.0, 20.0, 0, 100.0),
        "m": _Bound(0.5, 2.0, 0, 10.0),
        "l": _Bound(0.5, 2.0, 0, 10.0),
        "max_torque": _Bound(1.0, 4.0, 0, 100.0),
    },
    "MountainCar-v0": {
        "force": _Bound(0.00075, 0.0015, 0, 0.1),
        "gravity": _Bound(0.001875, 0.00375, 0, 0.1),
    },
}

LEVEL_SPACES: tuple[str, ...] = (GRIDWORLD, *_CLASSIC_CONTROL)


def make_level_space(
    name: str, ranges: Mapping[str, tuple[float, float]] | None = None, **kwargs: Any
) -> LevelSpace:
    """The level space ``name`` (one of :data:`LEVEL_SPACES`).

    Args:
        name: ``"gridworld"`` or a classic-control env name.
        ranges: ``{dim: (low, high)}`` replacing the default range of those dims, within
            the hard bounds (module docstring); gridworld ranges are integers.
        **kwargs: ``"gridworld"``: ``max_size`` (10), ``max_objects`` (5),
            ``observation`` (``"tabular"``); classic control: ``mutation_scale`` (0.1),
            the standard deviation of a mutation's step in the unit cube.

    Raises:
        LevelError: unknown name or keyword, or a bad range (unknown field, not a pair of
            finite numbers, low > high, outside the hard bound).
    """
    if name == GRIDWORLD:
        _check_kwargs(name, kwargs, ("max_size", "max_objects", "observation"))
        return _gridworld_space(ranges, **kwargs)
    if name in _CLASSIC_CONTROL:
        _check_kwargs(name, kwargs, ("mutation_scale",))
        return _classic_control_space(name, ranges, **kwargs)
    close = difflib.get_close_matches(str(name), LEVEL_SPACES, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise LevelError(
        f"Unknown level space {name!r}.{hint} Known level spaces: {', '.join(LEVEL_SPACES)}."
    )


# ---------------------------------------------------------------- classic control


def _classic_control_space(
    name: str,
    ranges: Mapping[str, tuple[float, float]] | None,
    mutation_scale: float = DEFAULT_MUTATION_SCALE,
) -> LevelSpace:
    if not _is_real(mutation_scale) or not 0 < mutation_scale < math.inf:
        raise LevelError(
            f"mutation_scale: got {mutation_scale!r}; allowed: a finite number > 0",
            field="mutation_scale",
        )
    bounds = _CLASSIC_CONTROL[name]
    chosen = _resolve_ranges(bounds, ranges)
    env, params = registry.make(name)
    default = _as_arrays(params)
    dims = tuple(bounds)
    log_low = jnp.asarray([math.log(chosen[d][0]) for d in dims], jnp.float32)
    log_span = jnp.asarray([math.log(chosen[d][1] / chosen[d][0]) for d in dims], jnp.float32)
    low = jnp.asarray([chosen[d][0] for d in dims], jnp.float32)
    high = jnp.asarray([chosen[d][1] for d in dims], jnp.float32)

    def with_point(level: Any, point: jax.Array) -> Any:
        unit = jnp.clip(_point(point, len(dims)), 0.0, 1.0)
        values = jnp.clip(jnp.exp(log_low + unit * log_span), low, high)
        fields = {d: values[i].astype(getattr(default, d).dtype) for i, d in enumerate(dims)}
        return registry.with_derived_params(name, level.replace(**fields))

    def encode(level: Any) -> jax.Array:
        values = jnp.stack([jnp.asarray(getattr(level, d), jnp.float32) for d in dims])
        safe_span = jnp.where(log_span > 0, log_span, 1.0)
        unit = jnp.where(log_span > 0, (jnp.log(values) - log_low) / safe_span, 0.0)
        return jnp.clip(unit, 0.0, 1.0)

    def decode(key: jax.Array, point: jax.Array) -> Any:
        del key  # classic-control levels are fixed by their point
        return with_point(default, point)

    def sample(key: jax.Array) -> Any:
        key_point, key_level = jax.random.split(key)
        return decode(key_level, jax.random.uniform(key_point, (len(dims),)))

    def mutate(key: jax.Array, level: Any) -> Any:
        step = mutation_scale * jax.random.normal(key, (len(dims),))
        return with_point(level, encode(level) + step)

    def check(level: Any) -> None:
        for d in dims:
            value = float(np.asarray(getattr(level, d)))
            limit = bounds[d].hard_high
            if not 0 < value <= limit:
                raise LevelError(
                    f"level.{d}: got {value!r}; allowed: 0 < {d} <= {limit!r}", field=f"level.{d}"
                )
        consistent = registry.with_derived_params(name, level)
        for field in dataclasses.fields(level):
            value = np.asarray(getattr(level, field.name))
            expected = np.asarray(getattr(consistent, field.name))
            if not np.allclose(value, expected, rtol=1e-5, atol=0.0):
                raise LevelError(
                    f"level.{field.name}: got {value.tolist()!r}; allowed: "
                    f"{expected.tolist()!r}, derived from the other fields (build levels "
                    "with the space's functions or discovery.envs.registry.with_derived_params)",
                    field=f"level.{field.name}",
                )

    return LevelSpace(
        name=name,
        env=env,
        default=default,
        dims=dims,
        sample=sample,
        mutate=mutate,
        encode=encode,
        decode=decode,
        ranges=MappingProxyType(chosen),
        _check=check,
    )


# ---------------------------------------------------------------- gridworld


def _gridworld_space(
    ranges: Mapping[str, tuple[float, float]] | None,
    max_size: int = 10,
    max_objects: int = 5,
    observation: str = "tabular",
) -> LevelSpace:
    for field, value, minimum in (("max_size", max_size, 2), ("max_objects", max_objects, 1)):
        if not _is_integer(value) or value < minimum:
            raise LevelError(
                f"{field}: got {value!r}; allowed: an integer >= {minimum}", field=field
            )
    if observation not in gridworld.OBSERVATIONS:
        allowed = " or ".join(repr(o) for o in gridworld.OBSERVATIONS)
        raise LevelError(
            f"observation: got {observation!r}; allowed: {allowed}", field="observation"
        )
    size_max, slots = int(max_size), int(max_objects)
    groove_lengths = gridworld.EPISODE_LENGTH_RANGE
    max_walls = size_max**2 - 2
    bounds = {
        "size": _Bound(min(gridworld.MIN_RANDOM_SIZE, size_max), size_max, 2, size_max, True),
        "walls": _Bound(0, min(gridworld.MAX_RANDOM_WALLS, max_walls), 0, max_walls, True),
        "objects": _Bound(1, slots, 1, slots, True),
        "episode_length": _Bound(*groove_lengths, 1, MAX_EPISODE_LENGTH, True),
    }
    chosen = _resolve_ranges(bounds, ranges)
    env = gridworld.GridWorld(size_max, slots, observation)
    dims = tuple(bounds)
    (size_low, size_high), (walls_low, walls_high), (objects_low, objects_high), lengths = (
        chosen[d] for d in dims
    )
    log_length_low = math.log(lengths[0])
    log_length_span = math.log(lengths[1] / lengths[0])

    def to_count(unit: jax.Array, low: int, high: int) -> jax.Array:
        count = low + jnp.floor(unit * (high - low + 1)).astype(jnp.int32)
        return jnp.minimum(count, high)

    def to_unit(count: jax.Array, low: int, high: int) -> jax.Array:
        return (count.astype(jnp.float32) - low + 0.5) / (high - low + 1)

    def decode(key: jax.Array, point: jax.Array) -> gridworld.GridParams:
        unit = jnp.clip(_point(point, len(dims)), 0.0, 1.0)
        length = jnp.round(jnp.exp(log_length_low + unit[3] * log_length_span))
        return gridworld.generate_level(
            key,
            size=to_count(unit[0], size_low, size_high),
            num_walls=to_count(unit[1], walls_low, walls_high),
            num_objects=to_count(unit[2], objects_low, objects_high),
            max_steps=jnp.clip(length, *lengths).astype(jnp.int32),
            max_size=size_max,
            max_objects=slots,
        )

    def encode(level: gridworld.GridParams) -> jax.Array:
        walls = jnp.sum(level.walls & gridworld.level_cells(level))
        log_length = jnp.log(jnp.asarray(level.max_steps_in_episode, jnp.float32))
        unit = jnp.stack(
            [
                to_unit(jnp.asarray(level.height), size_low, size_high),
                to_unit(walls, walls_low, walls_high),
                to_unit(jnp.sum(level.object_used), objects_low, objects_high),
                (log_length - log_length_low) / log_length_span
                if log_length_span > 0
                else jnp.zeros(()),
            ]
        )
        return jnp.clip(unit, 0.0, 1.0)

    def sample(key: jax.Array) -> gridworld.GridParams:
        key_point, key_level = jax.random.split(key)
        return decode(key_level, jax.random.uniform(key_point, (len(dims),)))

    def occupied(level: gridworld.GridParams) -> jax.Array:
        """bool[S, S]: the start and every used object's cell."""
        start = jnp.zeros((size_max, size_max), bool).at[level.start[0], level.start[1]].set(True)
        rows, cols = level.object_position[:, 0], level.object_position[:, 1]
        return start.at[rows, cols].max(level.object_used)

    def pick(key: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A uniform cell of ``mask`` as int32[2] (row, col), and whether mask had one."""
        noise = jnp.where(mask, jax.random.uniform(key, mask.shape), -1.0)
        row, col = jnp.divmod(jnp.argmax(noise), mask.shape[-1])
        return jnp.stack([row, col]).astype(jnp.int32), mask[row, col]

    def toggle_wall(key: jax.Array, level: gridworld.GridParams) -> gridworld.GridParams:
        cell, found = pick(key, gridworld.level_cells(level) & ~occupied(level))
        adding = ~level.walls[cell[0], cell[1]]
        count = jnp.sum(level.walls & gridworld.level_cells(level))
        in_range = jnp.where(adding, count < walls_high, count > walls_low)
        walls = level.walls.at[cell[0], cell[1]].set(adding)
        reach = gridworld.reachable_cells(level.replace(walls=walls))
        rows, cols = level.object_position[:, 0], level.object_position[:, 1]
        reachable = jnp.all(reach[rows, cols] | ~level.object_used)
        keep = found & in_range & reachable
        return level.replace(walls=jnp.where(keep, walls, level.walls))

    def move_object(key: jax.Array, level: gridworld.GridParams) -> gridworld.GridParams:
        key_slot, key_cell = jax.random.split(key)
        noise = jax.random.uniform(key_slot, level.object_used.shape)
        slot = jnp.argmax(jnp.where(level.object_used, noise, -1.0))
        cell, found = pick(key_cell, gridworld.reachable_cells(level) & ~occupied(level))
        moved = level.object_position.at[slot].set(cell)
        return level.replace(object_position=jnp.where(found, moved, level.object_position))

    def mutate(key: jax.Array, level: gridworld.GridParams) -> gridworld.GridParams:
        key_kind, key_wall, key_object = jax.random.split(key, 3)
        move = jax.random.uniform(key_kind) < P_MOVE_OBJECT
        toggled, moved = toggle_wall(key_wall, level), move_object(key_object, level)
        return jax.tree.map(lambda a, b: jnp.where(move, a, b), moved, toggled)

    def check(level: gridworld.GridParams) -> None:
        height, width = int(level.height), int(level.width)
        for field, value in (("height", height), ("width", width)):
            if not 2 <= value <= size_max:
                raise LevelError(
                    f"level.{field}: got {value}; allowed: 2 <= {field} <= {size_max}",
                    field=f"level.{field}",
                )
        used = np.asarray(level.object_used, bool)
        if not 1 <= used.sum() <= slots:
            raise LevelError(
                f"level.object_used: got {used.tolist()} ({used.sum()} objects); allowed: "
                f"1 to {slots} objects",
                field="level.object_used",
            )
        for field in ("object_p_terminate", "object_p_respawn"):
            p = np.asarray(getattr(level, field))
            if not np.all((p >= 0) & (p <= 1)):
                raise LevelError(
                    f"level.{field}: got {p.tolist()}; allowed: probabilities in [0, 1]",
                    field=f"level.{field}",
                )
        max_steps = int(level.max_steps_in_episode)
        if max_steps < 1:
            raise LevelError(
                f"level.max_steps_in_episode: got {max_steps}; allowed: max_steps_in_episode >= 1",
                field="level.max_steps_in_episode",
            )
        walls = np.asarray(level.walls, bool)

        def free(row: int, col: int) -> bool:
            return 0 <= row < height and 0 <= col < width and not walls[row, col]

        start = tuple(int(x) for x in np.asarray(level.start))
        if not free(*start):
            raise LevelError(
                f"level.start: got {start}; allowed: a cell inside the {height}x{width} level "
                "that is not a wall",
                field="level.start",
            )
        positions = np.asarray(level.object_position)
        for slot in np.flatnonzero(used):
            cell = tuple(int(x) for x in positions[slot])
            if not free(*cell):
                raise LevelError(
                    f"level.object_position[{slot}]: got {cell}; allowed: a cell inside the "
                    f"{height}x{width} level that is not a wall",
                    field=f"level.object_position[{slot}]",
                )

    return LevelSpace(
        name=GRIDWORLD,
        env=env,
        default=decode(jax.random.key(0), jnp.full((len(dims),), 0.5)),
        dims=dims,
        sample=sample,
        mutate=mutate,
        encode=encode,
        decode=decode,
        ranges=MappingProxyType(chosen),
        _check=check,
    )


# ---------------------------------------------------------------- checks and helpers


def _check_kwargs(name: str, kwargs: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key, value in kwargs.items():
        if key not in allowed:
            raise LevelError(
                f"{key}: unknown keyword of level space {name!r} (got {key}={value!r}); "
                f"allowed: {', '.join(allowed)}",
                field=key,
            )


def _resolve_ranges(
    bounds: Mapping[str, _Bound], ranges: Mapping[str, tuple[float, float]] | None
) -> dict[str, tuple[float, float]]:
    """The default ranges of ``bounds`` with ``ranges`` applied, each checked."""
    chosen = {d: (b.low, b.high) for d, b in bounds.items()}
    if ranges is None:
        return chosen
    if not isinstance(ranges, Mapping):
        raise LevelError(
            f"ranges: got {ranges!r}; allowed: a mapping from a field "
            f"({', '.join(bounds)}) to (low, high)",
            field="ranges",
        )
    for field, value in ranges.items():
        if field not in bounds:
            close = difflib.get_close_matches(str(field), list(bounds), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise LevelError(
                f"ranges.{field}: unknown field (got {value!r}).{hint} Allowed fields: "
                f"{', '.join(bounds)}",
                field=f"ranges.{field}",
            )
        chosen[field] = _check_range(f"ranges.{field}", value, bounds[field])
    return chosen


def _check_range(path: str, value: Any, bound: _Bound) -> tuple[float, float]:
    if bound.integer:
        allowed = f"integers {bound.hard_low} <= low <= high <= {bound.hard_high}"
    else:
        allowed = f"{bound.hard_low!r} < low <= high <= {bound.hard_high!r}"
    error = LevelError(f"{path}: got {value!r}; allowed: {allowed}", field=path)
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list, np.ndarray)):
        raise error
    if len(value) != 2 or not all(_is_real(v) for v in value):
        raise error
    low, high = (float(v) for v in value)
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise error
    if bound.integer:
        if not (low.is_integer() and high.is_integer()):
            raise error
        if not (bound.hard_low <= low and high <= bound.hard_high):
            raise error
        return int(low), int(high)
    if not (bound.hard_low < low and high <= bound.hard_high):
        raise error
    return low, high


def _check_structure(default: Any, level: Any) -> None:
    """LevelError unless ``level`` is a pytree like ``default`` with the same leaf shapes."""
    expected = jax.tree_util.tree_structure(default)
    if jax.tree_util.tree_structure(level) != expected:
        raise LevelError(
            f"level: got a {type(level).__name__}; allowed: a {type(default).__name__} "
            "like the space's default",
            field="level",
        )
    for field in dataclasses.fields(default):
        want = np.asarray(getattr(default, field.name))
        got = np.asarray(getattr(level, field.name))
        if got.shape != want.shape or got.dtype.kind != want.dtype.kind:
            raise LevelError(
                f"level.{field.name}: got shape {got.shape} and dtype {got.dtype}; allowed: "
                f"shape {want.shape} and dtype {want.dtype} (validate takes one unbatched "
                "level)",
                field=f"level.{field.name}",
            )
        if got.dtype.kind == "f" and not np.all(np.isfinite(got)):
            raise LevelError(
                f"level.{field.name}: got {got.tolist()}; allowed: finite numbers",
                field=f"level.{field.name}",
            )


def _point(point: jax.Array, num_dims: int) -> jax.Array:
    point = jnp.asarray(point, jnp.float32)
    if point.shape != (num_dims,):
        raise LevelError(
            f"point: got shape {point.shape}; allowed: shape ({num_dims},) (vmap decode over "
            "a batch of points)",
            field="point",
        )
    return point


def _as_arrays(params: Any) -> Any:
    """``params`` with every leaf an array of its canonical dtype (Python floats become
    float32), so that sampled levels and the default stack and vmap together."""

    def to_array(leaf: Any) -> jax.Array:
        return jnp.asarray(leaf, jax.dtypes.canonicalize_dtype(np.asarray(leaf).dtype))

    return jax.tree.map(to_array, params)


def _is_real(value: Any) -> bool:
    return isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_))


def _is_integer(value: Any) -> bool:
    return _is_real(value) and float(value).is_integer()
