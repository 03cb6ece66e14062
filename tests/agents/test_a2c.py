"""A2C: hand-computed loss, shapes, carried env state, lifetimes, no retrace, vmap over
seeds / hyperparameters / levels, and learning on Catch."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery import envs
from discovery.agents.a2c import A2CConfig, final_return, make_a2c
from discovery.agents.rollout import Transition
from tests.agents.no_keys import assert_no_keys

# Catch episodes last exactly 9 steps (the ball falls 9 rows); rollouts of 5 steps make
# the first update end no episode and the second end one per env.
TINY = A2CConfig(num_envs=4, rollout_len=5, num_updates=3)


@pytest.fixture(scope="session")
def catch():
    return envs.make("Catch-bsuite")


@pytest.fixture(scope="session")
def tiny(catch):
    env, env_params = catch
    a2c = make_a2c(TINY, env, env_params)
    return a2c, jax.jit(a2c.train)


@pytest.fixture(scope="session")
def tiny_run(tiny):
    _, train = tiny
    return train(jax.random.key(0))


def test_shapes_finite_losses_and_carried_env_state(tiny_run):
    state, metrics = tiny_run
    for name in (
        "actor_loss",
        "value_loss",
        "entropy",
        "grad_norm",
        "episode_return",
        "episode_length",
        "episodes",
    ):
        chex.assert_shape(metrics[name], (TINY.num_updates,))
    for name in ("actor_loss", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(metrics[name])), (name, metrics[name])
    chex.assert_shape(state.obs, (TINY.num_envs, 50))
    assert int(state.update_idx) == TINY.num_updates
    # No reset between updates: steps 1-5 end no episode, steps 6-10 end one per env
    # (at step 9), steps 11-15 none.
    np.testing.assert_array_equal(metrics["episodes"], [0, TINY.num_envs, 0])
    assert np.isnan(metrics["episode_return"][0]) and np.isnan(metrics["episode_return"][2])
    assert metrics["episode_length"][1] == 9.0
    assert -1.0 <= metrics["episode_return"][1] <= 1.0
    # The uniform tabular policy starts at entropy log 3.
    np.testing.assert_allclose(metrics["entropy"][0], np.log(3.0), rtol=1e-5)


def test_loss_hand_computed(catch):
    env, env_params = catch
    obs = jnp.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    action = jnp.array([0, 2, 1])
    advantage = jnp.array([1.0, -2.0, 0.5])
    target = jnp.array([0.3, -1.0, 2.0])
    w_actor = np.array([[0.1, 0.2, -0.3], [0.0, 0.5, 0.1], [-0.2, 0.0, 0.4]], np.float32)
    w_critic = np.array([[0.2], [-0.1], [0.3]], np.float32)
    params = {
        "params": {
            "actor": {"kernel": jnp.asarray(w_actor)},
            "critic": {"kernel": jnp.asarray(w_critic)},
        }
    }
    traj = Transition(
        obs=obs,
        action=action,
        log_prob=None,
        value=None,
        reward=None,
        terminated=None,
        truncated=None,
        next_obs=None,
    )
    hp = (
        A2CConfig()
        .hyperparams()
        .replace(ent_coef=jnp.float32(0.1), vf_coef=jnp.float32(0.7))
    )

    logits = np.asarray(obs) @ w_actor
    log_pi = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    chosen = log_pi[np.arange(3), np.asarray(action)]
    entropy = -(np.exp(log_pi) * log_pi).sum(-1).mean()
    value = (np.asarray(obs) @ w_critic)[:, 0]
    value_loss = 0.5 * np.mean((value - np.asarray(target)) ** 2)

    for normalize in (False, True):
        a2c = make_a2c(A2CConfig(normalize_advantage=normalize), env, env_params)
        adv = np.asarray(advantage)
        if normalize:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        actor_loss = -np.mean(chosen * adv)
        expected = actor_loss + 0.7 * value_loss - 0.1 * entropy
        total, aux = jax.jit(a2c.loss)(params, traj, advantage, target, hp)
        np.testing.assert_allclose(total, expected, rtol=1e-5)
        np.testing.assert_allclose(aux["actor_loss"], actor_loss, rtol=1e-5)
        np.testing.assert_allclose(aux["value_loss"], value_loss, rtol=1e-5)
        np.testing.assert_allclose(aux["entropy"], entropy, rtol=1e-5)
        # Advantages and targets are constants: the critic's gradient is vf_coef * (V - G).
        grads, _ = jax.grad(a2c.loss, has_aux=True)(params, traj, advantage, target, hp)
        expected_critic = 0.7 * np.asarray(obs).T @ (value - np.asarray(target)) / 3
        np.testing.assert_allclose(
            grads["params"]["critic"]["kernel"][:, 0], expected_critic, rtol=1e-5, atol=1e-6
        )


def test_no_retrace_across_keys_hyperparams_and_levels(tiny, catch):
    a2c, _ = tiny
    _, env_params = catch
    train = jax.jit(chex.assert_max_traces(a2c.train, n=1))
    hparams = TINY.hyperparams()
    for seed, max_steps in enumerate((1000, 7, 3)):
        hparams = hparams.replace(lr=hparams.lr * 0.5, ent_coef=hparams.ent_coef * 2)
        level = env_params.replace(max_steps_in_episode=jnp.int32(max_steps))
        jax.block_until_ready(train(jax.random.key(seed), level, hparams))


@pytest.mark.cross_program
def test_update_matches_train_step_by_step(tiny, tiny_run):
    a2c, _ = tiny
    # train(key) draws its init and per-update keys from key as below.
    key_init, key_updates = jax.random.split(jax.random.key(0))
    keys = iter(jax.random.split(key_updates, TINY.num_updates))
    state = a2c.init(key_init)
    assert_no_keys(state)
    update = jax.jit(a2c.update)
    returns = []
    for _ in range(TINY.num_updates):
        state, metrics = update(state, next(keys))
        returns.append(metrics["actor_loss"])
    final_state, train_metrics = tiny_run
    # One update per program against all of them scanned in one: to float rounding.
    np.testing.assert_allclose(returns, train_metrics["actor_loss"], rtol=1e-5)
    chex.assert_trees_all_close(state.params, final_state.params, rtol=1e-5, atol=1e-6)


@pytest.mark.cross_program
def test_vmap_over_seeds_and_levels(tiny, catch):
    a2c, train = tiny
    _, env_params = catch
    # Episodes are cut at max_steps_in_episode: 9 steps (the natural length) or 3.
    levels = env_params.replace(max_steps_in_episode=jnp.array([1000, 3], jnp.int32))
    keys = jax.random.split(jax.random.key(1), 2)
    run = jax.jit(jax.vmap(jax.vmap(a2c.train, in_axes=(0, None)), in_axes=(None, 0)))
    _, metrics = run(keys, levels)
    chex.assert_shape(metrics["episode_return"], (2, 2, TINY.num_updates))
    lengths = np.asarray(metrics["episode_length"])
    assert np.nanmax(lengths[0]) == 9.0 and np.nanmax(lengths[1]) == 3.0, lengths
    # Same numbers as one level and one seed at a time (another program: float rounding).
    for i in range(2):
        level = jax.tree.map(lambda x, i=i: x[i], levels)
        _, single = train(keys[1], level)
        chex.assert_trees_all_close(
            jax.tree.map(lambda x, i=i: x[i, 1], metrics), single, rtol=1e-5
        )
    # Different seeds act differently.
    assert not np.allclose(metrics["actor_loss"][0, 0], metrics["actor_loss"][0, 1])


def test_vmap_over_hyperparams_uses_them(tiny):
    a2c, _ = tiny
    lrs = jnp.array([0.0, 1.0], jnp.float32)
    hparams = jax.vmap(lambda lr: TINY.hyperparams().replace(lr=lr))(lrs)
    state, _ = jax.jit(jax.vmap(a2c.train, in_axes=(None, None, 0)))(
        jax.random.key(2), None, hparams
    )
    kernel = np.asarray(state.params["params"]["actor"]["kernel"])
    assert np.all(kernel[0] == 0.0)  # lr 0: the zero-initialised table never moves
    assert np.any(kernel[1] != 0.0)


@pytest.mark.cross_program
def test_lifetime_discards_later_updates(tiny, catch):
    a2c, _ = tiny
    env, env_params = catch
    state, metrics = jax.jit(a2c.train)(jax.random.key(0), None, None, jnp.int32(2))
    short, short_metrics = jax.jit(
        make_a2c(A2CConfig(num_envs=4, rollout_len=5, num_updates=2), env, env_params).train
    )(jax.random.key(0))
    assert int(state.update_idx) == 2
    # The 2-update program's numbers, from another compiled program: to float rounding.
    chex.assert_trees_all_close(state.params, short.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["actor_loss"][:2], short_metrics["actor_loss"],
                               rtol=1e-5, atol=1e-6)
    assert np.isnan(metrics["actor_loss"][2]) and metrics["episodes"][2] == 0


def test_final_return():
    returns = jnp.array([[0.0, 1.0, jnp.nan, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [jnp.nan] * 10])
    np.testing.assert_allclose(final_return(returns, 0.2), [8.5, np.nan])
    np.testing.assert_allclose(final_return(returns, 0.01), [9.0, np.nan])
    # Per-row lifetimes: the window is the last 20% of each row's own lifetime.
    by_lifetime = final_return(returns[:1].repeat(3, 0), 0.4, jnp.array([10, 5, 4]))
    np.testing.assert_allclose(by_lifetime, [7.5, 3.5, 3.0])


def test_bad_config_and_env_are_rejected():
    with pytest.raises(ValueError, match="num_envs"):
        A2CConfig(num_envs=0)
    with pytest.raises(ValueError, match="optimizer"):
        A2CConfig(optimizer="rmsprop")
    env, env_params = envs.make("Pendulum-v1")
    with pytest.raises(TypeError, match="discrete"):
        make_a2c(A2CConfig(), env, env_params)


@pytest.mark.slow
def test_catch_learned_on_every_seed(catch):
    env, env_params = catch
    config = A2CConfig(
        num_envs=16, num_updates=150, network="mlp", optimizer="adam", lr=3e-3, vf_coef=0.5
    )
    a2c = make_a2c(config, env, env_params)
    keys = jax.random.split(jax.random.key(42), 4)
    _, metrics = jax.jit(jax.vmap(a2c.train))(keys)
    returns = np.asarray(metrics["episode_return"])
    # A uniform random policy catches about 1 ball in 5: return about -0.6.
    early = np.nanmean(returns[:, :5], axis=1)
    final = np.asarray(final_return(returns, 0.1))
    assert np.all(early < -0.3), early
    assert np.all(final > 0.8), final


@pytest.mark.slow
def test_default_tabular_a2c_solves_sparse_gridworld_on_most_seeds(run_optimised):
    """LPG's sparse level: +1 and -1 objects, both terminal, 50 steps. The optimal return
    is 1; the uniform random policy rarely reaches either object within 50 steps.

    Not every seed solves it: some never find the +1 object and stay at 0. Measured over
    48 seeds (key(0), key(1), key(2) split 16 ways), 43 solved with keys passed in and 42
    with the keys the agent used to keep in its state, so "all of 4 seeds" held with
    probability ~0.6 and broke when the key streams changed. At a solve rate of 0.875,
    9 or fewer of 16 seeds solving has probability 0.002; an agent that does not learn
    solves none."""
    env, env_params = envs.make("gridworld/sparse")
    a2c = make_a2c(A2CConfig(), env, env_params)
    keys = jax.random.split(jax.random.key(0), 16)
    _, metrics = jax.jit(jax.vmap(a2c.train), compiler_options=run_optimised)(keys)
    returns = np.asarray(metrics["episode_return"])
    early = np.nanmean(returns[:, :10], axis=1)
    final = np.asarray(final_return(returns, 0.1))
    assert np.all(early < 0.1), early
    assert np.sum(final > 0.9) > 9, final
