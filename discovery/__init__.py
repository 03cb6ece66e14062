"""Discovery: discover reinforcement-learning algorithms in pure JAX.

The public API is re-exported lazily (PEP 562), so importing one component never pulls
in the CLI, plotting or the meta-optimisers::

    from discovery import make_drift, PPOConfig, make_train, meta_train
"""

from __future__ import annotations

import importlib
from typing import Any

from envs.xla_flags import configure_xla_flags

configure_xla_flags()

__version__ = "0.1.0"

_EXPORTS = {
    "make_env": ("envs.registry", "make"),
    "list_envs": ("envs.registry", "list_envs"),
    "Drift": ("discovery.drift", "Drift"),
    "make_drift": ("discovery.drift", "make_drift"),
    "list_drifts": ("discovery.drift", "list_drifts"),
    "PPOConfig": ("agents.ppo", "PPOConfig"),
    "PPOHyperparams": ("agents.ppo", "PPOHyperparams"),
    "make_train": ("agents.ppo", "make_train"),
    "DriftTaskConfig": ("discovery.tasks", "DriftTaskConfig"),
    "make_drift_task": ("discovery.tasks", "make_drift_task"),
    "ESConfig": ("meta.es", "ESConfig"),
    "make_es": ("meta.es", "make_es"),
    "MetaTrainConfig": ("meta.loop", "MetaTrainConfig"),
    "meta_train": ("meta.loop", "meta_train"),
    "ObjectiveConfig": ("discovery.objective", "ObjectiveConfig"),
    "make_objective": ("discovery.objective", "make_objective"),
    "LPGAgentConfig": ("agents.lpg_agent", "LPGAgentConfig"),
    "make_lpg_agent": ("agents.lpg_agent", "make_lpg_agent"),
    "A2CConfig": ("agents.a2c", "A2CConfig"),
    "make_a2c": ("agents.a2c", "make_a2c"),
    "MetaGradConfig": ("meta.metagrad", "MetaGradConfig"),
    "make_metagrad": ("meta.metagrad", "make_metagrad"),
    "ObjectiveMetaTrainConfig": ("meta.objective_loop", "ObjectiveMetaTrainConfig"),
    "meta_train_objective": ("meta.objective_loop", "meta_train_objective"),
    "LevelSpace": ("envs.levels", "LevelSpace"),
    "make_level_space": ("envs.levels", "make_level_space"),
    "CurriculumConfig": ("meta.curricula", "CurriculumConfig"),
    "make_curriculum": ("meta.curricula", "make_curriculum"),
    "PLRConfig": ("meta.plr", "PLRConfig"),
    "ALPGMMConfig": ("meta.alp_gmm", "ALPGMMConfig"),
    "ZooEntry": ("discovery.zoo", "ZooEntry"),
    "load_zoo": ("discovery.zoo", "load"),
    "export_run": ("discovery.zoo", "export_run"),
    "EvaluateConfig": ("discovery.evaluate", "EvaluateConfig"),
    "evaluate_component": ("discovery.evaluate", "evaluate_component"),
    "load_sweep": ("discovery.sweep", "load_sweep"),
    "run_sweep": ("discovery.sweep", "run_sweep"),
    "fit_closed_form": ("discovery.interpret", "fit_closed_form"),
    "plot_drift_surface": ("discovery.interpret", "plot_drift_surface"),
    "make_tracker": ("discovery.tracking", "make_tracker"),
    "TrainConfig": ("discovery.train", "TrainConfig"),
    "train_seeds": ("discovery.train", "train_seeds"),
    "load_config": ("discovery.config", "load_config"),
    "ConfigError": ("discovery.config", "ConfigError"),
}

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
