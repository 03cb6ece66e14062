"""The outer loop, once for every component and meta-optimiser: generations, logging,
atomic checkpoints and exact resume.

A generation draws levels from the curriculum (when the task has one), takes one step
of the meta-optimiser on them (:mod:`discovery.meta.optimizers`: an ES generation or a
meta-gradient update), and tells the curriculum what the finished levels scored::

    batch = curriculum.draw(key, curriculum_state, n)
    optimizer_state, metrics, finished = optimizer.step(optimizer_state, batch)
    curriculum_state = curriculum.mark_sampled(curriculum_state, batch, finished.restarted)
    curriculum_state = curriculum.update(curriculum_state, finished, finished.scores[score],
                                         finished.valid)

The whole carried state (:class:`MetaLoopState`) is checkpointed every few generations,
and a resumed run reproduces the uninterrupted one exactly: the checkpoint holds the
optimiser's and the curriculum's states with their keys and the generation counter,
and the metrics log is cut back to the checkpoint's generation. With a
:class:`~discovery.meta.validation.Validation`, the params are also scored on
validation envs every few generations and the best-validated ones are carried (and
checkpointed) with the rest (:class:`ValidatedLoopState`). This module imports nothing
above ``discovery.meta``: tasks plug in through the functions they pass.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from discovery import checkpoint as ckpt
from discovery.files import dumps, write_text_atomic
from discovery.meta.curricula import Curriculum, FinishedLevels, LevelBatch
from discovery.meta.optimizers import MetaOptimizer
from discovery.meta.validation import (
    Validation,
    ValidationState,
    initial_validation_state,
    is_due,
    validate,
)


class MetaTrainingDiverged(RuntimeError):
    """Every population member was non-finite for too many generations in a row."""


@struct.dataclass
class MetaLoopState:
    """Everything the outer loop carries from one generation to the next."""

    optimizer: Any
    curriculum: Any
    generation: jax.Array


@struct.dataclass
class ValidatedLoopState(MetaLoopState):
    """The outer loop's state of a run that validates: also the selection so far (its
    own checkpoint field, so runs without validation checkpoint as before)."""

    validation: ValidationState


def level_keys(generation_key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(key_levels, key_first)``: the curriculum's per-generation draws fold the
    generation into ``key_levels``; ``key_first`` places the first agents."""
    key_levels, key_first = jax.random.split(jax.random.fold_in(generation_key, 1))
    return key_levels, key_first


