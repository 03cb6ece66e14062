"""The pipeline's contract for every component and curriculum under meta-gradients
(tests/contracts.py says what each combination must do)."""

from __future__ import annotations

import pytest

from tests.contracts import COMBINATIONS, check_contract


@pytest.mark.timeout(600)
@pytest.mark.parametrize("component, curriculum",
                         [(c, k) for c, o, k in COMBINATIONS if o == "metagrad"])
def test_two_generations_resume_exactly_and_evaluate_held_out(component, curriculum, tmp_path):
    check_contract(component, "metagrad", curriculum, tmp_path)
