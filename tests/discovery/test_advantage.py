"""The third learnable component, a learned advantage transformation: its surrogate
reaches PPO exactly through the drift argument, and what is particular to it in the
shared pipeline (its results and zoo entry, and a meta-gradient that is nonzero from the
start). Every optimiser x curriculum with exact resume: tests/contracts.py."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery.advantage import (
    make_advantage_drift,
    make_advantage_transform,
)
from discovery.agents.ppo import make_train
from discovery.components import COMPONENTS
from discovery.config import save_config
from discovery.drift import make_drift, ppo_clip_drift
from discovery.envs import make as make_env
from discovery.evaluate import EvaluateConfig
from discovery.pipeline import meta_train
from discovery.tasks import ppo_params_for
from discovery.zoo import export_run, load
from tests.resume import logged_records
from tests.toys import TINY_ADVANTAGE, TINY_PPO, toy_config

TINY = TINY_ADVANTAGE


def _moved(params):
    """Params with a nonzero output layer, so that ``f`` is not the identity."""
    return {**params, "w2": jax.random.normal(jax.random.key(7), params["w2"].shape)}


@pytest.mark.parametrize("temporally_aware", [False, True])
def test_ppo_objective_through_the_drift_is_ppo_clip_on_the_transformed_advantage(
    temporally_aware,
):
    drift = make_advantage_drift(temporally_aware=temporally_aware)
    _, transform = make_advantage_transform(temporally_aware=temporally_aware)
    params = _moved(drift.init(jax.random.key(0)))
    ratio = jax.random.uniform(jax.random.key(1), (64,), minval=0.5, maxval=1.5)
    advantage = jax.random.normal(jax.random.key(2), (64,))
    progress = jnp.float32(0.3)
    shaped = transform(params, advantage, progress)
    assert not np.allclose(shaped, advantage), "the moved params must change the advantage"
    ppo_objective = ratio * advantage - drift(params, ratio, advantage, progress)
    expected = ratio * shaped - ppo_clip_drift(ratio, shaped, 0.2)
    np.testing.assert_allclose(ppo_objective, expected, rtol=1e-5, atol=1e-5)
    # Only the temporally aware form sees training progress.
    later = transform(params, advantage, jnp.float32(0.9))
    assert np.allclose(later, shaped) != temporally_aware


def test_the_ppo_clip_point_is_ppo_clip_exactly():
    drift = make_advantage_drift()
    ratio = jnp.linspace(0.5, 1.5, 11)
    advantage = jnp.linspace(-2.0, 2.0, 11)
    ppo = make_drift("ppo")
    expected = ppo(ppo.init(jax.random.key(0)), ratio, advantage, 0.5)
    for params in (drift.init(jax.random.key(3)),
                   ppo_params_for(drift, jax.random.key(4))):
        np.testing.assert_array_equal(drift(params, ratio, advantage, 0.5), expected)


@pytest.mark.cross_program
def test_the_transformation_changes_what_ppo_learns():
    env, env_params = make_env("CartPole-v1")
    drift = make_advantage_drift()
    train = jax.jit(make_train(TINY_PPO, env, env_params, drift))
    start = drift.init(jax.random.key(0))
    identity, _ = train(jax.random.key(1), start)
    shaped, _ = train(jax.random.key(1), _moved(start))
    ppo = make_drift("ppo")
    clipped, _ = jax.jit(make_train(TINY_PPO, env, env_params, ppo))(
        jax.random.key(1), ppo.init(jax.random.key(0)))
    leaves = [jax.tree.leaves(state.params) for state in (identity, shaped, clipped)]
    assert any(not np.array_equal(a, b) for a, b in zip(leaves[0], leaves[1]))
    # The identity is PPO-clip, trained by another compiled program: to float rounding.
    for a, c in zip(leaves[0], leaves[2]):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


def test_a_drift_name_in_an_advantage_run_is_refused():
    with pytest.raises(ValueError, match="task.drift='ta_lpo'"):
        replace(TINY, task=replace(TINY.task, drift="ta_lpo"))


@pytest.mark.timeout(400)
def test_es_run_goes_through_the_zoo_to_held_out_evaluation(tmp_path):
    result = meta_train(TINY, tmp_path / "run")
    records = logged_records(tmp_path / "run")
    # (Whether ES moves the params here depends on the host: agents this short often
    # tie, and ES rightly takes no step on tied fitness. The test below shows that the
    # params change what PPO learns.)
    assert len(records) == 2 and all(r["num_nonfinite"] == 0 for r in records)

    component = COMPONENTS["advantage"]
    summary = component.write_results(result, TINY)
    assert summary["component"] == "advantage" and summary["learned"] == "lat"
    assert summary["plot"] == "advantage.png"
    assert (tmp_path / "run" / "advantage.png").stat().st_size > 0
    for method in ("learned", "ppo"):
        assert summary["evaluation"][f"{method}_seeds"] == [16]
        assert np.isfinite(summary["evaluation"][f"{method}_mean_return"][0])

    save_config(TINY, tmp_path / "run" / "config.yaml")  # as discover meta-train does
    entry = load(export_run(tmp_path / "run", "my-lat", zoo_dir=tmp_path / "zoo"))
    assert entry.kind == "advantage"
    ratio, advantage = jnp.linspace(0.5, 1.5, 9), jnp.linspace(-2.0, 2.0, 9)
    np.testing.assert_array_equal(
        entry.component()(entry.params, ratio, advantage, 0.5),
        result.component(result.params, ratio, advantage, 0.5),
    )
    held_out = component.held_out(entry, EvaluateConfig(seeds=2, horizons=(1.0,)))
    curves = held_out.results[1.0]["CartPole-v1"]
    assert list(curves) == ["learned", "ppo_clip", "dpo"]


@pytest.mark.timeout(400)
def test_meta_gradients_reach_the_transformation_from_the_start(tmp_path):
    """Advantage x meta-gradients x PLR by algorithmic regret against PPO-clip (the
    contract tests' toy run): the meta-gradient flows through K PPO updates into the
    transformation and, unlike LPO's at PPO-clip, is nonzero from the start (``r f(A)``
    depends on ``f``)."""
    records = meta_train(toy_config("advantage", "metagrad", "plr"), tmp_path / "run").history
    assert all(r["nonfinite_chunks"] == 0 and r["grad_norm"] > 0 for r in records)
