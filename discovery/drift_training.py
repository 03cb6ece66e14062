"""Drift discovery as a meta-training run: its config, and how its task, meta-optimiser
and curriculum are built for :func:`discovery.pipeline.meta_train`.

Two meta-optimisers:

* ``optimizer: es`` (Lu et al., 2022): ES scores each drift by the returns of PPO agents
  trained with it (:mod:`discovery.tasks`).
* ``optimizer: metagrad``: PPO agents at every stage of their lifetimes take ``K``
  updates with the drift, and the gradient of an actor-critic meta-loss on fresh
  experience flows back through those ``K`` PPO updates into the drift's params
  (:mod:`discovery.meta.metagrad` over :mod:`discovery.agents.ppo_learner`); the agents'
  lifetimes are ``metagrad.lifetime_min`` to ``lifetime_max`` PPO updates.

Without a curriculum the agents train on the task's envs at their default parameters;
with one (``curriculum.kind`` ``dr``, ``plr`` or ``alp_gmm``), on levels of the task's
one classic-control env drawn from its level space (:mod:`discovery.envs.levels`, e.g.
CartPole's physics), and the levels are scored by return, by algorithmic regret against
PPO-clip trained on the same level, or (meta-gradients, whose agents have critics) by
positive value loss or MaxMC. The task's baselines and its end-of-run evaluation (fresh
agents trained with the discovered drift against PPO-clip) are the same for both.

With ``validation.envs`` set, either meta-optimiser's current params (the ES search
mean, the meta-gradient iterate) are scored every ``validation.every`` generations on
those envs by fresh agents, and the best-validated params are kept
(:mod:`discovery.meta.validation`; :class:`discovery.validation_task.ValidationConfig`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jax

from discovery import preflight
from discovery.agents.ppo import PPOConfig
from discovery.agents.ppo_learner import as_antagonist, make_ppo_learner
from discovery.components import RecipeError
from discovery.drift import Drift, list_drifts, make_drift, make_lpo_drift
from discovery.envs import make as make_env
from discovery.envs.levels import LEVEL_SPACES, make_level_space
from discovery.meta.curricula import CurriculumConfig, make_curriculum
from discovery.meta.es import ESConfig, make_es
from discovery.meta.metagrad import MetaGradConfig, make_metagrad
from discovery.meta.optimizers import es_optimizer, metagrad_optimizer, population_devices
from discovery.meta.validation import Validation
from discovery.pipeline import BuiltRun, meta_optimizer_name
from discovery.tasks import TASK_DRIFT_KWARGS, DriftTaskConfig, make_drift_task, ppo_params_for
from discovery.validation_task import ValidationConfig, make_validation_task

# Level scores computed by the agents' critics, which only meta-gradient training has.
CRITIC_SCORES = ("positive_value_loss", "max_mc")

#: Folded into the run's root key for the validation keys: a stream of its own, apart
#: from the four keys the run splits its root key into for training (ASCII "vali").
VALIDATION_STREAM = 0x76616C69


def _small_drift_metagrad() -> MetaGradConfig:
    # Lifetimes of the demo task's PPO (8192 steps = 16 updates of 4 envs x 128 steps).
    return MetaGradConfig(
        num_agents=8, num_minibatches=2, unroll=2, lr=1e-3, lifetime_min=16, lifetime_max=16
    )


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
      generations: ES generations, or meta-gradient updates, to run.
      optimizer: ``"es"`` or ``"metagrad"`` (see the module docstring).
      task: what a drift is scored on (environments, seeds, inner-loop PPO).
      es: the evolution strategy (``optimizer: es``).
      metagrad: meta-gradient settings (``optimizer: metagrad``; one env).
      curriculum: ``kind: none`` trains on the task's envs as they are; ``dr``, ``plr``
        or ``alp_gmm`` draw levels from the one env's level space (``task.seeds`` per
        generation under ES, one per restarting agent under meta-gradients), scored by
        ``"algorithmic_regret"`` against PPO-clip, ``"return"``, or (meta-gradients)
        the critics' ``"positive_value_loss"`` or ``"max_mc"``.
      checkpoint_every: generations between checkpoints (the last is always saved).
      keep_checkpoints: how many recent checkpoints to keep.
      max_nonfinite_generations: stop with an error once this many generations in a
        row had no finite member (every agent diverged: nothing can be learned).
      validation: selection on validation envs (``envs`` empty: off, the default): every
        ``every`` generations the current params (ES mean or meta-gradient iterate) are
        scored by fresh agents on ``envs`` and the best-validated ones are written to
        ``validated_params.msgpack``; the envs may overlap ``task.envs`` but should be
        disjoint from the envs results are reported on.
    """

    component: Literal["drift"] = "drift"
    name: str = "lpo-cartpole-demo"
    seed: int = 0
    generations: int = field(default=40, metadata={"min": 1})
    optimizer: Literal["es", "metagrad"] = "es"
    task: DriftTaskConfig = field(default_factory=_demo_task)
    es: ESConfig = field(default_factory=lambda: ESConfig(population_size=16))
    metagrad: MetaGradConfig = field(default_factory=_small_drift_metagrad)
    curriculum: CurriculumConfig = field(default_factory=lambda: CurriculumConfig(kind="none"))
    checkpoint_every: int = field(default=5, metadata={"min": 1})
    keep_checkpoints: int = field(default=3, metadata={"min": 1})
    max_nonfinite_generations: int = field(default=3, metadata={"min": 1})
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    @property
    def learned_name(self) -> str:
        """What the run discovers, as its headlines and plots name it."""
        return self.task.drift

    def __post_init__(self) -> None:
        if self.optimizer == "metagrad" and len(self.task.envs) != 1:
            raise ValueError(
                f"optimizer='metagrad' trains its agents on one env: task.envs="
                f"{list(self.task.envs)} names {len(self.task.envs)} (use optimizer='es' "
                "for several)"
            )
        kind = self.curriculum.kind
        if kind == "none":
            return
        spaces = [name for name in LEVEL_SPACES if name != "gridworld"]
        if len(self.task.envs) != 1 or self.task.envs[0] not in spaces:
            raise ValueError(
                f"curriculum.kind={kind!r} draws levels from one env's level space: "
                f"task.envs={list(self.task.envs)} must be one of {', '.join(spaces)} "
                "(or use curriculum.kind='none')"
            )
        if self.optimizer == "es" and self.curriculum.score in CRITIC_SCORES:
            raise ValueError(
                f"curriculum.score={self.curriculum.score!r} reads the agents' critics, "
                "which only optimizer='metagrad' trains; ES scores drift levels by "
                "'algorithmic_regret' (against PPO-clip) or 'return'"
            )