def initial_state(
    optimizer: MetaOptimizer,
    curriculum: Curriculum | None,
    params: Any,
    key: jax.Array,
    generation_key: jax.Array,
    levels_per_step: int,
) -> MetaLoopState:
    """Generation 0: the optimiser at ``params`` and, for optimisers whose agents
    outlive a generation, its first agents on levels the curriculum drew."""
    curriculum_state = None if curriculum is None else curriculum.init()
    first = None
    if curriculum is not None and optimizer.needs_first_levels:
        _, key_first = level_keys(generation_key)
        first, curriculum_state = curriculum.sample(key_first, curriculum_state, levels_per_step)
    return MetaLoopState(
        optimizer=optimizer.init(key, params, first, generation_key),
        curriculum=curriculum_state,
        generation=jnp.int32(0),
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


def make_meta_step(
    optimizer: MetaOptimizer,
    curriculum: Curriculum | None,
    generation_key: jax.Array,
    levels_per_step: int,
    level_score: str | None,
) -> Callable[[MetaLoopState], tuple[MetaLoopState, dict[str, Any]]]:
    """One generation (see the module docstring); without a curriculum the task's own
    levels are used and nothing is drawn."""
    key_levels, _ = level_keys(generation_key)

    def step(state: MetaLoopState) -> tuple[MetaLoopState, dict[str, Any]]:
        if curriculum is None:
            optimizer_state, metrics, _ = optimizer.step(state.optimizer, None)
            state = state.replace(optimizer=optimizer_state, generation=state.generation + 1)
            return state, metrics
        key = jax.random.fold_in(key_levels, state.generation)
        batch = curriculum.draw(key, state.curriculum, levels_per_step)
        optimizer_state, metrics, finished = optimizer.step(state.optimizer, batch)
        curriculum_state = curriculum.mark_sampled(state.curriculum, batch, finished.restarted)
        curriculum_state = curriculum.update(
            curriculum_state,
            LevelBatch(levels=finished.levels, slots=finished.slots),
            finished.scores[level_score],
            finished.valid,
        )
        metrics = dict(metrics) | finished_level_metrics(finished)
        metrics |= {f"curriculum_{k}": v for k, v in curriculum.stats(curriculum_state).items()}
        state = state.replace(optimizer=optimizer_state, curriculum=curriculum_state,
                              generation=state.generation + 1)
        return state, metrics

    return step


def make_validated_step(
    step: Callable[[Any], tuple[Any, dict[str, Any]]],
    validation: Validation,
    params_of: Callable[[Any], Any],
    generations: int,
) -> Callable[[ValidatedLoopState], tuple[ValidatedLoopState, dict[str, Any]]]:
    """``step``, then, when due (:func:`~discovery.meta.validation.is_due`), the params
    ``params_of(state)`` validated and the selection updated; the validation fields join
    that generation's metrics."""

    def validated_step(state: ValidatedLoopState) -> tuple[ValidatedLoopState, dict[str, Any]]:
        state, metrics = step(state)
        generation = int(state.generation) - 1  # the generation just logged
        if not is_due(generation, validation.every, generations):
            return state, metrics
        selection, logged = validate(validation, state.validation, params_of(state), generation)
        return state.replace(validation=selection), {**metrics, **logged}

    return validated_step


def meta_loop(
    optimizer: MetaOptimizer,
    curriculum: Curriculum | None,
    params: Any,
    run_dir: str | Path,
    *,
    key: jax.Array,
    generation_key: jax.Array,
    levels_per_step: int = 0,
    level_score: str | None = None,
    max_failed_in_a_row: int = 3,
    validation: Validation | None = None,
    **loop_options: Any,
) -> tuple[MetaLoopState, list[dict[str, Any]]]:
    """Run (or resume) ``optimizer`` from ``params`` with ``curriculum`` (``None``: the
    task's fixed levels) through :func:`run_generations`; ``loop_options`` are its
    keywords (generations, checkpointing, resume, logging). With ``validation`` the
    optimiser's params are validated as :func:`make_validated_step` says, and the state
    is a :class:`ValidatedLoopState`."""
    state = initial_state(optimizer, curriculum, params, key, generation_key, levels_per_step)
    step = make_meta_step(optimizer, curriculum, generation_key, levels_per_step, level_score)
    if validation is not None:
        state = ValidatedLoopState(
            optimizer=state.optimizer, curriculum=state.curriculum, generation=state.generation,
            validation=initial_validation_state(params),
        )
        step = make_validated_step(
            step, validation, lambda state: optimizer.params(state.optimizer),
            loop_options["generations"],
        )
    return run_generations(
        step,
        state,
        run_dir,
        record_extras=lambda state: optimizer.record_extras(state.optimizer),
        failed=optimizer.all_failed,
        max_failed_in_a_row=max_failed_in_a_row,
        **loop_options,
    )


def _truncate_metrics(path: Path, generation: int) -> None:
    """Drop logged generations at or after ``generation`` (they will be re-run)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line)["generation"] < generation
    ]
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def _to_python(value: Any) -> Any:
    array = np.asarray(value)
    if array.ndim == 0:
        return array.item()
    return array.tolist()


def run_generations(
    step: Callable[[Any], tuple[Any, dict[str, Any]]],
    state: Any,
    run_dir: str | Path,
    *,
    generations: int,
    checkpoint_every: int,
    keep_checkpoints: int,
    resume: bool = False,
    steps_per_generation: int = 0,
    metadata: dict[str, Any] | None = None,
    record_extras: Callable[[Any], dict[str, Any]] | None = None,
    on_generation: Callable[[dict[str, Any]], None] | None = None,
    stop_after: int | None = None,
    failed: Callable[[dict[str, Any]], bool] | None = None,
    max_failed_in_a_row: int = 3,
    checkpoint: Path | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """The outer loop shared by every meta-optimiser: step, log, checkpoint, resume.

    ``state`` is any pytree with an integer ``generation`` field, and ``step(state) ->
    (state, metrics)`` one generation (an ES generation or a meta-gradient update).
    Each generation appends a record to ``metrics.jsonl``; a checkpoint is written every
    ``checkpoint_every`` generations and at the end. With ``resume`` the latest
    checkpoint (or ``checkpoint``, when given: see :mod:`discovery.run_folder`) is
    restored and the log is cut back to it, so a killed run continues exactly.
    ``record_extras(state)`` adds fields to each record; ``stop_after`` ends this call
    after that many generations, as a kill would (used to test resume).
    ``failed(record)`` marks a generation in which nothing finite was learned; after
    ``max_failed_in_a_row`` such generations :class:`MetaTrainingDiverged` is raised
    (the checkpoints and log written so far stay).
    """
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    run_dir.mkdir(parents=True, exist_ok=True)
    is_writer = jax.process_index() == 0

    if checkpoint is None and checkpoint_dir.exists():
        checkpoint = ckpt.latest_checkpoint(checkpoint_dir)
    if resume and checkpoint is not None:
        state, _ = ckpt.load_checkpoint(checkpoint, state)
    elif not resume and metrics_path.exists():
        metrics_path.unlink()
    start = int(state.generation)
    if is_writer:
        _truncate_metrics(metrics_path, start)

    history: list[dict[str, Any]] = []
    failed_in_a_row = 0
    end = generations if stop_after is None else min(generations, start + stop_after)
    for generation in range(start, end):
        tic = time.perf_counter()
        state, metrics = step(state)
        metrics = jax.device_get(metrics)
        record = {"generation": generation}
        record.update({k: _to_python(v) for k, v in metrics.items()})
        if record_extras is not None:
            record.update(record_extras(state))
        record["wall_time_s"] = time.perf_counter() - tic
        record["env_steps"] = steps_per_generation * (generation + 1)
        history.append(record)
        if is_writer:
            with metrics_path.open("a") as f:
                f.write(dumps(record) + "\n")
            done = generation + 1
            if done % checkpoint_every == 0 or done == generations:
                ckpt.save_checkpoint(
                    checkpoint_dir,
                    done,
                    state,
                    metadata={"generation": done, **(metadata or {})},
                    keep=keep_checkpoints,
                )
        if on_generation is not None:
            on_generation(record)
        failed_in_a_row = failed_in_a_row + 1 if failed is not None and failed(record) else 0
        if failed_in_a_row >= max_failed_in_a_row:
            raise MetaTrainingDiverged(
                f"generations {generation - failed_in_a_row + 1}-{generation}: every "
                f"population member (or meta-gradient chunk) was non-finite (training diverged) in "
                f"{failed_in_a_row} generations in a row; check the inner-loop settings "
                "(learning rate, rollout length, total steps) and the meta-optimiser's step sizes"
            )
    return state, history
