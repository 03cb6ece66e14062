"""Drift tasks: every seed gets a return, divergence is counted, normalisers are sane."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import environment, spaces

from discovery import envs  # noqa: F401  (sets XLA_FLAGS)
from discovery.agents.ppo import PPOConfig, make_train
from discovery.drift import make_drift
from discovery.stats import summarise_over_seeds
from discovery.tasks import (
    DriftTaskConfig,
    make_agent_score,
    normaliser,
)

LENGTH = 50  # the corridor's time limit: every episode lasts exactly this long


@struct.dataclass
class CorridorState(environment.EnvState):
    pass


class Corridor(environment.Environment):
    """Reward 1 per step, truncated after ``LENGTH`` steps, whatever the agent does."""

    @property
    def default_params(self) -> environment.EnvParams:
        return environment.EnvParams(max_steps_in_episode=LENGTH)

    def step_env(self, key, state, action, params):
        state = CorridorState(time=state.time + 1)
        return self.get_obs(state), state, jnp.float32(1.0), jnp.bool_(False), {}

    def reset_env(self, key, params):
        state = CorridorState(time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.array([state.time / LENGTH], jnp.float32)

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params=None):
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


# 8 updates of 4 steps: training ends 32 steps into the first 50-step episode, so no
# episode ends in the final window (nor at all), the case that made ES rank such
# members last.
SHORT = PPOConfig(num_envs=2, num_steps=4, total_timesteps=64, num_minibatches=2,
                  update_epochs=1)


@pytest.fixture(scope="session")
def corridor_scores():
    env = Corridor()
    drift = make_drift("ppo")
    params = drift.init(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 3)
    out = {}
    for score in ("evaluation", "training"):
        config = DriftTaskConfig(score=score, final_fraction=0.25)
        agent_score = make_agent_score(config, SHORT, env, env.default_params, drift)
        out[score] = jax.jit(jax.vmap(agent_score, in_axes=(0, None, None)))(
            keys, params, SHORT.hyperparams()
        )
    return out


def test_every_seed_is_scored_when_no_episode_ends_in_the_window(corridor_scores):
    returns, metrics = corridor_scores["evaluation"]
    assert np.all(np.isnan(np.asarray(metrics["episode_return"])))  # none ended
    # The final policy plays one whole episode per env after training: return = LENGTH.
    np.testing.assert_array_equal(np.asarray(returns), [LENGTH] * 3)


def test_training_score_counts_the_episode_in_progress(corridor_scores):
    returns, metrics = corridor_scores["training"]
    # Before the first episode ends, each env's return is its running return: at the
    # last two updates' steps that is 25..32 (mean 28.5).
    np.testing.assert_allclose(np.asarray(returns), [28.5] * 3)
    assert np.all(np.isfinite(np.asarray(metrics["latest_return"])))


def test_diverged_training_is_nan_and_counted():
    env = Corridor()
    drift = make_drift("ppo")
    agent_score = make_agent_score(DriftTaskConfig(), SHORT, env, env.default_params, drift)
    blown = SHORT.hyperparams().replace(lr=jnp.float32(jnp.nan))
    keys = jax.random.split(jax.random.key(2), 2)
    hparams = jax.tree.map(lambda a, b: jnp.stack([a, b]), SHORT.hyperparams(), blown)
    returns, _ = jax.jit(jax.vmap(agent_score, in_axes=(0, None, 0)))(
        keys, drift.init(keys[0]), hparams
    )
    returns = np.asarray(returns)
    assert returns[0] == LENGTH and np.isnan(returns[1])
    summary = summarise_over_seeds(returns[None])
    assert summary == {"mean": [LENGTH], "sem": [None], "seeds_covered": [1],
                       "per_seed": [[LENGTH, None]]}
    assert summarise_over_seeds(np.full((1, 2), np.nan))["mean"] == [None]


def test_evaluation_plays_whole_episodes_of_the_final_policy_on_cartpole():
    """On CartPole (reward 1 per step) the score is a whole episode's length."""
    env, env_params = envs.make("CartPole-v1")
    drift = make_drift("ppo")
    config = PPOConfig(num_envs=4, num_steps=16, total_timesteps=128, num_minibatches=2,
                       update_epochs=1)
    agent_score = make_agent_score(DriftTaskConfig(), config, env, env_params, drift)
    score, _ = jax.jit(agent_score)(
        jax.random.key(0), drift.init(jax.random.key(0)), config.hyperparams()
    )
    assert 8 <= float(score) <= 500


def _config(normalise, **kw):
    return DriftTaskConfig(envs=("A", "B"), normalise=normalise, **kw)


def test_normalisers_refuse_what_would_invert_or_blow_up_the_ordering():
    ppo, random = np.array([240.0, -100.0]), np.array([22.0, -500.0])
    offset, scale = normaliser(_config("ppo_random"), ppo, random)
    np.testing.assert_allclose((ppo - offset) / scale, [1.0, 1.0])
    np.testing.assert_allclose((random - offset) / scale, [0.0, 0.0])
    # Dividing by a negative PPO return (Acrobot-like B) would invert ES's ordering.
    with pytest.raises(ValueError, match=r"cannot normalise B: PPO-clip returns -100 and "
                                         r"random play -500.*must be positive"):
        normaliser(_config("ppo"), ppo, random)
    # PPO ~ random (MountainCar-like): the denominator would amplify noise.
    with pytest.raises(ValueError, match=r"cannot normalise B: PPO-clip returns -199 and "
                                         r"random play -200.*exceed random"):
        normaliser(_config("ppo_random"), np.array([240.0, -199.0]), random * 0 - 200.0)
    fixed = _config("fixed", normalisers=(15.04, 50.08))
    offset, scale = normaliser(fixed, ppo, random)
    np.testing.assert_allclose(scale, [15.04, 50.08])
    np.testing.assert_allclose(offset, 0.0)


@pytest.mark.parametrize("bad", [
    dict(normalise="fixed"),
    dict(normalise="fixed", normalisers=(1.0, -2.0)),
    dict(normalise="ppo", normalisers=(1.0, 2.0)),
    dict(env_adam_b2=(0.99,)),
])
def test_task_config_validation(bad):
    with pytest.raises(ValueError):
        _config(**{"normalise": "ppo_random", **bad})


def test_reward_scale_scales_what_the_agent_learns_from_not_the_reported_return():
    env = Corridor()
    drift = make_drift("ppo")
    train = jax.jit(make_train(SHORT, env, env.default_params, drift))
    params = drift.init(jax.random.key(0))
    _, plain = train(jax.random.key(3), params, hparams=SHORT.hyperparams())
    _, scaled = train(jax.random.key(3), params,
                      hparams=replace(SHORT, reward_scale=10.0).hyperparams())
    np.testing.assert_array_equal(plain["latest_return"], scaled["latest_return"])
    assert float(scaled["value_loss"][0]) > 10 * float(plain["value_loss"][0])
