"""Objective discovery as a meta-training run: its config, and how its task,
meta-optimiser and curriculum are built for :func:`discovery.pipeline.meta_train`.

Learned objectives (LPG, TA-LPG) are meta-trained by meta-gradients
(``optimizer="metagrad"``: a generation is one meta-update through unrolled agent
updates, :mod:`discovery.meta.metagrad`) or by evolution strategies (``"es"``: a
member's fitness is its agents' mean final reward rate on the generation's shared
levels, ``-inf`` if any of them diverged; :mod:`discovery.lpg_task`). A diverged agent's
score is NaN, so ``nonfinite_returns`` in the log counts the diverged agents.

The curriculum (:mod:`discovery.meta.curricula`) picks the training levels from
``levels.train``: each generation the loop draws levels from it, the agents that
restart move to them, the levels whose agents finished are scored (algorithmic regret
against an A2C antagonist, positive value loss, MaxMC or return), and the curriculum's
state is updated, logged (``curriculum_*`` fields: score distribution, buffer fill,
level diversity) and checkpointed with the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jax

from discovery import preflight
from discovery.agents.a2c import A2CConfig, make_a2c
from discovery.agents.lpg_agent import LPGAgentConfig, make_lpg_agent
from discovery.components import RecipeError
from discovery.config import ConfigError, from_dict, to_dict
from discovery.drift_training import CRITIC_SCORES
from discovery.lpg_task import (
    LevelsConfig,
    ObjectiveTaskConfig,
    level_space,
    make_level_sampler,
    make_objective_task,
)
from discovery.meta.curricula import CurriculumConfig, make_curriculum
from discovery.meta.es import ESConfig, make_es
from discovery.meta.metagrad import MetaGradConfig, make_metagrad
from discovery.meta.optimizers import es_optimizer, metagrad_optimizer, population_devices
from discovery.objective import Objective, ObjectiveConfig, make_objective
from discovery.pipeline import BuiltRun, meta_optimizer_name


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
        if self.curriculum.kind == "none":
            raise ValueError(
                "curriculum.kind='none': an objective's agents train on levels drawn from "
                "levels.train; use 'dr' to draw them uniformly, or 'plr' / 'alp_gmm'"
            )
        if self.optimizer == "es" and self.curriculum.kind != "dr" and score in CRITIC_SCORES:
            raise ValueError(
                f"curriculum.score={score!r} needs optimizer='metagrad' (it reads the agents' "
                "critics, which only meta-gradient training trains); with optimizer='es' "
                "use 'algorithmic_regret' or 'return'"
            )


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


def steps_per_generation(config: ObjectiveMetaTrainConfig) -> int:
    """Agent environment steps one generation takes."""
    agent = config.agent
    if config.optimizer == "metagrad":
        mg = config.metagrad
        antagonist = mg.unroll if config.curriculum.needs_antagonist else 0
        return mg.num_agents * (mg.unroll + 1 + antagonist) * agent.steps_per_update
    members = config.es.population_size + int(config.curriculum.needs_antagonist)
    return members * config.es_task.agents * config.es_task.lifetime_max * agent.steps_per_update


def recipe_of(config: ObjectiveMetaTrainConfig) -> tuple[dict[str, Any], str]:
    """``(recipe, meta-optimiser)`` of the objective a run of ``config`` discovers."""
    optimizer = meta_optimizer_name(config)
    return to_dict(config.objective), optimizer


def rebuild(recipe: Mapping[str, Any]) -> Objective:
    """The objective a zoo recipe (an ``ObjectiveConfig`` as a mapping) describes."""
    try:
        config = from_dict(ObjectiveConfig, recipe, source="field 'component'")
    except ConfigError as e:
        raise RecipeError(f"field 'component': {e}", "component") from e
    return make_objective(config)


def check_meta_train(config: ObjectiveMetaTrainConfig) -> None:
    """Before any compute: the training levels' env names (or ``<env>/random``)."""
    for index, name in enumerate(config.levels.train):
        preflight.check_level_source(name, f"levels.train[{index}]")


def build(config: ObjectiveMetaTrainConfig) -> BuiltRun:
    """The objective, its meta-optimiser (meta-gradients or ES) and the curriculum."""
    objective = make_objective(config.objective)
    key = jax.random.key(config.seed)
    key_init, key_opt, key_loop = jax.random.split(key, 3)
    params = objective.init(key_init)
    env, sample_level = make_level_sampler(config.levels)
    curriculum = make_curriculum(config.curriculum, sample_level, level_space(config.levels))
    needs_antagonist = config.curriculum.needs_antagonist
    task = None
    if config.optimizer == "metagrad":
        example = sample_level(key_loop)
        agent = make_lpg_agent(config.agent, env, example, objective)
        antagonist = make_a2c(a2c_like(config.agent), env, example) if needs_antagonist else None
        optimizer = metagrad_optimizer(
            make_metagrad(config.metagrad, agent, sample_level, antagonist)
        )
        levels_per_step = config.metagrad.num_agents
    else:
        antagonist = a2c_like(config.agent) if needs_antagonist else None
        task = make_objective_task(
            config.es_task, objective, config.agent, config.levels, antagonist
        )
        optimizer = es_optimizer(
            make_es(config.es, params),
            task.fitness_on_levels,
            population_devices(config.es.population_size),
            config.curriculum.learns_from,
        )
        levels_per_step = config.es_task.agents
    return BuiltRun(
        component=objective,
        task=task,
        optimizer=optimizer,
        curriculum=curriculum,
        params=params,
        key=key_opt,
        generation_key=key_loop,
        levels_per_step=levels_per_step,
        level_score=config.curriculum.learns_from,
        steps_per_generation=steps_per_generation(config),
    )
