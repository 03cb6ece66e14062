"""Meta-training of learned objectives (LPG, TA-LPG) by meta-gradients or by ES.

Both meta-optimisers run in the shared outer loop (:func:`discovery.meta.loop.run_generations`),
so logging, checkpoints and exact resume behave as for drift discovery. A "generation"
is one meta-gradient update (``optimizer="metagrad"``) or one ES generation
(``optimizer="es"``).

With ES, a member's fitness is its agents' mean final reward rate on the generation's
shared levels, ``-inf`` if any of them diverged (:mod:`discovery.lpg_task`); a diverged
agent's score is NaN, so ``nonfinite_returns`` in the log counts the diverged agents
(and, with a curriculum, ``level_diverged_fraction`` the mean fraction per level).

A curriculum (:mod:`discovery.meta.curricula`) picks the training levels: each generation the
loop samples levels from it, the agents that restart move to them, the levels whose
agents finished are scored (algorithmic regret against an A2C antagonist, positive value
loss, MaxMC or return), and the curriculum's state is updated, logged (``curriculum_*``
fields: score distribution, buffer fill, level diversity) and checkpointed with the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from discovery.agents.a2c import A2CConfig, make_a2c
from discovery.agents.lpg_agent import LPGAgentConfig, make_lpg_agent
from discovery.config import to_dict
from discovery.envs.distributed import join_distributed_job
from discovery.lpg_task import (
    LevelsConfig,
    ObjectiveTaskConfig,
    level_space,
    make_level_sampler,
    make_objective_task,
)
from discovery.meta.curricula import CurriculumConfig, LevelBatch, make_curriculum
from discovery.meta.es import ESConfig, EvolutionStrategy, make_es
from discovery.meta.loop import (
    LoopState,
    es_record_extras,
    initial_loop_state,
    make_generation_step,
    population_devices,
    run_generations,
)
from discovery.meta.metagrad import FinishedLevels, MetaGradConfig, MetaGradState, make_metagrad
from discovery.objective import Objective, ObjectiveConfig, make_objective


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
      curriculum: which levels agents train on next; with ES, the levels every member's
        agents share in a generation.
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
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    metagrad: MetaGradConfig = field(default_factory=_small_metagrad)
    es: ESConfig = field(default_factory=lambda: ESConfig(population_size=16))
    es_task: ObjectiveTaskConfig = field(
        default_factory=lambda: ObjectiveTaskConfig(lifetime_min=50, lifetime_max=50)
    )
    eval_seeds: int = field(default=8, metadata={"min": 1})
    eval_lifetime: int = field(default=250, metadata={"min": 1})
    checkpoint_every: int = field(default=25, metadata={"min": 1})
    keep_checkpoints: int = field(default=3, metadata={"min": 1})


    def __post_init__(self) -> None:
        score = self.curriculum.score
        if self.optimizer == "es" and self.curriculum.kind != "dr" and score in _CRITIC_SCORES:
            raise ValueError(
                f"curriculum.score={score!r} needs optimizer='metagrad' (it reads the agents' "
                "critics, which only meta-gradient training trains); with optimizer='es' "
                "use 'algorithmic_regret' or 'return'"
            )


_CRITIC_SCORES = ("positive_value_loss", "max_mc")


@struct.dataclass
class ESCurriculumLoopState:
    """The ES run's carried state when a curriculum picks the levels."""

    es: LoopState
    curriculum: Any
    generation: jax.Array


@struct.dataclass
class MetaGradLoopState:
    """The meta-gradient run's carried state: meta-optimiser, curriculum, generation."""

    meta: MetaGradState
    generation: jax.Array
    curriculum: Any = None


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


def a2c_like(agent: LPGAgentConfig, num_updates: int = 250) -> A2CConfig:
    """The hand-designed A2C with the LPG agents' rollout shape and network (the
    baseline of evaluation, and the antagonist of algorithmic regret)."""
    return A2CConfig(
        num_envs=agent.num_envs,
        rollout_len=agent.rollout_len,
        num_updates=num_updates,
        network=agent.network,
        hidden_sizes=tuple(agent.hidden_sizes),
        gamma=agent.discount,
    )


def finished_level_metrics(finished: FinishedLevels) -> dict[str, Any]:
    """Log fields for the levels finished in a step: how many, and their mean scores."""
    valid = np.asarray(finished.valid)
    metrics: dict[str, Any] = {"levels_finished": int(valid.sum())}
    for name, scores in finished.scores.items():
        scores = np.asarray(scores)[valid]
        scores = scores[np.isfinite(scores)]
        metrics[f"level_{name}"] = float(scores.mean()) if scores.size else float("nan")
    return metrics


def steps_per_generation(config: ObjectiveMetaTrainConfig) -> int:
    """Agent environment steps one generation takes."""
    agent = config.agent
    if config.optimizer == "metagrad":
        mg = config.metagrad
        antagonist = mg.unroll if config.curriculum.needs_antagonist else 0
        return mg.num_agents * (mg.unroll + 1 + antagonist) * agent.steps_per_update
    members = config.es.population_size + int(config.curriculum.needs_antagonist)
    return members * config.es_task.agents * config.es_task.lifetime_max * agent.steps_per_update


