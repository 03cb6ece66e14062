"""`discover evaluate`: statistics, the report of a known drift, and its files."""

from __future__ import annotations

import json
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from scipy.stats import t

from discovery import stats
from discovery.baseline_cache import BaselineCache, decode_array, encode_array
from discovery.config import ConfigError
from discovery.drift import make_drift
from discovery.evaluate import EvaluateConfig, base_lengths, evaluate_component, parse_budgets
from discovery.evaluate_report import markdown_table, write_report

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


def _drift_entry(name: str) -> SimpleNamespace:
    """A zoo-entry stand-in whose "learned" drift is the hand-designed ``name``."""
    drift = make_drift(name)
    return SimpleNamespace(
        name=f"{name}-as-discovered",
        kind="drift",
        params=drift.init(jax.random.key(0)),
        manifest={"provenance": {"config": {"task": {"envs": ["CartPole-v1"], "ppo": TINY_PPO}}}},
        component=lambda: drift,
    )


@pytest.fixture(scope="module")
def baseline_cache(tmp_path_factory):
    return BaselineCache(tmp_path_factory.mktemp("baseline-cache"), log=lambda line: None)


@pytest.fixture(scope="module")
def progress_lines():
    return []


@pytest.fixture(scope="module")
def dpo_report(baseline_cache, progress_lines):
    config = EvaluateConfig(seeds=3, horizons=(0.5, 1.0), bootstrap_samples=200)
    return evaluate_component(_drift_entry("dpo"), config, cache=baseline_cache,
                              report=lambda *args: progress_lines.append(args))


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
        # The "learned" drift here is DPO itself: same keys and the same program as the
        # baseline, so the same numbers, and a paired difference of exactly 0.
        assert row["learned"]["per_seed"] == row["dpo"]["per_seed"]
        assert row["learned"]["scores"] == row["dpo"]["scores"]
        same = table["paired"]["CartPole-v1"]["dpo"]
        assert same["difference"]["estimate"] == 0 and same["p"] == 1.0
        # PPO-clip is the normalisation's 1: its normalised mean is exactly 1.
        assert row["ppo_clip"]["normalised"]["estimate"] == pytest.approx(1.0)
        iqm = table["aggregate"]["learned"]["iqm"]
        assert iqm["low"] <= iqm["estimate"] <= iqm["high"]


def test_report_files_are_written(dpo_report, tmp_path):
    paths = write_report(dpo_report, tmp_path)
    data = json.loads(paths["json"].read_text())  # strict JSON: no NaN tokens
    assert data["kind"] == "drift" and "NaN" not in paths["json"].read_text()
    assert set(data["curves"]["1.0"]["CartPole-v1"]) == {"learned", "ppo_clip", "dpo"}
    # The curves are training returns, and say so; the scores say what they average.
    assert data["curves_label"] == "training episode return"
    assert data["metric"].startswith("evaluation return (the final policy's mean over 4 envs")
    assert list(data["scores"]) == ["evaluation", "training"]
    table = paths["markdown"].read_text()
    assert table == markdown_table(dpo_report)
    assert "| env | learned | ppo_clip | dpo | random play |" in table and "IQM" in table
    assert "| env | learned - ppo_clip | p | learned - dpo | p |" in table
    assert "**IQM (normalised)** over CartPole-v1" in table
    assert "P(learned > baseline), mean over CartPole-v1" in table
    # The random policy's return and the baselines' means are saved per env and horizon.
    reference = data["horizons"][0]["references"]["CartPole-v1"]
    assert reference["random"] == data["random"]["CartPole-v1"] > 0
    assert reference["baselines"]["ppo_clip"] == pytest.approx(
        data["horizons"][0]["envs"]["CartPole-v1"]["ppo_clip"]["final"]["estimate"])
    for name in ("plot", "profiles"):
        assert paths[name].stat().st_size > 0


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
    # The layout's own budget (in updates) replaces the recorded lifetime of 12.
    config = EvaluateConfig(seeds=2, bootstrap_samples=200, final_fraction=1.0,
                            budgets={"gridworld/dense": 10}, eval_episodes=3)
    report = evaluate_component(entry, config)
    assert report["envs"] == ["dense"] and report["normalisation"] == "A2C 1"
    table = report["horizons"][0]
    row = table["envs"]["dense"]
    assert set(row) == {"learned", "a2c"}
    assert report["curves"][1.0]["dense"]["learned"].curves.shape == (2, 10)
    assert table["training_lengths"] == {"dense": 10}
    # Both scores, labelled: the training rate is primary, the final policy's rollouts too.
    assert list(report["scores"]) == ["training", "evaluation"]
    assert "3 x 5 steps in each of 4 envs" in report["scores"]["evaluation"]
    for method in ("learned", "a2c"):
        rates = np.array(row[method]["scores"]["evaluation"]["per_seed"], dtype=float)
        # dense's objects pay +1 or -1, at most one per step.
        assert rates.shape == (2,) and np.all((rates >= -1) & (rates <= 1)), rates
    assert -1 <= report["random"]["dense"] <= 1

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


