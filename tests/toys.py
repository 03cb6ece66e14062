"""Toy-size meta-training configs, one per registered component, and toy curricula and
meta-gradient settings: what the contract tests run every combination of, and what the
component tests start from. Small enough to compile and run in seconds on CPU; agents
this short learn nothing, so tasks score raw returns (no normaliser)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from discovery.advantage import AdvantageMetaTrainConfig
from discovery.agents.lpg_agent import LPGAgentConfig
from discovery.agents.ppo import PPOConfig
from discovery.drift_training import MetaTrainConfig
from discovery.lpg_task import LevelsConfig, ObjectiveTaskConfig
from discovery.meta.alp_gmm import ALPGMMConfig
from discovery.meta.curricula import CurriculumConfig
from discovery.meta.es import ESConfig
from discovery.meta.metagrad import MetaGradConfig
from discovery.meta.plr import PLRConfig
from discovery.objective import ObjectiveConfig
from discovery.objective_training import ObjectiveMetaTrainConfig
from discovery.tasks import DriftTaskConfig

TINY_PPO = PPOConfig(num_envs=2, num_steps=16, total_timesteps=64, num_minibatches=2,
                     update_epochs=1)
TINY_DRIFT_TASK = DriftTaskConfig(envs=("CartPole-v1",), seeds=1, ppo=TINY_PPO,
                                  normalise="none")

TINY_DRIFT = MetaTrainConfig(
    name="tiny", generations=4, task=TINY_DRIFT_TASK, es=ESConfig(population_size=4),
    checkpoint_every=1,
)

TINY_OBJECTIVE = ObjectiveMetaTrainConfig(
    name="tiny",
    generations=4,
    checkpoint_every=2,
    objective=ObjectiveConfig(prediction_size=4, hidden_size=8),
    agent=LPGAgentConfig(num_envs=4, rollout_len=5),
    levels=LevelsConfig(max_size=4, max_objects=1, held_out=("sparse",)),
    metagrad=MetaGradConfig(
        num_agents=4, num_minibatches=2, unroll=2, lifetime_min=6, lifetime_max=6, lr=1e-3
    ),
    es=ESConfig(population_size=4, sigma_init=0.1),
    es_task=ObjectiveTaskConfig(agents=2, lifetime_min=3, lifetime_max=6),
    eval_seeds=2,
    eval_lifetime=5,
)

TINY_ADVANTAGE = AdvantageMetaTrainConfig(
    name="tiny-lat", generations=2, checkpoint_every=1,
    task=replace(TINY_DRIFT_TASK, baseline_seeds=2),
    es=ESConfig(population_size=4),
)

TOY_CONFIGS: dict[str, Any] = {
    "drift": TINY_DRIFT,
    "objective": TINY_OBJECTIVE,
    "advantage": TINY_ADVANTAGE,
}

# Meta-gradients through PPO updates (drift, advantage): two agents, K=2 updates per
# meta-step, lifetimes of 3 updates, so agents finish and their levels are scored.
TINY_PPO_METAGRAD = MetaGradConfig(num_agents=2, num_minibatches=1, unroll=2, lr=1e-2,
                                   lifetime_min=3, lifetime_max=3)

TOY_CURRICULA: dict[str, CurriculumConfig] = {
    "none": CurriculumConfig(kind="none"),
    "dr": CurriculumConfig(kind="dr"),
    "plr": CurriculumConfig(kind="plr", plr=PLRConfig(buffer_size=4)),
    "alp_gmm": CurriculumConfig(
        kind="alp_gmm", score="return",
        alp_gmm=ALPGMMConfig(fit_every=1, fit_window=2, history_size=8, min_components=1,
                             max_components=2),
    ),
}


def toy_config(component: str, optimizer: str, curriculum: str, generations: int = 2) -> Any:
    """The toy config of ``component`` meta-trained by ``optimizer`` with ``curriculum``
    (raises the config's own ``ValueError`` for a combination it refuses)."""
    config = TOY_CONFIGS[component]
    changes: dict[str, Any] = {"optimizer": optimizer, "curriculum": TOY_CURRICULA[curriculum],
                               "generations": generations,
                               "checkpoint_every": 1}
    if optimizer == "metagrad" and component != "objective":
        changes["metagrad"] = TINY_PPO_METAGRAD
    if curriculum != "none" and component != "objective":
        # One level per seed: two seeds, two levels per generation.
        changes["task"] = replace(config.task, seeds=2)
    return replace(config, **changes)


#: ``discover meta-train configs/lpo_cartpole.yaml`` shrunk to two tiny generations by
#: ``--set`` flags: for tests that run the CLI as its own process.
TINY_META_TRAIN_FLAGS = ["--set", "generations=2", "--set", "checkpoint_every=1",
        "--set", "es.population_size=4", "--set", "task.seeds=1",
        "--set", "task.baseline_seeds=2", "--set", "task.normalise=none",
        "--set", "task.ppo.num_envs=2", "--set", "task.ppo.num_steps=16",
        "--set", "task.ppo.total_timesteps=64", "--set", "task.ppo.num_minibatches=2",
        "--set", "task.ppo.update_epochs=1"]
