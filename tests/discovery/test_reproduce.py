"""`discover reproduce`: a claim runs in resumable pieces at toy size, its report comes
from the records alone, and RESULTS.md regenerates byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pytest

from discovery import reproduce, verdicts
from discovery.cli import main

CLAIM = "dpo-vs-ppo-minatar"


@pytest.fixture(scope="module")
def toy_results(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    lines: list[str] = []
    report = reproduce.reproduce(CLAIM, "toy", results, log=lines.append)
    return results, report, lines


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
    assert report.verdict.split(":")[0] in verdicts.KINDS
    assert "nan" not in (folder / "report.md").read_text().lower()
    assert "**Compute**: 2 pieces," in (folder / "report.md").read_text()
    assert reproduce.claim_pieces(CLAIM, "toy", results) == {
        "Breakout-MinAtar/ppo": True, "Breakout-MinAtar/dpo": True}
    assert not any(reproduce.claim_pieces(CLAIM, "toy", results / "elsewhere").values())


def test_a_piece_reports_progress_and_gives_the_record_it_gives_without(toy_results, tmp_path):
    """With a progress callback the PPO updates run in chunks: the same returns."""
    results, _, _ = toy_results
    piece = reproduce.claim_module(CLAIM).pieces("toy")[0]
    calls: list[tuple[int, int]] = []
    record = piece.run(tmp_path, lambda done, total, line: calls.append((done, total)))
    assert calls == sorted(calls) and calls[-1] == (8, 8)  # 512 steps of 4 envs x 16
    stored = reproduce.read_records(results / CLAIM / "toy")[piece.name]
    assert record["final_returns"] == stored["final_returns"]
    assert record["curves"] == stored["curves"]


def test_a_minatar_curve_point_is_its_window_mean_over_updates_where_episodes_ended():
    """Freeway's episodes end every ~20 updates: a point per window, not per kept update."""
    nan = np.nan
    curves = np.array([[nan, 2.0, nan, nan, nan, 6.0, nan],
                       [1.0, 3.0, nan, nan, nan, nan, nan]])
    points = reproduce.claim_module(CLAIM)._window_means(curves, 3)
    np.testing.assert_array_equal(points, [[2.0, 6.0, nan], [2.0, nan, nan]])


def test_the_compute_line_reads_minutes_unless_every_piece_took_under_one():
    def records(*seconds):
        return {f"p{i}": {"wall_time_s": s, "machine": "m"} for i, s in enumerate(seconds)}

    assert reproduce.compute_line(records(7.4, 8.2)) == (
        "**Compute**: 2 pieces, 16 s of wall time summed over the pieces (7-8 s a piece), "
        "on m.\n")
    assert reproduce.compute_line(records(30.0, 150.0)) == (
        "**Compute**: 2 pieces, 3 min of wall time summed over the pieces (0-2 min a piece), "
        "on m.\n")
    # A piece resumed after a kill: its last call took 50 min, its run's log 70 min.
    resumed = records(3000.0, 6000.0)
    resumed["p0"]["meta_training"] = {"training_curve": {"logged_wall_time_s": 4200.0}}
    assert reproduce.compute_line(resumed) == (
        "**Compute**: 2 pieces, 170 min of wall time summed over the pieces (70-100 min a "
        "piece; 1 piece resumed after a kill, timed by the run's log over every call), on m.\n")
    with pytest.raises(ValueError, match="scale: got 'huge'; allowed: toy, cpu, paper"):
        reproduce.claim_pieces(CLAIM, "huge")


def test_a_rerun_skips_finished_pieces_and_results_md_regenerates_byte_for_byte(
    toy_results, tmp_path
):
    results, _, _ = toy_results
    lines: list[str] = []
    reproduce.reproduce(CLAIM, "toy", results, log=lines.append)
    assert lines == []  # every piece had its record
    # RESULTS.md shows the cpu and paper scales; a toy folder copied there stands in.
    # `--report` rewrites the claim's own report too (deleted here first).
    (results / CLAIM / "toy").rename(results / CLAIM / "cpu")
    try:
        (results / CLAIM / "cpu" / "report.md").unlink()
        assert main(["reproduce", "--report", "--results", str(results),
                     "--page", str(tmp_path / "RESULTS.md")]) == 0
        first = (tmp_path / "RESULTS.md").read_bytes()
        second = reproduce.write_results_page(results, tmp_path / "RESULTS2.md").read_bytes()
        rewritten = (results / CLAIM / "cpu" / "report.md").read_text()
    finally:
        (results / CLAIM / "cpu").rename(results / CLAIM / "toy")
    assert first == second and rewritten.encode() in first
    assert b"[cpu]" in first and b"**Verdict**" in first and b"nan" not in first.lower()
    # The verdict table at the top: one row per section, pieces counted at its scale.
    table = first.decode().split("\n## ")[0]
    assert f"| `{CLAIM}` | cpu | 2 of 8 | pending |" in table
    assert "| `groove-plr-vs-dr` | cpu | 0 of 10 | pending |" in table
    assert table.count("| cpu |") == len(reproduce.CLAIMS)


def test_a_missing_piece_leaves_the_verdict_pending(toy_results, tmp_path):
    results, _, _ = toy_results
    records = reproduce.read_records(results / CLAIM / "toy")
    del records["Breakout-MinAtar/dpo"]
    expected = [piece.name for piece in reproduce.claim_module(CLAIM).pieces("toy")]
    report = reproduce.claim_module(CLAIM).report(records, "toy", expected)
    assert report.verdict.startswith("pending: 1 of 2 pieces")
    # The command it names runs the rest at the report's own scale.
    assert "`discover reproduce dpo-vs-ppo-minatar --scale toy`" in report.verdict
    assert "| Breakout-MinAtar | 50.08 |" in report.markdown
    assert "nan" not in report.markdown.lower()