def test_progress_reports_every_training_as_it_finishes(dpo_report, progress_lines):
    # 2 horizons x 1 env x 3 methods, counted up one by one, each line naming its run.
    assert [(done, total) for done, total, _ in progress_lines] == [(i, 6) for i in range(1, 7)]
    assert [line.split(":")[0] for *_, line in progress_lines] == [
        f"x{h} CartPole-v1 {m}" for h in ("0.5", "1") for m in ("learned", "ppo_clip", "dpo")]


def test_paired_differences_are_learned_minus_baseline_seed_by_seed(dpo_report):
    for table in dpo_report["horizons"]:
        row, norm = table["envs"]["CartPole-v1"], table["references"]["CartPole-v1"]
        learned = np.array(row["learned"]["per_seed"], dtype=float)
        ppo = np.array(row["ppo_clip"]["per_seed"], dtype=float)
        paired = table["paired"]["CartPole-v1"]["ppo_clip"]
        expected = stats.t_interval(learned - ppo)
        assert paired["difference"]["estimate"] == pytest.approx(np.mean(learned - ppo))
        assert paired["difference"]["low"] == pytest.approx(expected.low)
        assert paired["difference"]["high"] == pytest.approx(expected.high)
        assert paired["p"] == stats.sign_flip_p(learned - ppo) and paired["p_method"] == "exact"
        # Normalised by random 0, PPO-clip 1: the differences divide by the scale.
        scale = norm["normaliser"]["scale"]
        assert scale == pytest.approx(np.mean(ppo) - norm["random"])
        assert paired["normalised_difference"]["estimate"] == pytest.approx(
            np.mean(learned - ppo) / scale)
        # With one env, the aggregate is that env's normalised difference, and says so.
        aggregate = table["paired_aggregate"]["ppo_clip"]
        assert aggregate["envs"] == ["CartPole-v1"]
        assert aggregate["normalised_difference"]["estimate"] == pytest.approx(
            paired["normalised_difference"]["estimate"])
        improvement = table["probability_of_improvement"]["ppo_clip"]
        brute = np.mean([(x > y) + 0.5 * (x == y) for x in learned for y in ppo])
        assert improvement["overall"]["estimate"] == pytest.approx(brute)
        assert improvement["envs"] == ["CartPole-v1"]
        profile = table["profiles"]["methods"]["ppo_clip"]["fraction"]
        taus = np.array(table["profiles"]["taus"])
        assert profile == pytest.approx([np.mean((ppo - norm["random"]) / scale > t)
                                         for t in taus])


