"""Contract and error-message tests for discovery.envs.registry."""

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before any JAX computation)

# isort: split
import sys
import urllib.error

import gymnax
import jax
import jax.numpy as jnp
import pytest

from discovery.envs import registry
from discovery.envs.registry import list_envs, make

NUM_STEPS = 3


def _rollout_fn(env, env_params):
    """jit(reset + a scan of NUM_STEPS random-action steps): one compile per env."""

    def rollout(key):
        key_reset, key_steps = jax.random.split(key)
        obs, state = env.reset(key_reset, env_params)

        def body(carry, key):
            state = carry
            key_act, key_step = jax.random.split(key)
            action = env.action_space(env_params).sample(key_act)
            obs, state, reward, terminated, truncated, info = env.step(
                key_step, state, action, env_params
            )
            return state, (obs, reward, terminated, truncated, info["final_observation"])

        _, steps = jax.lax.scan(body, state, jax.random.split(key_steps, NUM_STEPS))
        return obs, steps

    return jax.jit(rollout)


@pytest.mark.parametrize("name", list(gymnax.registered_envs))
def test_every_gymnax_env_round_trips(name):
    try:
        env, env_params = make(name)
    except RuntimeError as err:
        if name == "MNISTBandit-bsuite" and "MNIST" in str(err):
            pytest.skip(f"MNIST dataset not cached and not downloadable here: {err}")
        raise
    obs_shape = tuple(env.observation_space(env_params).shape)
    obs0, (obs, reward, terminated, truncated, final_obs) = _rollout_fn(env, env_params)(
        jax.random.key(0)
    )
    assert obs0.shape == obs_shape
    assert obs.shape == (NUM_STEPS, *obs_shape)
    assert final_obs.shape == (NUM_STEPS, *obs_shape)
    assert reward.shape == (NUM_STEPS,)
    assert jnp.issubdtype(reward.dtype, jnp.floating) or jnp.issubdtype(reward.dtype, jnp.integer)
    for flag in (terminated, truncated):
        assert flag.shape == (NUM_STEPS,)
        assert flag.dtype == jnp.bool_
    assert bool(jnp.all(jnp.isfinite(reward)))


def test_list_envs_has_every_gymnax_env_and_brax_names():
    names = list_envs()
    assert set(gymnax.registered_envs) <= set(names)
    assert len(gymnax.registered_envs) == 26
    assert "brax/ant" in names and "brax/inverted_pendulum" in names
    assert len(names) == len(set(names))
    assert "MinAtar-Breakout" not in names  # aliases are accepted, not listed


def test_cartpole_masspole_override_recomputes_derived_fields():
    _, params = make("CartPole-v1", masspole=0.3, length=0.8)
    assert params.masspole == pytest.approx(0.3)
    assert params.total_mass == pytest.approx(1.0 + 0.3)
    assert params.polemass_length == pytest.approx(0.3 * 0.8)
    _, params = make("CartPole-v1", masscart=2.0)
    assert params.total_mass == pytest.approx(2.1)
    assert params.polemass_length == pytest.approx(0.05)


def test_cartpole_refuses_derived_override():
    with pytest.raises(ValueError, match="total_mass.*masscart \\+ masspole"):
        make("CartPole-v1", total_mass=3.0)


def test_cartpole_derives_masses_in_step_after_params_replace():
    """A curriculum that sets masspole via replace steps with consistent physics."""
    env, params = make("CartPole-v1")
    consistent = registry.with_derived_params("CartPole-v1", params.replace(masspole=1.0))
    stale = params.replace(masspole=1.0)  # total_mass, polemass_length left at defaults
    key = jax.random.key(3)
    step = jax.jit(env.step)
    _, state = env.reset(key, params)
    obs_a = step(key, state, 1, consistent)[0]
    obs_b = step(key, state, 1, stale)[0]
    assert jnp.allclose(obs_a, obs_b)
    assert not jnp.allclose(obs_a, step(key, state, 1, params)[0])


def test_unknown_override_field_error_names_field_value_and_allowed():
    with pytest.raises(ValueError) as info:
        make("CartPole-v1", gravty=9.0)
    message = str(info.value)
    for part in ("gravty", "9.0", "CartPole-v1", "gravity", "max_steps_in_episode"):
        assert part in message


def test_override_is_applied():
    _, params = make("Pendulum-v1", max_speed=4.0, max_steps_in_episode=7)
    assert params.max_speed == 4.0 and params.max_steps_in_episode == 7


def test_unknown_name_suggests_close_match_and_lists_families():
    with pytest.raises(ValueError) as info:
        make("CartPole-v0")
    message = str(info.value)
    assert "Did you mean 'CartPole-v1'" in message
    for family in ("classic control", "MinAtar", "bsuite", "misc", "brax"):
        assert family in message


def test_names_are_case_sensitive():
    with pytest.raises(ValueError, match="Breakout-MinAtar"):
        make("breakout-minatar")


@pytest.mark.parametrize("game", ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"])
def test_minatar_alias(game):
    env, params = make(f"MinAtar-{game}")
    reference, reference_params = gymnax.make(f"{game}-MinAtar")
    assert type(env) is type(reference)
    assert params == reference_params


def test_alias_takes_overrides():
    _, params = make("MinAtar-Breakout", max_steps_in_episode=10)
    assert params.max_steps_in_episode == 10


def test_env_kwargs_reach_constructor_and_are_validated():
    env, params = make("DeepSea-bsuite", env_kwargs={"size": 5})
    assert env.observation_space(params).shape == (5, 5)
    with pytest.raises(ValueError, match="env_kwargs"):
        make("DeepSea-bsuite", env_kwargs={"sise": 5})


def test_brax_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "brax", None)
    monkeypatch.setitem(sys.modules, "brax.envs", None)
    with pytest.raises(ImportError, match=r'pip install "rl-discovery\[brax\]"'):
        make("brax/ant")


def test_list_envs_without_brax_uses_static_names(monkeypatch):
    monkeypatch.setitem(sys.modules, "brax", None)
    monkeypatch.setitem(sys.modules, "brax.envs", None)
    assert "brax/inverted_pendulum" in list_envs()


def test_mnist_offline_gives_clear_error(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(registry, "_MNIST_DIR", str(tmp_path))
    monkeypatch.setattr(registry.urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match="MNIST dataset.*without network access"):
        make("MNISTBandit-bsuite")
