"""PPO stepped one update at a time, for meta-gradients through its updates.

:func:`discovery.agents.ppo.make_train` runs a whole PPO training run under one scan.
Meta-gradient training (:mod:`discovery.meta.metagrad`) instead carries a batch of
agents, each at its own point of its own lifetime on its own level, and differentiates
a meta-loss through ``K`` of their updates into the learned drift's params (Lu et al.,
2022, discover drifts by ES; this is the meta-gradient alternative the Mirror Learning
space admits, since every PPO update is differentiable in the drift). The learner
exposes what that needs: ``rollout`` (acting, no gradient), ``update`` (one PPO update
on a rollout, differentiable in the drift's params), and the policy and critic
evaluated on fresh experience. Its rollout, loss and optimiser are PPO's own
(:func:`~discovery.agents.rollout.make_rollout`, :func:`~discovery.agents.ppo.make_learn`);
its learning rate anneals over the agent's own lifetime, which the drift sees as
``progress`` (TA-LPO, Jackson et al., 2024), and its Adam adds ``eps_root`` under the
square root so that it is differentiable where a gradient is exactly zero.

:func:`as_antagonist` gives a learner with a fixed drift (PPO-clip) the shape of an
antagonist (``init``, ``update``), for algorithmic regret of a level (GROOVE, Jackson et
al., 2023).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from discovery.agents.ppo import (
    PPOConfig,
    episode_metrics,
    make_learn,
    make_network,
    make_optimizer,
    wrap_env,
)
from discovery.agents.rollout import Transition, make_rollout

Metrics = dict[str, jax.Array]
ADAM_EPS_ROOT = 1e-8


@struct.dataclass
class PPOExperience:
    """A rollout of a PPO learner; every field has leading shape ``[T, N]``.

    ``episode_return`` is the return of the episode that ended at the step (else 0),
    unscaled; ``reward`` is what the agent learns from (scaled).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    episode_end: jax.Array
    episode_return: jax.Array


