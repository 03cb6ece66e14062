"""The one vocabulary every claim's verdict is drawn from, and the rule that picks it.

A claim states the direction the paper claims, the smallest effect that would count as
the paper's (declared in the claim module before any run), and its preconditions. Over
its independent units (meta-seeds, or seeds), the difference in the claimed direction
gets a 95% t interval (Welch's, or paired) and, up to ten units per arm, an exact
permutation p-value. Then, in this order:

* **untestable at this scale**: a precondition failed (named): e.g. the meta-optimiser
  never improved its own validation score, or every env left is at a baseline's
  ceiling. Nothing about the paper's claim follows.
* **holds**: the interval lies above zero (and the permutation p is below 0.05 where it
  applies: with 3 units per arm it cannot be, its smallest value being 0.10).
* **contradicted**: the interval lies below zero, the permutation p agreeing: the
  opposite of the claim, significantly.
* **not supported**: the interval covers zero but lies below the declared effect: an
  effect of the paper's size is excluded, though no effect is not.
* **inconclusive**: the interval covers both zero and the declared effect; the verdict
  says how many units per arm a t-test would need (80% power, two-sided 5%) to detect
  the declared effect at the measured spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from discovery.stats import (
    Interval,
    paired_interval,
    permutation_p,
    sign_flip_p,
    units_for_power,
    welch_interval,
)

HOLDS = "holds"
CONTRADICTED = "contradicted"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
UNTESTABLE = "untestable at this scale"
PENDING = "pending"
KINDS = (HOLDS, CONTRADICTED, NOT_SUPPORTED, INCONCLUSIVE, UNTESTABLE, PENDING)

#: The level of every test, and the confidence of every interval, in a verdict.
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """A claim's difference ``treated - control`` over its units, in the claimed
    direction (positive supports the claim), with what the verdict is decided on.

    ``interval``: the 95% t interval; ``p``: the exact permutation p (NaN where it does
    not apply); ``sd``: the units' standard deviation (pooled arm sd, or that of the
    paired differences); ``units``: units per arm; ``paired``: whether units share keys.
    """

    interval: Interval
    p: float
    sd: float
    units: int
    paired: bool
    unit: str = "meta-seed"

    def text(self, digits: int = 2) -> str:
        """``+0.41, 95% CI [-0.38, +1.20] (Welch, df 2.3), exact permutation p = 0.10``."""
        ci = self.interval
        if not math.isfinite(ci.estimate):
            return "no finite difference"
        how = "paired t" if self.paired else "Welch"
        df = f", df {ci.df:.1f}" if ci.df is not None else ""
        p = (f", exact permutation p = {self.p:.2f}" if self.p >= 0.01 else
             f", exact permutation p = {self.p:.3f}") if math.isfinite(self.p) else ""
        form = f"+.{digits}f"
        return (f"{ci.estimate:{form}}, 95% CI [{ci.low:{form}}, {ci.high:{form}}] ({how}{df}, "
                f"{self.units} {self.unit}s per arm){p}")


def compare(treated: np.ndarray, control: np.ndarray, paired: bool,
            unit: str = "meta-seed") -> Comparison:
    """The :class:`Comparison` of two arms' per-unit scores (aligned by index when
    ``paired``; non-finite units are dropped, pairwise when paired)."""
    treated, control = np.asarray(treated, np.float64), np.asarray(control, np.float64)
    if paired:
        both = np.isfinite(treated) & np.isfinite(control)
        differences = treated[both] - control[both]
        interval = paired_interval(treated[both], control[both])
        p = sign_flip_p(differences)
        sd = float(differences.std(ddof=1)) if differences.size > 1 else float("nan")
        return Comparison(interval, p, sd, int(differences.size), True, unit)
    treated, control = treated[np.isfinite(treated)], control[np.isfinite(control)]
    interval = welch_interval(treated, control)
    p = permutation_p(treated, control)
    if treated.size > 1 and control.size > 1:
        sd = float(np.sqrt((treated.var(ddof=1) + control.var(ddof=1)) / 2))
    else:
        sd = float("nan")
    return Comparison(interval, p, sd, int(min(treated.size, control.size)), False, unit)


@dataclass(frozen=True)
class Verdict:
    """One verdict: its ``kind`` (one of :data:`KINDS`) and the sentence that says why."""

    kind: str
    reason: str
    failed: tuple[str, ...] = field(default=())

    def text(self) -> str:
        return f"{self.kind}: {self.reason}"


def decide(comparison: Comparison, effect: float, claim: str,
           failed_preconditions: tuple[str, ...] | list[str] = ()) -> Verdict:
    """The verdict of ``comparison`` (in the claimed direction) against the declared
    smallest effect ``effect > 0``, by the rule in this module's docstring."""
    if effect <= 0:
        raise ValueError(f"effect={effect!r}: allowed: a positive smallest effect of interest")
    failed = tuple(failed_preconditions)
    if failed:
        return Verdict(UNTESTABLE, "precondition failed: " + "; ".join(failed) +
                       f". Nothing follows for the claim that {claim}.", failed)
    ci = comparison.interval
    measured = comparison.text()
    if not math.isfinite(ci.estimate):
        return Verdict(INCONCLUSIVE, f"no finite difference to test ({measured}).")
    significant = not (math.isfinite(comparison.p) and comparison.p >= ALPHA)
    exact = (f"the exact permutation test cannot reach p < {ALPHA:g} with "
             f"{comparison.units} {comparison.unit}s per arm")
    if ci.low > 0 and significant:
        return Verdict(HOLDS, f"{claim} ({measured}).")
    if ci.high < 0 and significant:
        return Verdict(CONTRADICTED, f"the opposite of the claim that {claim} ({measured}).")
    if ci.high < 0:
        return Verdict(NOT_SUPPORTED, f"the interval lies below zero, though {exact}, so it "
                       f"is not called contradicted ({measured}).")
    if ci.high < effect:
        return Verdict(NOT_SUPPORTED, f"an effect of the declared size ({effect:g}) is "
                       f"excluded, though no effect is not ({measured}).")
    needed = units_for_power(effect, comparison.sd, paired=comparison.paired, alpha=ALPHA)
    if needed is not None:
        needed = max(needed, fewest_exact_units(comparison.paired))
    more = (f"; detecting the declared effect {effect:g} at the measured spread "
            f"(sd {comparison.sd:.2f}) with 80% power needs about {needed:,} "
            f"{comparison.unit}s per arm (here {comparison.units})" if needed is not None
            else "")
    why = (f"the interval lies above zero, but {exact}" if ci.low > 0 else
           f"the interval covers both no effect and the declared effect {effect:g}")
    return Verdict(INCONCLUSIVE, f"{why} ({measured}){more}.")


def fewest_exact_units(paired: bool) -> int:
    """The fewest units per arm at which the exact permutation test can reach p < ALPHA:
    6 pairs (2 / 2^6 = 0.031) or 4 per arm (2 / C(8, 4) = 0.029)."""
    return 6 if paired else 4