def drift_recipe(drift: str) -> dict[str, Any]:
    """The recipe of the learnable drift ``discovery.tasks`` meta-trains: its name and every
    keyword argument, written out so later changes of defaults cannot change a zoo entry."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(make_lpo_drift).parameters.items()
        if name != "temporally_aware"  # Implied by the name ("ta_lpo").
    }
    return {"drift": drift, **defaults, **TASK_DRIFT_KWARGS}


def recipe_of(config: MetaTrainConfig) -> tuple[dict[str, Any], str]:
    """``(recipe, meta-optimiser)`` of the drift a run of ``config`` discovers, for the zoo."""
    optimizer = meta_optimizer_name(config)
    return drift_recipe(config.task.drift), optimizer


def rebuild(recipe: Mapping[str, Any]) -> Drift:
    """The drift a zoo recipe describes (``make_drift(recipe["drift"], **the rest)``);
    ``ValueError`` naming the field when it does not build one."""
    kwargs = dict(recipe)
    name = kwargs.pop("drift", None)
    if name not in list_drifts():
        raise RecipeError(f"field 'component.drift' is {name!r}; allowed: {list_drifts()}",
                          "component.drift")
    try:
        return make_drift(name, **kwargs)
    except (TypeError, ValueError) as e:
        raise RecipeError(
            f"field 'component' {dict(recipe)!r} does not build a {name} drift: {e}; expected "
            f"make_drift({name!r}, ...) keyword arguments",
            "component",
        ) from e


def check_validation_envs(config: MetaTrainConfig) -> None:
    """``ConfigError`` naming ``validation.envs[i]`` and the name when a validation env
    is not one ``envs.make`` knows."""
    for index, name in enumerate(config.validation.envs):
        preflight.check_env(name, f"validation.envs[{index}]")


def check_meta_train(config: MetaTrainConfig) -> None:
    """Before any compute: the env names, and that the PPO agents' rollout buffers fit."""
    for index, name in enumerate(config.task.envs):
        preflight.check_env(name, f"task.envs[{index}]")
    check_validation_envs(config)
    task = config.task
    validation = config.validation
    if validation.enabled:
        preflight.ppo_memory(
            max(validation.seeds, validation.baseline_seeds), task.ppo, validation.envs,
            f"validation.seeds {validation.seeds}",
            "validation.seeds, validation.baseline_seeds, task.ppo.num_envs or "
            "task.ppo.num_steps", together=False,
        )
    if config.optimizer == "metagrad":
        agents = config.metagrad.num_agents
        preflight.ppo_memory(
            max(agents, task.baseline_seeds), task.ppo, task.envs,
            f"metagrad.num_agents {agents}",
            "metagrad.num_agents, task.ppo.num_envs or task.ppo.num_steps",
        )
        return
    population = config.es.population_size
    preflight.ppo_memory(
        max(population * task.seeds, task.baseline_seeds), task.ppo, task.envs,
        f"es.population_size {population} x task.seeds {task.seeds}",
        "es.population_size, task.seeds, task.ppo.num_envs or task.ppo.num_steps",
    )


