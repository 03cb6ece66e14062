"""Mirror Learning conditions for every drift, checked numerically on an (r, A) grid."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery import drift as drift_lib
from discovery import envs  # noqa: F401  (sets XLA_FLAGS before any computation)

RATIOS = jnp.concatenate([jnp.linspace(0.05, 3.0, 61), jnp.array([1.0])])
ADVANTAGES = jnp.linspace(-3.0, 3.0, 25)
GRID_R, GRID_A = jnp.meshgrid(RATIOS, ADVANTAGES, indexing="ij")


def _random_params(drift, key):
    params = drift.init(key)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    noisy = [leaf + 0.5 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)]
    return jax.tree.unflatten(treedef, noisy)


def _params_cases():
    cases = []
    for name in drift_lib.list_drifts():
        drift = drift_lib.make_drift(name)
        cases.append(pytest.param(name, 0, id=f"{name}-init"))
        if drift.learnable:
            for seed in (1, 2, 3):
                cases.append(pytest.param(name, seed, id=f"{name}-random{seed}"))
    return cases


@pytest.mark.parametrize("name,seed", _params_cases())
@pytest.mark.parametrize("progress", [0.0, 0.7])
def test_mirror_learning_conditions(name, seed, progress):
    drift = drift_lib.make_drift(name)
    params = drift.init(jax.random.key(0))
    if seed:
        params = _random_params(drift, jax.random.key(seed))
    apply = jax.jit(drift.apply)
    values = apply(params, GRID_R, GRID_A, jnp.float32(progress))
    assert values.shape == GRID_R.shape
    assert bool(jnp.all(values >= 0.0)), "drift must be non-negative"

    ones = jnp.ones_like(ADVANTAGES)
    at_one = apply(params, ones, ADVANTAGES, jnp.float32(progress))
    np.testing.assert_allclose(at_one, 0.0, atol=1e-7)

    grad_r = jax.jit(jax.vmap(jax.grad(drift.apply, argnums=1), (None, 0, 0, None)))
    grads = grad_r(params, ones, ADVANTAGES, jnp.float32(progress))
    np.testing.assert_allclose(grads, 0.0, atol=1e-6)


def test_ppo_drift_reproduces_clipped_surrogate():
    drift = drift_lib.make_ppo_drift(clip_eps=0.2)
    params = drift.init(jax.random.key(0))
    objective = GRID_R * GRID_A - drift(params, GRID_R, GRID_A, 0.0)
    clipped = jnp.minimum(GRID_R * GRID_A, jnp.clip(GRID_R, 0.8, 1.2) * GRID_A)
    np.testing.assert_allclose(objective, clipped, rtol=1e-6, atol=1e-6)


def test_dpo_hand_computed_values():
    drift = drift_lib.make_dpo_drift()
    params = drift.init(jax.random.key(0))
    # A >= 0 branch: x = (r - 1) A = 1.0 * 2.0 = 2; D = 2 - 2 tanh(1).
    value = drift(params, jnp.array(2.0), jnp.array(2.0), 0.0)
    np.testing.assert_allclose(value, 2.0 - 2.0 * np.tanh(1.0), rtol=1e-6)
    # A < 0 branch: x = log(0.5) * -1 = log 2; D = x - 0.6 tanh(x / 0.6).
    x = np.log(2.0)
    value = drift(params, jnp.array(0.5), jnp.array(-1.0), 0.0)
    np.testing.assert_allclose(value, x - 0.6 * np.tanh(x / 0.6), rtol=1e-6)
    # Inside DPO's trust region the drift is zero for positive advantages
    # ((r - 1) A below the ReLU's knee is impossible, so check a small move is cheap).
    assert float(drift(params, jnp.array(1.05), jnp.array(1.0), 0.0)) < 1e-4


def test_lpo_starts_as_ppo():
    lpo = drift_lib.make_lpo_drift()
    ppo = drift_lib.make_ppo_drift()
    lpo_values = lpo(lpo.init(jax.random.key(0)), GRID_R, GRID_A, 0.3)
    ppo_values = ppo(ppo.init(jax.random.key(0)), GRID_R, GRID_A, 0.3)
    np.testing.assert_allclose(lpo_values, jax.nn.relu(ppo_values - drift_lib.LPO_MARGIN))


def test_lpo_parameter_count_matches_paper():
    params = drift_lib.make_lpo_drift().init(jax.random.key(0))
    assert sum(x.size for x in jax.tree.leaves(params)) == 1152


def test_ta_lpo_sees_progress():
    drift = drift_lib.make_drift("ta_lpo")
    params = _random_params(drift, jax.random.key(4))
    early = drift(params, GRID_R, GRID_A, 0.0)
    late = drift(params, GRID_R, GRID_A, 1.0)
    assert float(jnp.max(jnp.abs(early - late))) > 1e-3


def test_unknown_drift_error_lists_allowed():
    with pytest.raises(ValueError, match="allowed.*dpo"):
        drift_lib.make_drift("trpo")


def test_a_drift_choice_is_each_of_its_drifts_also_vmapped_over_the_index():
    drifts = [drift_lib.make_drift(name) for name in ("ta_lpo", "ppo", "dpo")]
    members = tuple(_random_params(d, jax.random.key(i)) for i, d in enumerate(drifts))
    choice = drift_lib.make_drift_choice(drifts)
    assert jax.tree.structure(choice.init(jax.random.key(0))["members"]) == (
        jax.tree.structure(members))
    progress = jnp.float32(0.3)
    expected = np.stack([d(m, GRID_R, GRID_A, progress) for d, m in zip(drifts, members)])
    for index in range(3):
        got = choice({"index": jnp.int32(index), "members": members}, GRID_R, GRID_A, progress)
        np.testing.assert_allclose(got, expected[index], rtol=1e-5, atol=1e-6)
    batched = jax.jit(jax.vmap(
        lambda i: choice({"index": i, "members": members}, GRID_R, GRID_A, progress)
    ))(jnp.arange(3, dtype=jnp.int32))
    np.testing.assert_allclose(batched, expected, rtol=1e-5, atol=1e-6)


def test_dpo_takes_its_negative_branch_from_the_log_ratio_where_the_ratio_underflows():
    """At log r = -200 the ratio is 0 in float32: log(ratio) is -inf and its gradient NaN.
    From the log-ratio (DPO's public code: log_prob - old_log_prob) the drift and its
    gradient stay finite: d/dx ReLU(xA - beta tanh(xA / beta)) = A (1 - sech^2) -> A."""
    dpo = drift_lib.make_dpo_drift()
    params = dpo.init(jax.random.key(0))
    advantage = jnp.array([-1.5, 0.7])

    def loss(log_ratio, with_log):
        ratio = jnp.exp(log_ratio)
        given = log_ratio if with_log else None
        return jnp.sum(dpo(params, ratio, advantage, jnp.float32(0.0), given))

    log_ratio = jnp.array([-200.0, -200.0])
    assert float(jnp.exp(log_ratio)[0]) == 0.0
    assert np.isnan(jax.grad(loss)(log_ratio, False)).any()  # what log(ratio) gave
    grad = jax.grad(loss)(log_ratio, True)
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad[0], -1.5, rtol=1e-6)  # the A < 0 branch's slope
    # PPO's loss hands DPO the log-ratio it computed; a plain log(ratio) drift is unchanged.
    at_one = dpo(params, jnp.ones(2), advantage, jnp.float32(0.0), jnp.zeros(2))
    np.testing.assert_array_equal(at_one, 0.0)
    choice = drift_lib.make_drift_choice([drift_lib.make_drift("ppo"), dpo])
    assert choice.uses_log_ratio
    chosen = {"index": jnp.int32(1), "members": (drift_lib.make_drift("ppo").init(
        jax.random.key(0)), params)}
    np.testing.assert_array_equal(
        choice(chosen, jnp.exp(log_ratio), advantage, jnp.float32(0.0), log_ratio),
        dpo(params, jnp.exp(log_ratio), advantage, jnp.float32(0.0), log_ratio))
