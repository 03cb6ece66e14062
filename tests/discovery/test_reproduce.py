"""`discover reproduce`: a claim runs in resumable pieces at toy size, its report comes
from the records alone, and RESULTS.md regenerates byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pytest

from discovery import reproduce
from discovery.cli import main
from discovery.stats import bootstrap_mean_difference_ci

CLAIM = "dpo-vs-ppo-minatar"


@pytest.fixture(scope="module")
def toy_results(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    lines: list[str] = []
    report = reproduce.reproduce(CLAIM, "toy", results, log=lines.append)
    return results, report, lines


@pytest.mark.timeout(600)
def test_the_metagrad_variance_claim_runs_at_toy_size(tmp_path):
    """Every K and estimator piece after the reference; the report from their Gram
    matrices: finite variance and bias with CIs, and a verdict at the largest K."""
    name = "metagrad-variance-lpg"
    with pytest.raises(ValueError, match="needs the 'reference' piece first"):
        reproduce.reproduce(name, "toy", tmp_path, only=("K2/mixed",), log=lambda _: None)
    report = reproduce.reproduce(name, "toy", tmp_path, log=lambda _: None)
    records = reproduce.read_records(tmp_path / name / "toy")
    assert list(records) == ["K1/k_step", "K2/k_step", "K2/mixed", "reference"]
    gram = np.asarray(records["K2/mixed"]["gram"])
    assert gram.shape == (4, 4) and np.allclose(gram, gram.T) and np.all(np.diag(gram) > 0)
    for setting in report.summary["settings"].values():
        for point_low_high in (setting["variance"], setting["bias"]):
            assert np.all(np.isfinite(point_low_high)) and point_low_high[1] <= point_low_high[2]
    assert report.verdict.split(":")[0].endswith("at this scale")
    assert "variance_ratio_mixed_over_k_step" in report.summary
    assert "nan" not in report.markdown.lower()


def test_a_toy_claim_writes_its_pieces_report_and_plot(toy_results):
    results, report, lines = toy_results
    folder = results / CLAIM / "toy"
    records = reproduce.read_records(folder)
    assert list(records) == ["Breakout-MinAtar/dpo", "Breakout-MinAtar/ppo"]
    for record in records.values():
        assert len(record["final_returns"]) == 2 and record["wall_time_s"] >= 0
        assert len(record["curves"]) == 2 and "CPU cores, jax" in record["machine"]
    assert sum("running" in line for line in lines) == 2
    assert (folder / f"{CLAIM}.png").stat().st_size > 0
    summary = json.loads((folder / "report.json").read_text())
    assert summary["pieces_done"] == ["Breakout-MinAtar/ppo", "Breakout-MinAtar/dpo"]
    assert report.verdict.split(":")[0] in ("holds at this scale", "does not hold at this scale",
                                            "inconclusive at this scale")
    assert "nan" not in (folder / "report.md").read_text().lower()
    assert "**Compute**: 2 pieces," in (folder / "report.md").read_text()


def test_a_rerun_skips_finished_pieces_and_results_md_regenerates_byte_for_byte(
    toy_results, tmp_path
):
    results, _, _ = toy_results
    lines: list[str] = []
    reproduce.reproduce(CLAIM, "toy", results, log=lines.append)
    assert lines == []  # every piece had its record
    # RESULTS.md shows the cpu and paper scales; a toy folder copied there stands in.
    (results / CLAIM / "toy").rename(results / CLAIM / "cpu")
    try:
        first = reproduce.write_results_page(results, tmp_path / "RESULTS.md").read_bytes()
        second = reproduce.write_results_page(results, tmp_path / "RESULTS2.md").read_bytes()
    finally:
        (results / CLAIM / "cpu").rename(results / CLAIM / "toy")
    assert first == second
    assert b"[cpu]" in first and b"**Verdict**" in first and b"nan" not in first.lower()


def test_a_missing_piece_leaves_the_verdict_pending(toy_results, tmp_path):
    results, _, _ = toy_results
    records = reproduce.read_records(results / CLAIM / "toy")
    del records["Breakout-MinAtar/dpo"]
    expected = [piece.name for piece in reproduce.claim_module(CLAIM).pieces("toy")]
    report = reproduce.claim_module(CLAIM).report(records, "toy", expected)
    assert report.verdict.startswith("pending: 1 of 2 pieces")
    assert "| Breakout-MinAtar | 50.08 |" in report.markdown
    assert "nan" not in report.markdown.lower()


@pytest.mark.parametrize("args, message", [
    (["reproduce", "no-such-claim"], "claim: got 'no-such-claim'; allowed: dpo-vs-ppo-minatar"),
    (["reproduce", CLAIM, "--scale", "huge"], "scale: got 'huge'; allowed: toy, cpu, paper"),
    (["reproduce", CLAIM, "--scale", "toy", "--piece", "Pong/ppo"],
     "piece: got 'Pong/ppo'; allowed: Breakout-MinAtar/ppo"),
    (["reproduce"], "claim: give one of dpo-vs-ppo-minatar"),
])
def test_bad_names_are_refused_naming_what_is_allowed(args, message, capsys, tmp_path):
    assert main([*args, "--results", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_list_names_every_claim(capsys):
    assert main(["reproduce", "--list"]) == 0
    assert capsys.readouterr().out.startswith(f"{CLAIM}: DPO vs PPO-clip on MinAtar")


def test_bootstrap_difference_by_hand():
    same = bootstrap_mean_difference_ci(np.array([3.0, 3.0]), np.array([1.0, 1.0, np.nan]))
    assert (same.estimate, same.low, same.high, same.n) == (2.0, 2.0, 2.0, 4)
    relative = bootstrap_mean_difference_ci(np.array([3.0]), np.array([-2.0]), relative=True)
    assert relative.estimate == pytest.approx(2.5)
    spread = bootstrap_mean_difference_ci(np.array([0.0, 2.0]), np.array([1.0]))
    assert spread.low == 0.0 - 1.0 and spread.high == 2.0 - 1.0 and spread.estimate == 0.0
    assert np.isnan(bootstrap_mean_difference_ci(np.array([np.nan]), np.ones(2)).estimate)


@pytest.mark.timeout(600)
def test_the_temporal_awareness_claim_runs_at_toy_size(tmp_path):
    """Each drift is meta-trained into its own run folder and evaluated at every horizon
    beside PPO-clip and DPO; a rerun finds every piece done."""
    name = "temporal-awareness"
    report = reproduce.reproduce(name, "toy", tmp_path, log=lambda _: None)
    folder = tmp_path / name / "toy"
    records = reproduce.read_records(folder)
    assert list(records) == ["lpo/meta-seed-0", "ta_lpo/meta-seed-0"]
    for record in records.values():
        assert (folder / record["run"] / "mean_params.msgpack").is_file()
        assert record["meta_training"]["generations"] == 2
        assert list(record["final"]) == ["1", "2"]
        for per_env in record["final"].values():
            for runs in per_env.values():
                assert [len(runs[m]) for m in ("learned", "ppo_clip", "dpo")] == [2, 2, 2]
    assert report.verdict.split(":")[0].endswith("at this scale")
    assert "nan" not in report.markdown.lower()
    assert (folder / f"{name}.png").stat().st_size > 0
    lines: list[str] = []
    reproduce.reproduce(name, "toy", tmp_path, log=lines.append)
    assert lines == []


def _temporal_record(drift: str, seed: int, scores: list[float], rng) -> dict:
    """A synthetic piece: PPO-clip returns 100, random 0, and the learned drift at
    ``scores`` (normalised, one per horizon of the cpu scale) with seed noise."""
    from discovery.claims_temporal_awareness import HORIZONS

    final = {
        f"{h:g}": {"CartPole-v1": {
            "learned": list(100 * s + rng.normal(0, 2, 16)),
            "ppo_clip": [100.0] * 16,
            "dpo": [100.0] * 16,
        }} for h, s in zip(HORIZONS, scores)
    }
    return {"drift": drift, "meta_seed": seed, "training_length": 8192, "final": final,
            "normalisers": {h: {"CartPole-v1": [0.0, 100.0]} for h in final}}


@pytest.mark.parametrize("lpo, ta_lpo, verdict", [
    ([1.0, 1.1, 1.5, 1.0, 1.0], [1.4, 1.4, 1.5, 1.4, 1.4], "holds at this scale"),
    ([1.4, 1.4, 1.5, 1.4, 1.4], [1.0, 1.1, 1.5, 1.0, 1.0], "does not hold at this scale"),
])
def test_the_temporal_verdict_follows_the_rule_fixed_before_the_run(lpo, ta_lpo, verdict):
    """LPO falling back away from x1 while TA-LPO keeps its level holds the claim; the
    reverse refutes it; a missing meta-seed leaves it pending."""
    module = reproduce.claim_module("temporal-awareness")
    rng = np.random.default_rng(0)
    records = {f"{d}/meta-seed-{s}": _temporal_record(d, s, scores, rng)
               for s in range(3) for d, scores in (("lpo", lpo), ("ta_lpo", ta_lpo))}
    expected = [piece.name for piece in module.pieces("cpu")]
    report = module.report(records, "cpu", expected)
    assert report.verdict.startswith(verdict)
    assert "| x1 (meta-trained) | 8,192 | 100.0 | 1.00 [1.00, 1.00] | 1.50" in report.markdown
    del records["ta_lpo/meta-seed-2"]
    assert module.report(records, "cpu", expected).verdict.startswith("pending: 5 of 6")


def test_held_out_minatar_games_train_at_the_lr_their_task_tuned():
    from discovery.agents.ppo import PPOConfig
    from discovery.drift_evaluation import _tuned_for

    task = {"envs": ["Asterix-MinAtar", "Breakout-MinAtar"], "env_lr": [3e-3, 1e-2],
            "env_adam_b2": [0.999, 0.99]}
    ppo = PPOConfig(lr=5e-4)
    tuned = _tuned_for(task, "Breakout-MinAtar", ppo)
    assert (tuned.lr, tuned.adam_b2) == (1e-2, 0.99)
    assert _tuned_for(task, "CartPole-v1", ppo) == ppo  # a held-out env keeps the base lr
    assert _tuned_for({"envs": ["Breakout-MinAtar"]}, "Breakout-MinAtar", ppo) == ppo


@pytest.mark.timeout(600)
def test_the_groove_claim_runs_at_toy_size(tmp_path):
    """Both curricula meta-train LPG from the same seed, then fresh agents train on the
    held-out layouts beside A2C; rates normalised by A2C's give a finite verdict."""
    name = "groove-plr-vs-dr"
    report = reproduce.reproduce(name, "toy", tmp_path, log=lambda _: None)
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
    assert np.isfinite(report.summary["plr_minus_dr"]["estimate"])
    assert report.verdict.split(":")[0].endswith("at this scale")
    assert "nan" not in report.markdown.lower()


