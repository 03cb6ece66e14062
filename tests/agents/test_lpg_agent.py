"""LPG agents: rollouts, the learned-objective update, lifetimes, and learning with a
hand-written objective on a tiny gridworld."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from discovery.agents.lpg_agent import (
    LPGAgentConfig,
    ObjectiveInputs,
    ObjectiveTargets,
    lifetime_final_return,
    make_agent_optimizer,
    make_lpg_agent,
    sample_lifetime,
)
from discovery.envs.gridworld import GridWorld, Layout
from tests.agents.no_keys import assert_no_keys

M = 4
# A corridor: the agent starts on the left; the object on the right pays 1 and ends the
# episode. Optimal return 1 in 2 steps; a random walk often times out.
CORRIDOR = Layout(grid=("S..0",), objects=((1.0, 1.0, 0.0),), max_steps_in_episode=12)


@dataclass(frozen=True)
class _ObjectiveConfig:
    prediction_size: int = M


@dataclass(frozen=True)
class ReturnObjective:
    """A hand-written 'objective': pi_hat = scale * discounted reward-to-go within the
    rollout (REINFORCE), y_hat uniform. Stands in for a learned one."""

    config: _ObjectiveConfig = _ObjectiveConfig()

    @staticmethod
    def init(key):
        del key
        return {"scale": jnp.float32(1.0)}

    @staticmethod
    def apply(params, inputs: ObjectiveInputs) -> ObjectiveTargets:
        def backward(carry, step):
            reward, end = step
            carry = reward + 0.9 * carry * (1.0 - end)
            return carry, carry

        _, to_go = jax.lax.scan(
            backward, 0.0, (inputs.reward, inputs.episode_end.astype(jnp.float32)), reverse=True
        )
        y_hat = jnp.full(inputs.prediction.shape, 1.0 / M)
        return ObjectiveTargets(pi_hat=params["scale"] * (to_go - to_go.mean()), y_hat=y_hat)


@dataclass(frozen=True)
class PeakedObjective(ReturnObjective):
    """REINFORCE's ``pi_hat`` times ``params["scale"]``, and a peaked ``y_hat`` (so the
    prediction has a gradient to follow from a uniform ``y`` at birth)."""

    @staticmethod
    def apply(params, inputs: ObjectiveInputs) -> ObjectiveTargets:
        pi_hat = ReturnObjective.apply({"scale": params["scale"]}, inputs).pi_hat
        peak = jax.nn.softmax(jnp.array([1.0, 0.0, 0.0, 0.0]))
        y_hat = jnp.broadcast_to(peak, inputs.prediction.shape)
        return ObjectiveTargets(pi_hat=pi_hat, y_hat=y_hat)


@pytest.fixture(scope="module")
def corridor():
    env = GridWorld(max_size=4, max_objects=1)
    params = CORRIDOR.to_params(4, 1)
    config = LPGAgentConfig(num_envs=8, rollout_len=10, lr=40.0)
    agent = make_lpg_agent(config, env, params, ReturnObjective())
    return env, params, agent


def test_rollout_shapes_and_uniform_policy_at_birth(corridor):
    env, params, agent = corridor
    state = agent.init(jax.random.key(0), params, 50)
    state2, experience = jax.jit(agent.rollout)(state, jax.random.key(1))
    assert experience.obs.shape == (10, 8, env.observation_size())
    assert experience.action.shape == experience.reward.shape == (10, 8)
    logits = agent.policy_logits(state.params, experience.obs)
    np.testing.assert_allclose(jax.nn.softmax(logits), 0.2, rtol=1e-6)
    assert int(state2.update_idx) == 0  # acting is not learning
    assert not np.array_equal(state2.obs, state.obs)  # ...but it moves the envs on
    assert_no_keys(state2)


def test_update_reinforces_rewarded_actions_and_is_differentiable_in_the_objective(corridor):
    _, params, agent = corridor
    state = agent.init(jax.random.key(1), params, 50)
    state, experience = agent.rollout(state, jax.random.key(2))
    assert float(experience.reward.sum()) > 0, "the fixed key must give a rewarded step"
    new_state, metrics = jax.jit(agent.update)({"scale": jnp.float32(1.0)}, state, experience)
    rewarded = np.asarray(experience.reward) > 0

    def log_prob(p):
        logits = agent.policy_logits(p, experience.obs)
        all_lp = jax.nn.log_softmax(logits)
        return jnp.take_along_axis(all_lp, experience.action[..., None], -1)[..., 0]

    gain = np.asarray(log_prob(new_state.params) - log_prob(state.params))
    assert gain[rewarded].min() > 0
    assert int(new_state.update_idx) == 1
    assert metrics["targets"].pi_hat.shape == (10, 8)

    def new_policy_sum(scale):
        s, _ = agent.update({"scale": scale}, state, experience)
        return jnp.sum(log_prob(s.params) * rewarded)

    grad = jax.grad(new_policy_sum)(jnp.float32(1.0))
    assert np.isfinite(grad) and grad > 0


def _clip(tree, max_norm):
    norm = float(optax.global_norm(tree))
    return jax.tree.map(lambda g: g * min(1.0, max_norm / norm), tree), norm


def test_policy_and_prediction_are_clipped_and_stepped_separately():
    # GROOVE (Jackson et al., 2023): the policy (lr 40) and the prediction y (lr 4) have
    # their own optimisers, each clipping its own gradient at norm 0.5. One joint clip
    # would let the large policy gradient shrink the small prediction gradient's step.
    env = GridWorld(max_size=4, max_objects=1)
    level = CORRIDOR.to_params(4, 1)
    config = LPGAgentConfig(num_envs=8, rollout_len=10, lr=40.0, prediction_lr=3.0)
    agent = make_lpg_agent(config, env, level, PeakedObjective())
    state = agent.init(jax.random.key(1), level, 50)
    state, experience = agent.rollout(state, jax.random.key(2))
    objective_params = {"scale": jnp.float32(1e4)}  # a large policy gradient
    new_state, metrics = jax.jit(agent.update)(objective_params, state, experience)
    target = metrics["targets"]

    def loss(params):  # Oh et al., 2020, Eq. 2 as a loss, written out by hand
        log_pi = jax.nn.log_softmax(agent.policy_logits(params, experience.obs))
        log_pi_a = jnp.take_along_axis(log_pi, experience.action[..., None], -1)[..., 0]
        log_y = jax.nn.log_softmax(agent.prediction_logits(params, experience.obs))
        kl = jnp.sum(jnp.exp(log_y) * (log_y - jnp.log(target.y_hat + 1e-8)), -1)
        return -jnp.mean(target.pi_hat * log_pi_a) + config.prediction_weight * jnp.mean(kl)

    grads = jax.grad(loss)(state.params)["params"]
    policy, policy_norm = _clip(grads["actor"], config.max_grad_norm)
    prediction, prediction_norm = _clip(grads["prediction"], config.max_grad_norm)
    assert policy_norm > 20 * config.max_grad_norm  # clipped hard...
    assert 0 < prediction_norm < config.max_grad_norm  # ...while y's is not clipped at all
    old, new = state.params["params"], new_state.params["params"]
    for tower, step, lr in (("actor", policy, config.lr),
                            ("prediction", prediction, config.prediction_lr)):
        expected = jax.tree.map(lambda p, g, lr=lr: p - lr * g, old[tower], step)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
            new[tower], expected,
        )
    # y moved by its full step, where one joint clip would have scaled it by
    # max_grad_norm / (norm of the whole gradient) < 1/20.
    moved = jax.tree.map(lambda a, b: a - b, new["prediction"], old["prediction"])
    np.testing.assert_allclose(
        optax.global_norm(moved), config.prediction_lr * prediction_norm, rtol=1e-4
    )


def test_adam_agents_step_each_part_with_its_own_learning_rate():
    config = LPGAgentConfig(optimizer="adam", lr=0.3, prediction_lr=0.02, max_grad_norm=0.5)
    optimizer = make_agent_optimizer(config)
    params = {"params": {"actor": {"kernel": jnp.zeros((3, 5))},
                         "prediction": {"kernel": jnp.zeros((3, 4))}}}
    grads = {"params": {"actor": {"kernel": jnp.full((3, 5), 50.0)},
                        "prediction": {"kernel": jnp.full((3, 4), -0.01)}}}
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    # Adam's first step is -lr * sign(g) per entry, whatever each part's clip did.
    np.testing.assert_allclose(updates["params"]["actor"]["kernel"], -0.3, rtol=1e-3)
    np.testing.assert_allclose(updates["params"]["prediction"]["kernel"], 0.02, rtol=1e-3)


@pytest.mark.cross_program
def test_updates_after_the_lifetime_are_skipped(corridor):
    _, params, agent = corridor
    train = jax.jit(agent.train, static_argnums=4)
    objective_params = {"scale": jnp.float32(1.0)}
    short, metrics = train(jax.random.key(2), objective_params, params, jnp.int32(3), 5)
    np.testing.assert_array_equal(metrics["alive"], [True, True, True, False, False])
    assert int(short.update_idx) == 3
    # A 3-update run is another compiled program (the update count is static): its
    # params agree to float rounding, where a 4th or 5th update would move them far more.
    exact, _ = train(jax.random.key(2), objective_params, params, jnp.int32(3), 3)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 short.params, exact.params)


@pytest.mark.slow
def test_agent_learns_the_corridor_with_a_reinforce_objective(corridor):
    _, params, agent = corridor
    train = jax.jit(jax.vmap(agent.train, in_axes=(0, None, None, None, None)), static_argnums=4)
    keys = jax.random.split(jax.random.key(3), 4)
    _, metrics = train(keys, {"scale": jnp.float32(1.0)}, params, jnp.int32(60), 60)
    _, frozen = train(keys, {"scale": jnp.float32(0.0)}, params, jnp.int32(60), 60)
    learned, untrained = lifetime_final_return(metrics), lifetime_final_return(frozen)
    # Random walk: about 0.4 of episodes reach the object in 12 steps; learners all do.
    assert np.all(np.asarray(learned) > 0.95), learned
    assert np.all(np.asarray(untrained) < 0.7), untrained


def test_lifetime_final_return_weights_episodes_within_each_lifetime():
    metrics = {
        "alive": jnp.array([[True] * 10, [True] * 5 + [False] * 5]),
        "episodes": jnp.array([[1] * 9 + [3], [2, 2, 2, 2, 4, 0, 0, 0, 0, 0]]),
        "episode_return": jnp.array(
            [[0.0] * 9 + [2.0], [1.0, 1.0, 1.0, 1.0, 5.0] + [jnp.nan] * 5]
        ),
    }
    out = np.asarray(lifetime_final_return(metrics, fraction=0.2))
    # Agent 0: last 2 updates, (1*0 + 3*2) / 4; agent 1 lived 5: its last update only.
    np.testing.assert_allclose(out, [1.5, 5.0])


def test_sample_lifetime_is_log_uniform_within_bounds():
    lifetimes = np.asarray(
        jax.vmap(lambda k: sample_lifetime(k, 10, 250))(jax.random.split(jax.random.key(4), 4000))
    )
    assert lifetimes.min() >= 10 and lifetimes.max() <= 250
    # Log-uniform: the median is near the geometric mean sqrt(10 * 250) = 50.
    assert 40 < np.median(lifetimes) < 62
    assert int(sample_lifetime(jax.random.key(5), 7, 7)) == 7
