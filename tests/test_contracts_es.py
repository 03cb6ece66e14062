"""The pipeline's contract for every component and curriculum under ES
(tests/contracts.py says what each combination must do)."""

from __future__ import annotations

import pytest

from tests.contracts import COMBINATIONS, COMPONENTS, HELD_OUT_ON, OPTIMIZERS, check_contract


def test_every_component_runs_with_every_optimizer_and_most_curricula():
    for component in COMPONENTS:
        for optimizer in OPTIMIZERS:
            allowed = {c for k, o, c in COMBINATIONS if (k, o) == (component, optimizer)}
            assert {"dr", "plr", "alp_gmm"} <= allowed, (component, optimizer, allowed)
        assert (component, *HELD_OUT_ON) in COMBINATIONS


@pytest.mark.timeout(600)
@pytest.mark.parametrize("component, curriculum",
                         [(c, k) for c, o, k in COMBINATIONS if o == "es"])
def test_two_generations_resume_exactly_and_evaluate_held_out(component, curriculum, tmp_path):
    check_contract(component, "es", curriculum, tmp_path)
