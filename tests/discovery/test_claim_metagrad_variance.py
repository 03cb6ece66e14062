"""`discover reproduce metagrad-variance-lpg` at toy size: the reference piece first, then
every K and estimator, the report from their Gram matrices."""

from __future__ import annotations

import numpy as np
import pytest

from discovery import reproduce


@pytest.mark.timeout(600)
def test_the_metagrad_variance_claim_runs_at_toy_size(tmp_path):
    """Every K and estimator piece after the reference; the report from their Gram
    matrices: finite variance and bias with CIs, and a verdict at the largest K."""
    name = "metagrad-variance-lpg"
    with pytest.raises(ValueError, match="needs the 'reference' piece first"):
        reproduce.reproduce(name, "toy", tmp_path, only=("K2/mixed",), log=lambda _: None)
    report = reproduce.reproduce(name, "toy", tmp_path, log=lambda _: None)
    records = reproduce.read_records(tmp_path / name / "toy")
    assert list(records) == ["K2/k_step", "K2/mixed", "reference"]
    gram = np.asarray(records["K2/mixed"]["gram"])
    assert gram.shape == (4, 4) and np.allclose(gram, gram.T) and np.all(np.diag(gram) > 0)
    for setting in report.summary["settings"].values():
        for point_low_high in (setting["variance"], setting["bias"]):
            assert np.all(np.isfinite(point_low_high)) and point_low_high[1] <= point_low_high[2]
    assert report.verdict.split(":")[0].endswith("at this scale")
    assert "variance_ratio_mixed_over_k_step" in report.summary
    assert "nan" not in report.markdown.lower()
