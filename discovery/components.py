"""The component registry: what the CLI, sweeps, the zoo and ``meta_train`` read about
each learnable component, so that none of them switches on a component's kind.

Each entry names the modules its pieces live in (imported on first use, so the CLI
starts without JAX): the meta-training config class, ``build(config) -> BuiltRun``
(:mod:`discovery.pipeline`) and the pre-flight checks; the zoo's recipe and rebuild;
the held-out evaluation against the component's hand-designed baselines; the runner
behind ``discover meta-train`` and its results writer; and the file a run leaves its
discovered params in. A new component is one module plus one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

#: The best-validated params a run leaves beside its ``params_file`` when it selected on
#: validation envs (:mod:`discovery.meta.validation`); the zoo exports them by default.
VALIDATED_PARAMS_FILE = "validated_params.msgpack"


def _load(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


class RecipeError(ValueError):
    """A zoo recipe that does not rebuild its component; ``field`` names the bad field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Component:
    """One learnable component's entry (see the module docstring).

    Attributes:
      kind: the name configs give in ``component:``.
      training: the module with the meta-training config class (``config_name``),
        ``build``, ``check_meta_train``, and the zoo's ``recipe_of`` and ``rebuild``.
      evaluation: the module with ``held_out`` and ``check_evaluation``.
      run_path, results_path: ``discover meta-train``'s runner and results writer.
      params_file: the file a run leaves its discovered params in.
    """

    kind: str
    training: str
    config_name: str
    evaluation: str
    run_path: str
    results_path: str
    params_file: str
    description: str

    @property
    def config_class(self) -> type:
        return _load(f"{self.training}:{self.config_name}")

    def build(self, config: Any) -> Any:
        """``BuiltRun`` of a meta-training ``config`` of this component."""
        return _load(f"{self.training}:build")(config)

    def check_meta_train(self, config: Any) -> None:
        """``discover meta-train``'s checks before any compute (env names, memory);
        ``ConfigError`` naming the field."""
        _load(f"{self.training}:check_meta_train")(config)

    def run(self, config: Any, run_dir: Any, **options: Any) -> dict[str, Any]:
        """``discover meta-train``: run ``config`` with progress, write the results and
        return the summary."""
        return _load(self.run_path)(config, run_dir, **options)

    def write_results(self, result: Any, config: Any) -> dict[str, Any]:
        """Params, plots, held-out evaluation and ``summary.json`` of a finished
        ``meta_train`` result; returns the summary."""
        return _load(self.results_path)(result, config)

    def recipe_of(self, config: Any) -> tuple[dict[str, Any], str]:
        """``(recipe, meta-optimiser)``: how the zoo rebuilds what a run of ``config``
        discovers, and the meta-optimiser that discovered it."""
        return _load(f"{self.training}:recipe_of")(config)

    def rebuild(self, recipe: Any) -> Any:
        """The component a zoo recipe describes (:class:`RecipeError` if it does not)."""
        return _load(f"{self.training}:rebuild")(recipe)

    def check_evaluation(self, entry: Any, config: Any, overrides: Any = ()) -> None:
        """``discover evaluate``'s checks before any compute, for a zoo ``entry``."""
        _load(f"{self.evaluation}:check_evaluation")(entry, config, overrides)

    def held_out(self, entry: Any, config: Any, overrides: Any = (), **options: Any) -> Any:
        """``discover evaluate``: a zoo ``entry`` of this component and its hand-designed
        baselines trained afresh on held-out envs (``discovery.evaluate.HeldOut``);
        ``options`` are the evaluator's keywords (``report``, ``cache``)."""
        return _load(f"{self.evaluation}:held_out")(entry, config, overrides, **options)


COMPONENTS: dict[str, Component] = {
    "drift": Component(
        kind="drift",
        training="discovery.drift_training",
        config_name="MetaTrainConfig",
        evaluation="discovery.drift_evaluation",
        run_path="discovery.meta_run:run_meta_training",
        results_path="discovery.meta_run:write_results",
        params_file="mean_params.msgpack",
        description="a drift function of Mirror Learning (LPO, TA-LPO), by ES or meta-gradients",
    ),
    "objective": Component(
        kind="objective",
        training="discovery.objective_training",
        config_name="ObjectiveMetaTrainConfig",
        evaluation="discovery.objective_evaluation",
        run_path="discovery.objective_run:run_objective_meta_training",
        results_path="discovery.objective_run:write_objective_results",
        params_file="objective_params.msgpack",
        description="a learned objective (LPG, TA-LPG), by meta-gradients or ES",
    ),
    "advantage": Component(
        kind="advantage",
        training="discovery.advantage",
        config_name="AdvantageMetaTrainConfig",
        evaluation="discovery.drift_evaluation",
        run_path="discovery.advantage:run_meta_training",
        results_path="discovery.advantage:write_results",
        params_file="mean_params.msgpack",
        description="a learned transformation of PPO-clip's advantage, by ES or meta-gradients",
    ),
}


def component_of(config: Any) -> Component:
    """The registry entry of a meta-training config (by its ``component`` field)."""
    kind = getattr(config, "component", None)
    if kind not in COMPONENTS:
        raise ValueError(
            f"component: got {kind!r} ({type(config).__name__}); allowed: "
            f"{', '.join(COMPONENTS)}"
        )
    return COMPONENTS[kind]
