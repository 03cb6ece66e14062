"""The LPG / TA-LPG meta-network: shapes, backward recurrence, episode boundaries."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery.agents.lpg_agent import ObjectiveInputs
from discovery.objective import ObjectiveConfig, make_objective, num_features

T, M = 6, 4


def _inputs(key: jax.Array, m: int = M, **changes) -> ObjectiveInputs:
    keys = jax.random.split(key, 4)
    inputs = ObjectiveInputs(
        reward=jax.random.normal(keys[0], (T,)),
        terminated=jnp.zeros((T,), bool),
        episode_end=jnp.zeros((T,), bool),
        policy_prob=jax.random.uniform(keys[1], (T,)),
        prediction=jax.nn.softmax(jax.random.normal(keys[2], (T, m))),
        next_prediction=jax.nn.softmax(jax.random.normal(keys[3], (T, m))),
        discount=jnp.float32(0.99),
        progress=jnp.float32(0.3),
        log_lifetime=jnp.log(jnp.float32(250.0)),
    )
    return inputs.replace(**changes)


@pytest.fixture(scope="module")
def lpg():
    objective = make_objective(ObjectiveConfig(prediction_size=M, hidden_size=16))
    return objective, objective.init(jax.random.key(0)), jax.jit(objective.apply)


@pytest.mark.parametrize(
    "config",
    [
        ObjectiveConfig(prediction_size=M, hidden_size=16),
        ObjectiveConfig(prediction_size=30, hidden_size=8, cell="lstm", discount_input=True),
        ObjectiveConfig(kind="ta_lpg", prediction_size=M, hidden_size=8),
    ],
    ids=["groove-gru", "paper-lstm", "ta-lpg"],
)
def test_output_shapes_and_prediction_target_is_a_distribution(config):
    objective = make_objective(config)
    params = objective.init(jax.random.key(1))
    out = objective.apply(params, _inputs(jax.random.key(2), m=config.prediction_size))
    assert out.pi_hat.shape == (T,)
    assert out.y_hat.shape == (T, config.prediction_size)
    np.testing.assert_allclose(out.y_hat.sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.asarray(out.y_hat) >= 0)
    expected = 5 + int(config.discount_input) + 2 * int(config.kind == "ta_lpg")
    assert num_features(config) == expected
    kernel = params["params"]["cell"]
    first = kernel["iz"]["kernel"] if config.cell == "gru" else kernel["ii"]["kernel"]
    assert first.shape[0] == expected


def test_reads_the_trajectory_backwards(lpg):
    _, params, apply = lpg
    base = _inputs(jax.random.key(3))
    out = apply(params, base)
    # Changing the last reward reaches every earlier step; changing the first reward
    # reaches no later step.
    late = apply(params, base.replace(reward=base.reward.at[-1].add(1.0)))
    assert np.all(np.abs(np.asarray(late.pi_hat - out.pi_hat)) > 0)
    early = apply(params, base.replace(reward=base.reward.at[0].add(1.0)))
    np.testing.assert_array_equal(early.pi_hat[1:], out.pi_hat[1:])
    assert early.pi_hat[0] != out.pi_hat[0]


def test_recurrence_stops_at_episode_ends(lpg):
    _, params, apply = lpg
    base = _inputs(jax.random.key(4), episode_end=jnp.zeros((T,), bool).at[2].set(True))
    out = apply(params, base)
    # Steps 0..2 belong to one episode, 3.. to the next: the next episode is invisible.
    changed = apply(params, base.replace(reward=base.reward.at[4].add(5.0)))
    np.testing.assert_array_equal(changed.pi_hat[:3], out.pi_hat[:3])
    assert not np.allclose(changed.pi_hat[3:5], out.pi_hat[3:5])


def test_next_prediction_is_ignored_at_terminal_steps(lpg):
    _, params, apply = lpg
    terminal = jnp.zeros((T,), bool).at[2].set(True)
    base = _inputs(jax.random.key(5), terminated=terminal, episode_end=terminal)
    out = apply(params, base)
    other = base.next_prediction.at[2].set(jnp.eye(M)[0])
    np.testing.assert_array_equal(apply(params, base.replace(next_prediction=other)).pi_hat,
                                  out.pi_hat)
    # ...but not on a truncated (non-terminal) episode end, which bootstraps.
    truncated = base.replace(terminated=jnp.zeros((T,), bool))
    changed = apply(params, truncated.replace(next_prediction=other))
    assert not np.allclose(changed.pi_hat[2], apply(params, truncated).pi_hat[2])


def test_only_ta_lpg_sees_lifetime_progress(lpg):
    _, params, apply = lpg
    base = _inputs(jax.random.key(6))
    np.testing.assert_array_equal(
        apply(params, base.replace(progress=jnp.float32(0.9))).pi_hat, apply(params, base).pi_hat
    )
    ta = make_objective(ObjectiveConfig(kind="ta_lpg", prediction_size=M, hidden_size=16))
    ta_params = ta.init(jax.random.key(7))
    early = ta.apply(ta_params, base.replace(progress=jnp.float32(0.0)))
    late = ta.apply(ta_params, base.replace(progress=jnp.float32(1.0)))
    assert not np.allclose(early.pi_hat, late.pi_hat)
    longer = ta.apply(ta_params, base.replace(log_lifetime=jnp.log(jnp.float32(10.0))))
    assert not np.allclose(longer.pi_hat, ta.apply(ta_params, base).pi_hat)


def test_params_are_arguments_so_a_population_vmaps(lpg):
    objective, _, _ = lpg
    population = jax.vmap(objective.init)(jax.random.split(jax.random.key(8), 3))
    out = jax.jit(jax.vmap(objective.apply, in_axes=(0, None)))(
        population, _inputs(jax.random.key(9))
    )
    assert out.pi_hat.shape == (3, T)
    assert not np.allclose(out.pi_hat[0], out.pi_hat[1])
