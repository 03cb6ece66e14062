"""Selection on validation, not on the population max.

ES's best member (``best_params``) is the maximum of a noisy population, selected on the
very agents and envs that scored it; its fitness overstates what it does elsewhere. In
the ES setting of LPO (Lu et al., 2022, "Discovered Policy Optimisation") the discovered
drift is the search mean, judged on envs it never trained on; to choose *which* search
mean to keep without peeking at those test envs, the outer loop here scores the search
mean (ES) or the iterate (meta-gradients) every few generations on a separate set of
validation envs, with fresh agents whose keys are never used for training, and keeps the
params that validated best. The envs, the score and its normalisation are the task's
business (:class:`Validation`); the schedule, the key per generation and the selection
are this module's, so any component validates alike.

The selection is part of the loop's carried state (:class:`ValidationState`), so a
killed and resumed run selects exactly what an uninterrupted one does. A non-finite
validation score (a diverged validation agent) is logged (as ``null``) but never
selected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

#: What a validation score function returns: the scalar score and further metrics (e.g.
#: per-env scores), logged with the prefix ``validation_``.
ScoreFn = Callable[[Any, jax.Array], tuple[Any, dict[str, Any]]]


@struct.dataclass
class ValidationState:
    """The best-validated params so far, their score and the generation they are from.

    Attributes:
      params: the best-validated params (the starting params until a finite score).
      score: their validation score; ``-inf`` before any finite one.
      generation: the logged generation (``metrics.jsonl``'s ``generation``) after whose
        update the params were validated; ``-1`` before any finite score.
    """

    params: Any
    score: jax.Array
    generation: jax.Array


@dataclass(frozen=True, eq=False)
class Validation:
    """How a run validates (built by the component's task; see the module docstring).

    Attributes:
      score: ``score(params, key) -> (score, metrics)``: the params' validation score
        (higher is better; non-finite when a validation agent diverged) and further
        metrics to log. Its programs should be compiled once and reused.
      key: the root of the validation keys (:func:`generation_key`), disjoint from every
        key the run trains with.
      every: validate after every ``every`` generations, and after the last one.
    """

    score: ScoreFn
    key: jax.Array
    every: int


def initial_validation_state(params: Any) -> ValidationState:
    """Nothing validated yet: ``params`` held with score ``-inf`` at generation ``-1``."""
    return ValidationState(params=params, score=jnp.float32(-jnp.inf),
                           generation=jnp.int32(-1))


def is_due(generation: int, every: int, generations: int) -> bool:
    """Whether the params after logged generation ``generation`` (0-based) are validated:
    after every ``every``-th generation and after the run's last."""
    done = generation + 1
    return done % every == 0 or done == generations


def generation_key(key: jax.Array, generation: int) -> jax.Array:
    """The key of the fresh validation agents after logged generation ``generation``: a
    new key each time, so no selection reuses the agents an earlier one saw."""
    return jax.random.fold_in(key, generation)


@jax.jit
def select(
    state: ValidationState, params: Any, score: jax.Array, generation: jax.Array
) -> ValidationState:
    """Keep ``params`` if ``score`` is finite and beats the best so far (ties keep the
    earlier generation); a NaN or infinite score is never selected."""
    better = jnp.isfinite(score) & (score > state.score)
    return ValidationState(
        params=jax.tree.map(lambda new, old: jnp.where(better, new, old), params, state.params),
        score=jnp.where(better, score, state.score),
        generation=jnp.where(better, generation, state.generation),
    )


def validate(
    validation: Validation, state: ValidationState, params: Any, generation: int
) -> tuple[ValidationState, dict[str, Any]]:
    """Score ``params`` (the ones after logged generation ``generation``), update the
    selection, and return the fields to log: ``validation_score``, the score function's
    metrics prefixed ``validation_``, and ``validation_best_score`` and
    ``validation_best_generation`` (``null`` and ``-1`` while nothing finite was seen)."""
    score, metrics = validation.score(params, generation_key(validation.key, generation))
    score = np.float32(score)
    state = select(state, params, jnp.float32(score), jnp.int32(generation))
    logged = {"validation_score": float(score)}
    logged |= {f"validation_{name}": value for name, value in metrics.items()}
    logged |= {
        "validation_best_score": float(state.score),
        "validation_best_generation": int(state.generation),
    }
    return state, logged