@pytest.mark.timeout(300)
def test_a_cached_baseline_gives_the_numbers_it_was_computed_with(dpo_report, baseline_cache):
    # Another "discovered" drift (PPO-clip itself) at one of the horizons: both baselines
    # come from the cache the DPO evaluation filled, with the very numbers computed then.
    config = EvaluateConfig(seeds=3, horizons=(0.5,), bootstrap_samples=200)
    report = evaluate_component(_drift_entry("ppo"), config, cache=baseline_cache)
    assert report["cached_baselines"] == ["x0.5 CartPole-v1 ppo_clip", "x0.5 CartPole-v1 dpo"]
    assert dpo_report["cached_baselines"] == []
    fresh, cached = dpo_report["horizons"][0]["envs"]["CartPole-v1"], \
        report["horizons"][0]["envs"]["CartPole-v1"]
    for method in ("ppo_clip", "dpo"):
        assert cached[method]["scores"] == fresh[method]["scores"]
        np.testing.assert_array_equal(
            report["curves"][0.5]["CartPole-v1"][method].curves,
            dpo_report["curves"][0.5]["CartPole-v1"][method].curves)
    # The learned PPO-clip runs in the program the cached PPO-clip ran in: equal too.
    assert cached["learned"]["per_seed"] == cached["ppo_clip"]["per_seed"]
    assert report["random"] == dpo_report["random"]


def test_the_cache_round_trips_arrays_exactly_and_checks_its_keys(tmp_path):
    lines = []
    cache = BaselineCache(tmp_path / "cache", log=lines.append)
    values = np.array([[0.1, -1e-300, np.nan], [np.inf, -np.inf, 1 / 3]])
    np.testing.assert_array_equal(decode_array(encode_array(values)), values)
    key = {"env": "CartPole-v1/odd name", "ppo": {"lr": 1e-3, "hidden_sizes": (64, 64)}}
    calls = []

    def compute():
        calls.append(1)
        return {"x": values}

    first, hit = cache.fetch("kind", key, compute, "x")
    second, hit_again = cache.fetch("kind", key, compute, "x")
    assert (hit, hit_again, len(calls)) == (False, True, 1)
    np.testing.assert_array_equal(second["x"], first["x"])
    assert "using cached x" in lines[-1]
    # Another key (a changed setting) is a miss, and files are only ever whole.
    assert cache.get("kind", {**key, "ppo": {"lr": 2e-3, "hidden_sizes": (64, 64)}}) is None
    assert [p.suffix for p in (tmp_path / "cache" / "kind").iterdir()] == [".json"]
    # A damaged file is recomputed and replaced, with a note.
    cache.path("kind", key).write_text("{not json")
    _, hit = cache.fetch("kind", key, compute, "x")
    assert not hit and len(calls) == 2 and "unreadable" in lines[-1]
    assert cache.get("kind", key) is not None


@pytest.mark.parametrize("items, fragments", [
    (["CartPole-v1"], ["'CartPole-v1'", "ENV=N"]),
    (["CartPole-v1=-5"], ["'CartPole-v1=-5'", "whole number"]),
    (["CartPole-v1=1.5"], ["'CartPole-v1=1.5'"]),
    (["CartPole-v1=nan"], ["'CartPole-v1=nan'"]),
    (["=100"], ["'=100'"]),
    (["CartPole-v1=1e5", "CartPole-v1=2e5"], ["'CartPole-v1' twice"]),
])
def test_bad_budgets_are_named(items, fragments):
    with pytest.raises(ConfigError) as error:
        parse_budgets(items)
    for fragment in ("--budget: got", *fragments):
        assert fragment in str(error.value)


def test_budgets_name_evaluated_envs_and_whole_updates():
    assert parse_budgets(["Acrobot-v1=2e5", " CartPole-v1 =512"]) == {
        "Acrobot-v1": 2e5, "CartPole-v1": 512}
    config = EvaluateConfig(budgets={"Acrobot-v1": 2e5})
    assert base_lengths(config, ["CartPole-v1", "Acrobot-v1"], 1e5, "env steps", 64) == {
        "CartPole-v1": 1e5, "Acrobot-v1": 2e5}
    with pytest.raises(ConfigError, match="--budget: got Acrobot-v1=200000, but 'Acrobot-v1' "
                                          "is not evaluated; allowed: .*CartPole-v1"):
        base_lengths(config, ["CartPole-v1"], 1e5, "env steps", 64)
    with pytest.raises(ConfigError, match="at least 64 env steps"):
        base_lengths(EvaluateConfig(budgets={"CartPole-v1": 10}), ["CartPole-v1"], 1e5,
                     "env steps", 64)
    with pytest.raises(ValueError, match="budgets: got CartPole-v1=0.5"):
        EvaluateConfig(budgets={"CartPole-v1": 0.5})


