"""Hand-checked behaviour of discovery.envs.wrappers under jit (and vmap over seeds)."""

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before any JAX computation)

# isort: split
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery.envs import make
from discovery.envs.wrappers import (
    ClipAction,
    EpisodeStatistics,
    FlattenObservation,
    NormalizeVecObservation,
    NormalizeVecReward,
    RunningMeanStd,
    VecEnv,
)


def rollout(env, params, num_steps, policy):
    """jit(reset + scan): ``policy(t, key) -> action`` for step t; returns every output."""

    @jax.jit
    def run(key):
        key_reset, key_steps = jax.random.split(key)
        obs0, state = env.reset(key_reset, params)

        def body(state, inputs):
            t, key = inputs
            key_act, key_step = jax.random.split(key)
            obs, state, reward, terminated, truncated, info = env.step(
                key_step, state, policy(t, key_act), params
            )
            return state, (obs, reward, terminated, truncated, info)

        ts = jnp.arange(num_steps)
        state, steps = jax.lax.scan(body, state, (ts, jax.random.split(key_steps, num_steps)))
        return obs0, state, steps

    return run


def alternate(num_envs=None):
    """CartPole actions 0, 1, 0, 1, ...: the pole stays up for well over 5 steps."""
    if num_envs is None:
        return lambda t, key: t % 2
    return lambda t, key: jnp.full((num_envs,), t % 2)


def test_flatten_observation_flattens_obs_final_obs_and_space():
    env, params = make("Breakout-MinAtar")
    env = FlattenObservation(env)
    space = env.observation_space(params)
    assert space.shape == (400,)
    assert jnp.shape(space.low) == (400,) and jnp.shape(space.high) == (400,)
    obs0, _, (obs, _, _, _, info) = rollout(env, params, 2, lambda t, k: 0)(jax.random.key(0))
    assert obs0.shape == (400,)
    assert obs.shape == (2, 400)
    assert info["final_observation"].shape == (2, 400)


def test_episode_statistics_truncation_by_hand():
    """CartPole truncated at 5 steps, +1 per step: two episodes of length 5, return 5."""
    env, params = make("CartPole-v1", max_steps_in_episode=5)
    env = EpisodeStatistics(env)
    _, _, (_, reward, terminated, truncated, info) = rollout(env, params, 12, alternate())(
        jax.random.key(0)
    )
    ends = np.zeros(12, bool)
    ends[[4, 9]] = True
    np.testing.assert_array_equal(info["returned_episode"], ends)
    np.testing.assert_array_equal(truncated, ends)
    assert not terminated.any()
    np.testing.assert_array_equal(reward, np.ones(12))
    np.testing.assert_array_equal(info["returned_episode_lengths"], [0] * 4 + [5] * 8)
    np.testing.assert_allclose(info["returned_episode_returns"], [0.0] * 4 + [5.0] * 8)


def test_episode_statistics_termination_sums_rewards():
    """Catch (5 rows) terminates after 4 steps with reward +-1 on the last one."""
    env, params = make("Catch-bsuite", env_kwargs={"rows": 5})
    env = EpisodeStatistics(env)
    _, _, (_, reward, terminated, truncated, info) = rollout(
        env, params, 8, lambda t, k: jax.random.randint(k, (), 0, 3)
    )(jax.random.key(1))
    ends = np.zeros(8, bool)
    ends[[3, 7]] = True
    np.testing.assert_array_equal(terminated, ends)
    assert not truncated.any()
    np.testing.assert_array_equal(info["returned_episode"], ends)
    assert info["returned_episode_lengths"][3] == 4 and info["returned_episode_lengths"][7] == 4
    reward = np.asarray(reward)
    assert info["returned_episode_returns"][3] == pytest.approx(reward[:4].sum())
    assert info["returned_episode_returns"][7] == pytest.approx(reward[4:].sum())
    assert abs(reward[:4].sum()) == 1.0


def test_clip_action_clips_before_the_env():
    env, params = make("Pendulum-v1")  # max_torque 2: clipping to [-1, 1] is visible
    clipped = ClipAction(env, -1.0, 1.0)
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    obs_clipped = clipped.step(key, state, jnp.array([5.0]), params)[0]
    np.testing.assert_allclose(obs_clipped, env.step(key, state, jnp.array([1.0]), params)[0])
    assert not np.allclose(obs_clipped, env.step(key, state, jnp.array([5.0]), params)[0])


def test_vec_env_shapes_and_forwarding():
    env, params = make("CartPole-v1")
    vec = VecEnv(FlattenObservation(env), 3)
    assert vec.num_envs == 3
    assert vec.observation_space(params).shape == (4,)  # spaces stay per-env
    assert vec.action_space(params).n == 2
    assert vec.default_params == params
    obs0, state, (obs, reward, terminated, truncated, info) = rollout(vec, params, 2, alternate(3))(
        jax.random.key(0)
    )
    assert obs0.shape == (3, 4)
    assert obs.shape == (2, 3, 4)
    assert reward.shape == (2, 3)
    assert terminated.shape == truncated.shape == (2, 3)
    assert terminated.dtype == truncated.dtype == jnp.bool_
    assert info["final_observation"].shape == (2, 3, 4)
    assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(state))
    assert not np.allclose(obs0[0], obs0[1])  # each env gets its own key


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 2)).astype(np.float32) for n in (5, 1, 17)]
    stats = RunningMeanStd.create((2,), count=1e-4)
    update = jax.jit(RunningMeanStd.update)
    for batch in batches:
        stats = update(stats, batch)
    data = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-3)
    assert float(stats.count) == pytest.approx(23 + 1e-4)


