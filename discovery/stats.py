"""Statistics for reporting RL results: small-sample inference at the level of the
independent unit, bootstrap confidence intervals and the IQM.

Claims are inferred over their independent units (a meta-seed for a meta-training
claim, a seed otherwise), of which there are few: Welch's t interval on the units'
means (with its degrees of freedom), the paired t interval where the units share keys,
exact permutation tests up to ten units per arm, and a t-test power calculation for
the units a pre-declared effect needs. A percentile bootstrap over three units spans
about [min, max] and covers 75-81% where it claims 95%, so it is never used for them
(``tests/discovery/test_stats.py`` simulates coverage).

Following Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the
Statistical Precipice": per-environment means get percentile-bootstrap CIs over seeds,
and the aggregate over environments is the interquartile mean (IQM, the mean of the
middle 50% of all runs' normalised scores) with a *stratified* bootstrap CI (seeds are
resampled within each environment). Written in numpy here: the reference library
(rliable) pulls in arch for what is a few lines of resampling. The IQM is exactly
rliable's, ``scipy.stats.trim_mean(x, 0.25)``.

Missing values: non-finite inputs (NaN for a run that produced no score, +-inf for
one that diverged) are dropped before anything is computed, so every summary is over
the finite runs only and is itself finite. Only when *no* input is finite is there
nothing to summarise: then the result is NaN (an :class:`Interval` of NaNs), meaning
"no data", never a number; report writers show it as ``n/a`` (markdown) and ``null``
(JSON), never as ``nan`` (:mod:`discovery.evaluate`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval ``[low, high]``, over ``n`` finite
    values (the units it covers); ``df``: a t interval's degrees of freedom."""

    estimate: float
    low: float
    high: float
    n: int = 0
    df: float | None = None

    def as_dict(self) -> dict[str, float]:
        out = {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n}
        if self.df is not None:
            out["df"] = self.df
        return out

    def text(self, digits: int = 2, signed: bool = False) -> str:
        """``"estimate [low, high]"`` for a table; ``"n/a"`` without data."""
        if not np.isfinite(self.estimate):
            return "n/a"
        form = f"{'+' if signed else ''}.{digits}f"
        return f"{self.estimate:{form}} [{self.low:{form}}, {self.high:{form}}]"


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


NO_DATA = Interval(float("nan"), float("nan"), float("nan"))


def mean_sd_text(values: np.ndarray, digits: int = 2, signed: bool = False) -> str:
    """``"mean (sd s)"`` of the finite ``values`` for a table of units (sd with
    ``ddof=1``, from two values on); ``"n/a"`` without one. A spread, not an interval."""
    finite = _finite(values)
    if not finite.size:
        return "n/a"
    form = f"{'+' if signed else ''}.{digits}f"
    sd = f" (sd {finite.std(ddof=1):.{digits}f})" if finite.size > 1 else ""
    return f"{finite.mean():{form}}{sd}"


def t_interval(values: np.ndarray, confidence: float = 0.95) -> Interval:
    """Mean of the units' ``values`` with Student's t interval (``n - 1`` df, standard
    error with ``ddof=1``): exact for normal units at any ``n >= 2``. Used on paired
    differences, whose distribution is symmetric when both arms share their noise.
    NaN ("no data") below two finite values."""
    from scipy import stats as scipy_stats

    values = _finite(values)
    if values.size < 2:
        return NO_DATA
    mean, sem = float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, values.size - 1)) * sem
    return Interval(mean, mean - half, mean + half, int(values.size), float(values.size - 1))


def paired_interval(treated: np.ndarray, control: np.ndarray,
                    confidence: float = 0.95) -> Interval:
    """``treated - control`` over units that share keys (the same seeds, levels or
    meta-seeds in both arms, aligned by index): :func:`t_interval` of the differences,
    over the units where both are finite."""
    treated, control = np.asarray(treated, np.float64), np.asarray(control, np.float64)
    if treated.shape != control.shape:
        raise ValueError(f"paired arms differ in shape: {treated.shape} vs {control.shape}")
    return t_interval(treated - control, confidence)