def _groove_record(arm: str, seed: int, rates: list[float], rng) -> dict:
    """A synthetic piece: A2C's rate 0.01 per step on each layout, the arm's objective at
    ``rates`` times that (one per layout) with seed noise."""
    layouts = ["dense", "long", "longer"]
    final = {"1": {layout: {"learned": list(0.01 * r + rng.normal(0, 1e-4, 16)),
                            "a2c": [0.01] * 16} for layout, r in zip(layouts, rates)}}
    return {"arm": arm, "meta_seed": seed, "envs": layouts, "final": final,
            "normalisers": {"1": {layout: [0.0, 0.01] for layout in layouts}}}


@pytest.mark.parametrize("dr, plr, verdict", [
    ([0.9, 0.9, 2.0], [1.0, 1.0, 3.0], "holds at this scale"),
    ([1.0, 1.0, 3.0], [0.9, 0.9, 2.0], "does not hold at this scale"),
    ([1.0, 1.0, 2.0], [1.0, 1.0, 2.0], "inconclusive at this scale"),
])
def test_the_groove_verdict_follows_the_rule_fixed_before_the_run(dr, plr, verdict):
    module = reproduce.claim_module("groove-plr-vs-dr")
    rng = np.random.default_rng(0)
    records = {f"{arm}/meta-seed-{s}": _groove_record(arm, s, rates, rng)
               for s in range(3) for arm, rates in (("dr", dr), ("plr", plr))}
    expected = [piece.name for piece in module.pieces("cpu")]
    report = module.report(records, "cpu", expected)
    assert report.verdict.startswith(verdict)
    assert f"| longer | 10.00 | {dr[2]:.2f} [" in report.markdown


