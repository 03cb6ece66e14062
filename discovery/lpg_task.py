"""Objective-discovery tasks: where LPG agents live, and how an objective is scored.

Meta-training places each agent on a level drawn from :class:`LevelsConfig` (GROOVE's
random gridworlds by default, or named layouts, or any one registered env); all levels
share one env shape, so one compiled program serves every level. An objective is then
judged on the hand-made held-out layouts (LPG, Oh et al., 2020; GROOVE, Jackson et al.,
2023) by the final reward rate and return of fresh agents trained with it for a whole
lifetime.

For evolution strategies, :func:`make_objective_task` gives ``fitness(population, key)
-> (fitness [P], scores [P, E])``: every member trains agents on the same ``E`` levels
with the same keys and lifetimes (common random numbers).

Every agent is scored by its final reward per step (over the last ``final_fraction`` of
its lifetime), a quantity every level has. The final episode return that TA-LPG's
fitness uses (Jackson et al., 2023; LPG, Oh et al., 2020, report returns) is undefined
where no episode ends in the final window, so averaging it over the agents that have one
would score members on different subsets of levels, and a member whose agents stop
finishing episodes would drop exactly its hard levels. An agent whose params or score
are not finite has diverged: it counts as the worst outcome, never as skipped, so its
member's fitness is ``-inf`` (the ES ranks it last, see ``discovery.meta.es``), and its score is
NaN, so the number of NaN ``scores`` is the number of diverged agents (the outer loop
logs it as ``nonfinite_returns``).

``fitness_on_levels(population, key, levels) -> (fitness, scores, level_scores)`` does
the same on levels a curriculum chose, and scores each level (each ``[E]``):
``"return"``, the population's mean final reward rate over the members whose agent on
the level stayed finite (NaN if none did), ``"diverged_fraction"``, the fraction of
members whose agent on the level diverged (so divergence is reported, not averaged
away), and, with an A2C antagonist trained on each level for the same lifetime,
``"antagonist_return"`` and ``"algorithmic_regret"`` (GROOVE, Jackson et al., 2023).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from discovery import envs as env_registry
from discovery.agents.a2c import A2CConfig, make_a2c
from discovery.agents.lpg_agent import (
    LPGAgent,
    LPGAgentConfig,
    lifetime_final_return,
    lifetime_final_reward_rate,
    make_lpg_agent,
    sample_lifetime,
)
from discovery.agents.networks import all_finite
from discovery.envs import gridworld
from discovery.envs.levels import LevelSpace, make_level_space
from discovery.envs.registry import GRIDWORLD_PREFIX
from discovery.meta.curricula import score_population
from discovery.objective import Objective

_RANDOM = GRIDWORLD_PREFIX + gridworld.RANDOM_LEVEL
_RANDOM_SUFFIX = "/" + gridworld.RANDOM_LEVEL
HELD_OUT_LAYOUTS = ("dense", "sparse", "long", "longer", "long_dense")


@dataclass(frozen=True)
class LevelsConfig:
    """The levels agents train on during meta-training.

    Attributes:
      train: env names: ``"gridworld/random"`` (a fresh random level per agent),
        ``"gridworld/<layout>"`` names (drawn uniformly), one other registered env, or
        ``"<env>/random"`` for a classic-control env whose physics are drawn from its
        level space (:mod:`discovery.envs.levels`).
      max_size, max_objects: the gridworld shape every training level is padded to.
      held_out: the layouts the discovered objective is evaluated on.
    """

    train: tuple[str, ...] = (_RANDOM,)
    max_size: int = field(default=10, metadata={"min": 2})
    max_objects: int = field(default=5, metadata={"min": 1})
    held_out: tuple[str, ...] = HELD_OUT_LAYOUTS

    def __post_init__(self) -> None:
        if not self.train:
            raise ValueError("levels.train=() must name at least one env")
        grid = [n.startswith(GRIDWORLD_PREFIX) for n in self.train]
        if not all(grid) and len(self.train) > 1:
            raise ValueError(
                f"levels.train={self.train}: several envs must all be gridworlds "
                "(one env shape for every level)"
            )
        for name in self.held_out:
            if name not in gridworld.LAYOUTS:
                known = ", ".join(gridworld.LAYOUTS)
                raise ValueError(f"levels.held_out: unknown layout {name!r}; known: {known}")


def level_space(levels: LevelsConfig) -> LevelSpace | None:
    """The parameterised level space the training levels come from, if there is one:
    the random gridworlds, or ``"<env>/random"`` physics; ``None`` for fixed levels."""
    if levels.train == (_RANDOM,):
        return make_level_space(
            "gridworld", max_size=levels.max_size, max_objects=levels.max_objects
        )
    name = levels.train[0]
    if len(levels.train) == 1 and name.endswith(_RANDOM_SUFFIX) and not name.startswith(
        GRIDWORLD_PREFIX
    ):
        return make_level_space(name[: -len(_RANDOM_SUFFIX)])
    return None


def make_level_sampler(levels: LevelsConfig) -> tuple[Any, Callable[[jax.Array], Any]]:
    """``(env, sample_level)``: the training env and a jittable ``sample_level(key) -> params``."""
    space = level_space(levels)
    if space is not None and not levels.train[0].startswith(GRIDWORLD_PREFIX):
        return space.env, space.sample
    if not levels.train[0].startswith(GRIDWORLD_PREFIX):
        env, params = env_registry.make(levels.train[0])
        return env, lambda key: params
    env = gridworld.GridWorld(levels.max_size, levels.max_objects)
    names = [n[len(GRIDWORLD_PREFIX):] for n in levels.train]
    for name in names:
        if name != gridworld.RANDOM_LEVEL and name not in gridworld.LAYOUTS:
            known = ", ".join([*gridworld.LAYOUTS, gridworld.RANDOM_LEVEL])
            raise ValueError(f"levels.train: unknown gridworld {name!r}; known: {known}")
    random_level = partial(
        gridworld.sample_level, max_size=levels.max_size, max_objects=levels.max_objects
    )
    fixed = [
        gridworld.make_layout(n, levels.max_size, levels.max_objects)
        for n in names
        if n != gridworld.RANDOM_LEVEL
    ]
    if not fixed:
        return env, random_level
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *fixed)
    include_random = gridworld.RANDOM_LEVEL in names

    def sample_level(key: jax.Array) -> Any:
        key_pick, key_random = jax.random.split(key)
        pick = jax.random.randint(key_pick, (), 0, len(fixed) + int(include_random))
        layout = jax.tree.map(lambda x: x[jnp.minimum(pick, len(fixed) - 1)], stacked)
        if not include_random:
            return layout
        drawn = random_level(key_random)
        return jax.tree.map(lambda a, b: jnp.where(pick == len(fixed), a, b), drawn, layout)

    return env, sample_level


@dataclass(frozen=True)
class ObjectiveTaskConfig:
    """How evolution strategies score an objective.

    Attributes:
      agents: agents per population member per generation, each on its own level
        (the levels, keys and lifetimes are shared by the whole population).
      lifetime_min, lifetime_max: lifetimes in updates, log-uniform between (TA-LPG
        uses 10..250; equal values fix it).
      final_fraction: an agent's score is its mean reward per step over this last
        fraction of its lifetime.
    """

    agents: int = field(default=8, metadata={"min": 1})
    lifetime_min: int = field(default=250, metadata={"min": 1})
    lifetime_max: int = field(default=250, metadata={"min": 1})
    final_fraction: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})

    def __post_init__(self) -> None:
        if self.lifetime_min > self.lifetime_max:
            raise ValueError(
                f"lifetime_min={self.lifetime_min} must be <= lifetime_max={self.lifetime_max}"
            )


@dataclass(frozen=True, eq=False)
class ObjectiveTask:
    """A built objective-discovery task for ES (see :func:`make_objective_task`)."""

    config: ObjectiveTaskConfig
    objective: Objective
    agent: LPGAgent
    fitness: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]
    fitness_on_levels: Callable[
        [Any, jax.Array, Any], tuple[jax.Array, jax.Array, dict[str, jax.Array]]
    ]

    def init_params(self, key: jax.Array) -> Any:
        return self.objective.init(key)


def make_objective_task(
    config: ObjectiveTaskConfig,
    objective: Objective,
    agent_config: LPGAgentConfig,
    levels: LevelsConfig,
    antagonist: A2CConfig | None = None,
) -> ObjectiveTask:
    """``fitness(population, key)``: mean final reward rate of each member's agents on
    freshly drawn levels; ``fitness_on_levels(population, key, levels)`` on given ones.

    Both return ``fitness [P]`` and ``scores [P, E]``, the agents' final reward rates
    (NaN where an agent diverged); ``fitness`` is their mean, ``-inf`` for a member with
    any diverged agent. ``fitness_on_levels`` also returns ``level_scores`` (see the
    module docstring); with ``antagonist`` (its ``num_updates`` is set to
    ``lifetime_max``), each level is also scored by algorithmic regret.
    """
    env, sample_level = make_level_sampler(levels)
    probe = sample_level(jax.random.key(0))
    agent = make_lpg_agent(agent_config, env, probe, objective)
    a2c = None
    if antagonist is not None:
        a2c = make_a2c(replace(antagonist, num_updates=config.lifetime_max), env, probe)

    def member_scores(objective_params, keys, level_batch, lifetimes):
        states, metrics = jax.vmap(agent.train, in_axes=(0, None, 0, 0, None))(
            keys, objective_params, level_batch, lifetimes, config.lifetime_max
        )
        rate = lifetime_final_reward_rate(metrics, config.final_fraction)
        # A diverged agent can still collect finite rewards (acting on NaN logits picks
        # some action), so its params are checked too.
        finite = jax.vmap(all_finite)(states.params) & jnp.isfinite(rate)
        return jnp.where(finite, rate, jnp.nan)

    def antagonist_rates(keys, level_batch, lifetimes):
        _, metrics = jax.vmap(lambda k, level, n: a2c.train(k, level, None, n))(
            keys, level_batch, lifetimes
        )
        alive = jnp.arange(config.lifetime_max) < lifetimes[:, None]
        return lifetime_final_reward_rate(metrics | {"alive": alive}, config.final_fraction)

    def fitness_on_levels(
        population: Any, key: jax.Array, level_batch: Any
    ) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
        key_lifetimes, key_agents, key_antagonists = jax.random.split(key, 3)
        lifetimes = jax.vmap(
            lambda k: sample_lifetime(k, config.lifetime_min, config.lifetime_max)
        )(jax.random.split(key_lifetimes, config.agents))
        keys = jax.random.split(key_agents, config.agents)
        scores = jax.vmap(member_scores, in_axes=(0, None, None, None))(
            population, keys, level_batch, lifetimes
        )
        fitness, level_scores = score_population(scores)
        if a2c is not None:
            # The antagonists start once the members are done: two batched network inits
            # (LAPACK QR) running at once can deadlock jaxlib 0.10's CPU thread pool.
            key_antagonists, _ = jax.lax.optimization_barrier((key_antagonists, scores))
            opponent = antagonist_rates(
                jax.random.split(key_antagonists, config.agents), level_batch, lifetimes
            )
            level_scores |= {
                "antagonist_return": opponent,
                "algorithmic_regret": opponent - level_scores["return"],
            }
        return fitness, scores, level_scores

    def fitness(population: Any, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        key_levels, key_rest = jax.random.split(key)
        level_batch = jax.vmap(sample_level)(jax.random.split(key_levels, config.agents))
        fitness, scores, _ = fitness_on_levels(population, key_rest, level_batch)
        return fitness, scores

    return ObjectiveTask(config, objective, agent, fitness, fitness_on_levels)


def make_objective_evaluator(
    objective: Objective,
    agent_config: LPGAgentConfig,
    layouts: tuple[str, ...],
    seeds: int,
    lifetime: int,
    final_fraction: float = 0.1,
) -> Callable[[Any, jax.Array], dict[str, np.ndarray]]:
    """``evaluate(objective_params, key) -> {"return", "reward_rate"}``, each ``[L, seeds]``.

    Fresh agents train with the objective for ``lifetime`` updates on each layout (in
    its own env shape); one program per layout, compiled on the first call. "return" is
    the final episode return (NaN where no episode ended in the final window, as on
    layouts whose episodes outlast it); "reward_rate" the final reward per step.
    """
    programs = []
    for name in layouts:
        env, params = env_registry.make(GRIDWORLD_PREFIX + name)
        agent = make_lpg_agent(agent_config, env, params, objective)

        def run(objective_params, key, agent=agent, params=params):
            keys = jax.random.split(key, seeds)
            _, metrics = jax.vmap(agent.train, in_axes=(0, None, None, None, None))(
                keys, objective_params, params, jnp.int32(lifetime), lifetime
            )
            return {
                "return": lifetime_final_return(metrics, final_fraction),
                "reward_rate": lifetime_final_reward_rate(metrics, final_fraction),
            }

        programs.append(jax.jit(run))

    def evaluate(objective_params: Any, key: jax.Array) -> dict[str, np.ndarray]:
        keys = jax.random.split(key, len(programs))
        per_layout = [jax.device_get(run(objective_params, k)) for run, k in zip(programs, keys)]
        return {name: np.stack([r[name] for r in per_layout]) for name in per_layout[0]}

    return evaluate
