"""`discover reproduce drift-transfer` at toy size (killed and rerun), and its verdict under
the rule fixed before the cpu run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from discovery import reproduce


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
    assert report.verdict.startswith(verdict) and "training envs" not in report.verdict
    assert report.summary["learned_minus_ppo_clip"]["estimate"] == pytest.approx(shift, abs=0.05)


def test_at_paper_scale_the_held_out_brax_agents_train_with_brax_ppo_settings():
    """Lu et al. (2022) trained their held-out Brax agents with Brax's PPO settings, not
    the MinAtar meta-training's; the evaluation builds exactly those (without running)."""
    from types import SimpleNamespace

    from discovery.config import to_dict
    from discovery.drift_evaluation import _setting, _tuned_for
    from discovery.evaluate import EvaluateConfig

    module = reproduce.claim_module("drift-transfer")
    setting = module.SCALES["paper"]
    config = to_dict(module.meta_train_config("paper", 0))
    entry = SimpleNamespace(manifest={"provenance": {"config": config}})
    task, names, ppo = _setting(entry, EvaluateConfig(envs=setting.held_out), setting.eval_ppo)
    assert names == setting.held_out and all(n.startswith("brax/") for n in names)
    assert config["task"]["ppo"]["gamma"] == 0.99  # MinAtar's, overridden for Brax
    for name in names:
        brax = _tuned_for(task, name, ppo)
        assert (brax.total_timesteps, brax.num_envs, brax.num_steps) == (30_000_000, 2048, 5)
        assert (brax.gamma, brax.lr, brax.reward_scale, brax.normalize_obs) == (
            0.97, 3e-4, 10.0, True)


@pytest.mark.parametrize("best, says", [(1.07, "did not lift"), (1.4, "did not transfer")])
def test_a_drift_that_does_not_transfer_is_read_beside_its_meta_training(best, says):
    """Whether ES improved on its own training envs (fitness, PPO-clip 1) is part of
    reading a failure to transfer."""
    from discovery.stats import hierarchical_mean_ci

    module = reproduce.claim_module("drift-transfer")
    gap = hierarchical_mean_ci([np.full((2, 16), -0.3)] * 3, module._over_envs)
    verdict = module._verdict(gap, gap, "cpu", 3, 3, best)
    assert verdict.startswith("does not hold at this scale") and says in verdict