@pytest.mark.timeout(600)
def test_the_drift_transfer_claim_runs_at_toy_size(tmp_path):
    """LPO meta-trained on its envs, then evaluated only on envs outside them, beside
    PPO-clip and DPO on the same keys."""
    name = "drift-transfer"
    report = reproduce.reproduce(name, "toy", tmp_path, log=lambda _: None)
    records = reproduce.read_records(tmp_path / name / "toy")
    assert list(records) == ["meta-seed-0"]
    record = records["meta-seed-0"]
    trained_on = record["meta_training"]["config"]["task"]["envs"]
    assert record["envs"] == ["Catch-bsuite"] and "Catch-bsuite" not in trained_on
    assert sorted(record["final"]["1"]["Catch-bsuite"]) == ["dpo", "learned", "ppo_clip"]
    assert np.isfinite(report.summary["learned_minus_ppo_clip"]["estimate"])
    assert report.verdict.split(":")[0].endswith("at this scale")
    assert "nan" not in report.markdown.lower()
    # Killed after meta-training, before its record was written: the rerun resumes the
    # finished run (no generation again) and evaluates it to the same numbers.
    path = reproduce.piece_path(tmp_path / name / "toy", "meta-seed-0")
    path.unlink()
    reproduce.reproduce(name, "toy", tmp_path, log=lambda _: None)
    again = json.loads(path.read_text())
    assert {**again, "wall_time_s": 0} == {**record, "wall_time_s": 0}