@struct.dataclass
class PPOLearnerState:
    """One PPO agent: params, optimiser, envs, level and lifetime (keys are passed in)."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    env_params: Any
    update_idx: jax.Array
    lifetime: jax.Array

    @property
    def critic_params(self) -> Any:
        """The critic is the value head of the same network."""
        return self.params

    @property
    def progress(self) -> jax.Array:
        """``n / N``: the fraction of the lifetime spent."""
        return self.update_idx.astype(jnp.float32) / self.lifetime.astype(jnp.float32)


@dataclass(frozen=True, eq=False)
class PPOLearner:
    """The pure functions of a PPO learner (built by :func:`make_ppo_learner`).

    Attributes:
      init: ``init(key, env_params, lifetime) -> PPOLearnerState``.
      rollout: ``rollout(state, key) -> (state, PPOExperience)``: act with the current
        policy (no gradient flows into the sampled actions).
      update: ``update(drift_params, state, experience, key) -> (state, metrics)``: one
        PPO update (``update_epochs`` x ``num_minibatches`` Adam steps, minibatches
        shuffled by ``key``) on the rollout,
        differentiable in ``drift_params`` (also through the acting policy's
        log-probs and values, which PPO's ratio and value clipping read).
      critic_update: ``critic_update(state, experience, target) -> (state, loss)``: PPO
        trains its critic in ``update``, so this only reports the value loss.
      log_prob_and_entropy: ``(params, obs, action) -> (log_prob, entropy)`` per step.
      prediction_entropy: ``(params, obs) -> 0``: PPO has no prediction head.
      value: the critic's values for observations.
      discount: the discount ``gamma``.
    """

    config: PPOConfig
    init: Callable[..., PPOLearnerState]
    rollout: Callable[..., tuple[PPOLearnerState, PPOExperience]]
    update: Callable[..., tuple[PPOLearnerState, Metrics]]
    critic_update: Callable[..., tuple[PPOLearnerState, jax.Array]]
    log_prob_and_entropy: Callable[..., tuple[jax.Array, jax.Array]]
    prediction_entropy: Callable[..., jax.Array]
    value: Callable[[Any, jax.Array], jax.Array]
    discount: float


def make_ppo_learner(
    config: PPOConfig, env: Any, env_params: Any, drift: Callable[..., jax.Array]
) -> PPOLearner:
    """A PPO learner on ``env`` (levels: its ``env_params``) whose drift is
    ``drift(params, ratio, advantage, progress)`` with params passed to ``update``."""
    vec_env, discrete, action_dim = wrap_env(config, env, env_params, config.gamma)
    network = make_network(config, discrete, action_dim)
    hp = config.hyperparams()
    act = make_rollout(vec_env, network, config.num_steps)
    learn = make_learn(config, network, drift)

    def optimizer(lifetime: jax.Array):
        # eps_root: differentiating Adam where a gradient is exactly zero (a dead unit, a
        # tower with no loss) would otherwise give an infinite, then NaN, meta-gradient.
        return make_optimizer(config, hp, lifetime.astype(jnp.float32), eps_root=ADAM_EPS_ROOT)

    def init(key: jax.Array, env_params: Any, lifetime: jax.Array) -> PPOLearnerState:
        key_reset, key_init = jax.random.split(key)
        obs, env_state = vec_env.reset(key_reset, env_params)
        params = network.init(key_init, obs)
        lifetime = jnp.asarray(lifetime, jnp.int32)
        return PPOLearnerState(
            params=params,
            opt_state=optimizer(lifetime).init(params),
            env_state=env_state,
            obs=obs,
            env_params=env_params,
            update_idx=jnp.int32(0),
            lifetime=lifetime,
        )

    def rollout(state: PPOLearnerState, key: jax.Array) -> tuple[PPOLearnerState, PPOExperience]:
        params = jax.lax.stop_gradient(state.params)
        (env_state, obs), (traj, (ended, returns, _, _)) = act(
            params, state.env_state, state.obs, key, state.env_params, hp.reward_scale
        )
        experience = PPOExperience(
            obs=traj.obs,
            action=traj.action,
            reward=traj.reward,
            terminated=traj.terminated,
            truncated=traj.truncated,
            next_obs=traj.next_obs,
            episode_end=ended,
            episode_return=jnp.where(ended, returns, 0.0),
        )
        return state.replace(env_state=env_state, obs=obs), experience

    def update(
        drift_params: Any, state: PPOLearnerState, experience: PPOExperience, key: jax.Array
    ) -> tuple[PPOLearnerState, Metrics]:
        # The acting policy's log-probs and values, from the params the update starts
        # from: the numbers the rollout saw, but differentiable in the drift's params
        # through the earlier updates (the sampled actions are not).
        policy, value = network.apply(state.params, experience.obs)
        traj = Transition(
            obs=experience.obs,
            action=experience.action,
            log_prob=policy.log_prob(experience.action),
            value=value,
            reward=experience.reward,
            terminated=experience.terminated,
            truncated=experience.truncated,
            next_obs=experience.next_obs,
        )
        params, opt_state, aux = learn(
            state.params,
            state.opt_state,
            optimizer(state.lifetime),
            traj,
            key,
            drift_params,
            state.progress,
            hp,
        )
        returns = experience.episode_return
        metrics = {k: v.mean() for k, v in aux.items()}
        metrics |= episode_metrics(experience.episode_end, returns)
        metrics["reward_per_step"] = jnp.mean(experience.reward) / hp.reward_scale
        new_state = state.replace(
            params=params, opt_state=opt_state, update_idx=state.update_idx + 1
        )
        return new_state, metrics

    def value(params: Any, obs: jax.Array) -> jax.Array:
        return network.apply(params, obs)[1]

    def critic_update(state: PPOLearnerState, experience: PPOExperience, target: jax.Array):
        loss = 0.5 * jnp.mean((value(state.params, experience.obs) - target) ** 2)
        return state, loss

    def log_prob_and_entropy(params: Any, obs: jax.Array, action: jax.Array):
        policy, _ = network.apply(params, obs)
        return policy.log_prob(action), policy.entropy()

    return PPOLearner(
        config=config,
        init=init,
        rollout=rollout,
        update=update,
        critic_update=critic_update,
        log_prob_and_entropy=log_prob_and_entropy,
        prediction_entropy=lambda params, obs: jnp.float32(0.0),
        value=value,
        discount=config.gamma,
    )


class Antagonist(NamedTuple):
    """A hand-designed agent trained beside each learner on its level:
    ``init(key, env_params) -> state`` and ``update(state, key, env_params) -> (state,
    metrics)`` with ``metrics["reward_per_step"]``; ``state.update_idx`` counts updates
    (A2C's ``init`` and ``update`` have this shape)."""

    init: Callable[..., Any]
    update: Callable[..., tuple[Any, Metrics]]


def as_antagonist(learner: PPOLearner, drift_params: Any, lifetime: int) -> Antagonist:
    """A learner with a fixed drift (e.g. PPO-clip, Schulman et al., 2017) as an
    antagonist whose learning rate anneals over ``lifetime`` updates."""

    def init(key: jax.Array, env_params: Any) -> PPOLearnerState:
        return learner.init(key, env_params, lifetime)

    def update(
        state: PPOLearnerState, key: jax.Array, env_params: Any
    ) -> tuple[PPOLearnerState, Metrics]:
        key_rollout, key_update = jax.random.split(key)
        state, experience = learner.rollout(state.replace(env_params=env_params), key_rollout)
        return learner.update(drift_params, state, experience, key_update)

    return Antagonist(init=init, update=update)
