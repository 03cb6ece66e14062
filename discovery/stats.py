"""Statistics for reporting RL results: bootstrap confidence intervals and the IQM.

Following Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the
Statistical Precipice": per-environment means get percentile-bootstrap CIs over seeds,
and the aggregate over environments is the interquartile mean (IQM, the mean of the
middle 50% of all runs' normalised scores) with a *stratified* bootstrap CI (seeds are
resampled within each environment). Written in numpy here: the reference library
(rliable) pulls in arch and scipy for what is a few lines of resampling.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval ``[low, high]``."""

    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def bootstrap_mean_ci(
    values: np.ndarray, confidence: float = 0.95, samples: int = 2000, seed: int = 0
) -> Interval:
    """Mean of ``values`` (NaNs dropped) with a percentile-bootstrap CI; NaN if empty."""
    values = _finite(values)
    if values.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    resampled = rng.choice(values, size=(samples, values.size), replace=True).mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Interval(float(values.mean()), float(low), float(high))


def interquartile_mean(values: np.ndarray) -> float:
    """Mean of the middle 50% of the values (NaNs dropped), rliable's IQM.

    With ``n`` values, the lowest and highest ``n / 4`` are trimmed, fractional ends
    weighted, so it interpolates smoothly between the median and the mean.
    """
    values = np.sort(_finite(values))
    n = values.size
    if n == 0:
        return float("nan")
    cut = n / 4
    weights = np.clip(np.minimum(np.arange(1, n + 1) - cut, n - cut - np.arange(n)), 0, 1)
    return float(np.sum(weights * values) / np.sum(weights))


def stratified_bootstrap_iqm(
    scores: np.ndarray, confidence: float = 0.95, samples: int = 2000, seed: int = 0
) -> Interval:
    """IQM of ``scores [E, S]`` (environments x seeds) with a stratified bootstrap CI:
    each resample redraws the seeds of every environment separately."""
    scores = np.asarray(scores, dtype=np.float64)
    rows = [_finite(row) for row in scores]
    rows = [row for row in rows if row.size]
    if not rows:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    estimate = interquartile_mean(np.concatenate(rows))
    resampled = np.empty(samples)
    for index in range(samples):
        drawn = [rng.choice(row, size=row.size, replace=True) for row in rows]
        resampled[index] = interquartile_mean(np.concatenate(drawn))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high))


def bootstrap_curve_band(
    curves: np.ndarray, confidence: float = 0.95, samples: int = 500, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean learning curve over seeds (``curves [S, T]``) and its pointwise bootstrap band.

    NaN entries (no episode ended in that update) are ignored per point.
    """
    curves = np.asarray(curves, dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, curves.shape[0], size=(samples, curves.shape[0]))
    tail = 100 * (1 - confidence) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN points stay NaN
        mean = np.nanmean(curves, axis=0)
        resampled = np.nanmean(curves[picks], axis=1)  # [samples, T]
        low, high = np.nanpercentile(resampled, [tail, 100 - tail], axis=0)
    return mean, low, high
