"""PPO as Mirror Learning: learning tests, vmapping over seeds and drift params, no retrace.

Thresholds come from REFERENCE.md ("Baselines to match"): PPO on CartPole-v1 with the
purejaxrl config reaches a mean return >= 475 at the end on every seed.
"""

from dataclasses import replace

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery import envs
from discovery.agents.ppo import PPOConfig, make_train
from discovery.drift import make_drift, make_drift_choice
from discovery.train import TrainConfig, progress_chunk, train_seeds

CARTPOLE_THRESHOLD = 475.0  # REFERENCE.md: every seed, end of training


def _final_returns(metrics, last=20):
    returns = np.asarray(metrics["episode_return"])
    return np.nanmean(returns[:, -last:], axis=1)


CARTPOLE_DRIFTS = ("ppo", "dpo")


def _train_cartpole(compiler_options, seeds=4):
    """Episode-return metrics ``[drifts, seeds, updates]`` of PPO-clip and DPO agents,
    trained as one compiled program (a drift choice vmapped over its index) on the same
    seeds."""
    env, env_params = envs.make("CartPole-v1")
    drifts = [make_drift(name) for name in CARTPOLE_DRIFTS]
    choice = make_drift_choice(drifts)
    train = make_train(PPOConfig(), env, env_params, choice)
    keys = jax.random.split(jax.random.key(42), seeds)
    params = {"index": jnp.arange(len(drifts), dtype=jnp.int32),
              "members": tuple(drift.init(keys[0]) for drift in drifts)}
    over_seeds = jax.vmap(train, in_axes=(0, None))
    over_drifts = jax.vmap(over_seeds, in_axes=(None, {"index": 0, "members": None}))
    _, metrics = jax.jit(over_drifts, compiler_options=compiler_options)(keys, params)
    return metrics


@pytest.mark.slow
def test_cartpole_solved_on_every_seed_by_ppo_and_dpo(run_optimised):
    metrics = _train_cartpole(run_optimised)
    returns = np.asarray(metrics["episode_return"])
    for drift_name, drift_returns in zip(CARTPOLE_DRIFTS, returns):
        finals = _final_returns({"episode_return": drift_returns})
        assert finals.shape == (4,)
        assert np.all(finals >= CARTPOLE_THRESHOLD), f"{drift_name} final returns {finals}"
        # And it learned: the first updates are far below the threshold.
        early = np.nanmean(drift_returns[:, :5], axis=1)
        assert np.all(early < 100.0), f"{drift_name} early returns {early}"


@pytest.mark.slow
def test_continuous_ppo_improves_on_pendulum(run_optimised):
    env, env_params = envs.make("Pendulum-v1")
    config = PPOConfig(
        num_envs=16, num_steps=128, total_timesteps=100_000, update_epochs=10,
        num_minibatches=8, lr=1e-3, gamma=0.95, ent_coef=0.0,
        normalize_obs=True, normalize_reward=True,
    )
    drift = make_drift("ppo")
    train = make_train(config, env, env_params, drift)
    keys = jax.random.split(jax.random.key(0), 2)
    _, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)), compiler_options=run_optimised)(
        keys, drift.init(keys[0]))
    returns = np.asarray(metrics["episode_return"])
    untrained = np.nanmean(returns[:, :3], axis=1)
    trained = np.nanmean(returns[:, -5:], axis=1)
    # A random policy scores about -1200 on Pendulum; a good one about -200.
    assert np.all(untrained < -900.0), untrained
    assert np.all(trained > -600.0), trained


TINY = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 3, num_minibatches=2,
                 update_epochs=2)


@pytest.fixture(scope="module")
def tiny_cartpole():
    env, env_params = envs.make("CartPole-v1")
    return env, env_params


def test_metrics_shapes_and_vmap_over_drift_params(tiny_cartpole):
    env, env_params = tiny_cartpole
    drift = make_drift("lpo", output_scale=1.0)
    train = make_train(TINY, env, env_params, drift)
    population = jax.vmap(drift.init)(jax.random.split(jax.random.key(1), 3))
    keys = jax.random.split(jax.random.key(0), 2)
    run = jax.jit(jax.vmap(jax.vmap(train, in_axes=(0, None)), in_axes=(None, 0)))
    state, metrics = run(keys, population)
    chex.assert_shape(metrics["actor_loss"], (3, 2, TINY.num_updates))
    chex.assert_shape(metrics["episode_return"], (3, 2, TINY.num_updates))
    assert np.all(np.asarray(state.update_idx) == TINY.num_updates)
    # Different drift params give different updates (the params are really used).
    drifts = np.asarray(metrics["drift"])[:, 0, -1]
    assert len(np.unique(np.round(drifts, 6))) == 3, drifts


def test_same_key_same_numbers(tiny_cartpole):
    env, env_params = tiny_cartpole
    drift = make_drift("ppo")
    train = jax.jit(make_train(TINY, env, env_params, drift))
    params = drift.init(jax.random.key(0))
    _, first = train(jax.random.key(7), params)
    _, second = train(jax.random.key(7), params)
    chex.assert_trees_all_equal(first, second)
    _, other = train(jax.random.key(8), params)
    assert not np.allclose(first["actor_loss"], other["actor_loss"])


