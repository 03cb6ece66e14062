"""The outer loop: exact resume, NaN isolation, sharded == unsharded, metrics written."""

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery import meta  # noqa: F401
from discovery.components import COMPONENTS
from discovery.drift_training import MetaTrainConfig
from discovery.meta.curricula import CurriculumConfig
from discovery.meta.es import ESConfig, make_es
from discovery.meta.optimizers import LoopState, es_optimizer
from discovery.pipeline import meta_train
from tests.resume import killed_and_resumed, logged_records
from tests.toys import TINY_DRIFT, TINY_PPO, toy_config

TINY = TINY_DRIFT


def test_resume_equals_uninterrupted(tmp_path):
    straight = meta_train(TINY, tmp_path / "straight")
    meta_train(TINY, tmp_path / "killed", stop_after=2)
    assert len(logged_records(tmp_path / "killed")) == 2
    resumed = meta_train(TINY, tmp_path / "killed", resume=True)

    assert logged_records(tmp_path / "straight") == logged_records(tmp_path / "killed")
    jax.tree.map(
        np.testing.assert_array_equal,
        jax.tree.map(np.asarray, straight.mean_params),
        jax.tree.map(np.asarray, resumed.mean_params),
    )
    assert int(resumed.state.generation) == TINY.generations
    assert int(resumed.state.optimizer.generation) == TINY.generations
    # The same config in one session reuses its build (baselines, compiled programs).
    assert resumed.built is straight.built
    assert [r["generation"] for r in logged_records(tmp_path / "killed")] == [0, 1, 2, 3]


def test_resume_cuts_metrics_logged_after_the_checkpoint(tmp_path):
    config = TINY.__class__(**{**TINY.__dict__, "checkpoint_every": 2})
    meta_train(config, tmp_path / "run", stop_after=3)  # checkpoint at 2, log has 3 lines
    assert len(logged_records(tmp_path / "run")) == 3
    meta_train(config, tmp_path / "run", resume=True)
    assert [r["generation"] for r in logged_records(tmp_path / "run")] == [0, 1, 2, 3]


def make_generation_step(es, fitness_fn, devices):
    """One ES generation on the task's own levels: ``step(state) -> (state, metrics)``."""
    optimizer = es_optimizer(es, fitness_fn, devices)
    return lambda state: optimizer.step(state, None)[:2]


def _toy_es():
    params = {"w": jnp.zeros((3,))}
    es = make_es(ESConfig(population_size=8, sigma_init=0.1), params)
    state = LoopState(
        es_state=es.init(jax.random.key(0), params),
        key=jax.random.key(1),
        generation=jnp.int32(0),
        best_params=params,
        best_fitness=jnp.float32(-jnp.inf),
    )
    return es, state


def test_nan_fitness_never_reaches_the_mean():
    es, state = _toy_es()

    def fitness_fn(population, key):
        fitness = -jnp.sum((population["w"] - 1.0) ** 2, axis=-1)
        fitness = fitness.at[0].set(jnp.nan).at[3].set(jnp.inf)
        return fitness, fitness[:, None]

    step = make_generation_step(es, fitness_fn, devices=None)
    for _ in range(5):
        state, metrics = step(state)
        assert int(metrics["num_nonfinite"]) == 2
    mean = np.asarray(es.mean(state.es_state)["w"])
    assert np.all(np.isfinite(mean))
    assert np.all(np.isfinite(np.asarray(state.best_params["w"])))
    assert np.isfinite(float(state.best_fitness))


def test_all_nan_generation_leaves_mean_unchanged():
    es, state = _toy_es()
    before = np.asarray(es.mean(state.es_state)["w"])

    def fitness_fn(population, key):
        nan = jnp.full((8,), jnp.nan)
        return nan, nan[:, None]

    state, metrics = make_generation_step(es, fitness_fn, devices=None)(state)
    np.testing.assert_array_equal(np.asarray(es.mean(state.es_state)["w"]), before)
    assert int(metrics["num_nonfinite"]) == 8
    assert float(state.best_fitness) == -np.inf


