"""Selection on validation envs (discovery.meta.validation): the schedule, the keys, that
a non-finite score is never selected, that the logged score is the ES mean's score
recomputed independently, that the validated params are the mean of the logged argmax
generation, exact resume, the results files and the zoo's default, and the config's
refusals."""

import functools
from dataclasses import replace
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from discovery import zoo
from discovery.config import ConfigError, apply_overrides, save_config
from discovery.drift_training import check_meta_train, validation_keys
from discovery.files import loads_strict
from discovery.meta.es import ESConfig, make_es
from discovery.meta.loop import ValidatedLoopState, meta_loop
from discovery.meta.optimizers import es_optimizer
from discovery.meta.validation import Validation, initial_validation_state, is_due, select
from discovery.meta_run import load_params, validation_line, validation_summary, write_results
from discovery.pipeline import meta_train
from discovery.tasks import make_evaluator, normaliser
from discovery.validation_task import ValidationConfig
from tests.resume import logged_records
from tests.toys import TINY_DRIFT

VALIDATION = ValidationConfig(envs=("CartPole-v1",), every=2, seeds=2, normalise="fixed",
                              normalisers=(50.0,))
# TINY_DRIFT's programs, three generations validated after generations 1 (every 2) and
# 2 (the last). Agents this short feel the drift only with a large Adam step (a traced
# hyperparameter: the same programs), and ES takes large steps, so that the members'
# fitness differs and the mean moves from one generation to the next.
CONFIG = replace(TINY_DRIFT, generations=3, validation=VALIDATION,
                 task=replace(TINY_DRIFT.task, ppo=replace(TINY_DRIFT.task.ppo, lr=0.05)),
                 es=ESConfig(population_size=4, sigma_init=1.0, lr_init=0.5))


def _as_numpy(tree):
    def leaf(x):
        if jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key):
            return np.asarray(jax.random.key_data(x))
        return np.asarray(x)

    return jax.tree.map(leaf, tree)


def _assert_same(a, b):
    jax.tree.map(np.testing.assert_array_equal, _as_numpy(a), _as_numpy(b))


# --------------------------------------------------------------------------- the loop


def test_schedule_every_n_generations_and_the_last():
    assert [g for g in range(7) if is_due(g, 3, 7)] == [2, 5, 6]
    assert [g for g in range(4) if is_due(g, 10, 4)] == [3]


def test_a_nonfinite_score_is_never_selected():
    state = initial_validation_state({"w": jnp.zeros(2)})
    for generation, score in enumerate([jnp.nan, jnp.inf, 1.0, jnp.nan, 1.0, 2.0, -jnp.inf]):
        params = {"w": jnp.full(2, float(generation))}
        state = select(state, params, jnp.float32(score), jnp.int32(generation))
    assert int(state.generation) == 5 and float(state.score) == 2.0
    np.testing.assert_array_equal(np.asarray(state.params["w"]), [5.0, 5.0])
    nothing = select(initial_validation_state({"w": jnp.zeros(2)}), {"w": jnp.ones(2)},
                     jnp.float32(jnp.nan), jnp.int32(0))
    assert int(nothing.generation) == -1 and float(nothing.score) == -np.inf


# Scores by validation key (so a resumed run sees the same ones): generation 1 diverged
# (NaN), generation 3's is infinite; generation 2's is the best finite one.
TOY_SCORES = [0.5, np.nan, 3.0, np.inf]
TOY_KEY = jax.random.key(7)


def _toy_validation() -> Validation:
    table = {np.asarray(jax.random.key_data(jax.random.fold_in(TOY_KEY, g))).tobytes(): s
             for g, s in enumerate(TOY_SCORES)}

    def score(params, key):
        value = table[np.asarray(jax.random.key_data(key)).tobytes()]
        return value, {"w_sum": float(np.sum(np.asarray(params["w"])))}

    return Validation(score=score, key=TOY_KEY, every=1)


@functools.cache
def _toy_optimizer():
    """An ES over a quadratic (built once: its programs compile once for every call)."""
    params = {"w": jnp.zeros(3)}
    es = make_es(ESConfig(population_size=8, sigma_init=0.1), params)

    def fitness(population, key):
        fitness = -jnp.sum((population["w"] - 1.0) ** 2, axis=-1)
        return fitness, fitness[:, None]

    return es_optimizer(es, fitness), params


