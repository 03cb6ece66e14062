"""`discover evaluate`: statistics, the report of a known drift, and its files."""

from __future__ import annotations

import json
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from discovery import stats
from discovery.drift import make_drift
from discovery.evaluate import EvaluateConfig, evaluate_component, markdown_table, write_report

TINY_PPO = {"num_envs": 4, "num_steps": 16, "total_timesteps": 512, "num_minibatches": 2,
            "update_epochs": 2, "lr": 1e-2}


def test_interquartile_mean_trims_a_quarter_each_side():
    assert stats.interquartile_mean(np.arange(8.0)) == pytest.approx(3.5)  # mean of 2..5
    # n = 10 cuts int(2.5) = 2 whole values from each end (scipy's trim_mean): 2..7.
    assert stats.interquartile_mean(np.arange(10.0)) == pytest.approx(4.5)
    values = np.array([0.0, 1.0, 2.0, 100.0])
    assert stats.interquartile_mean(values) == pytest.approx(1.5)  # the outlier is trimmed
    assert np.isnan(stats.interquartile_mean(np.array([np.nan])))


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_data():
    rng = np.random.default_rng(0)
    small = stats.bootstrap_mean_ci(rng.normal(size=8))
    large = stats.bootstrap_mean_ci(rng.normal(size=800))
    for interval in (small, large):
        assert interval.low <= interval.estimate <= interval.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    constant = stats.stratified_bootstrap_iqm(np.ones((3, 4)))
    assert constant.low == constant.estimate == constant.high == 1.0


@pytest.fixture(scope="module")
def dpo_report():
    dpo = make_drift("dpo")
    entry = SimpleNamespace(
        name="dpo-as-discovered",
        kind="drift",
        params=dpo.init(jax.random.key(0)),
        manifest={"provenance": {"config": {"task": {"envs": ["CartPole-v1"], "ppo": TINY_PPO}}}},
        component=lambda: dpo,
    )
    config = EvaluateConfig(seeds=3, horizons=(0.5, 1.0), bootstrap_samples=200)
    return evaluate_component(entry, config)


def test_evaluating_dpo_gives_every_column_and_intervals_around_the_means(dpo_report):
    report = dpo_report
    assert report["envs"] == ["CartPole-v1"]
    assert [table["horizon"] for table in report["horizons"]] == [0.5, 1.0]
    assert [table["training_length"] for table in report["horizons"]] == [256, 512]
    for table in report["horizons"]:
        row = table["envs"]["CartPole-v1"]
        assert set(row) == {"learned", "ppo_clip", "dpo"}
        for method, cell in row.items():
            per_seed = np.array(cell["per_seed"], dtype=float)
            assert per_seed.shape == (3,)
            final = cell["final"]
            assert final["estimate"] == pytest.approx(np.nanmean(per_seed))
            assert final["low"] <= final["estimate"] <= final["high"], method
        # The "learned" drift here is DPO itself: same keys, same numbers as the baseline.
        assert row["learned"]["per_seed"] == row["dpo"]["per_seed"]
        # PPO-clip is the normalisation's 1: its normalised mean is exactly 1.
        assert row["ppo_clip"]["normalised"]["estimate"] == pytest.approx(1.0)
        iqm = table["aggregate"]["learned"]["iqm"]
        assert iqm["low"] <= iqm["estimate"] <= iqm["high"]


def test_report_files_are_written(dpo_report, tmp_path):
    paths = write_report(dpo_report, tmp_path)
    data = json.loads(paths["json"].read_text())  # strict JSON: no NaN tokens
    assert data["kind"] == "drift" and "NaN" not in paths["json"].read_text()
    assert set(data["curves"]["1.0"]["CartPole-v1"]) == {"learned", "ppo_clip", "dpo"}
    table = paths["markdown"].read_text()
    assert table == markdown_table(dpo_report)
    assert "| env | learned | ppo_clip | dpo |" in table and "IQM" in table
    assert paths["plot"].stat().st_size > 0


@pytest.mark.parametrize("horizons", [(), (0.0,), (-1.0,), (float("nan"),)])
def test_bad_horizons_are_named(horizons):
    with pytest.raises(ValueError, match="horizons"):
        EvaluateConfig(horizons=horizons)


def test_evaluating_an_objective_compares_it_with_a2c(tmp_path):
    from discovery.objective import ObjectiveConfig, make_objective

    objective = make_objective(ObjectiveConfig(prediction_size=4, hidden_size=8))
    entry = SimpleNamespace(
        name="tiny-lpg",
        kind="objective",
        params=objective.init(jax.random.key(0)),
        manifest={"provenance": {"config": {
            "agent": {"num_envs": 4, "rollout_len": 5}, "eval_lifetime": 12,
            "levels": {"held_out": ["dense"]},
        }}},
        component=lambda: objective,
    )
    # The whole lifetime counts as "final", so even these tiny agents earn some reward.
    config = EvaluateConfig(seeds=2, bootstrap_samples=200, final_fraction=1.0)
    report = evaluate_component(entry, config)
    assert report["envs"] == ["dense"] and report["normalisation"] == "A2C 1"
    table = report["horizons"][0]
    row = table["envs"]["dense"]
    assert set(row) == {"learned", "a2c"}
    assert report["curves"][1.0]["dense"]["learned"].curves.shape == (2, 12)

    # Objectives are normalised by A2C's reward rate: A2C itself scores exactly 1.
    a2c_final = np.array(row["a2c"]["per_seed"], dtype=float)
    reference = a2c_final.mean()
    assert np.all(np.isfinite(a2c_final)) and reference != 0, "A2C earned no reward"
    assert row["a2c"]["normalised"]["estimate"] == pytest.approx(1.0, abs=1e-12)
    # ... and with one layout, A2C's aggregate (IQM of 2 runs = their mean) is 1 too.
    assert table["aggregate"]["a2c"]["iqm"]["estimate"] == pytest.approx(1.0, abs=1e-12)
    assert table["aggregate"]["a2c"]["mean"]["estimate"] == pytest.approx(1.0, abs=1e-12)
    # The learned objective is measured in the same units: its rate over A2C's.
    learned_final = np.array(row["learned"]["per_seed"], dtype=float)
    assert row["learned"]["normalised"]["estimate"] == pytest.approx(
        learned_final.mean() / reference, abs=1e-12
    )
    paths = write_report(report, tmp_path)
    assert "| dense |" in paths["markdown"].read_text()


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