@pytest.mark.parametrize("shift, verdict", [
    (0.3, "holds at this scale"), (-0.3, "does not hold at this scale"),
    (0.0, "inconclusive at this scale"),
])
def test_the_transfer_verdict_compares_with_ppo_clip_seed_by_seed(shift, verdict):
    """The learned drift's normalised score minus PPO-clip's on the same seed decides;
    seed noise shared by both methods cancels."""
    module = reproduce.claim_module("drift-transfer")
    rng = np.random.default_rng(0)
    records = {}
    for seed in range(3):
        final = {}
        for env in ("Breakout-MinAtar", "FourRooms-misc"):
            ppo = 1.0 + rng.normal(0, 0.5, 16)  # seed luck, shared by every method
            final[env] = {"ppo_clip": list(ppo), "dpo": list(ppo),
                          "learned": list(ppo + shift + rng.normal(0, 0.05, 16))}
        records[f"meta-seed-{seed}"] = {
            "meta_seed": seed, "envs": list(final), "final": {"1": final},
            "normalisers": {"1": {env: [0.0, 1.0] for env in final}}}
    report = module.report(records, "cpu", [p.name for p in module.pieces("cpu")])
    assert report.verdict.startswith(verdict)
    assert report.summary["learned_minus_ppo_clip"]["estimate"] == pytest.approx(shift, abs=0.05)
