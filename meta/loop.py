"""The outer loop: generations of ask -> train a population -> tell, with logging,
atomic checkpoints and exact resume.

One generation is a function of a :class:`LoopState` (three jitted programs: ask,
score, tell); the population is split over every visible device, so the same run uses
one CPU, eight GPUs, or a multi-host job after ``jax.distributed.initialize()``.
A resumed run reproduces the uninterrupted one exactly: the checkpoint holds the ES
state, the RNG key, the generation counter and the best params, and the metrics log is
cut back to the checkpoint's generation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from discovery import checkpoint as ckpt
from discovery.agents.ppo import PPOConfig
from discovery.config import to_dict
from discovery.envs.distributed import join_distributed_job
from discovery.files import dumps, write_text_atomic
from discovery.meta.es import ESConfig, EvolutionStrategy, make_es
from discovery.tasks import DriftTask, DriftTaskConfig, make_drift_task


def _demo_task() -> DriftTaskConfig:
    # CartPole with short lifetimes and an aggressive learning rate: the regime where the
    # drift's shape matters (with no drift at all, returns halve; DPO beats PPO-clip).
    return DriftTaskConfig(
        envs=("CartPole-v1",), seeds=4, ppo=PPOConfig(total_timesteps=8192, lr=1e-2)
    )


@dataclass(frozen=True)
class MetaTrainConfig:
    """A drift meta-training run (the defaults are the README's small CPU demo).

    Attributes:
      component: marks the config kind for ``discover meta-train``.
      name: run name; results go to ``<runs_dir>/<name>/``.
      seed: the run's seed; same config and seed give the same numbers.
      generations: ES generations to run.
      task: what a drift is scored on (environments, seeds, inner-loop PPO).
      es: the evolution strategy.
      checkpoint_every: generations between checkpoints (the last is always saved).
      keep_checkpoints: how many recent checkpoints to keep.
      max_nonfinite_generations: stop with an error once this many generations in a
        row had no finite member (every agent diverged: nothing can be learned).
    """

    component: Literal["drift"] = "drift"
    name: str = "lpo-cartpole-demo"
    seed: int = 0
    generations: int = field(default=40, metadata={"min": 1})
    task: DriftTaskConfig = field(default_factory=_demo_task)
    es: ESConfig = field(default_factory=lambda: ESConfig(population_size=16))
    checkpoint_every: int = field(default=5, metadata={"min": 1})
    keep_checkpoints: int = field(default=3, metadata={"min": 1})
    max_nonfinite_generations: int = field(default=3, metadata={"min": 1})


class MetaTrainingDiverged(RuntimeError):
    """Every population member was non-finite for too many generations in a row."""


@struct.dataclass
class LoopState:
    """Everything the outer loop carries from one generation to the next."""

    es_state: Any
    key: jax.Array
    generation: jax.Array
    best_params: Any
    best_fitness: jax.Array


def population_devices(population_size: int) -> list[jax.Device] | None:
    """The devices the population is split over, or ``None`` to score it on one device
    (a single device, or a population that does not divide evenly over the devices)."""
    devices = jax.devices()
    if len(devices) == 1 or population_size % len(devices):
        return None
    return devices


def split_over_devices(
    fitness_fn: Callable[..., tuple[Any, ...]], devices: Sequence[jax.Device]
) -> Callable[..., tuple[Any, ...]]:
    """Score equal slices of the population on each device concurrently.

    Scoring is embarrassingly parallel over the population, so each device gets its
    slice and runs the same jitted program with no collective at all (dispatch is
    asynchronous, so the devices run at once); results come back to the host, and
    across processes of a ``jax.distributed`` job they are all-gathered. On forced CPU
    devices this also avoids a jaxlib 0.10 deadlock that a single SPMD program over the
    ``jax.sharding`` mesh hits (measured: 3 of 3 runs hung).
    """
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
        # Per-member outputs (fitness, returns) are concatenated in member order; any
        # further output (per-level scores averaged over a slice's members) is averaged.
        per_member = [
            jax.tree.map(lambda *xs: np.concatenate(xs), *[out[i] for out in outputs])
            for i in range(2)
        ]
        averaged = [
            jax.tree.map(lambda *xs: np.mean(np.stack(xs), axis=0), *[out[i] for out in outputs])
            for i in range(2, len(outputs[0]))
        ]
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            per_member = multihost_utils.process_allgather(per_member, tiled=True)
            averaged = jax.tree.map(
                lambda x: np.mean(x, axis=0), multihost_utils.process_allgather(averaged)
            )
        return (*per_member, *averaged)

    return score


def make_generation_step(
    es: EvolutionStrategy,
    fitness_fn: Callable[..., tuple[Any, ...]],
    devices: Sequence[jax.Device] | None,
) -> Callable[..., tuple[LoopState, dict[str, Any]]]:
    """One generation: ask, score the population (split over ``devices``), tell, track
    the best. Three jitted programs (ask, score, tell), so that scoring can be spread
    over devices with :func:`split_over_devices`.

    ``fitness_fn(population, key, *args) -> (fitness [P], returns [P, ...], *extra)``;
    ``generation_step(state, *args)`` passes ``args`` (e.g. a curriculum's levels) on,
    and returns a third output, a per-level ``extra`` value, under ``metrics["extra"]``.
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

    def generation_step(state: LoopState, *args: Any) -> tuple[LoopState, dict[str, Any]]:
        population, es_state, key, key_eval = ask(state)
        fitness, returns, *extra = score(population, key_eval, *args)
        state, metrics = tell(state, population, es_state, key, fitness, returns)
        if extra:
            metrics = {**metrics, "extra": extra[0]}
        return state, metrics

    return generation_step


def _truncate_metrics(path: Path, generation: int) -> None:
    """Drop logged generations at or after ``generation`` (they will be re-run)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line)["generation"] < generation
    ]
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def _to_python(value: Any) -> Any:
    array = np.asarray(value)
    if array.ndim == 0:
        return array.item()
    return array.tolist()


@dataclass
class MetaTrainResult:
    """What a finished (or resumed-and-finished) run leaves behind."""

    run_dir: Path
    state: LoopState
    task: DriftTask
    es: EvolutionStrategy
    history: list[dict[str, Any]]

    @property
    def mean_params(self) -> Any:
        return self.es.mean(self.state.es_state)


def run_generations(
    step: Callable[[Any], tuple[Any, dict[str, Any]]],
    state: Any,
    run_dir: str | Path,
    *,
    generations: int,
    checkpoint_every: int,
    keep_checkpoints: int,
    resume: bool = False,
    steps_per_generation: int = 0,
    metadata: dict[str, Any] | None = None,
    record_extras: Callable[[Any], dict[str, Any]] | None = None,
    on_generation: Callable[[dict[str, Any]], None] | None = None,
    stop_after: int | None = None,
    failed: Callable[[dict[str, Any]], bool] | None = None,
    max_failed_in_a_row: int = 3,
    checkpoint: Path | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """The outer loop shared by every meta-optimiser: step, log, checkpoint, resume.

    ``state`` is any pytree with an integer ``generation`` field, and ``step(state) ->
    (state, metrics)`` one generation (an ES generation or a meta-gradient update).
    Each generation appends a record to ``metrics.jsonl``; a checkpoint is written every
    ``checkpoint_every`` generations and at the end. With ``resume`` the latest
    checkpoint (or ``checkpoint``, when given: see :mod:`discovery.run_folder`) is
    restored and the log is cut back to it, so a killed run continues exactly.
    ``record_extras(state)`` adds fields to each record; ``stop_after`` ends this call
    after that many generations, as a kill would (used to test resume).
    ``failed(record)`` marks a generation in which nothing finite was learned; after
    ``max_failed_in_a_row`` such generations :class:`MetaTrainingDiverged` is raised
    (the checkpoints and log written so far stay).
    """
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    run_dir.mkdir(parents=True, exist_ok=True)
    is_writer = jax.process_index() == 0

    if checkpoint is None and checkpoint_dir.exists():
        checkpoint = ckpt.latest_checkpoint(checkpoint_dir)
    if resume and checkpoint is not None:
        state, _ = ckpt.load_checkpoint(checkpoint, state)
    elif not resume and metrics_path.exists():
        metrics_path.unlink()
    start = int(state.generation)
    if is_writer:
        _truncate_metrics(metrics_path, start)

    history: list[dict[str, Any]] = []
    failed_in_a_row = 0
    end = generations if stop_after is None else min(generations, start + stop_after)
    for generation in range(start, end):
        tic = time.perf_counter()
        state, metrics = step(state)
        metrics = jax.device_get(metrics)
        record = {"generation": generation}
        record.update({k: _to_python(v) for k, v in metrics.items()})
        if record_extras is not None:
            record.update(record_extras(state))
        record["wall_time_s"] = time.perf_counter() - tic
        record["env_steps"] = steps_per_generation * (generation + 1)
        history.append(record)
        if is_writer:
            with metrics_path.open("a") as f:
                f.write(dumps(record) + "\n")
            done = generation + 1
            if done % checkpoint_every == 0 or done == generations:
                ckpt.save_checkpoint(
                    checkpoint_dir,
                    done,
                    state,
                    metadata={"generation": done, **(metadata or {})},
                    keep=keep_checkpoints,
                )
        if on_generation is not None:
            on_generation(record)
        failed_in_a_row = failed_in_a_row + 1 if failed is not None and failed(record) else 0
        if failed_in_a_row >= max_failed_in_a_row:
            raise MetaTrainingDiverged(
                f"generations {generation - failed_in_a_row + 1}-{generation}: every "
                f"population member was non-finite (training diverged) in "
                f"{failed_in_a_row} generations in a row; check the inner-loop settings "
                "(learning rate, rollout length, total steps) and the meta-optimiser's step sizes"
            )
    return state, history


def meta_train(
    config: MetaTrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    on_generation: Callable[[dict[str, Any]], None] | None = None,
    stop_after: int | None = None,
    checkpoint: Path | None = None,
) -> MetaTrainResult:
    """Run (or resume) drift meta-training, writing ``metrics.jsonl`` and checkpoints.

    ``on_generation`` receives each generation's logged record (for progress display).
    ``stop_after`` ends the run after that many generations of this call, as a kill
    would (used to test resume). ``checkpoint`` picks the checkpoint a resume loads
    (default: the latest). Every checkpoint records the config that made it.
    """
    join_distributed_job()  # a no-op once the package's import joined
    key = jax.random.key(config.seed)
    key_task, key_init, key_es, key_loop = jax.random.split(key, 4)
    task = make_drift_task(config.task, key_task)
    init_params = task.init_params(key_init)
    es = make_es(config.es, init_params)
    state = initial_loop_state(es, key_es, key_loop, init_params)
    devices = population_devices(config.es.population_size)
    steps_per_generation = (
        config.es.population_size
        * len(config.task.envs)
        * config.task.seeds
        * config.task.ppo.num_updates
        * config.task.ppo.steps_per_update
    )
    baselines = {
        "ppo_returns": task.ppo_returns.tolist(),
        "random_returns": task.random_returns.tolist(),
    }
    state, history = run_generations(
        make_generation_step(es, task.fitness, devices),
        state,
        run_dir,
        generations=config.generations,
        checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints,
        resume=resume,
        steps_per_generation=steps_per_generation,
        metadata={"baselines": baselines, "config": to_dict(config)},
        record_extras=es_record_extras(es),
        on_generation=on_generation,
        stop_after=stop_after,
        failed=lambda record: record["num_nonfinite"] == config.es.population_size,
        max_failed_in_a_row=config.max_nonfinite_generations,
        checkpoint=checkpoint,
    )
    return MetaTrainResult(Path(run_dir), state, task, es, history)


def initial_loop_state(
    es: EvolutionStrategy, key_es: jax.Array, key_loop: jax.Array, init_params: Any
) -> LoopState:
    """The ES loop's state at generation 0, its mean at ``init_params``."""
    return LoopState(
        es_state=es.init(key_es, init_params),
        key=key_loop,
        generation=jnp.int32(0),
        best_params=init_params,
        best_fitness=jnp.float32(-jnp.inf),
    )


def es_record_extras(es: EvolutionStrategy) -> Callable[[LoopState], dict[str, Any]]:
    """The ES fields logged with every generation (best fitness so far, step size)."""

    def extras(state: LoopState) -> dict[str, Any]:
        return {
            "best_fitness": float(state.best_fitness),
            "learning_rate": float(es.learning_rate(state.es_state)),
        }

    return extras
