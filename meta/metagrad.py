"""Meta-gradients for learned objectives: backpropagate through unrolled agent updates.

A batch of LPG agents, each on its own level and at its own point of its lifetime,
takes ``K`` updates driven by the learned objective; the updated agent is then scored
by an actor-critic meta-loss on experience it has not trained on, and the gradient of
that loss flows back through the ``K`` updates into the objective's parameters (LPG,
Oh et al., 2020, Sec. 3.2; GROOVE, Jackson et al., 2023). Agents carry on from where
the unroll left them and are re-created on a fresh level when their lifetime ends, so
the objective always sees agents at every stage of learning.

Two estimators (Bonnet et al., "One Step at a Time"):

* ``"k_step"``: the meta-loss of the agent after all ``K`` updates;
* ``"mixed"``: the mean of the ``k``-step meta-losses for ``k = 1..K``. Each update's
  rollout is fresh experience for the agent that collected it, so the ``k < K`` terms
  cost no extra environment steps; mixing cuts the estimator's variance.

The meta-loss per agent (GROOVE's, with its two defects fixed: the critic is trained,
and the meta-gradient is clipped before Adam):

    -mean(log pi(a|s) * A) - c_H H(pi) - c_y H(y) + c_pi mean(pi_hat^2)
        + c_yhat mean(sum(y_hat^2))

with ``A`` from GAE under the agent's critic, normalised per agent. The critic learns
by TD(lambda) (Adam) on every fresh rollout; it shapes the meta-loss only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from agents import distributions
from agents.lpg_agent import Experience, LPGAgent, LPGAgentState, sample_lifetime
from agents.rollout import gae

Metrics = dict[str, jax.Array]


@dataclass(frozen=True)
class MetaGradConfig:
    """Meta-gradient training of a learned objective (GROOVE's values by default).

    Attributes:
      num_agents: agents per meta-update, each on its own level.
      num_minibatches: agents are differentiated in this many sequential chunks
        (gradients averaged) to bound memory.
      unroll: ``K``, agent updates differentiated through per meta-update.
      estimator: ``"k_step"`` or ``"mixed"`` (see the module docstring).
      lr: Adam step size of the meta-optimiser.
      max_grad_norm: the meta-gradient's global norm is clipped to this before Adam.
      lifetime_min, lifetime_max: agent lifetimes in updates, log-uniform between
        (equal values fix the lifetime).
      gae_lambda: GAE's lambda in the meta-loss (the discount is the agent's).
      entropy_coef: ``c_H``, policy entropy bonus of the meta-loss.
      prediction_entropy_coef: ``c_y``, entropy bonus of the prediction ``y``.
      pi_hat_l2, y_hat_l2: penalties on the objective's outputs.
    """

    num_agents: int = field(default=512, metadata={"min": 1})
    num_minibatches: int = field(default=16, metadata={"min": 1})
    unroll: int = field(default=5, metadata={"min": 1})
    estimator: Literal["k_step", "mixed"] = "k_step"
    lr: float = field(default=1e-4, metadata={"min": 0})
    max_grad_norm: float = field(default=1.0, metadata={"min": 0})
    lifetime_min: int = field(default=250, metadata={"min": 1})
    lifetime_max: int = field(default=250, metadata={"min": 1})
    gae_lambda: float = field(default=0.95, metadata={"min": 0, "max": 1})
    entropy_coef: float = 0.05
    prediction_entropy_coef: float = 0.001
    pi_hat_l2: float = 0.005
    y_hat_l2: float = 0.001

    def __post_init__(self) -> None:
        if self.num_agents % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} must divide "
                f"num_agents={self.num_agents}"
            )
        if self.lifetime_min > self.lifetime_max:
            raise ValueError(
                f"lifetime_min={self.lifetime_min} must be <= lifetime_max={self.lifetime_max}"
            )


@struct.dataclass
class MetaGradState:
    """The meta-optimiser's state: objective params, Adam state, the agents, a key."""

    params: Any
    opt_state: Any
    agents: LPGAgentState  # batched: leading axis num_agents
    key: jax.Array


def make_meta_optimizer(config: MetaGradConfig) -> optax.GradientTransformation:
    """Clip the meta-gradient's global norm, then Adam."""
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.lr))


