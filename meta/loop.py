"""The outer loop: generations of ask -> train a population -> tell, with logging,
atomic checkpoints and exact resume.

One generation is one jitted function of a :class:`LoopState`; the population axis is
sharded across every visible device (``jax.sharding``, Auto axes), so the same run
uses one CPU, eight GPUs, or a multi-host job after ``jax.distributed.initialize()``.
A resumed run reproduces the uninterrupted one exactly: the checkpoint holds the ES
state, the RNG key, the generation counter and the best params, and the metrics log is
cut back to the checkpoint's generation.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from agents.ppo import PPOConfig
from discovery import checkpoint as ckpt
from discovery.tasks import DriftTask, DriftTaskConfig, make_drift_task
from meta.es import ESConfig, EvolutionStrategy, make_es

POPULATION_AXIS = "population"


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
      name: run name; results go to ``<runs_dir>/<name>/``.
      seed: the run's seed; same config and seed give the same numbers.
      generations: ES generations to run.
      task: what a drift is scored on (environments, seeds, inner-loop PPO).
      es: the evolution strategy.
      checkpoint_every: generations between checkpoints (the last is always saved).
      keep_checkpoints: how many recent checkpoints to keep.
    """

    name: str = "lpo-cartpole-demo"
    seed: int = 0
    generations: int = field(default=40, metadata={"min": 1})
    task: DriftTaskConfig = field(default_factory=_demo_task)
    es: ESConfig = field(default_factory=lambda: ESConfig(population_size=16))
    checkpoint_every: int = field(default=5, metadata={"min": 1})
    keep_checkpoints: int = field(default=3, metadata={"min": 1})


@struct.dataclass
class LoopState:
    """Everything the outer loop carries from one generation to the next."""

    es_state: Any
    key: jax.Array
    generation: jax.Array
    best_params: Any
    best_fitness: jax.Array


def maybe_initialize_distributed() -> None:
    """Join a multi-host job when the standard JAX coordinator variables are set."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS") and not _distributed_started():
        jax.distributed.initialize()


def _distributed_started() -> bool:
    try:
        from jax._src import distributed

        return distributed.global_state.client is not None
    except Exception:
        return False


def population_sharding(population_size: int) -> NamedSharding | None:
    """Shard the population axis over all devices; ``None`` if there is one device or
    the population does not divide evenly (then it is replicated)."""
    devices = jax.devices()
    if len(devices) == 1 or population_size % len(devices):
        return None
    mesh = jax.make_mesh(
        (len(devices),), (POPULATION_AXIS,), axis_types=(jax.sharding.AxisType.Auto,)
    )
    return NamedSharding(mesh, P(POPULATION_AXIS))


def make_generation_step(
    es: EvolutionStrategy,
    fitness_fn: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]],
    sharding: NamedSharding | None,
) -> Callable[[LoopState], tuple[LoopState, dict[str, jax.Array]]]:
    """One jitted generation: ask, score the population (sharded), tell, track the best."""

    def generation_step(state: LoopState) -> tuple[LoopState, dict[str, jax.Array]]:
        key, key_ask, key_eval = jax.random.split(state.key, 3)
        population, es_state = es.ask(key_ask, state.es_state)
        if sharding is not None:
            population = jax.lax.with_sharding_constraint(
                population, jax.tree.map(lambda _: sharding, population)
            )
        fitness, returns = fitness_fn(population, key_eval)
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
            "returns_mean": jnp.nanmean(returns, axis=0),
            "returns_best": returns[best],
        }
        new_state = LoopState(
            es_state=es_state,
            key=key,
            generation=state.generation + 1,
            best_params=best_params,
            best_fitness=jnp.where(improved, fitness[best], state.best_fitness),
        )
        return new_state, metrics

    return jax.jit(generation_step)


def _truncate_metrics(path: Path, generation: int) -> None:
    """Drop logged generations at or after ``generation`` (they will be re-run)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line)["generation"] < generation
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


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


def meta_train(
    config: MetaTrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    on_generation: Callable[[dict[str, Any]], None] | None = None,
    stop_after: int | None = None,
) -> MetaTrainResult:
    """Run (or resume) drift meta-training, writing ``metrics.jsonl`` and checkpoints.

    ``on_generation`` receives each generation's logged record (for progress display).
    ``stop_after`` ends the run after that many generations of this call, as a kill
    would (used to test resume).
    """
    maybe_initialize_distributed()
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    run_dir.mkdir(parents=True, exist_ok=True)
    is_writer = jax.process_index() == 0

    key = jax.random.key(config.seed)
    key_task, key_init, key_es, key_loop = jax.random.split(key, 4)
    task = make_drift_task(config.task, key_task)
    init_params = task.init_params(key_init)
    es = make_es(config.es, init_params)
    state = LoopState(
        es_state=es.init(key_es, init_params),
        key=key_loop,
        generation=jnp.int32(0),
        best_params=init_params,
        best_fitness=jnp.float32(-jnp.inf),
    )
    latest = ckpt.latest_checkpoint(checkpoint_dir) if checkpoint_dir.exists() else None
    if resume and latest is not None:
        state, _ = ckpt.load_checkpoint(latest, state)
    elif not resume and metrics_path.exists():
        metrics_path.unlink()
    start = int(state.generation)
    if is_writer:
        _truncate_metrics(metrics_path, start)

    sharding = population_sharding(config.es.population_size)
    step = make_generation_step(es, task.fitness, sharding)
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
    history: list[dict[str, Any]] = []
    end = config.generations if stop_after is None else min(config.generations, start + stop_after)
    for generation in range(start, end):
        tic = time.perf_counter()
        state, metrics = step(state)
        metrics = jax.device_get(metrics)
        record = {"generation": generation}
        record.update({k: _to_python(v) for k, v in metrics.items()})
        record["best_fitness"] = float(state.best_fitness)
        record["learning_rate"] = float(es.learning_rate(state.es_state))
        record["wall_time_s"] = time.perf_counter() - tic
        record["env_steps"] = steps_per_generation * (generation + 1)
        history.append(record)
        if is_writer:
            with metrics_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            done = generation + 1
            if done % config.checkpoint_every == 0 or done == config.generations:
                ckpt.save_checkpoint(
                    checkpoint_dir,
                    done,
                    state,
                    metadata={"generation": done, "baselines": baselines},
                    keep=config.keep_checkpoints,
                )
        if on_generation is not None:
            on_generation(record)
    return MetaTrainResult(run_dir, state, task, es, history)
