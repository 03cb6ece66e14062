"""Discovery: discover reinforcement-learning algorithms in pure JAX.

The public API is re-exported lazily (PEP 562), so importing one component never pulls
in the CLI, plotting or the meta-optimisers::

    from discovery import make_drift, PPOConfig, make_train, meta_train
"""

from __future__ import annotations

import importlib
from typing import Any

# Importing the environments first sets XLA_FLAGS (the jaxlib 0.10 CPU hang fix), the
# compilation cache and the jax.distributed job before anything can start JAX's backend.
from discovery import envs  # noqa: F401

__version__ = "0.1.0"

_EXPORTS = {
    "make_env": ("discovery.envs.registry", "make"),
    "list_envs": ("discovery.envs.registry", "list_envs"),
    "Drift": ("discovery.drift", "Drift"),
    "make_drift": ("discovery.drift", "make_drift"),
    "list_drifts": ("discovery.drift", "list_drifts"),
    "PPOConfig": ("discovery.agents.ppo", "PPOConfig"),
    "PPOHyperparams": ("discovery.agents.ppo", "PPOHyperparams"),
    "make_train": ("discovery.agents.ppo", "make_train"),
    "DriftTaskConfig": ("discovery.tasks", "DriftTaskConfig"),
    "make_drift_task": ("discovery.tasks", "make_drift_task"),
    "ESConfig": ("discovery.meta.es", "ESConfig"),
    "make_es": ("discovery.meta.es", "make_es"),
    "MetaTrainConfig": ("discovery.drift_training", "MetaTrainConfig"),
    "meta_train": ("discovery.pipeline", "meta_train"),
    "MetaTrainResult": ("discovery.pipeline", "MetaTrainResult"),
    "ObjectiveConfig": ("discovery.objective", "ObjectiveConfig"),
    "make_objective": ("discovery.objective", "make_objective"),
    "LPGAgentConfig": ("discovery.agents.lpg_agent", "LPGAgentConfig"),
    "make_lpg_agent": ("discovery.agents.lpg_agent", "make_lpg_agent"),
    "A2CConfig": ("discovery.agents.a2c", "A2CConfig"),
    "make_a2c": ("discovery.agents.a2c", "make_a2c"),
    "MetaGradConfig": ("discovery.meta.metagrad", "MetaGradConfig"),
    "make_metagrad": ("discovery.meta.metagrad", "make_metagrad"),
    "ObjectiveMetaTrainConfig": (
        "discovery.objective_training", "ObjectiveMetaTrainConfig"
    ),
    "LevelSpace": ("discovery.envs.levels", "LevelSpace"),
    "make_level_space": ("discovery.envs.levels", "make_level_space"),
    "CurriculumConfig": ("discovery.meta.curricula", "CurriculumConfig"),
    "make_curriculum": ("discovery.meta.curricula", "make_curriculum"),
    "PLRConfig": ("discovery.meta.plr", "PLRConfig"),
    "ALPGMMConfig": ("discovery.meta.alp_gmm", "ALPGMMConfig"),
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
