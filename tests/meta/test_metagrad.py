"""Meta-gradients through unrolled LPG agent updates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from discovery.agents.lpg_agent import LPGAgentConfig, lifetime_final_return, make_lpg_agent
from discovery.envs.gridworld import GridWorld, Layout
from discovery.meta.metagrad import MetaGradConfig, make_metagrad
from discovery.objective import ObjectiveConfig, make_objective
from tests.gradcheck import assert_gradient_matches_finite_differences

# The agent starts on the left; the object three cells right pays 1 and ends the episode.
CORRIDOR = Layout(grid=("S..0",), objects=((1.0, 1.0, 0.0),), max_steps_in_episode=12)
CONFIG = MetaGradConfig(
    num_agents=8, num_minibatches=2, unroll=2, lifetime_min=20, lifetime_max=20, lr=1e-3
)


def agent_keys(agents) -> jax.Array:
    """One key per agent of a batch, for the meta-loss."""
    return jax.random.split(jax.random.key(5), agents.update_idx.shape[0])


def _build(config: MetaGradConfig = CONFIG, rollout_len: int = 10, num_envs: int = 8):
    env = GridWorld(max_size=4, max_objects=1)
    level = CORRIDOR.to_params(4, 1)
    objective = make_objective(ObjectiveConfig(prediction_size=4, hidden_size=16))
    agent = make_lpg_agent(
        LPGAgentConfig(num_envs=num_envs, rollout_len=rollout_len), env, level, objective
    )
    metagrad = make_metagrad(config, agent, lambda key: level)
    return level, objective, agent, metagrad


@pytest.fixture(scope="module")
def setup():
    level, objective, agent, metagrad = _build()
    theta = objective.init(jax.random.key(1))
    state = metagrad.init(jax.random.key(0), theta)
    return level, objective, agent, metagrad, theta, state, jax.jit(metagrad.step)


@pytest.fixture(scope="module")
def meta_grad(setup):
    _, _, _, metagrad, theta, state, _ = setup
    grad_fn = jax.jit(jax.grad(lambda p, a, k: metagrad.loss(p, a, k)[0]))
    # The keys the step gives the agents, so that `step` applies this very gradient.
    return grad_fn, grad_fn(theta, state.agents, metagrad.agent_keys(state))


def test_agents_start_staggered_across_their_lifetimes(setup):
    *_, state, _ = setup
    start = np.asarray(state.agents.update_idx)
    assert start.min() >= 0 and start.max() < 20
    assert len(set(start.tolist())) > 3


def test_meta_gradient_is_finite_and_nonzero_through_k_updates(meta_grad):
    _, grads = meta_grad
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert float(optax.global_norm(grads)) > 0
    # The gradient reaches the recurrent cell, i.e. it flows through the agent updates.
    cell = grads["params"]["cell"]
    assert float(optax.global_norm(cell)) > 0


def test_meta_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        config = MetaGradConfig(
            num_agents=2, num_minibatches=1, unroll=2, lifetime_min=20, lifetime_max=20
        )
        _, objective, _, metagrad = _build(config, rollout_len=4, num_envs=2)
        # flax creates float32 params even under x64: cast everything to float64.
        to64 = lambda tree: jax.tree.map(
            lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
        )
        # Built under jit: op by op, the setup alone compiled ~150 small programs.
        theta = jax.jit(lambda key: to64(objective.init(key)))(jax.random.key(2))

        @jax.jit
        def init_agents(key, theta):
            agents = metagrad.init(key, theta).agents
            return agents.replace(
                params=to64(agents.params),
                opt_state=to64(agents.opt_state),
                critic_params=to64(agents.critic_params),
                critic_opt_state=to64(agents.critic_opt_state),
            )

        agents = init_agents(jax.random.key(3), theta)
        loss = jax.jit(lambda p: metagrad.loss(p, agents, agent_keys(agents))[0])
        assert_gradient_matches_finite_differences(loss, theta, jax.random.key(4))


def test_mixed_estimator_averages_the_k_step_losses(setup):
    # Bonnet et al.: the mixed estimator is the mean of the k-step meta-losses, k = 1..K.
    # Large regularisers, so that each k-step loss's own regulariser counts too.
    level, _, agent, _, theta, state, _ = setup
    agents = jax.tree.map(lambda x: x[:2], state.agents)
    config = MetaGradConfig(**{**CONFIG.__dict__, "pi_hat_l2": 2.0, "y_hat_l2": 3.0})

    def meta_loss(**changes):
        metagrad = make_metagrad(
            MetaGradConfig(**{**config.__dict__, **changes}), agent, lambda key: level
        )
        loss = jax.jit(lambda p, a, k: metagrad.loss(p, a, k)[0])
        return float(loss(theta, agents, agent_keys(agents)))

    k_step = [meta_loss(unroll=k, estimator="k_step") for k in range(1, CONFIG.unroll + 1)]
    mixed = meta_loss(estimator="mixed")
    np.testing.assert_allclose(mixed, np.mean(k_step), rtol=1e-5)
    assert abs(k_step[0] - k_step[-1]) > 1e-3 * abs(k_step[-1])  # the average is not trivial


def test_critic_learns_from_fresh_experience(setup):
    level, _, agent, _, _, state, step = setup
    one = jax.tree.map(lambda x: x[0], state.agents)
    one, experience = agent.rollout(one, jax.random.key(7))
    target = jnp.ones_like(experience.reward)
    before = 0.5 * jnp.mean((agent.value(one.critic_params, experience.obs) - target) ** 2)
    updated, reported = agent.critic_update(one, experience, target)
    after = 0.5 * jnp.mean((agent.value(updated.critic_params, experience.obs) - target) ** 2)
    np.testing.assert_allclose(reported, before, rtol=1e-6)
    assert float(after) < float(before)
    # ...and the meta-update trains every agent's critic (GROOVE's code discards it).
    new_state, _ = step(state)
    moved = jax.tree.map(
        lambda a, b: np.abs(np.asarray(a - b)).max(axis=tuple(range(1, a.ndim))),
        new_state.agents.critic_params,
        state.agents.critic_params,
    )
    carried_on = np.asarray(new_state.agents.update_idx) > 0  # the others restarted
    assert carried_on.sum() >= 4
    # A critic whose fresh rollout saw no reward has zero TD error (zero-init table, zero
    # targets) and rightly stays put; the others must all have moved.
    moved_agents = jax.tree.leaves(moved)[0][carried_on] > 0
    assert moved_agents.sum() >= carried_on.sum() / 2, moved_agents


def test_meta_gradient_is_clipped_before_adam(setup, meta_grad):
    # GROOVE's code silently skips the clip with Adam; ours must apply it. Adam is
    # invariant to one gradient's scale, so take two meta-steps: a huge gradient (an
    # enormous pi_hat head makes the pi_hat regulariser's gradient huge), then the
    # natural one, and check the second step Adam applies after the clip.
    _, _, _, metagrad, theta, state, step = setup
    grad_fn, natural = meta_grad
    huge_params = jax.tree.map(lambda x: x, theta)
    huge_params["params"]["pi_head"] = jax.tree.map(
        lambda x: 1e5 * x, theta["params"]["pi_head"]
    )
    huge = grad_fn(huge_params, state.agents, metagrad.agent_keys(state))
    assert float(optax.global_norm(huge)) > 1e3 * CONFIG.max_grad_norm
    assert float(optax.global_norm(natural)) < CONFIG.max_grad_norm  # not clipped
    first, metrics = step(state.replace(params=huge_params))
    np.testing.assert_allclose(metrics["grad_norm"], optax.global_norm(huge), rtol=1e-3)
    # The same agents and params as `natural` was taken at, after the huge step's Adam.
    second, _ = step(state.replace(opt_state=first.opt_state))
    applied = jax.tree.map(lambda new, old: new - old, second.params, theta)

    def adam_second_update(first_grad):
        adam = optax.adam(CONFIG.lr)
        _, adam_state = adam.update(first_grad, adam.init(theta), theta)
        return adam.update(natural, adam_state, theta)[0]

    norm = float(optax.global_norm(huge))
    clipped = jax.tree.map(lambda g: g * CONFIG.max_grad_norm / norm, huge)
    expected, unclipped = adam_second_update(clipped), adam_second_update(huge)
    for a, b in zip(jax.tree.leaves(applied), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * CONFIG.lr)
    # Without the clip, the huge gradient would have stalled Adam's second step.
    gap = max(float(np.max(np.abs(b - c))) for b, c in zip(
        jax.tree.leaves(expected), jax.tree.leaves(unclipped)))
    assert gap > 0.1 * CONFIG.lr


# One step right of the start is floor, the next holds an object that pays 1 and ends
# the episode; episodes time out (return 0) after 3 steps. A single episode returns 0 or
# 1, while an update's mean over its episodes is a fraction in between.
SHORT = Layout(grid=("S.0.",), objects=((1.0, 1.0, 0.0),), max_steps_in_episode=3)


def test_max_mc_uses_the_highest_single_episode_return(setup):
    # Robust PLR (Jiang et al., 2021): MaxMC = mean over the level's steps of (highest
    # single-episode return seen on the level - V(s)); not the best per-update mean.
    _, _, _, metagrad, theta, _, step = setup
    levels = jax.tree.map(
        lambda x: jnp.stack([x] * CONFIG.num_agents), SHORT.to_params(4, 1)
    )
    state = metagrad.init(jax.random.key(6), theta, levels)
    # Updates 17 and 18 of 20: the second is in the scored window (the last 2 updates),
    # and no agent finishes (the records stay readable).
    state = state.replace(agents=state.agents.replace(
        update_idx=jnp.full(CONFIG.num_agents, 17, jnp.int32)
    ))
    new_state, metrics = step(state)
    records = new_state.records
    np.testing.assert_array_equal(new_state.agents.update_idx, 19)
    best = np.asarray(records.best_return)
    assert set(best.tolist()) <= {0.0, 1.0}, best  # single episodes' returns, not means
    assert best.sum() >= CONFIG.num_agents / 2, best
    assert 0 < float(metrics["episode_return"]) < 0.8  # an update's mean is a fraction
    # The critics were fresh (V = 0) when the window's rollout was scored.
    np.testing.assert_array_equal(records.max_mc_updates, 1)
    np.testing.assert_allclose(records.max_mc_sum, best, atol=1e-6)


def test_a_broken_agent_never_corrupts_the_objective(setup):
    *_, state, step = setup
    broken = state.agents.replace(
        params=jax.tree.map(lambda x: x.at[0].set(jnp.nan), state.agents.params)
    )
    new_state, metrics = step(state.replace(agents=broken))
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(new_state.params))
    assert int(metrics["nonfinite_chunks"]) == 1
    # The chunk without the broken agent still moved the params; the agent restarted.
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(state.params))
    )
    assert int(new_state.agents.update_idx[0]) == 0
    assert all(np.all(np.isfinite(x[0])) for x in jax.tree.leaves(new_state.agents.params))


def test_with_every_agent_broken_the_objective_does_not_move(setup):
    *_, state, step = setup
    broken = state.agents.replace(params=jax.tree.map(lambda x: x * jnp.nan, state.agents.params))
    new_state, metrics = step(state.replace(agents=broken))
    assert int(metrics["nonfinite_chunks"]) == CONFIG.num_minibatches
    jax.tree.map(np.testing.assert_array_equal, new_state.params, state.params)
    jax.tree.map(np.testing.assert_array_equal, new_state.opt_state, state.opt_state)
    np.testing.assert_array_equal(new_state.agents.update_idx, 0)  # all restarted


def test_agents_restart_on_a_new_lifetime_when_theirs_ends(setup):
    *_, state, step = setup
    near_end = state.agents.replace(
        update_idx=state.agents.update_idx.at[:3].set(19).at[3:].set(0)
    )
    new_state, metrics = step(state.replace(agents=near_end))
    np.testing.assert_array_equal(new_state.agents.update_idx[:3], 0)
    np.testing.assert_array_equal(new_state.agents.update_idx[3:], CONFIG.unroll)
    assert int(metrics["agents_reset"]) == 3


@pytest.mark.slow
def test_short_meta_training_improves_the_objective_over_meta_seeds(setup):
    """Fresh agents trained by the objective after 80 meta-steps beat those trained by
    the objective it started from, over 8 meta-seeds.

    One meta-seed cannot show it: measured over 12 (stop 22), the initial objective's
    agents reach the object with probability 0.005-0.70 depending on its init (mean
    0.24), and after 40 meta-steps 3 of 12 were still below 0.7; after 80 steps 11 of 12
    were above 0.8 (mean 0.96)."""
    level, objective, agent, metagrad, _, _, step = setup
    train = jax.jit(jax.vmap(agent.train, in_axes=(0, None, None, None, None)), static_argnums=4)
    keys = jax.random.split(jax.random.key(5), 16)

    def evaluate(params):
        _, metrics = train(keys, params, level, jnp.int32(20), 20)
        return float(np.nanmean(lifetime_final_return(metrics)))

    before, after = [], []
    for meta_seed in range(8):
        theta = objective.init(jax.random.fold_in(jax.random.key(1), meta_seed))
        state = metagrad.init(jax.random.fold_in(jax.random.key(0), meta_seed), theta)
        for _ in range(80):
            state, _ = step(state)
        before.append(evaluate(theta))
        after.append(evaluate(state.params))
    before, after = np.array(before), np.array(after)
    assert np.mean(after) - np.mean(before) > 0.4, (before, after)
    assert np.sum(after > 0.8) >= 5, after
