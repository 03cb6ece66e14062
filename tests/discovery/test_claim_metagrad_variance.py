"""`discover reproduce metagrad-variance-lpg` at toy size: the reference piece first, then
every K and estimator, the report from their Gram matrices."""

from __future__ import annotations

import numpy as np
import pytest

from discovery import reproduce


@pytest.mark.timeout(600)
def test_the_metagrad_variance_claim_runs_at_toy_size(tmp_path):
    """Every K and estimator piece after the reference; the report from their Gram
    matrices: finite scale-free measures with CIs, and a verdict that says performance
    was not tested."""
    name = "metagrad-variance-lpg"
    with pytest.raises(ValueError, match="needs the 'reference' piece first"):
        reproduce.reproduce(name, "toy", tmp_path, only=("K2/mixed",), log=lambda _: None)
    report = reproduce.reproduce(name, "toy", tmp_path, log=lambda _: None)
    records = reproduce.read_records(tmp_path / name / "toy")
    assert list(records) == ["K2/k_step", "K2/mixed", "reference"]
    gram = np.asarray(records["K2/mixed"]["gram"])
    assert gram.shape == (4, 4) and np.allclose(gram, gram.T) and np.all(np.diag(gram) > 0)
    for setting in report.summary["settings"].values():
        for point_low_high in (setting["noise_to_signal"], setting["cosine"]):
            assert np.all(np.isfinite(point_low_high)) and point_low_high[1] <= point_low_high[2]
        assert -1 <= setting["cosine"][0] <= 1
    assert report.verdict.startswith("untestable at this scale: precondition failed: the "
                                     "paper's claim is about the performance")
    assert "noise_to_signal_k_step_over_mixed" in report.summary
    assert "nan" not in report.markdown.lower()


def test_the_scale_free_measures_by_hand():
    """Two seeds' gradients (1, 0) and (0, 1), reference (1, 1): mean (0.5, 0.5), total
    variance (ddof 1) 1.0 over |mean|^2 = 0.5: noise-to-signal 2; the mean points along
    the reference: cosine 1."""
    module = reproduce.claim_module("metagrad-variance-lpg")
    grads, g_ref = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 1.0])
    record = {"gram": (grads @ grads.T).tolist(), "dot_reference": (grads @ g_ref).tolist()}
    nsr, cosine = module._stats(record, float(np.linalg.norm(g_ref)), np.arange(2))
    assert nsr == pytest.approx(2.0) and cosine == pytest.approx(1.0)