def welch_interval(treated: np.ndarray, control: np.ndarray,
                   confidence: float = 0.95) -> Interval:
    """``mean(treated) - mean(control)`` for independent units, with Welch's t interval
    (unequal variances; Welch-Satterthwaite degrees of freedom in ``df``). NaN ("no
    data") unless each arm has two finite units; ``n`` counts both arms' units."""
    from scipy import stats as scipy_stats

    treated, control = _finite(treated), _finite(control)
    if treated.size < 2 or control.size < 2:
        return NO_DATA
    va = treated.var(ddof=1) / treated.size
    vb = control.var(ddof=1) / control.size
    estimate = float(treated.mean() - control.mean())
    se = float(np.sqrt(va + vb))
    if se == 0:
        return Interval(estimate, estimate, estimate, int(treated.size + control.size))
    df = float((va + vb) ** 2 / (va**2 / (treated.size - 1) + vb**2 / (control.size - 1)))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Interval(estimate, estimate - half, estimate + half,
                    int(treated.size + control.size), df)


#: Exact permutation tests enumerate every relabelling up to this many units per arm.
EXACT_UNITS = 10


def permutation_p(treated: np.ndarray, control: np.ndarray) -> float:
    """Two-sided exact permutation p-value of ``mean(treated) - mean(control)`` for
    independent units: the share of all ``C(n_t + n_c, n_t)`` relabellings whose
    difference is at least as large in magnitude as the observed one. With 3 units per
    arm the smallest p is 2/20 = 0.10. NaN without a unit in each arm, or beyond
    :data:`EXACT_UNITS` per arm."""
    import itertools

    treated, control = _finite(treated), _finite(control)
    if not (1 <= treated.size <= EXACT_UNITS and 1 <= control.size <= EXACT_UNITS):
        return float("nan")
    pooled = np.concatenate([treated, control])
    total, k = pooled.sum(), treated.size
    observed = abs(treated.mean() - control.mean())
    sums = np.array([pooled[list(c)].sum() for c in itertools.combinations(range(pooled.size), k)])
    differences = np.abs(sums / k - (total - sums) / control.size)
    return float(np.mean(differences >= observed - 1e-12 * max(1.0, observed)))


def sign_flip_p(differences: np.ndarray) -> float:
    """Two-sided exact paired permutation p-value: the share of all ``2^n`` sign flips of
    the units' differences whose mean is at least as large in magnitude as observed.
    NaN without a finite difference or beyond ``2 x EXACT_UNITS`` units."""
    import itertools

    differences = _finite(differences)
    if not 1 <= differences.size <= 2 * EXACT_UNITS:
        return float("nan")
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=differences.size)))
    means = np.abs(signs @ differences) / differences.size
    observed = abs(differences.mean())
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))


def units_for_power(effect: float, sd: float, paired: bool = False, alpha: float = 0.05,
                    power: float = 0.8, most: int = 100_000) -> int | None:
    """Units (per arm; pairs when ``paired``) that a two-sided t-test at level ``alpha``
    needs to detect a true difference ``effect`` with probability ``power``, when the
    units' standard deviation is ``sd`` (of each arm, or of the paired differences):
    the smallest ``n`` whose power under the noncentral t reaches ``power``. ``None``
    when ``effect`` or ``sd`` is not a positive finite number, or past ``most``."""
    from scipy import stats as scipy_stats

    if not (np.isfinite(effect) and np.isfinite(sd) and effect != 0 and sd > 0):
        return None

    def achieved(n: int) -> float:
        if paired:
            df, shift = n - 1, abs(effect) / (sd / np.sqrt(n))
        else:
            df, shift = 2 * n - 2, abs(effect) / (sd * np.sqrt(2 / n))
        critical = scipy_stats.t.ppf(1 - alpha / 2, df)
        return float(scipy_stats.nct.sf(critical, df, shift)
                     + scipy_stats.nct.cdf(-critical, df, shift))

    low, high = 2, 2
    while achieved(high) < power:
        low, high = high, high * 2
        if high > most:
            return None
    while low < high:  # the smallest n with enough power
        middle = (low + high) // 2
        if achieved(middle) >= power:
            high = middle
        else:
            low = middle + 1
    return high