# The population is scored in device-sized slices; what must hold is that the slices'
# results, put back together, are exactly the whole population's. A fitness with the
# drift task's structure (members vmapped, one key shared by all of them, per-seed
# returns [P, E, S]) shows it at a fraction of a PPO program's compile time.
SHARDING_SCRIPT = textwrap.dedent(
    """
    import json
    from discovery import meta  # noqa
    import jax, numpy as np
    import jax.numpy as jnp
    from discovery.meta.es import ESConfig, make_es
    from discovery.meta.optimizers import LoopState, es_optimizer, population_devices

    assert len(jax.devices()) == 2, jax.devices()
    params = {"w": jnp.linspace(-1.0, 1.0, 6)}

    def member_returns(member, key):  # [E=2, S=3], noisy through the shared key
        noise = jax.random.normal(key, (2, 3))
        return -jnp.sum((member["w"] - 0.5) ** 2) + 0.1 * noise * jnp.tanh(member["w"][:1])

    def fitness(population, key):
        returns = jax.vmap(member_returns, in_axes=(0, None))(population, key)
        return returns.mean(axis=(1, 2)), returns

    es = make_es(ESConfig(population_size=4), params)
    state = LoopState(es.init(jax.random.key(2), params), jax.random.key(3), jnp.int32(0),
                      params, jnp.float32(-jnp.inf))
    devices = population_devices(4)
    assert devices is not None and len(devices) == 2
    out = {}
    for name, split in (("sharded", devices), ("plain", None)):
        after, metrics, _ = es_optimizer(es, fitness, split).step(state, None)
        # The updated mean hinges on which member got which fitness (member order).
        out[name] = (np.asarray(metrics["returns_mean"]).tolist()
                     + [float(metrics["fitness_mean"]), float(metrics["fitness_max"])]
                     + np.asarray(es.mean(after.es_state)["w"]).tolist())
    print(json.dumps(out))
    """
)


def _run_on_two_forced_devices(script: Path) -> subprocess.CompletedProcess:
    """Run ``script`` with 2 CPU devices; a hang (the jaxlib 0.10 deadlock of batched QRs,
    fixed in ``agents/networks.orthogonal``) fails the test."""
    env = dict(os.environ, DISCOVERY_CPU_DEVICES="2")
    try:
        return subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                              text=True, timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail("the 2-device run hung")


@pytest.mark.cross_program
def test_sharded_and_unsharded_generations_agree(tmp_path):
    script = tmp_path / "shard.py"
    script.write_text(SHARDING_SCRIPT)
    out = _run_on_two_forced_devices(script)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert np.all(np.isfinite(result["plain"])), result
    # The slices are scored by another compiled program (half the population) than the
    # whole: equal to float rounding, while a member scored in another's place (a wrong
    # order) moves the mean by far more.
    np.testing.assert_allclose(result["sharded"], result["plain"], rtol=1e-5)


@pytest.mark.parametrize("bad", [{"generations": 0}])
def test_meta_config_validation(bad):
    from discovery.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="generations"):
        from_dict(MetaTrainConfig, bad)


def test_meta_training_stops_after_generations_with_no_finite_member(tmp_path):
    from discovery.meta.loop import MetaTrainingDiverged, run_generations

    es, state = _toy_es()

    def fitness_fn(population, key):
        nan = jnp.full((8,), jnp.nan)
        return nan, nan[:, None]

    step = make_generation_step(es, fitness_fn, devices=None)
    with pytest.raises(MetaTrainingDiverged, match="non-finite .* in 3 generations in a row"):
        run_generations(step, state, tmp_path, generations=10, checkpoint_every=5,
                        keep_checkpoints=1, failed=lambda r: r["num_nonfinite"] == 8,
                        max_failed_in_a_row=3)
    assert len(logged_records(tmp_path)) == 3


def test_a_diverged_ppo_baseline_is_refused_before_meta_training():
    from discovery.config import ConfigError
    from discovery.tasks import make_drift_task

    # TINY's task but for the learning rate, a traced hyperparameter: the baseline program
    # is the one the resume tests above compiled (a compilation-cache hit).
    config = replace(TINY.task, ppo=replace(TINY_PPO, lr=float("nan")))
    with pytest.raises(ConfigError, match="baseline diverged on CartPole-v1 in all 16 seeds"):
        make_drift_task(config, jax.random.key(0))


