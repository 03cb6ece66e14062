"""The IQM and its stratified bootstrap against rliable's definition (Agarwal et al., 2021):
``scipy.stats.trim_mean(x, 0.25)``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import trim_mean

from discovery import stats


def rliable_iqm(values: np.ndarray) -> float:
    """rliable's IQM of the flattened values."""
    return float(trim_mean(np.asarray(values, dtype=np.float64).ravel(), 0.25))


def test_iqm_cuts_whole_values_as_rliable_does():
    values = np.array([0, 0, 0, 10, 10, 10, 10, 10, 10, 10], dtype=float)
    # n = 10 cuts int(2.5) = 2 values from each end: mean of [0, 10 x 5] = 50 / 6.
    assert stats.interquartile_mean(values) == pytest.approx(50 / 6, abs=1e-12)
    assert stats.interquartile_mean(values) == pytest.approx(rliable_iqm(values), abs=1e-12)
    # The order of the values does not matter.
    shuffled = np.random.default_rng(0).permutation(values)
    assert stats.interquartile_mean(shuffled) == pytest.approx(50 / 6, abs=1e-12)


@pytest.mark.parametrize("n", range(1, 51))
def test_iqm_matches_scipy_trim_mean_on_random_sizes(n):
    rng = np.random.default_rng(n)
    # Heavy tails and ties, so a wrong cut shows.
    values = np.round(rng.standard_t(df=2, size=n), 1)
    assert stats.interquartile_mean(values) == pytest.approx(rliable_iqm(values), abs=1e-12)
    # A [E, S] table is flattened, as rliable flattens runs x tasks.
    table = rng.normal(size=(n, 3))
    assert stats.interquartile_mean(table) == pytest.approx(rliable_iqm(table), abs=1e-12)


def test_iqm_drops_missing_runs_and_says_when_there_is_no_data():
    values = np.array([0, 0, 0, 10, 10, 10, 10, 10, 10, 10], dtype=float)
    with_missing = np.concatenate([values, [np.nan, np.inf, -np.inf]])
    # Missing and diverged runs are dropped before trimming: same as without them.
    assert stats.interquartile_mean(with_missing) == pytest.approx(rliable_iqm(values))
    assert np.isfinite(stats.interquartile_mean(np.array([np.nan, 3.0])))
    # Nothing finite: NaN means "no data", for the point and the whole interval.
    assert np.isnan(stats.interquartile_mean(np.array([np.nan, np.nan])))
    assert np.isnan(stats.interquartile_mean(np.array([])))
    empty = stats.stratified_bootstrap_iqm(np.full((2, 3), np.nan), samples=100)
    assert all(np.isnan(v) for v in (empty.estimate, empty.low, empty.high)) and empty.n == 0
    none = stats.bootstrap_mean_ci(np.array([np.nan]), samples=100)
    assert all(np.isnan(v) for v in (none.estimate, none.low, none.high)) and none.n == 0
    some = stats.bootstrap_mean_ci(with_missing, samples=100)
    assert some.n == 10 and some.as_dict()["n"] == 10  # the runs it covers


def test_stratified_bootstrap_resamples_with_rliable_iqm():
    rng = np.random.default_rng(1)
    scores = np.round(rng.standard_t(df=2, size=(3, 6)), 1)
    scores[1, 2] = np.nan  # a missing run is dropped from its environment only
    # 17 runs: int(17 / 4) = 4 cut from each end, where fractional trimming would differ.
    samples, seed = 300, 5
    interval = stats.stratified_bootstrap_iqm(scores, samples=samples, seed=seed)
    rows = [row[np.isfinite(row)] for row in scores]
    assert interval.estimate == pytest.approx(rliable_iqm(np.concatenate(rows)), abs=1e-12)
    # The same resamples, each summarised by scipy's trim_mean: the same percentiles.
    draws = np.random.default_rng(seed)
    resampled = [
        rliable_iqm(np.concatenate([draws.choice(r, size=r.size, replace=True) for r in rows]))
        for _ in range(samples)
    ]
    low, high = np.percentile(resampled, [2.5, 97.5])
    assert interval.low == pytest.approx(low, abs=1e-12)
    assert interval.high == pytest.approx(high, abs=1e-12)
    assert np.isfinite([interval.estimate, interval.low, interval.high]).all()


def test_hierarchical_bootstrap_by_hand():
    """Groups redrawn, then seed columns within each: constant groups give a point CI,
    two groups of different levels span them, and a difference of independent groups."""
    from discovery.stats import hierarchical_difference_ci, hierarchical_mean_ci

    def mean(m):
        return np.nanmean(m, axis=(-2, -1))

    flat = [np.full((2, 3), 1.0), np.full((2, 3), 3.0)]
    interval = hierarchical_mean_ci(flat, mean)
    assert (interval.estimate, interval.low, interval.high, interval.n) == (2.0, 1.0, 3.0, 2)
    one = hierarchical_mean_ci([np.array([[0.0, 2.0]])], mean, samples=4000)
    assert one.estimate == 1.0 and one.low == 0.0 and one.high == 2.0
    difference = hierarchical_difference_ci([np.full((1, 2), 5.0)], flat, mean)
    assert (difference.estimate, difference.low, difference.high) == (3.0, 2.0, 4.0)
    assert np.isnan(hierarchical_mean_ci([], mean).estimate)


def test_runs_to_settle_scales_the_side_of_the_ci_towards_zero():
    Interval, runs_to_settle = stats.Interval, stats.runs_to_settle
    # 0.2 towards zero for an estimate of 0.1: (0.2 / 0.1)^2 = 4 times the runs.
    assert runs_to_settle(Interval(0.1, -0.1, 0.3), 5) == 20
    assert runs_to_settle(Interval(-0.12, -0.21, 0.04), 5) == 9  # 5 x (0.16 / 0.12)^2
    assert runs_to_settle(Interval(0.5, 0.2, 0.9), 5) == 5  # already excludes zero
    assert runs_to_settle(Interval(0.0, -1.0, 1.0), 5) is None
    assert runs_to_settle(Interval(float("nan"), float("nan"), float("nan")), 5) is None
