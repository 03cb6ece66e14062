"""PPO stepped one update at a time: meta-gradients through its updates into a drift."""

import dataclasses

import jax
import jax.numpy as jnp

from discovery import envs
from discovery.agents.ppo import PPOConfig
from discovery.agents.ppo_learner import make_ppo_learner
from discovery.drift import make_lpo_drift
from discovery.meta.metagrad import MetaGradConfig, make_metagrad
from tests.agents.no_keys import assert_no_keys
from tests.gradcheck import assert_gradient_matches_finite_differences

# A large learning rate, so that ratios leave PPO-clip's range within one update; two
# minibatches, so that the drift shapes the second step of every update. Small networks
# and one epoch keep the compile short (differentiating through PPO updates is most of it).
PPO = PPOConfig(num_envs=2, num_steps=8, total_timesteps=64, num_minibatches=2, update_epochs=1,
                lr=1e-2, hidden_sizes=(8, 8))


def _build(config: MetaGradConfig, ppo: PPOConfig = PPO):
    env, env_params = envs.make("CartPole-v1")
    # A random output layer: the drift is not PPO-clip, so every param has a gradient.
    drift = make_lpo_drift(clip_eps=0.2, output_scale=1.0)
    learner = make_ppo_learner(ppo, env, env_params, drift)
    return drift, make_metagrad(config, learner, lambda key: env_params)


def _to64(tree):
    return jax.tree.map(
        lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )


def test_meta_gradient_through_ppo_updates_matches_finite_differences():
    """The meta-loss after K=2 PPO updates (2 minibatch steps of Adam each) is
    differentiated into the drift's params exactly, given the sampled actions.

    The meta-loss holds its advantages constant (a policy-gradient loss), so the check
    holds the critic fixed (``vf_coef=0``: the critic tower gets no update), where the
    exact derivative of the unrolled loss has no path through the advantages either.
    """
    with jax.enable_x64(True):
        config = MetaGradConfig(num_agents=2, num_minibatches=1, unroll=2,
                                lifetime_min=8, lifetime_max=8)
        drift, metagrad = _build(config, ppo=dataclasses.replace(PPO, vf_coef=0.0))
        theta = jax.jit(lambda key: _to64(drift.init(key)))(jax.random.key(2))

        @jax.jit
        def init_agents(key, theta):
            agents = metagrad.init(key, theta).agents
            return agents.replace(params=_to64(agents.params), opt_state=_to64(agents.opt_state))

        agents = init_agents(jax.random.key(3), theta)
        assert_no_keys(agents)
        keys = jax.random.split(jax.random.key(5), config.num_agents)
        loss = jax.jit(lambda p: metagrad.loss(p, agents, keys)[0])
        assert_gradient_matches_finite_differences(loss, theta, jax.random.key(4))