def resampled_means(values: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """``[samples]`` means of ``values`` resampled with replacement (one bootstrap)."""
    return rng.choice(values, size=(samples, values.size), replace=True).mean(axis=1)


def percentile_interval(
    point: float, resampled: np.ndarray, confidence: float = 0.95, n: int = 0
) -> Interval:
    """``point`` with the percentile CI of its finite bootstrap ``resampled`` values;
    every field NaN when ``point`` is not finite or no resample is ("no data")."""
    resampled = resampled[np.isfinite(resampled)]
    if not (np.isfinite(point) and resampled.size):
        return Interval(float("nan"), float("nan"), float("nan"))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high), n)


def bootstrap_mean_ci(
    values: np.ndarray, confidence: float = 0.95, samples: int = 2000, seed: int = 0
) -> Interval:
    """Mean of ``values`` with a percentile-bootstrap CI over them.

    Non-finite values are dropped first; with no finite value at all every field of
    the interval is NaN ("no data").
    """
    values = _finite(values)
    if values.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    return percentile_interval(float(values.mean()), resampled_means(values, samples, rng),
                               confidence, int(values.size))


def _trimmed_mean(sorted_values: np.ndarray) -> float:
    """``scipy.stats.trim_mean(x, 0.25)`` of already sorted, finite, non-empty values."""
    n = sorted_values.size
    cut = n // 4  # scipy's int(0.25 * n): whole values only, never fractions of one
    return float(np.mean(sorted_values[cut : n - cut]))


def interquartile_mean(values: np.ndarray) -> float:
    """The interquartile mean as rliable computes it (Agarwal et al., 2021):
    ``scipy.stats.trim_mean(x, 0.25)`` over the flattened values.

    With ``n`` values, ``int(n / 4)`` whole values are cut from each end of the sorted
    values and the rest are averaged (no fractional weights: with ``n = 10``, two are
    cut from each end, and ``[0, 0, 0, 10, ..., 10]`` gives 8.33, not 9). Below four
    values nothing is cut: the IQM is the mean.

    Non-finite values (missing or diverged runs) are dropped first and ``n`` counts
    the finite ones. Returns NaN, meaning "no data", only if no value is finite.
    """
    values = np.sort(_finite(values))
    if values.size == 0:
        return float("nan")
    return _trimmed_mean(values)


def stratified_bootstrap_iqm(
    scores: np.ndarray, confidence: float = 0.95, samples: int = 2000, seed: int = 0
) -> Interval:
    """IQM of ``scores [E, S]`` (environments x seeds) with a stratified bootstrap CI:
    each resample redraws the seeds of every environment separately (Agarwal et al.,
    2021), and the IQM of every resample is :func:`interquartile_mean`'s.

    Non-finite scores are dropped per environment (an environment left with none
    takes no part); with no finite score at all, every field is NaN ("no data").
    """
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
    return Interval(estimate, float(low), float(high), int(sum(row.size for row in rows)))


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


def summarise_over_seeds(values: np.ndarray) -> dict[str, list]:
    """Per row of ``values [L, S]`` (e.g. layouts or envs x seeds), over the seeds with a
    finite value: ``mean``, standard error ``sem`` (it needs two seeds), how many seeds
    that is (``seeds_covered``; the rest diverged or had no score), and ``per_seed``.
    A missing value is ``None`` (strict JSON), never NaN.
    """
    values = np.asarray(values, np.float64)
    means, sems, counts = [], [], []
    for row in values:
        finite = _finite(row)
        counts.append(int(finite.size))
        means.append(float(finite.mean()) if finite.size else None)
        sems.append(float(finite.std(ddof=1) / np.sqrt(finite.size)) if finite.size > 1
                    else None)
    return {
        "mean": means,
        "sem": sems,
        "seeds_covered": counts,
        "per_seed": [[float(x) if np.isfinite(x) else None for x in row] for row in values],
    }


