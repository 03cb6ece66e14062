"""The brax -> gymnax adapter on inverted_pendulum (spring backend).

Brax compiles take 10+ s on CPU, so one rollout is compiled per module and shared.
"""

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before any JAX computation; brax computes on import)

# isort: split
import pytest

pytest.importorskip("brax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from brax.envs.base import State as BraxState  # noqa: E402
from gymnax.environments import spaces  # noqa: E402

from discovery.envs import make  # noqa: E402
from discovery.envs.brax import BraxEnvParams, BraxToGymnax  # noqa: E402

EPISODE_LENGTH = 3
NUM_STEPS = 4


@pytest.fixture(scope="module")
def pendulum():
    return make("brax/inverted_pendulum", episode_length=EPISODE_LENGTH)


@pytest.fixture(scope="module")
def pendulum_rollout(pendulum):
    """reset + NUM_STEPS zero-action steps under one jit; the pole stays up that long."""
    env, params = pendulum

    @jax.jit
    def run(key):
        key_reset, key_steps = jax.random.split(key)
        obs0, state = env.reset(key_reset, params)
        action = jnp.zeros(env.action_space(params).shape)

        def body(state, key):
            obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
            return state, (obs, state.time, reward, terminated, truncated, info)

        _, steps = jax.lax.scan(body, state, jax.random.split(key_steps, NUM_STEPS))
        return obs0, steps

    return run(jax.random.key(0))


def test_make_gives_adapter_spring_backend_and_params(pendulum):
    env, params = pendulum
    assert isinstance(env, BraxToGymnax)
    assert env.brax_env.backend == "spring"
    assert env.name == "brax/inverted_pendulum"
    assert params == BraxEnvParams(max_steps_in_episode=EPISODE_LENGTH)


def test_spaces_without_observation_size(pendulum, monkeypatch):
    env, params = pendulum

    def forbidden(self):
        raise AssertionError("observation_size runs an un-jitted reset")

    monkeypatch.setattr(type(env.brax_env), "observation_size", property(forbidden))
    env._obs_shape = None
    obs_space = env.observation_space(params)
    act_space = env.action_space(params)
    assert isinstance(obs_space, spaces.Box) and obs_space.shape == (4,)
    assert isinstance(act_space, spaces.Box) and act_space.shape == (1,)
    assert act_space.low == -1.0 and act_space.high == 1.0


def test_rollout_shapes_and_dtypes(pendulum_rollout):
    obs0, (obs, _, reward, terminated, truncated, info) = pendulum_rollout
    assert obs0.shape == (4,)
    assert obs.shape == info["final_observation"].shape == (NUM_STEPS, 4)
    assert reward.shape == (NUM_STEPS,) and reward.dtype == jnp.float32
    assert terminated.dtype == truncated.dtype == jnp.bool_
    np.testing.assert_allclose(reward, np.ones(NUM_STEPS))  # +1 while the pole is up


def test_truncation_is_not_termination_and_auto_resets(pendulum_rollout):
    _, (obs, time, _, terminated, truncated, info) = pendulum_rollout
    np.testing.assert_array_equal(truncated, [False, False, True, False])
    assert not terminated.any()
    np.testing.assert_array_equal(time, [1, 2, 0, 1])
    # Before the reset, obs is the stepped obs; at the reset it is a fresh one.
    np.testing.assert_allclose(obs[:2], info["final_observation"][:2])
    assert not np.allclose(obs[2], info["final_observation"][2])


def test_brax_option_validation():
    with pytest.raises(ValueError, match="episode_lenght.*Allowed options"):
        make("brax/inverted_pendulum", episode_lenght=3)
    with pytest.raises(ValueError, match="backend"):
        make("brax/inverted_pendulum", backend="physx")
    with pytest.raises(ValueError, match="action_repeat must be a positive int"):
        make("brax/inverted_pendulum", action_repeat=0)
    with pytest.raises(ValueError, match="Did you mean 'brax/ant'"):
        make("brax/antt")


def test_max_steps_alias_and_action_repeat_option():
    env, params = make("brax/inverted_pendulum", max_steps_in_episode=8, action_repeat=2)
    assert params.max_steps_in_episode == 8 and env.action_repeat == 2


class Counter:
    """A brax-API stand-in (no physics, compiles in milliseconds): obs counts brax steps,
    reward 1 per step, done once the count reaches ``limit``."""

    action_size = 1

    def __init__(self, limit):
        self.limit = limit

    def reset(self, key):
        return BraxState(
            pipeline_state=None,
            obs=jnp.zeros((1,)),
            reward=jnp.float32(0.0),
            done=jnp.float32(0.0),
            metrics={"count": jnp.float32(0.0)},
        )

    def step(self, state, action):
        obs = state.obs + 1.0
        return state.replace(
            obs=obs,
            reward=1.0,  # a python float, as several brax envs return
            done=jnp.where(obs[0] >= self.limit, 1.0, 0.0),
            metrics={"count": obs[0]},
        )


def _counter_rollout(env, num_steps):
    params = env.default_params

    @jax.jit
    def run(key):
        _, state = env.reset(key, params)

        def body(state, key):
            obs, state, reward, terminated, truncated, info = env.step(
                key, state, jnp.zeros((1,)), params
            )
            return state, (obs, reward, terminated, truncated, info)

        return jax.lax.scan(body, state, jax.random.split(key, num_steps))[1]

    return run(jax.random.key(0))


def test_action_repeat_sums_rewards_and_stops_at_termination():
    env = BraxToGymnax(Counter(limit=3), episode_length=100, action_repeat=2)
    obs, reward, terminated, truncated, info = _counter_rollout(env, 3)
    # Step 1: counts 1, 2. Step 2: count 3 terminates; the repeat after it is dropped.
    np.testing.assert_allclose(reward, [2.0, 1.0, 2.0])
    np.testing.assert_array_equal(terminated, [False, True, False])
    assert not truncated.any()
    np.testing.assert_allclose(info["final_observation"][:, 0], [2.0, 3.0, 2.0])
    np.testing.assert_allclose(obs[:, 0], [2.0, 0.0, 2.0])  # auto-reset after step 2
    np.testing.assert_allclose(info["metrics"]["count"], [2.0, 3.0, 2.0])


def test_episode_length_counts_brax_steps_with_action_repeat():
    env = BraxToGymnax(Counter(limit=1000), episode_length=4, action_repeat=2)
    _, reward, terminated, truncated, _ = _counter_rollout(env, 3)
    np.testing.assert_array_equal(truncated, [False, True, False])
    assert not terminated.any()
    np.testing.assert_allclose(reward, [2.0, 2.0, 2.0])


def test_termination_and_truncation_together():
    """Terminating on the last allowed step reports both flags."""
    env = BraxToGymnax(Counter(limit=2), episode_length=2)
    _, _, terminated, truncated, _ = _counter_rollout(env, 2)
    np.testing.assert_array_equal(terminated, [False, True])
    np.testing.assert_array_equal(truncated, [False, True])


def test_swimmer_fails_clearly_when_brax_fluid_is_broken():
    try:
        jnp.clip(jnp.zeros(()), a_min=0.0)
    except TypeError:
        with pytest.raises(NotImplementedError, match="jnp.clip"):
            make("brax/swimmer")
    else:
        env, _ = make("brax/swimmer")
        assert env.brax_env.backend == "generalized"