def test_evaluate_refuses_bad_new_flags_before_any_compute(tmp_path, capsys, monkeypatch):
    import discovery.evaluate
    from discovery.cli import main

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def trained(*args, **kwargs):
        raise AssertionError("evaluate started computing before its inputs were checked")

    monkeypatch.setattr(discovery.evaluate, "evaluate_component", trained)
    base = ["evaluate", "zoo:lpo-cartpole-demo", "--runs-dir", str(tmp_path / "runs")]
    afile = tmp_path / "afile"
    afile.write_text("")
    for extra, fragments in [
        (["--budget", "Acrobot-v1=1e5"], ["--budget: got Acrobot-v1=100000", "CartPole-v1"]),
        (["--budget", "CartPole-v1"], ["--budget: got 'CartPole-v1'"]),
        (["--eval-episodes", "0"], ["--eval-episodes: got 0", "1 to 1000"]),
        (["--baseline-cache", str(afile)], ["--baseline-cache", "is a file"]),
        (["--baseline-cache", "x", "--no-baseline-cache"], ["one of the two"]),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("discover evaluate: error: ") and len(err.splitlines()) == 1
        for fragment in fragments:
            assert fragment in err, (fragment, err)
    # Nothing written: no evaluation folder, no baseline cache (matplotlib, imported on
    # the way, may make its own cache under HOME).
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "home" / ".cache" / "discovery").exists()


def test_sign_flip_p_is_exact_then_monte_carlo():
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 10):
        differences = rng.normal(0.3, 1.0, size=n)
        p, how = stats.stratified_sign_flip_p([differences])
        assert how == "exact" and p == pytest.approx(stats.sign_flip_p(differences))
    # Beyond the exact size: random flips, close to the exact p (standard error ~0.004).
    differences = rng.normal(0.4, 1.0, size=17)
    p, how = stats.stratified_sign_flip_p([differences], samples=20_000)
    assert how == "monte carlo" and p == pytest.approx(stats.sign_flip_p(differences), abs=0.02)
    assert p >= 1 / 20_001  # never 0
    assert stats.stratified_sign_flip_p([np.array([np.nan])]) [1] == "no data"
    # Strata weigh equally: flipping within each, the statistic is the mean of env means.
    rows = [np.array([1.0, 2.0]), np.array([-0.5, 0.1, 0.3])]
    p, _ = stats.stratified_sign_flip_p(rows)
    brute = []
    for signs in np.array(np.meshgrid(*[[1, -1]] * 5)).T.reshape(-1, 5):
        a, b = signs[:2] * rows[0], signs[2:] * rows[1]
        brute.append(abs((a.mean() + b.mean()) / 2))
    observed = abs((rows[0].mean() + rows[1].mean()) / 2)
    assert p == pytest.approx(np.mean(np.array(brute) >= observed - 1e-12))


def test_stratified_paired_interval_by_hand():
    rng = np.random.default_rng(4)
    one = rng.normal(size=6)
    single = stats.stratified_paired_interval([one])
    reference = stats.t_interval(one)
    assert (single.estimate, single.low, single.high, single.df) == pytest.approx(
        (reference.estimate, reference.low, reference.high, reference.df))
    a, b = rng.normal(1, 1, size=5), rng.normal(0, 3, size=8)
    both = stats.stratified_paired_interval([a, b, np.array([np.nan])])
    va, vb = a.var(ddof=1) / 5 / 4, b.var(ddof=1) / 8 / 4
    df = (va + vb) ** 2 / (va**2 / 4 + vb**2 / 7)
    half = t.ppf(0.975, df) * np.sqrt(va + vb)
    assert both.estimate == pytest.approx((a.mean() + b.mean()) / 2)
    assert (both.low, both.high, both.df, both.n) == pytest.approx(
        (both.estimate - half, both.estimate + half, df, 13))


