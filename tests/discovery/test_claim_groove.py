"""`discover reproduce groove-plr-vs-dr` at toy size, and its verdict under the rule fixed
before the cpu run."""

from __future__ import annotations

import numpy as np
import pytest

from discovery import reproduce


@pytest.mark.timeout(600)
def test_the_groove_claim_runs_at_toy_size(tmp_path, capsys):
    """Both curricula meta-train LPG from the same seed, then fresh agents train on the
    held-out layouts beside A2C; rates normalised by A2C's are finite. Each
    piece shows a progress bar over its generations, then the evaluation."""
    name = "groove-plr-vs-dr"
    report = reproduce.reproduce(name, "toy", tmp_path, log=lambda _: None, progress=True)
    shown = capsys.readouterr().out
    assert "plr/meta-seed-0" in shown and "evaluating held out" in shown, shown
    folder = tmp_path / name / "toy"
    records = reproduce.read_records(folder)
    assert list(records) == ["dr/meta-seed-0", "plr/meta-seed-0"]
    configs = [records[n]["meta_training"]["config"] for n in records]
    assert [c["curriculum"]["kind"] for c in configs] == ["dr", "plr"]
    assert configs[1]["curriculum"]["score"] == "algorithmic_regret"
    assert "curriculum_last" in records["plr/meta-seed-0"]["meta_training"]
    for record in records.values():
        assert (folder / record["run"] / "objective_params.msgpack").is_file()
        runs = record["final"]["1"]["dense"]
        assert sorted(runs) == ["a2c", "learned"] and len(runs["learned"]) == 2
    assert np.isfinite([x for arm in report.summary["meta_seed_scores"].values()
                        for x in arm]).all()
    # One meta-seed per arm is no sample: the toy scale tests the pipeline, not the claim.
    assert report.verdict.startswith("untestable at this scale: precondition failed: an arm "
                                     "has fewer than two meta-seeds"), report.verdict
    assert "| LPG + PLR (regret), meta-seed 0 |" in report.markdown  # meta-training curve
    assert "nan" not in report.markdown.lower()


#: Per-meta-seed shifts of an arm's rates: meta-seeds that differ, means that do not.
SHIFTS = {"dr": [-0.4, 0.3, 0.1, -0.2, 0.2], "plr": [0.3, -0.4, 0.2, 0.1, -0.2]}


def _groove_record(arm: str, seed: int, rates: list[float], rng, spread: float = 0.0) -> dict:
    """A synthetic piece: A2C's rate 0.01 per step on each layout, the arm's objective at
    ``rates`` times that (one per layout), shifted by ``spread`` times the meta-seed's
    :data:`SHIFTS`, with seed noise."""
    layouts = ["dense", "long", "longer"]
    shift = spread * SHIFTS[arm][seed % 5]
    final = {"1": {layout: {"learned": list(0.01 * (r + shift) + rng.normal(0, 1e-4, 16)),
                            "a2c": [0.01] * 16} for layout, r in zip(layouts, rates)}}
    return {"arm": arm, "meta_seed": seed, "envs": layouts, "final": final,
            "normalisers": {"1": {layout: [0.0, 0.01] for layout in layouts}}}


def _groove_report(dr, plr, spread=0.0, meta_seeds=5):
    module = reproduce.claim_module("groove-plr-vs-dr")
    rng = np.random.default_rng(0)
    records = {f"{arm}/meta-seed-{s}": _groove_record(arm, s, rates, rng, spread)
               for s in range(meta_seeds) for arm, rates in (("dr", dr), ("plr", plr))}
    expected = [piece.name for piece in module.pieces("cpu")]
    return module.report(records, "cpu", expected)


@pytest.mark.parametrize("dr, plr, spread, verdict", [
    ([0.9, 0.9, 2.0], [1.0, 1.0, 3.0], 0.0, "holds"),
    ([1.0, 1.0, 3.0], [0.9, 0.9, 2.0], 0.0, "contradicted"),
    ([1.0, 1.0, 2.0], [1.0, 1.0, 2.0], 0.0, "not supported"),
    ([1.0, 1.0, 2.0], [1.0, 1.0, 2.0], 1.0, "inconclusive"),
])
def test_every_branch_of_the_groove_verdict(dr, plr, spread, verdict):
    report = _groove_report(dr, plr, spread)
    assert report.verdict.split(":")[0] == verdict, report.verdict
    assert "| longer | 9x9 | 10.00 | " in report.markdown
    assert "Welch" in report.verdict and "exact permutation p" in report.verdict
    if verdict == "inconclusive":  # names the meta-seeds a t-test would need
        assert "meta-seeds per arm (here 5)" in report.verdict, report.verdict


def test_three_meta_seeds_per_arm_can_never_hold():
    """3 v 3: the exact permutation p is at least 0.10, so however large the gap, the
    verdict stays pending (and would not hold: the interim rule says inconclusive)."""
    report = _groove_report([0.9, 0.9, 2.0], [1.0, 1.0, 3.0], meta_seeds=3)
    assert report.verdict.startswith("pending: 6 of 10"), report.verdict
    assert "p = 0.10" in report.verdict and "would say inconclusive" in report.verdict


def test_a_groove_claim_without_two_units_per_arm_is_untestable():
    module = reproduce.claim_module("groove-plr-vs-dr")
    rng = np.random.default_rng(0)
    records = {f"{arm}/meta-seed-{s}": _groove_record(arm, s, [1.0] * 3, rng)
               for s in range(5) for arm in ("dr", "plr")}
    for s in range(1, 5):  # A2C never learns on these DR pieces' layouts: no finite score
        for layout in records[f"dr/meta-seed-{s}"]["final"]["1"].values():
            layout["a2c"] = [0.0] * 16
        records[f"dr/meta-seed-{s}"]["normalisers"] = {"1": {k: [0.0, 0.0] for k in
                                                              ("dense", "long", "longer")}}
    report = module.report(records, "cpu", [p.name for p in module.pieces("cpu")])
    assert report.verdict.startswith("untestable at this scale: precondition failed"), \
        report.verdict
