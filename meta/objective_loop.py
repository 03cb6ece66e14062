"""Meta-training of learned objectives (LPG, TA-LPG) by meta-gradients or by ES.

Both meta-optimisers run in the shared outer loop (:func:`meta.loop.run_generations`),
so logging, checkpoints and exact resume behave as for drift discovery. A "generation"
is one meta-gradient update (``optimizer="metagrad"``) or one ES generation
(``optimizer="es"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import struct

from agents.lpg_agent import LPGAgentConfig, make_lpg_agent
from discovery.lpg_task import (
    LevelsConfig,
    ObjectiveTaskConfig,
    make_level_sampler,
    make_objective_task,
)
from discovery.objective import Objective, ObjectiveConfig, make_objective
from meta.es import ESConfig, EvolutionStrategy, make_es
from meta.loop import (
    es_record_extras,
    initial_loop_state,
    make_generation_step,
    maybe_initialize_distributed,
    population_devices,
    run_generations,
)
from meta.metagrad import MetaGradConfig, MetaGradState, make_metagrad


def _small_metagrad() -> MetaGradConfig:
    return MetaGradConfig(
        num_agents=16, num_minibatches=2, lr=1e-3, lifetime_min=50, lifetime_max=50
    )


@dataclass(frozen=True)
class ObjectiveMetaTrainConfig:
    """A learned-objective meta-training run (defaults: a small CPU run on random
    gridworlds; ``configs/lpg_gridworld.yaml`` holds GROOVE's full setting).

    Attributes:
      component: marks the config kind for ``discover meta-train``.
      name: run name; results go to ``<runs_dir>/<name>/``.
      seed: the run's seed.
      generations: meta-gradient updates, or ES generations.
      optimizer: ``"metagrad"`` or ``"es"``.
      objective: the meta-network's shape (LPG or TA-LPG).
      agent: the LPG agents' configuration.
      levels: training levels and held-out layouts.
      metagrad: meta-gradient settings (``optimizer="metagrad"``).
      es: evolution strategy (``optimizer="es"``).
      es_task: how ES scores an objective (``optimizer="es"``).
      eval_seeds, eval_lifetime: fresh agents per held-out layout and their lifetime.
      checkpoint_every, keep_checkpoints: as for drift meta-training.
    """

    component: Literal["objective"] = "objective"
    name: str = "lpg-gridworld-small"
    seed: int = 0
    generations: int = field(default=200, metadata={"min": 1})
    optimizer: Literal["metagrad", "es"] = "metagrad"
    objective: ObjectiveConfig = field(default_factory=lambda: ObjectiveConfig(hidden_size=32))
    agent: LPGAgentConfig = field(default_factory=lambda: LPGAgentConfig(num_envs=16))
    levels: LevelsConfig = field(
        default_factory=lambda: LevelsConfig(max_size=6, max_objects=3)
    )
    metagrad: MetaGradConfig = field(default_factory=_small_metagrad)
    es: ESConfig = field(default_factory=lambda: ESConfig(population_size=16))
    es_task: ObjectiveTaskConfig = field(
        default_factory=lambda: ObjectiveTaskConfig(lifetime_min=50, lifetime_max=50)
    )
    eval_seeds: int = field(default=8, metadata={"min": 1})
    eval_lifetime: int = field(default=250, metadata={"min": 1})
    checkpoint_every: int = field(default=25, metadata={"min": 1})
    keep_checkpoints: int = field(default=3, metadata={"min": 1})


@struct.dataclass
class MetaGradLoopState:
    """The meta-gradient run's carried state (with the loop's generation counter)."""

    meta: MetaGradState
    generation: jax.Array


@dataclass
class ObjectiveMetaTrainResult:
    """What a finished objective meta-training run leaves behind."""

    run_dir: Path
    state: Any
    objective: Objective
    history: list[dict[str, Any]]
    params_of: Callable[[Any], Any]
    es: EvolutionStrategy | None = None

    @property
    def params(self) -> Any:
        """The discovered objective's params (the ES mean, or the meta-gradient iterate)."""
        return self.params_of(self.state)


def steps_per_generation(config: ObjectiveMetaTrainConfig) -> int:
    """Agent environment steps one generation takes."""
    agent = config.agent
    if config.optimizer == "metagrad":
        mg = config.metagrad
        return mg.num_agents * (mg.unroll + 1) * agent.steps_per_update
    return (
        config.es.population_size
        * config.es_task.agents
        * config.es_task.lifetime_max
        * agent.steps_per_update
    )


def meta_train_objective(
    config: ObjectiveMetaTrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    on_generation: Callable[[dict[str, Any]], None] | None = None,
    stop_after: int | None = None,
) -> ObjectiveMetaTrainResult:
    """Run (or resume) objective meta-training, writing ``metrics.jsonl`` and checkpoints."""
    maybe_initialize_distributed()
    objective = make_objective(config.objective)
    key = jax.random.key(config.seed)
    key_init, key_opt, key_loop = jax.random.split(key, 3)
    init_params = objective.init(key_init)
    common = {
        "generations": config.generations,
        "checkpoint_every": config.checkpoint_every,
        "keep_checkpoints": config.keep_checkpoints,
        "resume": resume,
        "steps_per_generation": steps_per_generation(config),
        "on_generation": on_generation,
        "stop_after": stop_after,
    }
    if config.optimizer == "metagrad":
        env, sample_level = make_level_sampler(config.levels)
        agent = make_lpg_agent(config.agent, env, sample_level(key_loop), objective)
        metagrad = make_metagrad(config.metagrad, agent, sample_level)
        state = MetaGradLoopState(meta=metagrad.init(key_opt, init_params), generation=jnp.int32(0))
        meta_step = jax.jit(metagrad.step)

        def step(state: MetaGradLoopState):
            meta, metrics = meta_step(state.meta)
            return MetaGradLoopState(meta=meta, generation=state.generation + 1), metrics

        state, history = run_generations(step, state, run_dir, **common)
        return ObjectiveMetaTrainResult(
            Path(run_dir), state, objective, history, lambda s: s.meta.params
        )

    task = make_objective_task(config.es_task, objective, config.agent, config.levels)
    es = make_es(config.es, init_params)
    state = initial_loop_state(es, key_opt, key_loop, init_params)
    devices = population_devices(config.es.population_size)
    state, history = run_generations(
        make_generation_step(es, task.fitness, devices),
        state,
        run_dir,
        record_extras=es_record_extras(es),
        **common,
    )
    return ObjectiveMetaTrainResult(
        Path(run_dir), state, objective, history, lambda s: es.mean(s.es_state), es
    )