@pytest.mark.parametrize("ppo, dpo, verdict", [
    ([10.0, 20.0], [12.0, 19.0], "inconclusive"),
    ([10.0, 20.0, 30.0, 15.0, 25.0, 12.0], [11.0, 22.0, 33.0, 16.5, 27.5, 13.2], "holds"),
    ([10.0, 20.0, 30.0, 15.0, 25.0, 12.0], [5.0, 10.0, 15.0, 7.5, 12.5, 6.0], "contradicted"),
    ([10.0, 20.0, 30.0, 15.0, 25.0], [5.0, 10.0, 15.0, 7.5, 12.5], "not supported"),
    ([10.0, 20.0, 30.0, 15.0, 25.0, 12.0], [10.0, 20.1, 29.9, 15.0, 25.1, 11.9],
     "not supported"),
])
def test_every_branch_of_the_minatar_verdict(ppo, dpo, verdict):
    """Paired seeds; 5 seeds cannot be 'contradicted' (the exact sign-flip p is at least
    2 / 32), 6 can; an inconclusive verdict names the seeds a t-test would need."""
    records = {"Breakout-MinAtar/ppo": {"final_returns": ppo},
               "Breakout-MinAtar/dpo": {"final_returns": dpo}}
    report = reproduce.claim_module(CLAIM).report(records, "toy", list(records)[::-1])
    assert report.verdict.split(":")[0] == verdict, report.verdict
    if verdict == "inconclusive":
        assert "seeds per arm (here 2)" in report.verdict, report.verdict


def test_a_diverged_seed_scores_nothing_and_is_named():
    records = {"Breakout-MinAtar/ppo": {"final_returns": [10.0, 20.0, 30.0],
                                        "diverged": [False, False, False]},
               "Breakout-MinAtar/dpo": {"final_returns": [11.0, None, 33.0],
                                        "diverged": [False, True, False]}}
    report = reproduce.claim_module(CLAIM).report(records, "toy", list(records)[::-1])
    assert "Diverged seeds (scored nothing): PPO-clip 0, DPO 1" in report.verdict
    assert "DPO 1)" in report.markdown


@pytest.mark.parametrize("args, message", [
    (["reproduce", "no-such-claim"],
     "claim: got 'no-such-claim'; allowed: dpo-vs-ppo-brax, dpo-vs-ppo-minatar"),
    (["reproduce", CLAIM, "--scale", "huge"], "scale: got 'huge'; allowed: toy, cpu, paper"),
    (["reproduce", CLAIM, "--scale", "toy", "--piece", "Pong/ppo"],
     "piece: got 'Pong/ppo'; allowed: Breakout-MinAtar/ppo"),
    (["reproduce"], "claim: give one of dpo-vs-ppo-brax, dpo-vs-ppo-minatar"),
])
def test_bad_names_are_refused_naming_what_is_allowed(args, message, capsys, tmp_path):
    assert main([*args, "--results", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_list_names_every_claim(capsys):
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in listed] == list(reproduce.CLAIMS)
    assert f"{CLAIM}: DPO vs PPO-clip on MinAtar" in "\n".join(listed)
    assert "dpo-vs-ppo-brax: DPO vs PPO-clip on Brax (Lu et al., 2022)" in listed


def test_the_committed_results_page_is_what_the_committed_records_give(tmp_path, monkeypatch):
    """RESULTS.md at the top of the repository, and each claim's report.md, regenerate
    byte for byte from results/ (a changed report or verdict text must come with
    `discover reproduce --report`)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    page = reproduce.write_results_page(Path("results"), tmp_path / "RESULTS.md")
    assert page.read_bytes() == (root / "RESULTS.md").read_bytes()
    for name in reproduce.CLAIMS:
        folder = reproduce.claim_dir(Path("results"), name, "cpu")
        if (folder / "pieces").is_dir():
            report = reproduce.claim_report(name, "cpu", reproduce.claim_records(folder))
            assert (folder / "report.md").read_text() == report.markdown, name


def test_a_training_curve_shows_a_run_that_learned_then_collapsed(tmp_path):
    """Span means of the run's learning signal from its log: rising, then falling back;
    a run without a log has no curve."""
    values = [0.1] * 10 + [0.3] * 10 + [0.05] * 10
    lines = [json.dumps({"generation": i, "reward_per_step": v, "wall_time_s": 2.0})
             for i, v in enumerate(values)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    curve = reproduce.training_curve(tmp_path, spans=3)
    assert curve["signal"] == "reward_per_step" and curve["generations"] == 30
    assert curve["logged_wall_time_s"] == 60.0  # every generation, whichever call ran it
    np.testing.assert_allclose(curve["span_means"], [0.1, 0.3, 0.05])
    assert reproduce.training_curve(tmp_path / "missing") is None


def test_the_meta_training_table_flags_a_collapse_and_never_shows_nan():
    """First / best / last tenth per run; a tenth with no logged value reads n/a."""
    records = {"run A": {"meta_training": {"training_curve": {"span_means": [0.1, 0.3, 0.05]}}},
               "run B": {"meta_training": {"training_curve": {"span_means": [None, 0.2, 0.2]}}},
               "run C": {}}
    text = "\n".join(reproduce.meta_training_lines(records, "reward", 1000))
    assert "| run A | 100 | 300 | 50 | 0.17 |" in text
    assert "| run B | n/a | 200 | 200 | 1.00 |" in text and "run C" not in text
    assert "1 of 2 runs ended below half their best tenth" in text
    assert "nan" not in text.lower()
