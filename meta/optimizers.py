"""Meta-optimisers behind one protocol: pure state in, state out.

The outer loop (:mod:`discovery.meta.loop`) drives every meta-optimiser alike::

    state = optimizer.init(key, params, first_levels, generation_key)
    state, metrics, finished = optimizer.step(state, levels)   # once per generation
    params = optimizer.params(state)                            # the current estimate

``levels`` are the :class:`~discovery.meta.curricula.LevelBatch` a curriculum drew for the
generation, or ``None`` for a task with fixed levels; ``finished`` reports the levels
whose agents finished in the step and their scores (``None`` without levels), which is
what the curriculum learns from.

* :func:`es_optimizer`: one generation is ask -> score the population on the levels ->
  tell (evolution strategies through evosax, :mod:`discovery.meta.es`). Every agent
  starts on the drawn levels and finishes within the generation.
* :func:`metagrad_optimizer`: one generation is one meta-gradient update
  (:mod:`discovery.meta.metagrad`); only the agents whose lifetime ended finish, and
  they move to the drawn levels.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from discovery.devices import split_over
from discovery.meta.curricula import FinishedLevels, LevelBatch
from discovery.meta.es import EvolutionStrategy
from discovery.meta.metagrad import MetaGradient

Metrics = dict[str, Any]


@dataclass(frozen=True, eq=False)
class MetaOptimizer:
    """A meta-optimiser as the outer loop sees it (see the module docstring).

    Attributes:
      name: ``"es"`` or ``"metagrad"``.
      init: ``init(key, params, first_levels, generation_key) -> state``; ``first_levels``
        (a ``LevelBatch`` or ``None``) are where the first agents start, for optimisers
        whose agents outlive a generation (:attr:`needs_first_levels`).
      step: ``step(state, levels) -> (state, metrics, finished)``.
      params: ``params(state)``: the component's current params (ES: the search mean).
      record_extras: fields logged with every generation, from the state.
      all_failed: whether a logged generation learned nothing finite (every member or
        chunk diverged); the loop stops after several in a row.
      needs_first_levels: whether ``init`` places agents on ``first_levels``.
    """

    name: str
    init: Callable[[jax.Array, Any, LevelBatch | None, jax.Array], Any]
    step: Callable[[Any, LevelBatch | None], tuple[Any, Metrics, FinishedLevels | None]]
    params: Callable[[Any], Any]
    record_extras: Callable[[Any], dict[str, Any]]
    all_failed: Callable[[dict[str, Any]], bool]
    needs_first_levels: bool = False


@struct.dataclass
class LoopState:
    """The evolution strategy's carried state: evosax's, the generation key, the
    generation counter and the best member seen so far."""

    es_state: Any
    key: jax.Array
    generation: jax.Array
    best_params: Any
    best_fitness: jax.Array


def population_devices(population_size: int) -> list[jax.Device] | None:
    """The devices the population is split over, or ``None`` to score it on one device
    (a single device, or a population that does not divide evenly over the devices,
    which warns: the other devices would sit idle)."""
    devices = jax.devices()
    if len(devices) == 1:
        return None
    if population_size % len(devices):
        warnings.warn(
            f"es.population_size {population_size} does not divide over the {len(devices)} "
            f"devices, so the population is scored on one device; a multiple of "
            f"{len(devices)} uses them all", RuntimeWarning, stacklevel=2)
        return None
    return devices


def split_over_devices(
    fitness_fn: Callable[..., tuple[Any, ...]], devices: Sequence[jax.Device]
) -> Callable[..., tuple[Any, ...]]:
    """Score equal slices of the population on each device concurrently.

    Scoring is embarrassingly parallel over the population, so each device scores its
    slice with no collective. Per-member outputs (fitness, returns) come back in member
    order; any further output (per-level scores averaged over a slice's members) is
    averaged over the slices. In one process this is one ``shard_map`` program, compiled
    once for all devices (:func:`discovery.devices.split_over`); across the processes of
    a ``jax.distributed`` job each process dispatches its own devices' slices and the
    results are all-gathered.
    """
    if jax.process_count() == 1:
        def stacked(population: Any, key: jax.Array, *args: Any) -> tuple[Any, ...]:
            outputs = fitness_fn(population, key, *args)
            return (*outputs[:2], *[jax.tree.map(lambda x: x[None], out) for out in outputs[2:]])

        sharded = None

        def score_here(population: Any, key: jax.Array, *args: Any) -> Any:
            nonlocal sharded
            if sharded is None:
                sharded = split_over(stacked, devices, num_shared=1 + len(args))
            outputs = jax.device_get(sharded(population, key, *args))
            averaged = [jax.tree.map(lambda x: np.mean(x, axis=0), out) for out in outputs[2:]]
            return (*outputs[:2], *averaged)

        return score_here

    jitted = jax.jit(fitness_fn)
    global_index = {device: index for index, device in enumerate(devices)}
    local = [device for device in jax.local_devices() if device in global_index]

    def score(population: Any, key: jax.Array, *args: Any) -> Any:
        size = jax.tree.leaves(population)[0].shape[0] // len(devices)
        outputs = []
        for device in local:
            start = global_index[device] * size
            chunk = jax.tree.map(lambda x, start=start: x[start : start + size], population)
            on_device = jax.device_put((chunk, key, args), device)
            outputs.append(jitted(on_device[0], on_device[1], *on_device[2]))
        outputs = jax.device_get(outputs)
        per_member = [
            jax.tree.map(lambda *xs: np.concatenate(xs), *[out[i] for out in outputs])
            for i in range(2)
        ]
        averaged = [
            jax.tree.map(lambda *xs: np.mean(np.stack(xs), axis=0), *[out[i] for out in outputs])
            for i in range(2, len(outputs[0]))
        ]
        from jax.experimental import multihost_utils

        per_member = multihost_utils.process_allgather(per_member, tiled=True)
        averaged = jax.tree.map(
            lambda x: np.mean(x, axis=0), multihost_utils.process_allgather(averaged)
        )
        return (*per_member, *averaged)

    return score


def es_optimizer(
    es: EvolutionStrategy,
    fitness_fn: Callable[..., tuple[Any, ...]],
    devices: Sequence[jax.Device] | None = None,
    level_score: str | None = None,
) -> MetaOptimizer:
    """Evolution strategies over ``fitness_fn``, split over ``devices`` (``None``: one).

    ``fitness_fn(population, key) -> (fitness [P], returns [P, ...])`` for a task with
    fixed levels, or ``fitness_fn(population, key, levels) -> (fitness, returns,
    level_scores)`` when a curriculum draws them; ``level_scores[level_score]`` ``[L]``
    is what the curriculum learns from (a level whose score is not finite is not
    learned from). Three jitted programs per generation (ask, score, tell), so that
    scoring can be spread over devices with :func:`split_over_devices`.
    """

    @jax.jit
    def ask(state: LoopState):
        key, key_ask, key_eval = jax.random.split(state.key, 3)
        population, es_state = es.ask(key_ask, state.es_state)
        return population, es_state, key, key_eval

    score = jax.jit(fitness_fn) if devices is None else split_over_devices(fitness_fn, devices)

    @jax.jit
    def tell(state: LoopState, population, es_state, key, fitness, returns):
        es_state, es_metrics = es.tell(es_state, population, fitness)
        best = es_metrics.best_index
        improved = jnp.isfinite(fitness[best]) & (fitness[best] > state.best_fitness)
        best_params = jax.tree.map(
            lambda pop, old: jnp.where(improved, pop[best], old), population, state.best_params
        )
        metrics = {
            "fitness_mean": es_metrics.fitness_mean,
            "fitness_max": es_metrics.fitness_max,
            "fitness_min": es_metrics.fitness_min,
            "num_nonfinite": es_metrics.num_nonfinite,
            "sigma": es_metrics.sigma,
            # returns: [P, E, S] (drifts: per env and seed) or [P, A] (objectives: per
            # agent); NaN marks a diverged seed, counted rather than averaged in.
            "returns_mean": jnp.nanmean(returns, axis=(0, *range(2, returns.ndim))),
            "returns_best": jnp.nanmean(returns[best], axis=tuple(range(1, returns.ndim - 1))),
            "nonfinite_returns": jnp.sum(~jnp.isfinite(returns)),
        }
        new_state = LoopState(
            es_state=es_state,
            key=key,
            generation=state.generation + 1,
            best_params=best_params,
            best_fitness=jnp.where(improved, fitness[best], state.best_fitness),
        )
        return new_state, metrics

    def init(key, params, first_levels, generation_key) -> LoopState:
        return LoopState(
            es_state=es.init(key, params),
            key=generation_key,
            generation=jnp.int32(0),
            best_params=params,
            best_fitness=jnp.float32(-jnp.inf),
        )

    def step(state: LoopState, levels: LevelBatch | None):
        population, es_state, key, key_eval = ask(state)
        if levels is None:
            fitness, returns = score(population, key_eval)[:2]
            state, metrics = tell(state, population, es_state, key, fitness, returns)
            return state, metrics, None
        fitness, returns, level_scores = score(population, key_eval, levels.levels)
        state, metrics = tell(state, population, es_state, key, fitness, returns)
        scores = {name: np.asarray(value) for name, value in level_scores.items()}
        count = np.asarray(levels.slots).shape[0]
        nan = np.full(count, np.nan, np.float32)
        finished = FinishedLevels(
            levels=levels.levels,
            slots=levels.slots,
            valid=np.isfinite(scores.get(level_score, nan)),
            restarted=np.ones(count, bool),
            scores=scores,
        )
        return state, metrics, finished

    def record_extras(state: LoopState) -> dict[str, Any]:
        return {
            "best_fitness": float(state.best_fitness),
            "learning_rate": float(es.learning_rate(state.es_state)),
        }

    return MetaOptimizer(
        name="es",
        init=init,
        step=step,
        params=lambda state: es.mean(state.es_state),
        record_extras=record_extras,
        all_failed=lambda record: record["num_nonfinite"] == es.population_size,
    )


def metagrad_optimizer(metagrad: MetaGradient) -> MetaOptimizer:
    """Meta-gradients: each generation is one meta-update of the agents' unrolls; the
    agents whose lifetime ended restart on the generation's levels."""
    step_with_levels = jax.jit(metagrad.step_with_levels)
    step_on_own_levels = jax.jit(metagrad.step)

    def init(key, params, first_levels, generation_key):
        if first_levels is None:
            return metagrad.init(key, params)
        return metagrad.init(key, params, first_levels.levels, first_levels.slots)

    def step(state, levels: LevelBatch | None):
        if levels is None:
            return (*step_on_own_levels(state), None)
        return step_with_levels(state, levels.levels, levels.slots)

    return MetaOptimizer(
        name="metagrad",
        init=init,
        step=step,
        params=lambda state: state.params,
        record_extras=lambda state: {},
        all_failed=lambda record: record["nonfinite_chunks"] == metagrad.config.num_minibatches,
        needs_first_levels=True,
    )