@pytest.mark.timeout(400)
def test_a_drift_meta_trained_by_meta_gradients_resumes_exactly_and_is_evaluated(tmp_path):
    """Drift x meta-gradients x PLR by algorithmic regret: PPO agents on CartPole's
    physics take K=2 updates with the drift, the meta-gradient flows back through them,
    and PPO-clip trains beside each agent on its level. The contract tests' toy run
    (tests/contracts.py), so its programs are compilation-cache hits."""
    # An aggressive PPO learning rate (a traced hyperparameter: same programs), so that
    # ratios leave PPO-clip's range: the drift starts at PPO-clip, whose gradient with
    # respect to the drift network is exactly zero until they do. Measured over 6 seeds x
    # 3 generations: at lr 1e-2 half the seeds got a zero meta-gradient in every
    # generation; at 3e-2 and 1e-1 every generation of every seed got a nonzero one.
    config = toy_config("drift", "metagrad", "plr", generations=3)
    config = replace(config, task=replace(config.task, ppo=replace(TINY_PPO, lr=3e-2)))
    straight, resumed = killed_and_resumed(config, tmp_path, stop_after=2)
    records = logged_records(tmp_path / "straight")
    assert all(r["nonfinite_chunks"] == 0 and np.isfinite(r["grad_norm"]) for r in records)
    start = straight.built.params
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), straight.params, start)
    assert max(jax.tree.leaves(moved)) > 0, "the meta-gradient steps moved the drift"
    # Lifetimes of 3 updates, unrolls of 2: agents finish, and their levels are scored
    # against PPO-clip and fill the PLR buffer.
    assert sum(r["levels_finished"] for r in records) > 0
    regrets = [r["level_algorithmic_regret"] for r in records]
    assert any(regret is not None and np.isfinite(regret) for regret in regrets)
    assert records[-1]["curriculum_fill"] > 0

    summary = COMPONENTS["drift"].write_results(resumed, config)
    assert summary["optimizer"] == "metagrad" and "best_fitness" not in summary
    assert np.isfinite(summary["episode_return_last"])
    for method in ("learned", "ppo"):
        assert summary["evaluation"][f"{method}_seeds"][0] == 16
        assert np.isfinite(summary["evaluation"][f"{method}_mean_return"][0])
    assert (tmp_path / "killed" / "fitness.png").exists()
    assert not (tmp_path / "killed" / "best_params.msgpack").exists()


# Every component x meta-optimiser x curriculum is a valid config, or refused saying why.
COMBINATIONS = [(component, optimizer, kind) for component in COMPONENTS
                for optimizer in ("es", "metagrad")
                for kind in ("none", "dr", "plr", "alp_gmm")]
REFUSED = {("objective", "es", "none"): "curriculum.kind='none'",
           ("objective", "metagrad", "none"): "curriculum.kind='none'"}


@pytest.mark.parametrize("component, optimizer, kind", COMBINATIONS)
def test_every_combination_is_a_config_or_refused_with_a_reason(component, optimizer, kind):
    config_class = COMPONENTS[component].config_class
    curriculum = CurriculumConfig(kind=kind)
    if (component, optimizer, kind) in REFUSED:
        with pytest.raises(ValueError, match=REFUSED[component, optimizer, kind]):
            config_class(optimizer=optimizer, curriculum=curriculum)
        return
    config = config_class(optimizer=optimizer, curriculum=curriculum)
    COMPONENTS[component].check_meta_train(config)
    assert config.optimizer == optimizer and config.curriculum.kind == kind


@pytest.mark.parametrize("change, message", [
    ({"task": replace(TINY.task, envs=("CartPole-v1", "Acrobot-v1"))},
     "draws levels from one env's level space"),
    ({"curriculum": CurriculumConfig(kind="plr", score="max_mc")}, "reads the agents' critics"),
    ({"curriculum": CurriculumConfig(kind="none"), "optimizer": "metagrad",
      "task": replace(TINY.task, envs=("CartPole-v1", "Acrobot-v1"))},
     "optimizer='metagrad' trains its agents on one env"),
])
def test_drift_curricula_that_make_no_sense_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **{"curriculum": CurriculumConfig(kind="plr"), **change})
