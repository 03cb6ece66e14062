"""One meta-training entry for every learnable component: ``meta_train(config, run_dir)``.

A component's own module turns its config into a :class:`BuiltRun` (the task, the
meta-optimiser, the curriculum and the starting params; see
:mod:`discovery.components`), and one outer loop runs it
(:func:`discovery.meta.loop.meta_loop`), writing ``metrics.jsonl`` and checkpoints with
exact resume. Nothing here depends on which component is being discovered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax

from discovery.config import to_dict
from discovery.meta.curricula import Curriculum
from discovery.meta.loop import MetaLoopState, meta_loop
from discovery.meta.optimizers import MetaOptimizer
from discovery.meta.validation import Validation, ValidationState
from discovery.process_setup import join_distributed_job


@dataclass(frozen=True, eq=False)
class BuiltRun:
    """A meta-training run ready for the outer loop.

    Attributes:
      component: the learnable component (a ``Drift`` or an ``Objective``).
      task: the built task (what scores the component), or ``None`` when the
        meta-optimiser scores it itself (meta-gradients).
      optimizer: the meta-optimiser.
      curriculum: what draws each generation's levels (``None``: the task's own).
      params: the component's starting params.
      key, generation_key: the optimiser's key and the loop's per-generation key.
      levels_per_step: levels drawn per generation.
      level_score: the level score the curriculum learns from.
      steps_per_generation: agent environment steps per generation (for the log).
      metadata: recorded with every checkpoint (e.g. the task's baselines).
      validation: how the run selects its params on validation envs
        (:mod:`discovery.meta.validation`), or ``None`` when it does not validate.
    """

    component: Any
    task: Any
    optimizer: MetaOptimizer
    curriculum: Curriculum | None
    params: Any
    key: jax.Array
    generation_key: jax.Array
    levels_per_step: int = 0
    level_score: str | None = None
    steps_per_generation: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    validation: Validation | None = None


@dataclass
class MetaTrainResult:
    """What a finished (or resumed-and-finished) run leaves behind."""

    run_dir: Path
    state: MetaLoopState
    built: BuiltRun
    history: list[dict[str, Any]]

    @property
    def params(self) -> Any:
        """The discovered params: the ES search mean, or the meta-gradient iterate."""
        return self.built.optimizer.params(self.state.optimizer)

    @property
    def mean_params(self) -> Any:
        """The ES search mean (the same as :attr:`params`)."""
        return self.params

    @property
    def validation(self) -> ValidationState | None:
        """The selection on validation envs (best-validated params, their score and
        generation), or ``None`` when the run does not validate."""
        return getattr(self.state, "validation", None)

    @property
    def validated_params(self) -> Any | None:
        """The best-validated params, or ``None`` when the run does not validate or no
        validation score was finite (then nothing was selected)."""
        selection = self.validation
        if selection is None or int(selection.generation) < 0:
            return None
        return selection.params

    @property
    def task(self) -> Any:
        return self.built.task

    @property
    def component(self) -> Any:
        return self.built.component


def meta_optimizer_name(config: Any) -> str:
    """How the zoo names the meta-optimiser of a run: ``metagrad`` or ``es/<strategy>``."""
    return "metagrad" if config.optimizer == "metagrad" else f"es/{config.es.strategy}"


@functools.lru_cache(maxsize=4)
def _cached_build(config: Any) -> BuiltRun:
    from discovery.components import component_of

    return component_of(config).build(config)


def build_run(config: Any) -> BuiltRun:
    """The run ``config`` describes, built by its component (its task's baselines
    measured, its programs traced on first use).

    A build is a pure function of the config (the same config and seed give the same
    baselines and the same functions), so the last few builds are kept and reused: a
    resumed run, or the same config again in one session (a notebook, a sweep's rerun),
    skips the baselines and reuses the compiled programs.
    """
    try:
        hash(config)
    except TypeError:  # a config built in Python with a list in a field: build afresh
        return _cached_build.__wrapped__(config)
    return _cached_build(config)


def meta_train(
    config: Any,
    run_dir: str | Path,
    resume: bool = False,
    on_generation: Callable[[dict[str, Any]], None] | None = None,
    stop_after: int | None = None,
    checkpoint: Path | None = None,
) -> MetaTrainResult:
    """Run (or resume) the meta-training ``config`` describes, for any component.

    ``on_generation`` receives each generation's logged record (for progress display).
    ``stop_after`` ends the run after that many generations of this call, as a kill
    would (used to test resume). ``checkpoint`` picks the checkpoint a resume loads
    (default: the latest). Every checkpoint records the config that made it.
    """
    join_distributed_job()  # a no-op once the package's import joined
    built = build_run(config)
    state, history = meta_loop(
        built.optimizer,
        built.curriculum,
        built.params,
        run_dir,
        key=built.key,
        generation_key=built.generation_key,
        levels_per_step=built.levels_per_step,
        level_score=built.level_score,
        max_failed_in_a_row=getattr(config, "max_nonfinite_generations", 3),
        validation=built.validation,
        generations=config.generations,
        checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints,
        resume=resume,
        steps_per_generation=built.steps_per_generation,
        metadata={**built.metadata, "config": to_dict(config)},
        on_generation=on_generation,
        stop_after=stop_after,
        checkpoint=checkpoint,
    )
    return MetaTrainResult(Path(run_dir), state, built, history)
