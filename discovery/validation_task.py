"""Selection on validation envs for drift meta-training: the config
(:class:`ValidationConfig`) and the task that scores a drift on those envs
(:class:`ValidationTask`), which :mod:`discovery.meta.validation` calls every few
generations to keep the best-validated params instead of ES's noisy population max."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import jax
import numpy as np

from discovery.drift import Drift
from discovery.tasks import (
    DriftTaskConfig,
    check_normalisers,
    make_evaluator,
    measure_baselines,
    normaliser,
)


@dataclass(frozen=True)
class ValidationConfig:
    """Selection on validation envs (:mod:`discovery.meta.validation`): every ``every``
    generations, and after the last, fresh PPO agents train with the current params (the
    ES search mean, or the meta-gradient iterate) on ``envs``, and the params that
    score best are kept (``validated_params.msgpack``), instead of trusting ES's noisy
    population max (``best_params.msgpack``). Keep ``envs`` disjoint from the envs you
    will report results on: a selection made on them would overstate those results.
    ``envs`` may overlap ``task.envs`` (allowed, but then the selection also rewards
    fitting the training envs). Validation agents train with ``task.ppo``,
    ``task.score`` and ``task.final_fraction`` (no per-env learning rates), from keys
    derived from the run's seed and the generation and never used for training.

    Attributes:
      envs: validation environment names (``envs.make``); empty: no validation.
      every: generations between validations (the last generation is always validated).
      seeds: fresh agents per validation env at each validation.
      normalise: per-env normalisation of the validation returns, as ``task.normalise``
        (``"ppo_random"``: random play 0, PPO-clip 1, measured once when the run is
        built; ``"ppo"``, ``"fixed"`` or ``"none"``); the score is the mean over envs
        of each env's normalised mean return (non-finite when an agent diverged, and
        then never selected).
      normalisers: per-env positive divisors for ``normalise: fixed`` (same order as
        ``envs``).
      baseline_seeds: seeds used once to measure PPO-clip's return on each validation
        env (``normalise: ppo_random`` or ``ppo``).
    """

    envs: tuple[str, ...] = ()
    every: int = field(default=5, metadata={"min": 1})
    seeds: int = field(default=4, metadata={"min": 1, "max": 65536})
    normalise: Literal["ppo_random", "ppo", "fixed", "none"] = "ppo_random"
    normalisers: tuple[float, ...] = field(default=(), metadata={"gt": 0.0})
    baseline_seeds: int = field(default=16, metadata={"min": 1, "max": 65536})

    @property
    def enabled(self) -> bool:
        """Whether the run validates (``envs`` names at least one env)."""
        return bool(self.envs)

    def __post_init__(self) -> None:
        for name in ("every", "seeds", "baseline_seeds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: allowed: an int >= 1")
        repeated = sorted({name for name in self.envs if self.envs.count(name) > 1})
        if repeated:
            raise ValueError(
                f"envs={list(self.envs)} names {', '.join(repeated)} more than once; allowed: "
                "each validation env once (use seeds for more agents per env)"
            )
        check_normalisers(self.normalise, self.normalisers, self.envs, "validation env")

    def task(self, task: DriftTaskConfig) -> DriftTaskConfig:
        """The task that scores a drift on the validation envs: ``task``'s inner loop on
        ``envs``, with these seeds and this normalisation."""
        return replace(
            task, envs=self.envs, seeds=self.seeds, env_lr=(), env_adam_b2=(),
            normalise=self.normalise, normalisers=self.normalisers,
            baseline_seeds=self.baseline_seeds,
        )


@dataclass(frozen=True, eq=False)
class ValidationTask:
    """A drift scored on validation envs (:class:`ValidationConfig`), built once per run.

    Attributes:
      config: the validation task (:meth:`ValidationConfig.task`).
      evaluate: ``evaluate(drift_params, key) -> returns [E, seeds]`` of fresh agents
        (:func:`make_evaluator`: one program per env, compiled on the first validation
        and reused by every later one).
      offset, scale: the per-env normalisation (:func:`normaliser`).
      ppo_returns, random_returns: the measured baselines per validation env, or
        ``None`` when the normalisation needs none (``fixed``, ``none``).
    """

    config: DriftTaskConfig
    evaluate: Callable[[Any, jax.Array], np.ndarray]
    offset: np.ndarray
    scale: np.ndarray
    ppo_returns: np.ndarray | None = None
    random_returns: np.ndarray | None = None

    def score(self, drift_params: Any, key: jax.Array) -> tuple[np.float32, dict[str, Any]]:
        """``(score, metrics)`` of fresh agents trained with ``drift_params`` from ``key``
        (:func:`validation_score`)."""
        return validation_score(self.evaluate(drift_params, key), self.offset, self.scale)


def validation_score(
    returns: np.ndarray, offset: np.ndarray, scale: np.ndarray
) -> tuple[np.float32, dict[str, Any]]:
    """The validation score of returns ``[E, seeds]``: per env the normalised mean over
    seeds (``env_scores``; NaN when a seed diverged, as a diverged member's fitness is
    non-finite), then the mean over envs (NaN when any env's is); with the count of
    diverged seeds (``diverged_seeds``)."""
    returns = np.asarray(returns)
    env_scores = ((returns.mean(axis=-1) - offset) / scale).astype(np.float32)
    metrics = {"env_scores": env_scores, "diverged_seeds": int((~np.isfinite(returns)).sum())}
    return np.float32(env_scores.mean()), metrics


def make_validation_task(
    task: DriftTaskConfig, validation: ValidationConfig, drift: Drift, key: jax.Array
) -> ValidationTask:
    """Build the validation task of a run whose task is ``task``: its evaluator and
    normalisation, with PPO-clip's and random play's returns on the validation envs
    measured now from ``key`` when the normalisation needs them (a PPO-clip baseline
    with as many seeds as a validation reuses the validation's compiled programs).

    Raises ``ConfigError`` naming ``validation.normalise`` when the measured baselines
    cannot normalise an env, and ``task.ppo`` when PPO-clip diverged on one.
    """
    config = validation.task(task)
    evaluate = make_evaluator(config, drift, config.seeds)
    ppo_returns = random_returns = None
    if config.normalise in ("ppo_random", "ppo"):
        baseline = evaluate if config.baseline_seeds == config.seeds else None
        ppo_returns, random_returns = measure_baselines(
            config, drift, key, baseline, what=" (a validation env)"
        )
    offset, scale = normaliser(config, ppo_returns, random_returns, section="validation")
    return ValidationTask(config, evaluate, offset, scale, ppo_returns, random_returns)