def test_no_retrace_across_keys_params_and_hyperparams(tiny_cartpole):
    env, env_params = tiny_cartpole
    drift = make_drift("dpo")
    train = jax.jit(chex.assert_max_traces(make_train(TINY, env, env_params, drift), n=1))
    params = drift.init(jax.random.key(0))
    hparams = TINY.hyperparams()
    for seed in range(3):
        params = jax.tree.map(lambda x: x * 1.1, params)
        hparams = hparams.replace(lr=hparams.lr * 2.0)
        jax.block_until_ready(train(jax.random.key(seed), params, hparams=hparams))


@pytest.mark.cross_program
def test_hyperparams_are_traced_and_used(tiny_cartpole):
    env, env_params = tiny_cartpole
    drift = make_drift("ppo")
    train = jax.jit(make_train(TINY, env, env_params, drift))
    params = drift.init(jax.random.key(0))
    frozen = TINY.hyperparams().replace(lr=jnp.float32(0.0))
    state0, _ = train(jax.random.key(3), params, hparams=frozen)
    state1, _ = train(jax.random.key(3), params, hparams=frozen.replace(lr=jnp.float32(1e-2)))
    # With lr = 0 the network never moves; with lr > 0 it does.
    same_config = PPOConfig(num_envs=4, num_steps=16, total_timesteps=64, num_minibatches=2,
                            update_epochs=1)
    init_state, _ = jax.jit(make_train(same_config, env, env_params, drift))(
        jax.random.key(3), params, hparams=frozen)
    a = jax.tree.leaves(state0.params)[0]
    b = jax.tree.leaves(state1.params)[0]
    c = jax.tree.leaves(init_state.params)[0]
    # init_state comes from another compiled program (another config), whose network
    # init (an orthogonal init, by QR) may round differently: equal to float rounding.
    np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-7)
    assert not np.allclose(a, b)


def test_cnn_network_on_minatar_runs():
    env, env_params = envs.make("Breakout-MinAtar")
    config = PPOConfig(num_envs=2, num_steps=8, total_timesteps=32, num_minibatches=2,
                       update_epochs=1, network="cnn", activation="relu")
    drift = make_drift("ppo")
    state, metrics = jax.jit(make_train(config, env, env_params, drift))(
        jax.random.key(0), drift.init(jax.random.key(0))
    )
    assert np.all(np.isfinite(np.asarray(metrics["actor_loss"])))


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="num_minibatches"):
        PPOConfig(num_envs=3, num_steps=5, num_minibatches=4)
    with pytest.raises(ValueError, match="total_timesteps"):
        PPOConfig(num_envs=4, num_steps=128, total_timesteps=100)


@pytest.mark.cross_program
def test_progress_runs_the_updates_in_chunks_with_the_same_numbers(monkeypatch):
    """``discover train``'s progress bar: the updates run in chunks from the host (no
    host callback inside the program, so JAX's persistent cache keeps it), here 7
    updates in at most 3 chunks (3, 3 and a shorter last one), and the experience is
    that of one whole run. The chunks are other compiled programs than the whole run's,
    so the numbers agree to float rounding, not bit for bit: XLA reduces in another
    order in the smaller programs, and how it vectorises depends on the host's ISA
    (entropy was 1.2e-7 off on an AVX2 host without AVX-512)."""
    import discovery.train

    monkeypatch.setattr(discovery.train, "MAX_PROGRESS_CHUNKS", 3)
    config = TrainConfig(env="CartPole-v1", drift="dpo", seeds=2,
                         ppo=replace(TINY, total_timesteps=TINY.steps_per_update * 7))
    seen, chunks = [], []
    chunked = train_seeds(config, on_update=seen.append,
                          on_chunk=lambda first, metrics: chunks.append((first, metrics)))
    whole = train_seeds(config)
    assert seen == [2, 5, 6]  # the last update done after each chunk
    # Each chunk's metrics arrive as it finishes (a tracker logs them as training goes).
    assert [first for first, _ in chunks] == [0, 3, 6]
    for name, values in chunked.metrics.items():
        np.testing.assert_array_equal(
            np.concatenate([metrics[name] for _, metrics in chunks], axis=1), values)
    # A divisor near the fewest updates per chunk keeps one program; a prime count
    # (1009 updates, at most 1000 chunks) still reports, in chunks of 2 and a last of 1.
    assert progress_chunk(6, max_chunks=3) == 2 and progress_chunk(1009) == 2
    # The same experience: the episode counts are integers, equal; a rounding difference
    # that changed a sampled action would move the float means below by far more than
    # their tolerance, which allows for rounding only.
    np.testing.assert_array_equal(chunked.metrics["episodes"], whole.metrics["episodes"])
    for name in ("episode_return", "episode_length", "latest_return", "entropy"):
        np.testing.assert_allclose(chunked.metrics[name], whole.metrics[name], rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    for name in ("actor_loss", "value_loss", "drift", "approx_kl"):
        np.testing.assert_allclose(chunked.metrics[name], whole.metrics[name], rtol=1e-4,
                                   atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(chunked.diverged, whole.diverged)
