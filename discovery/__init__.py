"""Discovery: discover reinforcement-learning algorithms in pure JAX.

The public API, everything the notebooks use, is exported here by role:

- environments: ``make_env`` by name, level spaces, the gridworld;
- agents: PPO (the drift is an argument), the LPG agent, A2C, seed-vmapped training;
- components: drifts, learned objectives and advantage transformations, the things
  being discovered, and their registry;
- meta-training: run configs and tasks, ``meta_train``, ES, meta-gradients, curricula;
- evaluation and statistics: held-out evaluation, reports, bootstrap intervals;
- files: configs, params and tracking;
- plots; zoo (discovered components); reproduction of the seed papers' claims; sweeps;
  interpretation (closed-form fits).

It is re-exported lazily (PEP 562), so importing one component never pulls in the CLI,
plotting or the meta-optimisers::

    from discovery import make_drift, PPOConfig, make_train, meta_train
"""

from __future__ import annotations

import importlib
from typing import Any

# First of all, before anything can start JAX's backend: one CPU device per core, the
# compilation cache and the jax.distributed job.
from discovery.process_setup import setup_process

setup_process()

__version__ = "0.1.0"

# Role -> {public name: (module where the object is defined, its name there)}.
_ROLES: dict[str, dict[str, tuple[str, str]]] = {
    # Environments by name, the level spaces curricula sample, the gridworld of LPG/GROOVE.
    "environments": {
        "make_env": ("discovery.envs.registry", "make"),
        "list_envs": ("discovery.envs.registry", "list_envs"),
        "LevelSpace": ("discovery.envs.levels", "LevelSpace"),
        "make_level_space": ("discovery.envs.levels", "make_level_space"),
        "GridWorld": ("discovery.envs.gridworld", "GridWorld"),
        "render_gridworld": ("discovery.envs.gridworld", "render"),
    },
    # Agents that learn with a component, and plain seed-vmapped training runs.
    "agents": {
        "PPOConfig": ("discovery.agents.ppo", "PPOConfig"),
        "PPOHyperparams": ("discovery.agents.ppo", "PPOHyperparams"),
        "make_train": ("discovery.agents.ppo", "make_train"),
        "make_ppo_learner": ("discovery.agents.ppo_learner", "make_ppo_learner"),
        "LPGAgentConfig": ("discovery.agents.lpg_agent", "LPGAgentConfig"),
        "make_lpg_agent": ("discovery.agents.lpg_agent", "make_lpg_agent"),
        "A2CConfig": ("discovery.agents.a2c", "A2CConfig"),
        "make_a2c": ("discovery.agents.a2c", "make_a2c"),
        "TrainConfig": ("discovery.train", "TrainConfig"),
        "train_seeds": ("discovery.train", "train_seeds"),
    },
    # What is discovered: drifts (PPO's D(r, A)), learned objectives (LPG) and learned
    # advantage transformations (PPO-clip on f(A)); the registry that names them.
    "components": {
        "COMPONENTS": ("discovery.components", "COMPONENTS"),
        "Drift": ("discovery.drift", "Drift"),
        "make_drift": ("discovery.drift", "make_drift"),
        "list_drifts": ("discovery.drift", "list_drifts"),
        "ObjectiveConfig": ("discovery.objective", "ObjectiveConfig"),
        "make_objective": ("discovery.objective", "make_objective"),
        "make_advantage_drift": ("discovery.advantage", "make_advantage_drift"),
        "make_advantage_transform": ("discovery.advantage", "make_advantage_transform"),
    },
    # Meta-training: run configs, tasks, the one pipeline, meta-optimisers, curricula.
    "meta-training": {
        "MetaTrainConfig": ("discovery.drift_training", "MetaTrainConfig"),
        "ObjectiveMetaTrainConfig": ("discovery.objective_training", "ObjectiveMetaTrainConfig"),
        "AdvantageMetaTrainConfig": ("discovery.advantage", "AdvantageMetaTrainConfig"),
        "DriftTaskConfig": ("discovery.tasks", "DriftTaskConfig"),
        "make_drift_task": ("discovery.tasks", "make_drift_task"),
        "ObjectiveTaskConfig": ("discovery.lpg_task", "ObjectiveTaskConfig"),
        "LevelsConfig": ("discovery.lpg_task", "LevelsConfig"),
        "meta_train": ("discovery.pipeline", "meta_train"),
        "MetaTrainResult": ("discovery.pipeline", "MetaTrainResult"),
        "ESConfig": ("discovery.meta.es", "ESConfig"),
        "make_es": ("discovery.meta.es", "make_es"),
        "MetaGradConfig": ("discovery.meta.metagrad", "MetaGradConfig"),
        "make_metagrad": ("discovery.meta.metagrad", "make_metagrad"),
        "CurriculumConfig": ("discovery.meta.curricula", "CurriculumConfig"),
        "make_curriculum": ("discovery.meta.curricula", "make_curriculum"),
        "PLRConfig": ("discovery.meta.plr", "PLRConfig"),
        "ALPGMMConfig": ("discovery.meta.alp_gmm", "ALPGMMConfig"),
    },
    # Evaluation on held-out settings, its reports, and the statistics behind them.
    "evaluation": {
        "EvaluateConfig": ("discovery.evaluate", "EvaluateConfig"),
        "evaluate_component": ("discovery.evaluate", "evaluate_component"),
        "markdown_table": ("discovery.evaluate_report", "markdown_table"),
        "write_report": ("discovery.evaluate_report", "write_report"),
        "make_objective_evaluator": ("discovery.lpg_task", "make_objective_evaluator"),
        "evaluate_held_out": ("discovery.objective_run", "evaluate_held_out"),
        "a2c_baseline": ("discovery.objective_run", "a2c_baseline"),
        "write_objective_results": ("discovery.objective_run", "write_objective_results"),
        "bootstrap_curve_band": ("discovery.stats", "bootstrap_curve_band"),
    },
    # Files: YAML configs, msgpack params, metric tracking.
    "files": {
        "load_config": ("discovery.config", "load_config"),
        "save_config": ("discovery.config", "save_config"),
        "ConfigError": ("discovery.config", "ConfigError"),
        "save_params": ("discovery.meta_run", "save_params"),
        "load_params": ("discovery.meta_run", "load_params"),
        "make_tracker": ("discovery.tracking", "make_tracker"),
    },
    "plots": {
        "plot_drifts": ("discovery.plots", "plot_drifts"),
        "plot_curves": ("discovery.evaluate_report", "plot_curves"),
    },
    # The zoo of discovered components: load by name or folder, export a finished run.
    "zoo": {
        "ZooEntry": ("discovery.zoo", "ZooEntry"),
        "load_zoo": ("discovery.zoo", "load"),
        "export_run": ("discovery.zoo", "export_run"),
    },
    # The seed papers' claims, each run end to end in resumable pieces (RESULTS.md).
    "reproduction": {
        "list_claims": ("discovery.reproduce", "list_claims"),
        "claim_pieces": ("discovery.reproduce", "claim_pieces"),
        "reproduce_claim": ("discovery.reproduce", "reproduce"),
    },
    "sweeps": {
        "load_sweep": ("discovery.sweep", "load_sweep"),
        "run_sweep": ("discovery.sweep", "run_sweep"),
    },
    # Reading a learned drift: its surface over (r, A) and a sparse closed form.
    "interpretation": {
        "plot_drift_surface": ("discovery.interpret", "plot_drift_surface"),
        "fit_closed_form": ("discovery.interpret", "fit_closed_form"),
        "fit_learned_drift": ("discovery.interpret", "fit_learned_drift"),
    },
}

_EXPORTS = {name: target for exports in _ROLES.values() for name, target in exports.items()}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'discovery' has no attribute {name!r}")
    module_name, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
