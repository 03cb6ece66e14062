"""Every branch of the one verdict vocabulary (discovery.verdicts), reached from unit
scores a claim could see."""

from __future__ import annotations

import numpy as np
import pytest

from discovery import verdicts

EFFECT = 0.5


@pytest.mark.parametrize("treated, control, paired, kind", [
    (np.arange(5.0) + 10, np.arange(5.0), False, verdicts.HOLDS),
    (np.arange(5.0), np.arange(5.0) + 10, False, verdicts.CONTRADICTED),
    (np.array([0.0, 0.1, -0.1, 0.05, -0.05]), np.zeros(5), True, verdicts.NOT_SUPPORTED),
    (np.array([3.0, -2.0, 1.0, -1.5, 2.0]), np.zeros(5), False, verdicts.INCONCLUSIVE),
    # 3 v 3 completely separated: the CI lies above zero but the exact p is 0.10.
    (np.array([10.0, 11.0, 12.0]), np.array([0.0, 1.0, 2.0]), False, verdicts.INCONCLUSIVE),
    # 5 pairs all below: the CI lies below zero but the sign-flip p is 2 / 32.
    (np.zeros(5), np.array([5.0, 6.0, 7.0, 5.5, 6.5]), True, verdicts.NOT_SUPPORTED),
])
def test_every_branch_is_reachable(treated, control, paired, kind):
    verdict = verdicts.decide(verdicts.compare(treated, control, paired), EFFECT, "A beats B")
    assert verdict.kind == kind, verdict.text()
    assert verdict.text().startswith(f"{kind}: ")
    assert "95% CI" in verdict.text()


def test_an_inconclusive_verdict_names_the_units_a_t_test_needs():
    verdict = verdicts.decide(verdicts.compare(np.array([3.0, -2.0, 1.0, -1.5, 2.0]),
                                               np.zeros(5), False), EFFECT, "A beats B")
    # sd pooled over the arms: sqrt((4.75 + 0) / 2) = 1.54, d = 0.32: the normal
    # approximation 2 (1.96 + 0.84)^2 / d^2 = 149, the noncentral t one more: 151 per arm.
    assert "needs about 151 meta-seeds per arm (here 5)" in verdict.text(), verdict.text()


def test_a_failed_precondition_makes_it_untestable_whatever_the_data():
    comparison = verdicts.compare(np.arange(5.0) + 10, np.arange(5.0), False)
    verdict = verdicts.decide(comparison, EFFECT, "A beats B", ["B never learned"])
    assert verdict.kind == verdicts.UNTESTABLE and verdict.failed == ("B never learned",)
    assert "precondition failed: B never learned" in verdict.text()


def test_a_declared_effect_must_be_positive():
    comparison = verdicts.compare(np.ones(3), np.zeros(3), False)
    with pytest.raises(ValueError, match="effect=0: allowed: a positive"):
        verdicts.decide(comparison, 0, "A beats B")