@dataclass(frozen=True, eq=False)
class MetaGradient:
    """Pure functions of meta-gradient training (built by :func:`make_metagrad`).

    Attributes:
      init: ``init(key, objective_params) -> MetaGradState``; agents start at
        staggered points of their first lifetime.
      loss: ``loss(objective_params, agents) -> (meta_loss, (agents, fresh, metrics))``:
        the mean meta-loss of a batch of agents (differentiable in the params), the
        agents after the unroll, the fresh rollout that scored them, and per-agent
        metrics.
      step: ``step(state) -> (state, metrics)``: one meta-update (jittable).
    """

    config: MetaGradConfig
    init: Callable[[jax.Array, Any], MetaGradState]
    loss: Callable[[Any, LPGAgentState], tuple[jax.Array, tuple[LPGAgentState, Any, Metrics]]]
    step: Callable[[MetaGradState], tuple[MetaGradState, Metrics]]


def make_metagrad(
    config: MetaGradConfig, agent: LPGAgent, sample_level: Callable[[jax.Array], Any]
) -> MetaGradient:
    """Meta-gradient training of ``agent``'s objective on levels from ``sample_level(key)``."""
    optimizer = make_meta_optimizer(config)
    discount = agent.config.discount
    chunk = config.num_agents // config.num_minibatches

    def new_agent(key: jax.Array) -> LPGAgentState:
        key_level, key_lifetime, key_agent = jax.random.split(key, 3)
        lifetime = sample_lifetime(key_lifetime, config.lifetime_min, config.lifetime_max)
        return agent.init(key_agent, sample_level(key_level), lifetime)

    def init(key: jax.Array, objective_params: Any) -> MetaGradState:
        key, key_agents, key_stagger = jax.random.split(key, 3)
        agents = jax.vmap(new_agent)(jax.random.split(key_agents, config.num_agents))
        # Stagger the first lifetimes so agents are at every stage of learning at once.
        start = jax.random.randint(key_stagger, (config.num_agents,), 0, agents.lifetime)
        agents = agents.replace(update_idx=start.astype(jnp.int32))
        return MetaGradState(
            params=objective_params,
            opt_state=optimizer.init(objective_params),
            agents=agents,
            key=key,
        )

    def advantages(critic_params: Any, experience: Experience) -> tuple[jax.Array, jax.Array]:
        value = agent.value(critic_params, experience.obs)
        next_value = agent.value(critic_params, experience.next_obs)
        advantage, target = gae(
            experience.reward,
            value,
            next_value,
            experience.terminated,
            experience.truncated,
            discount,
            config.gae_lambda,
        )
        return advantage, target

    def actor_critic_loss(params: Any, critic_params: Any, experience: Experience):
        """The meta-loss's actor-critic part for an agent with ``params`` on fresh data."""
        advantage, _ = jax.lax.stop_gradient(advantages(critic_params, experience))
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        logits = agent.policy_logits(params, experience.obs)
        y_logits = agent.prediction_logits(params, experience.obs)
        log_prob = distributions.categorical_log_prob(logits, experience.action)
        entropy = jnp.mean(distributions.categorical_entropy(logits))
        y_entropy = jnp.mean(distributions.categorical_entropy(y_logits))
        policy_loss = -jnp.mean(log_prob * advantage)
        loss = (
            policy_loss
            - config.entropy_coef * entropy
            - config.prediction_entropy_coef * y_entropy
        )
        return loss, {"policy_loss": policy_loss, "entropy": entropy}

    def agent_meta_loss(objective_params: Any, state: LPGAgentState):
        """Unroll K updates of one agent, then score it (see the module docstring)."""

        def unrolled_update(carry, index):
            state = carry
            state, experience = agent.rollout(state)
            fresh_loss, _ = actor_critic_loss(state.params, state.critic_params, experience)
            state, metrics = agent.update(objective_params, state, experience)
            targets = metrics.pop("targets")
            regulariser = config.pi_hat_l2 * jnp.mean(targets.pi_hat**2) + config.y_hat_l2 * (
                jnp.mean(jnp.sum(targets.y_hat**2, axis=-1))
            )
            # The rollout of update k is fresh for the agent after k updates (k >= 1).
            mixed_term = jnp.where(index > 0, fresh_loss, 0.0)
            return state, (mixed_term, regulariser, metrics)

        state, (mixed_terms, regularisers, metrics) = jax.lax.scan(
            unrolled_update, state, jnp.arange(config.unroll)
        )
        state, fresh = agent.rollout(state)
        final_loss, aux = actor_critic_loss(state.params, state.critic_params, fresh)
        if config.estimator == "mixed":
            loss = (jnp.sum(mixed_terms) + final_loss) / config.unroll
        else:
            loss = final_loss
        loss = loss + jnp.mean(regularisers)
        metrics = {k: jnp.mean(v) for k, v in metrics.items() if k != "episode_return"} | {
            "episode_return": _weighted_return(metrics),
            "meta_policy_loss": aux["policy_loss"],
            "meta_entropy": aux["entropy"],
        }
        return loss, (state, fresh, metrics)

    def loss(objective_params: Any, agents: LPGAgentState):
        losses, (agents, fresh, metrics) = jax.vmap(agent_meta_loss, in_axes=(None, 0))(
            objective_params, agents
        )
        return jnp.mean(losses), (agents, fresh, metrics)

    grad_fn = jax.grad(loss, has_aux=True)

    def chunk_gradient(objective_params: Any, agents: LPGAgentState):
        grads, (agents, fresh, metrics) = grad_fn(objective_params, agents)
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        grads = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), grads)
        return grads, finite, agents, fresh, metrics

    def critic_step(state: LPGAgentState, fresh: Experience):
        _, target = advantages(state.critic_params, fresh)
        return agent.critic_update(state, fresh, target)

    def step(state: MetaGradState) -> tuple[MetaGradState, Metrics]:
        key, key_reset = jax.random.split(state.key)
        chunks = jax.tree.map(
            lambda x: x.reshape((config.num_minibatches, chunk) + x.shape[1:]), state.agents
        )

        def per_chunk(carry, agents):
            grads, finite, agents, fresh, metrics = chunk_gradient(state.params, agents)
            total, count = carry
            total = jax.tree.map(jnp.add, total, grads)
            # Train the critics here, so only one chunk's fresh rollouts are ever held.
            agents, fresh = jax.lax.stop_gradient((agents, fresh))
            agents, value_loss = jax.vmap(critic_step)(agents, fresh)
            return (total, count + finite), (agents, metrics, value_loss)

        zeros = jax.tree.map(jnp.zeros_like, state.params)
        (total, finite_chunks), (agents, metrics, value_loss) = jax.lax.scan(
            per_chunk, (zeros, jnp.int32(0)), chunks
        )
        grads = jax.tree.map(lambda g: g / jnp.maximum(finite_chunks, 1), total)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        # With no finite chunk at all, keep the params and the optimiser state as they were.
        any_finite = finite_chunks > 0
        params, opt_state = jax.tree.map(
            lambda new, old: jnp.where(any_finite, new, old),
            (optax.apply_updates(state.params, updates), opt_state),
            (state.params, state.opt_state),
        )
        agents = jax.tree.map(lambda x: x.reshape((config.num_agents,) + x.shape[2:]), agents)

        # Agents whose lifetime is over (or whose params broke) start again elsewhere.
        params_finite = jax.vmap(
            lambda p: jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(p)]))
        )(agents.params)
        finished = (agents.update_idx >= agents.lifetime) | ~params_finite
        fresh_agents = jax.vmap(new_agent)(jax.random.split(key_reset, config.num_agents))
        agents = jax.tree.map(
            lambda new, old: jnp.where(
                finished.reshape((-1,) + (1,) * (old.ndim - 1)), new, old
            ),
            fresh_agents,
            agents,
        )
        step_metrics = {k: jnp.nanmean(v) for k, v in metrics.items()}
        step_metrics |= {
            "grad_norm": optax.global_norm(grads),
            "nonfinite_chunks": config.num_minibatches - finite_chunks,
            "agents_reset": jnp.sum(finished),
            "critic_loss": jnp.mean(value_loss),
            "mean_progress": jnp.mean(agents.progress),
        }
        new_state = MetaGradState(params=params, opt_state=opt_state, agents=agents, key=key)
        return new_state, step_metrics

    return MetaGradient(config=config, init=init, loss=loss, step=step)


def _weighted_return(metrics: Metrics) -> jax.Array:
    """Mean return of the episodes that ended during the unroll (NaN if none)."""
    episodes = metrics["episodes"]
    returns = jnp.nan_to_num(metrics["episode_return"]) * episodes
    total = jnp.sum(episodes)
    return jnp.where(total > 0, jnp.sum(returns) / jnp.maximum(total, 1), jnp.nan)