def _obs_stacks(num_envs):
    env, params = make("CartPole-v1")
    raw = VecEnv(env, num_envs)
    return raw, NormalizeVecObservation(VecEnv(env, num_envs)), params


def test_normalize_vec_observation_statistics_and_consistency():
    raw, norm, params = _obs_stacks(8)
    policy = lambda t, k: jax.random.randint(k, (8,), 0, 2)
    key = jax.random.key(0)
    raw_obs0, _, (raw_obs, _, _, _, raw_info) = rollout(raw, params, 200, policy)(key)
    obs0, state, (obs, _, terminated, truncated, info) = rollout(norm, params, 200, policy)(key)
    seen = np.concatenate([raw_obs0[None], raw_obs]).reshape(-1, 4)
    stats = state.obs_stats
    np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(stats.var, seen.var(0), rtol=1e-3)
    # The last step was normalised with the final statistics, final obs the same way.
    scale = np.sqrt(np.asarray(stats.var) + 1e-8)
    np.testing.assert_allclose(obs[-1], (raw_obs[-1] - stats.mean) / scale, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        info["final_observation"][-1],
        (raw_info["final_observation"][-1] - stats.mean) / scale,
        rtol=1e-4,
        atol=1e-5,
    )
    assert (terminated | truncated).any()  # episodes did end, so final_observation mattered
    # After enough steps the returned observations are roughly standardised.
    late = np.asarray(obs[100:]).reshape(-1, 4)
    assert np.all(np.abs(late.mean(0)) < 0.3)
    assert np.all(np.abs(late.std(0) - 1.0) < 0.3)


def test_normalize_vec_observation_has_per_seed_statistics_under_vmap():
    _, norm, params = _obs_stacks(4)
    run = rollout(norm, params, 20, lambda t, k: jax.random.randint(k, (4,), 0, 2))
    keys = jax.random.split(jax.random.key(0), 2)
    _, states, _ = jax.jit(jax.vmap(run))(keys)
    means = np.asarray(states.obs_stats.mean)
    assert means.shape == (2, 4)
    assert not np.allclose(means[0], means[1])
    for i in range(2):
        np.testing.assert_allclose(means[i], run(keys[i])[1].obs_stats.mean, rtol=1e-5, atol=1e-6)


def test_normalize_vec_reward_matches_discounted_return_std():
    """CartPole, reward 1, truncation at 5, gamma 0.5: G = 1, 1.5, 1.75, 1.875, 1.9375, 1."""
    gamma, num_envs, num_steps = 0.5, 2, 7
    env, params = make("CartPole-v1", max_steps_in_episode=5)
    norm = NormalizeVecReward(VecEnv(env, num_envs), gamma)
    _, state, (_, reward, terminated, truncated, _) = rollout(
        norm, params, num_steps, alternate(num_envs)
    )(jax.random.key(0))
    returns_by_step = [1.0, 1.5, 1.75, 1.875, 1.9375, 1.0, 1.5]
    seen = []
    for t, g in enumerate(returns_by_step):
        seen += [g] * num_envs
        # Prior pseudo-sample: count 1e-4 with mean 0 and variance 1.
        count = 1e-4 + len(seen)
        mean = sum(seen) / count
        m2 = 1e-4 * (1.0 + mean**2) + sum((x - mean) ** 2 for x in seen)
        expected = 1.0 / np.sqrt(m2 / count + 1e-8)
        np.testing.assert_allclose(reward[t], [expected] * num_envs, rtol=1e-4)
    np.testing.assert_allclose(state.discounted_return, [1.5, 1.5])
    assert truncated[4].all() and not terminated.any()


def test_terminated_and_truncated_survive_the_full_stack():
    def stack(env):
        env = EpisodeStatistics(FlattenObservation(env))
        return NormalizeVecReward(NormalizeVecObservation(VecEnv(env, 2)), gamma=0.99)

    cartpole, cp_params = make("CartPole-v1", max_steps_in_episode=5)
    _, _, (obs, _, terminated, truncated, info) = rollout(
        stack(cartpole), cp_params, 6, alternate(2)
    )(jax.random.key(0))
    assert obs.shape == (6, 2, 4)
    np.testing.assert_array_equal(truncated[:, 0], [0, 0, 0, 0, 1, 0])
    assert not terminated.any()
    np.testing.assert_array_equal(info["returned_episode_lengths"][4], [5, 5])

    catch, c_params = make("Catch-bsuite", env_kwargs={"rows": 5})
    _, _, (obs, _, terminated, truncated, info) = rollout(
        stack(catch), c_params, 4, lambda t, k: jnp.zeros((2,), jnp.int32)
    )(jax.random.key(0))
    assert obs.shape == (4, 2, 25) and obs.dtype == jnp.float32
    np.testing.assert_array_equal(terminated[:, 0], [0, 0, 0, 1])
    assert not truncated.any()
    np.testing.assert_array_equal(info["returned_episode"][3], [True, True])
    assert info["final_observation"].shape == (4, 2, 25)


def test_normalizers_need_a_vec_env():
    env, _ = make("CartPole-v1")
    with pytest.raises(TypeError, match="VecEnv"):
        NormalizeVecObservation(env)
    with pytest.raises(TypeError, match="VecEnv"):
        NormalizeVecReward(env, 0.99)