def meta_train_objective(
    config: ObjectiveMetaTrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    on_generation: Callable[[dict[str, Any]], None] | None = None,
    stop_after: int | None = None,
    checkpoint: Path | None = None,
) -> ObjectiveMetaTrainResult:
    """Run (or resume) objective meta-training, writing ``metrics.jsonl`` and checkpoints.

    ``checkpoint`` picks the checkpoint a resume loads (default: the latest); every
    checkpoint records the config that made it (:mod:`discovery.run_folder`).
    """
    join_distributed_job()  # a no-op once the package's import joined
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
        "metadata": {"config": to_dict(config)},
        "checkpoint": checkpoint,
    }
    if config.optimizer == "metagrad":
        env, sample_level = make_level_sampler(config.levels)
        curriculum = make_curriculum(config.curriculum, sample_level, level_space(config.levels))
        example = sample_level(key_loop)
        agent = make_lpg_agent(config.agent, env, example, objective)
        antagonist = None
        if config.curriculum.needs_antagonist:
            antagonist = make_a2c(a2c_like(config.agent), env, example)
        metagrad = make_metagrad(config.metagrad, agent, sample_level, antagonist)
        key_levels, key_first = jax.random.split(jax.random.fold_in(key_loop, 1))
        num_agents = config.metagrad.num_agents
        first, curriculum_state = curriculum.sample(key_first, curriculum.init(), num_agents)
        state = MetaGradLoopState(
            meta=metagrad.init(key_opt, init_params, first.levels, first.slots),
            generation=jnp.int32(0),
            curriculum=curriculum_state,
        )
        meta_step = jax.jit(metagrad.step_with_levels)
        score = config.curriculum.score

        def step(state: MetaGradLoopState):
            key = jax.random.fold_in(key_levels, state.generation)
            # Only the agents whose lifetime ended start on the drawn levels.
            batch = curriculum.draw(key, state.curriculum, num_agents)
            meta, metrics, finished = meta_step(state.meta, batch.levels, batch.slots)
            curriculum_state = curriculum.mark_sampled(
                state.curriculum, batch, finished.restarted
            )
            curriculum_state = curriculum.update(
                curriculum_state,
                LevelBatch(levels=finished.levels, slots=finished.slots),
                finished.scores[score],
                finished.valid,
            )
            metrics = dict(metrics) | finished_level_metrics(finished)
            metrics |= {f"curriculum_{k}": v for k, v in curriculum.stats(curriculum_state).items()}
            new_state = MetaGradLoopState(
                meta=meta, generation=state.generation + 1, curriculum=curriculum_state
            )
            return new_state, metrics

        state, history = run_generations(step, state, run_dir, **common)
        return ObjectiveMetaTrainResult(
            Path(run_dir), state, objective, history, lambda s: s.meta.params
        )

    antagonist = a2c_like(config.agent) if config.curriculum.needs_antagonist else None
    task = make_objective_task(
        config.es_task, objective, config.agent, config.levels, antagonist
    )
    es = make_es(config.es, init_params)
    state = initial_loop_state(es, key_opt, key_loop, init_params)
    devices = population_devices(config.es.population_size)
    if config.curriculum.kind == "dr":
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

    # A curriculum picks the levels every member's agents share in a generation.
    _, sample_level = make_level_sampler(config.levels)
    curriculum = make_curriculum(config.curriculum, sample_level, level_space(config.levels))
    generation_step = make_generation_step(es, task.fitness_on_levels, devices)
    key_levels = jax.random.fold_in(key_loop, 1)
    extras = es_record_extras(es)

    def step(state: ESCurriculumLoopState):
        key = jax.random.fold_in(key_levels, state.generation)
        batch, curriculum_state = curriculum.sample(key, state.curriculum, config.es_task.agents)
        es_loop, metrics = generation_step(state.es, batch.levels)
        scores = {name: np.asarray(value) for name, value in metrics.pop("extra").items()}
        nan = np.full(config.es_task.agents, np.nan, np.float32)
        finished = FinishedLevels(
            levels=batch.levels,
            slots=batch.slots,
            valid=np.isfinite(scores.get(config.curriculum.score, nan)),
            restarted=np.ones(config.es_task.agents, bool),
            scores=scores,
        )
        curriculum_state = curriculum.update(
            curriculum_state, batch, finished.scores[config.curriculum.score], finished.valid
        )
        metrics = dict(metrics) | finished_level_metrics(finished)
        metrics |= {f"curriculum_{k}": v for k, v in curriculum.stats(curriculum_state).items()}
        return ESCurriculumLoopState(es_loop, curriculum_state, state.generation + 1), metrics

    state = ESCurriculumLoopState(state, curriculum.init(), jnp.int32(0))
    state, history = run_generations(
        step, state, run_dir, record_extras=lambda s: extras(s.es), **common
    )
    return ObjectiveMetaTrainResult(
        Path(run_dir), state, objective, history, lambda s: es.mean(s.es.es_state), es
    )