def steps_per_generation(config: MetaTrainConfig) -> int:
    """Agent environment steps one generation takes (the antagonist's included)."""
    task = config.task
    if config.optimizer == "metagrad":
        mg = config.metagrad
        antagonist = mg.unroll if config.curriculum.needs_antagonist else 0
        return mg.num_agents * (mg.unroll + 1 + antagonist) * task.ppo.steps_per_update
    agents = config.es.population_size + int(config.curriculum.needs_antagonist)
    per_agent = task.ppo.num_updates * task.ppo.steps_per_update
    return agents * len(task.envs) * task.seeds * per_agent


def metagrad_over_ppo(
    config: MetaTrainConfig, drift: Drift, sample_level: Any, key: jax.Array
) -> Any:
    """Meta-gradients through the updates of PPO agents on the task's one env, on levels
    from ``sample_level`` (``None``: the env's default parameters), with PPO-clip (the
    drift's PPO-clip point) as the antagonist when the curriculum needs one."""
    task = config.task
    env, env_params = make_env(task.envs[0])
    if sample_level is None:
        sample_level = lambda key: env_params  # noqa: E731
    learner = make_ppo_learner(task.ppo, env, env_params, drift)
    antagonist = None
    if config.curriculum.needs_antagonist:
        lifetime = config.metagrad.lifetime_max
        antagonist = as_antagonist(learner, ppo_params_for(drift, key), lifetime)
    return metagrad_optimizer(make_metagrad(config.metagrad, learner, sample_level, antagonist))


def build(config: MetaTrainConfig, learnable: Drift | None = None) -> BuiltRun:
    """The drift task (its baselines measured now), the meta-optimiser over it (ES, or
    meta-gradients through PPO updates), and the curriculum.

    ``learnable`` is the drift to discover (default: ``config.task.drift``'s); any
    component that acts on PPO through its drift (:mod:`discovery.advantage`) is built
    here with its own.
    """
    check_validation_envs(config)  # before the task's baselines take their time
    key = jax.random.key(config.seed)
    key_task, key_init, key_es, key_loop = jax.random.split(key, 4)
    curriculum, sample_level = None, None
    if config.curriculum.kind != "none":
        space = make_level_space(config.task.envs[0])
        curriculum = make_curriculum(config.curriculum, space.sample, space)
        sample_level = space.sample
    metagrad = config.optimizer == "metagrad"
    task = make_drift_task(
        config.task,
        key_task,
        on_levels=curriculum is not None and not metagrad,
        antagonist=config.curriculum.needs_antagonist and not metagrad,
        drift=learnable,
    )
    params = task.init_params(key_init)
    if metagrad:
        optimizer = metagrad_over_ppo(config, task.drift, sample_level, key_task)
        levels_per_step = config.metagrad.num_agents
    else:
        fitness = task.fitness if curriculum is None else task.fitness_on_levels
        devices = population_devices(config.es.population_size)
        es = make_es(config.es, params)
        optimizer = es_optimizer(es, fitness, devices, config.curriculum.learns_from)
        levels_per_step = config.task.seeds
    validation, metadata = None, {}
    if config.validation.enabled:
        key_baselines, key_generations = validation_keys(config.seed)
        validation_task = make_validation_task(
            config.task, config.validation, task.drift, key_baselines
        )
        validation = Validation(validation_task.score, key_generations, config.validation.every)
        metadata["validation_baselines"] = {
            "envs": list(config.validation.envs),
            "ppo_returns": _listed(validation_task.ppo_returns),
            "random_returns": _listed(validation_task.random_returns),
            "offset": validation_task.offset.tolist(),
            "scale": validation_task.scale.tolist(),
        }
    return BuiltRun(
        component=task.drift,
        task=task,
        optimizer=optimizer,
        curriculum=curriculum,
        params=params,
        key=key_es,
        generation_key=key_loop,
        levels_per_step=levels_per_step,
        level_score=config.curriculum.learns_from,
        steps_per_generation=steps_per_generation(config),
        metadata={
            "baselines": {
                "ppo_returns": task.ppo_returns.tolist(),
                "random_returns": task.random_returns.tolist(),
            },
            **metadata,
        },
        validation=validation,
    )


def validation_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """``(key_baselines, key_generations)`` of a run's validation: the validation
    baselines' key, and the root of the fresh validation agents' keys
    (:func:`discovery.meta.validation.generation_key` folds each generation in). Both
    come from the run's seed through their own stream (:data:`VALIDATION_STREAM`), so
    no training key is reused and runs without validation draw exactly as before."""
    stream = jax.random.fold_in(jax.random.key(seed), VALIDATION_STREAM)
    key_baselines, key_generations = jax.random.split(stream)
    return key_baselines, key_generations


def _listed(values: Any) -> list[float] | None:
    """``values`` as a list, or ``None`` when there are none."""
    return None if values is None else [float(v) for v in values]