def test_probability_of_improvement_and_profiles_by_hand():
    assert stats.probability_of_improvement([np.array([1.0, 2, 3])], [np.array([2.0, 2])]) == 0.5
    rng = np.random.default_rng(5)
    xs = [np.round(rng.normal(size=6)), np.round(rng.normal(1, 1, size=4))]
    ys = [np.round(rng.normal(size=5)), np.append(np.round(rng.normal(size=3)), np.nan)]
    brute = np.mean([np.mean([(a > c) + 0.5 * (a == c) for a in x for c in y[np.isfinite(y)]])
                     for x, y in zip(xs, ys)])
    assert stats.probability_of_improvement(xs, ys) == pytest.approx(brute)
    interval = stats.stratified_bootstrap_probability_of_improvement(xs, ys, samples=300)
    assert interval.low <= interval.estimate <= interval.high and interval.n == 2
    certain = stats.stratified_bootstrap_probability_of_improvement(
        [np.ones(3)], [np.zeros(3)], samples=100)
    assert (certain.estimate, certain.low, certain.high) == (1.0, 1.0, 1.0)
    taus = np.linspace(-3, 3, 13)
    profile = stats.performance_profile(xs, taus)
    assert profile == pytest.approx([np.mean([np.mean(x > tau) for x in xs]) for tau in taus])
    point, low, high = stats.stratified_bootstrap_profile(xs, taus, samples=300)
    assert np.all(low <= point + 1e-12) and np.all(point <= high + 1e-12)
    assert np.all(np.diff(point) <= 0)  # a profile never rises with tau


def test_aggregates_name_their_envs_and_count_diverged_seeds(tmp_path):
    from discovery.evaluate import HeldOut, MethodCurves, summarise

    def run(final):
        final = np.asarray(final, dtype=float)
        return MethodCurves(np.tile(final[:, None], (1, 4)), final, 8, {"evaluation": final})

    results = {1.0: {
        "A": {"learned": run([3.0, np.nan, 5.0]), "ppo_clip": run([2.0, 2.5, 3.0]),
              "dpo": run([1.0, 1.5, 2.0])},
        # PPO-clip no better than random play here: no normaliser, out of the aggregates.
        "B": {"learned": run([1.0, 2.0, 3.0]), "ppo_clip": run([1.0, 1.0, 1.0]),
              "dpo": run([0.0, 1.0, 2.0])},
    }}
    held = HeldOut(results=results, env_names=["A", "B"], training_length=100.0,
                   horizon_unit="env steps", metric="evaluation return",
                   normalisation="random 0, PPO-clip 1",
                   normalisers={1.0: {"A": (0.0, 2.5), "B": (1.0, float("nan"))}},
                   scores={"evaluation": "evaluation return"},
                   training_lengths={1.0: {"A": 100.0, "B": 200.0}}, random={"A": 0.0, "B": 1.0})
    entry = SimpleNamespace(name="synthetic", kind="drift")
    report = summarise(held, entry, EvaluateConfig(seeds=3, bootstrap_samples=200))
    table = report["horizons"][0]
    assert table["aggregate_envs"] == ["A"] and list(table["excluded_envs"]) == ["B"]
    assert table["training_length"] is None and table["training_lengths"]["B"] == 200
    # The diverged seed is left out of its pairs, counted, and never averaged into NaN.
    paired = table["paired"]["A"]["ppo_clip"]
    assert paired["pairs"] == 2 and paired["difference"]["estimate"] == pytest.approx(1.5)
    assert table["paired_aggregate"]["ppo_clip"]["envs"] == ["A"]
    assert table["aggregate"]["learned"]["iqm"]["estimate"] == pytest.approx(4 / 2.5)
    # P(learned > PPO-clip), ties a half: on A (3 and 5 against 2, 2.5, 3) 5.5 of 6 pairs,
    # on B (raw scores need no normaliser; 1, 2, 3 against 1, 1, 1) 7.5 of 9.
    improvement = table["probability_of_improvement"]["ppo_clip"]
    assert improvement["envs"] == ["A", "B"]
    assert improvement["overall"]["estimate"] == pytest.approx((5.5 / 6 + 7.5 / 9) / 2)
    text = markdown_table(report)
    assert "(2 of 3)" in text and "Left out of the aggregates: B" in text
    assert "nan" not in text.lower().replace("mean", "")
    paths = write_report(report, tmp_path)
    assert "NaN" not in paths["json"].read_text()