def _toy_run(run_dir, **options):
    optimizer, params = _toy_optimizer()
    return meta_loop(
        optimizer, None, params, run_dir, key=jax.random.key(0),
        generation_key=jax.random.key(1), validation=_toy_validation(),
        generations=len(TOY_SCORES), checkpoint_every=1, keep_checkpoints=2, **options,
    ), optimizer


def test_the_loop_selects_the_best_finite_mean_and_resumes_exactly(tmp_path):
    (straight, _), optimizer = _toy_run(tmp_path / "straight")
    means = []
    for call in range(len(TOY_SCORES)):  # killed after every generation, then resumed
        (state, _), _ = _toy_run(tmp_path / "killed", resume=call > 0, stop_after=1)
        means.append(optimizer.params(state.optimizer))
    assert isinstance(state, ValidatedLoopState)
    records = logged_records(tmp_path / "straight")
    assert records == logged_records(tmp_path / "killed")
    _assert_same(straight, state)
    # Non-finite scores are logged as null, never selected; the best is generation 2's.
    assert [r["validation_score"] for r in records] == [0.5, None, 3.0, None]
    assert [r["validation_best_generation"] for r in records] == [0, 0, 2, 2]
    assert [r["validation_best_score"] for r in records] == [0.5, 0.5, 3.0, 3.0]
    # What was validated was the ES mean after each generation.
    assert [r["validation_w_sum"] for r in records] == pytest.approx(
        [float(np.sum(np.asarray(m["w"]))) for m in means])
    assert int(state.validation.generation) == 2
    _assert_same(state.validation.params, means[2])