# --------------------------------------------------------------------------------------
# Paired comparisons across environments, probability of improvement and performance
# profiles (Agarwal et al., 2021, "Deep Reinforcement Learning at the Edge of the
# Statistical Precipice"): written here in numpy, not taken from rliable.

#: :func:`stratified_sign_flip_p` enumerates every sign flip up to this many units in all
#: (2^16 = 65536 flips), and draws random flips beyond.
EXACT_SIGN_FLIP_UNITS = 16


def _finite_rows(rows: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each row's finite values (a row may come out empty)."""
    return [_finite(row) for row in rows]


def stratified_paired_interval(rows: Sequence[np.ndarray], confidence: float = 0.95) -> Interval:
    """Mean over strata (environments) of each stratum's mean paired difference, with a t
    interval: its variance is ``sum_e s_e^2 / n_e / E^2`` and its degrees of freedom
    Welch-Satterthwaite's. ``rows[e]`` holds stratum ``e``'s per-unit differences; a
    stratum with fewer than two finite ones takes no part. With one stratum this is
    :func:`t_interval`. ``n`` counts the units of the strata that take part."""
    from scipy import stats as scipy_stats

    rows = [row for row in _finite_rows(rows) if row.size >= 2]
    if not rows:
        return NO_DATA
    count = len(rows)
    estimate = float(np.mean([row.mean() for row in rows]))
    variances = np.array([row.var(ddof=1) / row.size for row in rows]) / count**2
    units = int(sum(row.size for row in rows))
    se = float(np.sqrt(variances.sum()))
    if se == 0:
        return Interval(estimate, estimate, estimate, units)
    dofs = np.array([row.size - 1 for row in rows], dtype=np.float64)
    df = float(variances.sum() ** 2 / np.sum(variances**2 / dofs))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Interval(estimate, estimate - half, estimate + half, units, df)


def stratified_sign_flip_p(rows: Sequence[np.ndarray], samples: int = 10_000,
                           seed: int = 0) -> tuple[float, str]:
    """Two-sided paired permutation p-value of the mean over strata of each stratum's mean
    difference: under the null each unit's difference is as likely to have either sign,
    so the units' signs are flipped independently. Exact (every flip) up to
    :data:`EXACT_SIGN_FLIP_UNITS` units, else Monte Carlo over ``samples`` random flips
    with ``(1 + hits) / (1 + samples)``, which never understates p. Returns ``(p,
    "exact" | "monte carlo")``; ``(NaN, "no data")`` without a finite difference. With
    one stratum the exact p is :func:`sign_flip_p`'s."""
    rows = [row for row in _finite_rows(rows) if row.size]
    if not rows:
        return float("nan"), "no data"
    values = np.concatenate(rows)
    weights = np.concatenate([np.full(row.size, 1.0 / (row.size * len(rows))) for row in rows])
    weighted = values * weights
    observed = abs(weighted.sum())
    tolerance = 1e-12 * max(1.0, observed)
    if values.size <= EXACT_SIGN_FLIP_UNITS:
        flips = ((np.arange(2**values.size)[:, None] >> np.arange(values.size)) & 1)
        statistics = np.abs((1.0 - 2.0 * flips) @ weighted)
        return float(np.mean(statistics >= observed - tolerance)), "exact"
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, samples, 4096):
        size = min(4096, samples - start)
        signs = rng.choice((-1.0, 1.0), size=(size, values.size))
        hits += int(np.sum(np.abs(signs @ weighted) >= observed - tolerance))
    return float((1 + hits) / (1 + samples)), "monte carlo"