# --------------------------------------------------------------------------- a drift run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The validating tiny drift run straight, and killed after every generation and
    resumed, with the ES mean after each generation."""
    tmp = tmp_path_factory.mktemp("validation")
    straight = meta_train(CONFIG, tmp / "straight")
    means = []
    for call in range(CONFIG.generations):
        resumed = meta_train(CONFIG, tmp / "killed", resume=call > 0, stop_after=1)
        means.append(resumed.mean_params)
    return straight, resumed, means


def test_the_validation_keys_are_not_training_keys():
    training = jax.random.split(jax.random.key(CONFIG.seed), 4)
    data = {np.asarray(jax.random.key_data(k)).tobytes() for k in training}
    for key in validation_keys(CONFIG.seed):
        assert np.asarray(jax.random.key_data(key)).tobytes() not in data


def test_logged_scores_are_the_means_scores_recomputed_independently(runs):
    straight, _, means = runs
    records = logged_records(straight.run_dir)
    validated = [r["generation"] for r in records if "validation_score" in r]
    assert validated == [1, 2]
    # A fresh evaluator of the validation task, normalised by hand.
    evaluate = make_evaluator(VALIDATION.task(CONFIG.task), straight.component, VALIDATION.seeds)
    _, root = validation_keys(CONFIG.seed)
    for generation in validated:
        returns = evaluate(means[generation], jax.random.fold_in(root, generation))
        env_scores = returns.mean(axis=-1) / np.asarray(VALIDATION.normalisers)
        record = records[generation]
        np.testing.assert_allclose(record["validation_env_scores"], env_scores, rtol=1e-6)
        np.testing.assert_allclose(record["validation_score"], env_scores.mean(), rtol=1e-6)
    # The validation programs were compiled once, for all validations.
    programs = straight.built.validation.score.__self__.evaluate.programs
    assert [program._cache_size() for program in programs] == [1]


def test_the_validated_params_are_the_mean_of_the_logged_argmax(runs):
    straight, resumed, means = runs
    records = logged_records(straight.run_dir)
    scores = {r["generation"]: r["validation_score"] for r in records if "validation_score" in r}
    best = max(scores, key=lambda g: (scores[g], -g))
    assert int(straight.validation.generation) == best == records[-1]["validation_best_generation"]
    _assert_same(straight.validated_params, means[best])
    flat = [np.asarray(ravel_pytree(mean)[0]).tobytes() for mean in means]
    assert len(set(flat)) == len(means)  # each generation's mean is its own


def test_a_killed_validating_run_resumes_exactly(runs):
    straight, resumed, _ = runs
    assert logged_records(straight.run_dir) == logged_records(resumed.run_dir)
    _assert_same(straight.state, resumed.state)


def test_results_report_the_selection_and_the_zoo_exports_it(runs, tmp_path):
    straight, _, _ = runs
    run_dir = straight.run_dir
    save_config(CONFIG, run_dir / "config.yaml")  # as `discover meta-train` does
    summary = write_results(straight, CONFIG)
    saved = load_params(run_dir / "validated_params.msgpack", straight.validated_params)
    _assert_same(saved, straight.validated_params)
    report = loads_strict((run_dir / "summary.json").read_text())["validation"]
    assert report == summary["validation"]
    assert report["selected_generation"] == int(straight.validation.generation)
    assert report["selected_score"] == float(straight.validation.score)
    assert [p["generation"] for p in report["curve"]] == [1, 2]
    assert report["params_file"] == "validated_params.msgpack" and report["nonfinite"] == 0
    assert "selected generation" in validation_line(report)
    entry = zoo.load(zoo.export_run(run_dir, "validated", zoo_dir=tmp_path))
    assert entry.manifest["provenance"]["params_file"] == "validated_params.msgpack"
    _assert_same(entry.params, saved)
    mean = zoo.load(zoo.export_run(run_dir, "mean", zoo_dir=tmp_path,
                                   params_file="mean_params.msgpack"))
    _assert_same(mean.params, straight.mean_params)


def test_a_run_with_no_finite_validation_score_reports_no_selection():
    result = SimpleNamespace(validation=initial_validation_state({"w": jnp.zeros(2)}),
                             built=SimpleNamespace(metadata={}))
    history = [{"generation": 0}, {"generation": 1, "validation_score": None}]
    report = validation_summary(result, CONFIG, history)
    assert report["selected_generation"] is None and report["params_file"] is None
    assert report["nonfinite"] == 1 and report["curve"][0]["score"] is None
    assert "nothing selected" in validation_line(report)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("override, named", [
    ("validation.every=0", "validation.every"),
    ("validation.seeds=0", "validation.seeds"),
    ("validation.baseline_seeds=-1", "validation.baseline_seeds"),
    ("validation.envs=[CartPole-v1,CartPole-v1]", "CartPole-v1 more than once"),
    ("validation.normalise=median", "validation.normalise"),
    ("validation.normalisers=[2.0]", "only used with normalise=fixed"),
    ("validation={envs: [CartPole-v1], normalise: fixed}", "needs one per validation env"),
    ("validation.normalisers=[-1.0]", "validation.normalisers"),
])
def test_bad_validation_values_are_refused_by_name(override, named):
    with pytest.raises(ConfigError, match="validation") as error:
        apply_overrides(TINY_DRIFT, [override])
    assert named in str(error.value)


def test_validation_config_checks_hold_outside_yaml_too():
    with pytest.raises(ValueError, match=r"every=0: allowed: an int >= 1"):
        ValidationConfig(envs=("CartPole-v1",), every=0)


def test_baselines_that_cannot_normalise_a_validation_env_are_refused_by_name():
    task = ValidationConfig(envs=("CartPole-v1",)).task(TINY_DRIFT.task)
    offset, scale = normaliser(task, np.array([30.0]), np.array([10.0]), section="validation")
    assert offset.tolist() == [10.0] and scale.tolist() == [20.0]
    with pytest.raises(ConfigError, match=r"validation\.normalise='ppo_random'") as error:
        normaliser(task, np.array([10.0]), np.array([20.0]), section="validation")
    assert error.value.field == "validation.normalise"


def test_an_unregistered_validation_env_is_refused_by_name(tmp_path):
    config = replace(TINY_DRIFT, validation=ValidationConfig(envs=("CartPole-v1", "Nope-v9")))
    for check in (check_meta_train, lambda c: meta_train(c, tmp_path / "run")):
        with pytest.raises(ConfigError, match=r"validation\.envs\[1\].*Nope-v9") as error:
            check(config)
        assert error.value.field == "validation.envs[1]"