def _improvement_probability(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``P(X > Y) + P(X = Y) / 2`` of the rows of ``x [B, n]`` against those of ``y [B, m]``:
    the Mann-Whitney U of each row pair over ``n m``, from mid-ranks of the pooled row."""
    from scipy.stats import rankdata

    n, m = x.shape[-1], y.shape[-1]
    ranks = rankdata(np.concatenate([x, y], axis=-1), axis=-1)
    return (ranks[..., :n].sum(axis=-1) - n * (n + 1) / 2) / (n * m)


def probability_of_improvement(treated: Sequence[np.ndarray],
                               control: Sequence[np.ndarray]) -> float:
    """Probability of improvement (Agarwal et al., 2021): per environment the chance that
    a run of ``treated`` scores higher than one of ``control`` (ties count a half; the
    Mann-Whitney U over ``n m``), averaged over the environments where both have a
    finite run. NaN ("no data") where none has."""
    pairs = [(x, y) for x, y in zip(_finite_rows(treated), _finite_rows(control))
             if x.size and y.size]
    if not pairs:
        return float("nan")
    return float(np.mean([_improvement_probability(x[None], y[None])[0] for x, y in pairs]))


def stratified_bootstrap_probability_of_improvement(
    treated: Sequence[np.ndarray], control: Sequence[np.ndarray], confidence: float = 0.95,
    samples: int = 2000, seed: int = 0,
) -> Interval:
    """:func:`probability_of_improvement` with a stratified percentile-bootstrap CI: each
    resample redraws both methods' runs within every environment (Agarwal et al., 2021).
    ``n`` counts the environments it averages over."""
    pairs = [(x, y) for x, y in zip(_finite_rows(treated), _finite_rows(control))
             if x.size and y.size]
    if not pairs:
        return NO_DATA
    rng = np.random.default_rng(seed)
    resampled = np.zeros(samples)
    for x, y in pairs:
        xs = x[rng.integers(0, x.size, size=(samples, x.size))]
        ys = y[rng.integers(0, y.size, size=(samples, y.size))]
        resampled += _improvement_probability(xs, ys) / len(pairs)
    return percentile_interval(probability_of_improvement(treated, control), resampled,
                               confidence, len(pairs))


def _fraction_above(runs: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Per row of ``runs [B, n]``, the fraction of its runs above each ``tau``: ``[B, T]``."""
    ordered = np.sort(runs, axis=-1)
    below = np.stack([np.searchsorted(row, taus, side="right") for row in ordered])
    return 1.0 - below / runs.shape[-1]


def performance_profile(scores: Sequence[np.ndarray], taus: np.ndarray) -> np.ndarray:
    """Performance profile (Agarwal et al., 2021): for each threshold ``tau``, the
    fraction of runs whose (normalised) score exceeds it, averaged over environments so
    that each counts once however many of its runs are finite (the pooled fraction when
    all have the same number of runs). ``[T]``; NaN without a finite run."""
    rows = [row for row in _finite_rows(scores) if row.size]
    taus = np.asarray(taus, dtype=np.float64)
    if not rows:
        return np.full(taus.shape, np.nan)
    return np.mean([_fraction_above(row[None], taus)[0] for row in rows], axis=0)


def stratified_bootstrap_profile(
    scores: Sequence[np.ndarray], taus: np.ndarray, confidence: float = 0.95,
    samples: int = 2000, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`performance_profile` with a pointwise stratified percentile-bootstrap band
    (runs redrawn within each environment): ``(profile, low, high)``, each ``[T]``."""
    rows = [row for row in _finite_rows(scores) if row.size]
    taus = np.asarray(taus, dtype=np.float64)
    point = performance_profile(rows, taus)
    if not rows:
        return point, point.copy(), point.copy()
    rng = np.random.default_rng(seed)
    resampled = np.zeros((samples, taus.size))
    for row in rows:
        drawn = row[rng.integers(0, row.size, size=(samples, row.size))]
        resampled += _fraction_above(drawn, taus) / len(rows)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail], axis=0)
    return point, low, high
