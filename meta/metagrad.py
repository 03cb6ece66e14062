"""Meta-gradients for learned components: backpropagate through unrolled agent updates.

A batch of agents, each on its own level and at its own point of its lifetime, takes
``K`` updates driven by the learned component; the updated agent is then scored by an
actor-critic meta-loss on experience it has not trained on, and the gradient of that
loss flows back through the ``K`` updates into the component's parameters (LPG, Oh et
al., 2020, Sec. 3.2; GROOVE, Jackson et al., 2023). Agents carry on from where the
unroll left them and are re-created on a fresh level when their lifetime ends, so the
component always sees agents at every stage of learning.

The agents are any :class:`Learner`: LPG agents driven by a learned objective
(:mod:`discovery.agents.lpg_agent`), or PPO agents whose drift is learned
(:mod:`discovery.agents.ppo_learner`).

Two estimators (Bonnet et al., "One Step at a Time"):

* ``"k_step"``: the meta-loss of the agent after all ``K`` updates;
* ``"mixed"``: the mean of the ``k``-step meta-losses for ``k = 1..K``, each with the
  regulariser of its own ``k`` updates, so it equals averaging ``K`` separately run
  ``k``-step estimators. Each update's rollout is fresh experience for the agent that
  collected it, so the ``k < K`` terms cost no extra environment steps; mixing cuts the
  estimator's variance.

For curricula (``discovery.meta.curricula``), :meth:`MetaGradient.step_with_levels` takes the
levels that agents restarting in this step move to, and returns what the finished
agents' levels scored over the final ``level_score_fraction`` of their lifetimes: the
agent's reward per step (``"return"``), algorithmic regret against a hand-designed
antagonist (A2C, PPO-clip) trained alongside on the same level (GROOVE, Jackson et al.,
2023), positive value loss and MaxMC under the agent's critic (robust PLR, Jiang et al.,
2021: the mean over a rollout's steps of the highest single-episode return seen on the
level minus ``V(s)``).
Scores use reward per step rather than episode return, so levels whose episodes outlast
the window are scored too.

The meta-loss per agent (GROOVE's, with its two defects fixed: the critic is trained,
and the meta-gradient is clipped before Adam):

    -mean(log pi(a|s) * A) - c_H H(pi) - c_y H(y) + c_pi mean(pi_hat^2)
        + c_yhat mean(sum(y_hat^2))

with ``A`` from GAE under the agent's critic, normalised per agent; the ``y`` and
output terms are those of a learned objective (zero for a PPO learner). An LPG agent's
critic learns by TD(lambda) (Adam) on every fresh rollout and shapes the meta-loss
only; a PPO learner's critic is its own value head, trained by its PPO updates.

One module (~560 lines): the unroll, the meta-loss, the critics' training and the
per-level records for curricula are one jitted meta-update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import jax
import jax.numpy as jnp
import optax
from flax import struct

from discovery.agents.lpg_agent import sample_lifetime
from discovery.agents.rollout import gae
from discovery.meta.curricula import FinishedLevels

Metrics = dict[str, jax.Array]
AgentState = Any  # a learner's state: params, critic_params, update_idx, lifetime, ...
Experience = Any  # a rollout: obs, action, reward, terminated, truncated, next_obs, ...


class Learner(Protocol):
    """What meta-gradient training needs of an agent (LPG agents, PPO learners).

    ``init(key, env_params, lifetime)`` makes an agent on a level, whose state has
    ``params``, ``critic_params``, ``env_params``, ``update_idx``, ``lifetime`` and
    ``progress`` (and no key: keys are passed in); ``rollout(state, key) -> (state,
    experience)`` acts without gradient; ``update(component_params, state, experience,
    key) -> (state, metrics)`` is one update, differentiable in the component's params
    (``metrics``: ``reward_per_step``,
    ``episodes``, ``episode_return``, and for a learned objective its ``targets``,
    whose size is penalised); ``critic_update(state, experience, target) -> (state,
    loss)``; ``log_prob_and_entropy(params, obs, action)``, ``prediction_entropy(params,
    obs)`` and ``value(critic_params, obs)`` shape the meta-loss; ``discount``.
    """

    init: Callable[..., Any]
    rollout: Callable[..., Any]
    update: Callable[..., Any]
    critic_update: Callable[..., Any]
    log_prob_and_entropy: Callable[..., Any]
    prediction_entropy: Callable[..., Any]
    value: Callable[..., Any]
    discount: float


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
      level_score_fraction: levels are scored over this last fraction of an agent's
        lifetime (for curricula).
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
    level_score_fraction: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})

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
class LevelRecord:
    """Per-agent sums over the final window of the lifetime on the current level; ``[A]``.

    Attributes:
      reward_sum, updates: the agent's reward per step summed over its window updates.
      antagonist_reward_sum, antagonist_updates: the same for the antagonist.
      value_loss_sum, critic_updates: positive value loss of the fresh rollouts scored
        in the window.
      max_mc_sum, max_mc_updates: MaxMC of those rollouts, once an episode has ended.
      best_return: the highest return of a single episode on this level so far (any
        rollout of the agent's: its updates' and the meta-loss's fresh ones), MaxMC's
        reference (robust PLR, Jiang et al., 2021); ``-inf`` before the first ends.
    """

    reward_sum: jax.Array
    updates: jax.Array
    antagonist_reward_sum: jax.Array
    antagonist_updates: jax.Array
    value_loss_sum: jax.Array
    critic_updates: jax.Array
    max_mc_sum: jax.Array
    max_mc_updates: jax.Array
    best_return: jax.Array

    @classmethod
    def zeros(cls, num_agents: int) -> LevelRecord:
        zero, count = jnp.zeros(num_agents, jnp.float32), jnp.zeros(num_agents, jnp.int32)
        return cls(
            reward_sum=zero,
            updates=count,
            antagonist_reward_sum=zero,
            antagonist_updates=count,
            value_loss_sum=zero,
            critic_updates=count,
            max_mc_sum=zero,
            max_mc_updates=count,
            best_return=jnp.full(num_agents, -jnp.inf, jnp.float32),
        )


@struct.dataclass
class MetaGradState:
    """The meta-optimiser's state: objective params, Adam state, the agents, a key, and
    each agent's level bookkeeping (curriculum slot, window record, antagonist)."""

    params: Any
    opt_state: Any
    agents: AgentState  # batched: leading axis num_agents
    key: jax.Array
    level_slots: jax.Array  # [A] int32: the curriculum's id of each agent's level (-1: none)
    records: LevelRecord
    antagonists: Any  # batched antagonist states; None without an antagonist


def make_meta_optimizer(config: MetaGradConfig) -> optax.GradientTransformation:
    """Clip the meta-gradient's global norm, then Adam."""
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.lr))


@dataclass(frozen=True, eq=False)
class MetaGradient:
    """Pure functions of meta-gradient training (built by :func:`make_metagrad`).

    Attributes:
      init: ``init(key, objective_params) -> MetaGradState``; agents start at
        staggered points of their first lifetime.
      loss: ``loss(objective_params, agents, keys) -> (meta_loss, (agents, fresh,
        metrics))``: the mean meta-loss of a batch of agents, one key each
        (differentiable in the params), the agents after the unroll, the fresh rollout
        that scored them, and per-agent metrics.
      step: ``step(state) -> (state, metrics)``: one meta-update (jittable); agents
        that restart get levels from ``sample_level``.
      step_with_levels: ``step_with_levels(state, levels [A], slots [A]) -> (state,
        metrics, FinishedLevels)``: the same, with agent ``i`` moving to ``levels[i]``
        if it restarts, for curricula.
      agent_keys: ``agent_keys(state) -> [A] keys``: the keys the next step's unroll
        gives the agents (``step``'s gradient is ``grad(loss)(params, agents, keys)``).
    """

    config: MetaGradConfig
    init: Callable[..., MetaGradState]
    loss: Callable[
        [Any, AgentState, jax.Array], tuple[jax.Array, tuple[AgentState, Any, Metrics]]
    ]
    step: Callable[[MetaGradState], tuple[MetaGradState, Metrics]]
    step_with_levels: Callable[
        [MetaGradState, Any, jax.Array], tuple[MetaGradState, Metrics, FinishedLevels]
    ]
    agent_keys: Callable[[MetaGradState], jax.Array]


def make_metagrad(
    config: MetaGradConfig,
    agent: Learner,
    sample_level: Callable[[jax.Array], Any],
    antagonist: Any = None,
) -> MetaGradient:
    """Meta-gradient training of the component that drives ``agent`` (a :class:`Learner`)
    on levels from ``sample_level(key)``.

    With an ``antagonist`` (``init(key, env_params)``, ``update(state, key, env_params)``: A2C
    or PPO-clip built for the same env), each agent has a hand-designed agent training
    beside it on its level, for the algorithmic-regret score of the level.
    """
    optimizer = make_meta_optimizer(config)
    discount = agent.discount
    chunk = config.num_agents // config.num_minibatches

    def new_agent(key: jax.Array, level: Any) -> AgentState:
        key_lifetime, key_agent = jax.random.split(key)
        lifetime = sample_lifetime(key_lifetime, config.lifetime_min, config.lifetime_max)
        return agent.init(key_agent, level, lifetime)

    def new_antagonists(key: jax.Array, levels: Any) -> Any:
        if antagonist is None:
            return None
        return jax.vmap(antagonist.init)(jax.random.split(key, config.num_agents), levels)

    def sample_levels(key: jax.Array) -> Any:
        return jax.vmap(sample_level)(jax.random.split(key, config.num_agents))

    def init(
        key: jax.Array, objective_params: Any, levels: Any = None, slots: jax.Array | None = None
    ) -> MetaGradState:
        """Agents on ``levels`` (default: drawn from ``sample_level``) with curriculum
        ``slots`` (default -1), at staggered points of their first lifetimes."""
        key, key_agents, key_stagger, key_levels, key_antagonists = jax.random.split(key, 5)
        levels = sample_levels(key_levels) if levels is None else levels
        agents = jax.vmap(new_agent)(jax.random.split(key_agents, config.num_agents), levels)
        # Stagger the first lifetimes so agents are at every stage of learning at once.
        start = jax.random.randint(key_stagger, (config.num_agents,), 0, agents.lifetime)
        agents = agents.replace(update_idx=start.astype(jnp.int32))
        key_antagonists, _ = jax.lax.optimization_barrier((key_antagonists, agents))
        antagonists = new_antagonists(key_antagonists, levels)
        if antagonists is not None:
            antagonists = antagonists.replace(update_idx=agents.update_idx)
        if slots is None:
            slots = jnp.full(config.num_agents, -1, jnp.int32)
        return MetaGradState(
            params=objective_params,
            opt_state=optimizer.init(objective_params),
            agents=agents,
            key=key,
            level_slots=jnp.asarray(slots, jnp.int32),
            records=LevelRecord.zeros(config.num_agents),
            antagonists=antagonists,
        )

    def in_window(update_idx: jax.Array, lifetime: jax.Array) -> jax.Array:
        """Whether update number ``update_idx`` falls in the lifetime's scored window."""
        length = jnp.maximum(1, jnp.round(lifetime * config.level_score_fraction))
        return (update_idx >= lifetime - length) & (update_idx < lifetime)

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
        log_prob, entropy = agent.log_prob_and_entropy(params, experience.obs, experience.action)
        entropy = jnp.mean(entropy)
        y_entropy = agent.prediction_entropy(params, experience.obs)
        policy_loss = -jnp.mean(log_prob * advantage)
        loss = (
            policy_loss
            - config.entropy_coef * entropy
            - config.prediction_entropy_coef * y_entropy
        )
        return loss, {"policy_loss": policy_loss, "entropy": entropy}

    def output_penalty(targets: Any) -> jax.Array:
        """The penalty on a learned objective's outputs (zero for a learner without)."""
        if targets is None:
            return jnp.float32(0.0)
        return config.pi_hat_l2 * jnp.mean(targets.pi_hat**2) + config.y_hat_l2 * jnp.mean(
            jnp.sum(targets.y_hat**2, axis=-1)
        )

    def agent_meta_loss(objective_params: Any, state: AgentState, key: jax.Array):
        """Unroll K updates of one agent, then score it (see the module docstring)."""
        first_update = state.update_idx
        # Rollout k's key depends on k alone, not on K: the k-step estimator's fresh
        # rollout is then the mixed estimator's k-th term's, as the estimators' equality
        # needs.
        key_rollouts, key_updates = jax.random.split(key)

        def unrolled_update(carry, index):
            state = carry
            key_rollout = jax.random.fold_in(key_rollouts, index)
            key_update = jax.random.fold_in(key_updates, index)
            state, experience = agent.rollout(state, key_rollout)
            fresh_loss, _ = actor_critic_loss(state.params, state.critic_params, experience)
            state, metrics = agent.update(objective_params, state, experience, key_update)
            regulariser = output_penalty(metrics.pop("targets", None))
            # The rollout of update k is fresh for the agent after k updates (k >= 1).
            mixed_term = jnp.where(index > 0, fresh_loss, 0.0)
            best = highest_episode_return(experience)
            return state, (mixed_term, regulariser, best, metrics)

        state, (mixed_terms, regularisers, best_returns, metrics) = jax.lax.scan(
            unrolled_update, state, jnp.arange(config.unroll)
        )
        state, fresh = agent.rollout(state, jax.random.fold_in(key_rollouts, config.unroll))
        final_loss, aux = actor_critic_loss(state.params, state.critic_params, fresh)
        if config.estimator == "mixed":
            # The k-step loss carries the regulariser of its first k updates.
            k_step_regularisers = jnp.cumsum(regularisers) / jnp.arange(1, config.unroll + 1)
            loss = (jnp.sum(mixed_terms) + final_loss) / config.unroll
            loss = loss + jnp.mean(k_step_regularisers)
        else:
            loss = final_loss + jnp.mean(regularisers)
        window = in_window(first_update + jnp.arange(config.unroll), state.lifetime)
        level_terms = {
            "reward_sum": jnp.sum(jnp.where(window, metrics["reward_per_step"], 0.0)),
            "updates": jnp.sum(window).astype(jnp.int32),
            "best_return": jnp.maximum(jnp.max(best_returns), highest_episode_return(fresh)),
        }
        metrics = {k: jnp.mean(v) for k, v in metrics.items() if k != "episode_return"} | {
            "episode_return": _weighted_return(metrics),
            "meta_policy_loss": aux["policy_loss"],
            "meta_entropy": aux["entropy"],
        }
        return loss, (state, fresh, metrics | {"level_terms": level_terms})

    def loss(objective_params: Any, agents: AgentState, keys: jax.Array):
        losses, (agents, fresh, metrics) = jax.vmap(agent_meta_loss, in_axes=(None, 0, 0))(
            objective_params, agents, keys
        )
        return jnp.mean(losses), (agents, fresh, metrics)

    grad_fn = jax.grad(loss, has_aux=True)

    def chunk_gradient(objective_params: Any, agents: AgentState, keys: jax.Array):
        grads, (agents, fresh, metrics) = grad_fn(objective_params, agents, keys)
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        grads = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), grads)
        return grads, finite, agents, fresh, metrics

    def critic_step(state: AgentState, fresh: Experience, best_return: jax.Array):
        """Train the critic on the fresh rollout; score it (positive value loss, MaxMC)."""
        advantage, target = advantages(state.critic_params, fresh)
        value = agent.value(state.critic_params, fresh.obs)
        positive_value_loss = jnp.mean(jnp.maximum(advantage, 0.0))
        max_mc = jnp.mean(best_return - value)
        state, value_loss = agent.critic_update(state, fresh, target)
        return state, value_loss, positive_value_loss, max_mc

    def record_unroll(records: LevelRecord, terms, best, pvl, max_mc):
        """Add one unroll's window terms to the agents' level records."""
        scored = terms["updates"] > 0  # the unroll reached into the scored window
        scored_mc = scored & jnp.isfinite(best)
        return records.replace(
            reward_sum=records.reward_sum + terms["reward_sum"],
            updates=records.updates + terms["updates"],
            value_loss_sum=records.value_loss_sum + jnp.where(scored, pvl, 0.0),
            critic_updates=records.critic_updates + scored.astype(jnp.int32),
            max_mc_sum=records.max_mc_sum + jnp.where(scored_mc, max_mc, 0.0),
            max_mc_updates=records.max_mc_updates + scored_mc.astype(jnp.int32),
            best_return=best,
        )

    def train_antagonists(
        antagonists: Any, records: LevelRecord, agents: AgentState, key: jax.Array
    ):
        """``K`` updates of every antagonist on its agent's level, recorded in the window."""

        def one_update(carry, key):
            antagonists, records = carry
            update_idx = antagonists.update_idx
            keys = jax.random.split(key, config.num_agents)
            antagonists, metrics = jax.vmap(antagonist.update)(
                antagonists, keys, agents.env_params
            )
            window = in_window(update_idx, agents.lifetime)
            records = records.replace(
                antagonist_reward_sum=records.antagonist_reward_sum
                + jnp.where(window, metrics["reward_per_step"], 0.0),
                antagonist_updates=records.antagonist_updates + window.astype(jnp.int32),
            )
            return (antagonists, records), None

        (antagonists, records), _ = jax.lax.scan(
            one_update, (antagonists, records), jax.random.split(key, config.unroll)
        )
        return antagonists, records

    def level_scores(records: LevelRecord) -> dict[str, jax.Array]:
        def mean(total, count):
            return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)

        agent_rate = mean(records.reward_sum, records.updates)
        antagonist_rate = mean(records.antagonist_reward_sum, records.antagonist_updates)
        return {
            "return": agent_rate,
            "antagonist_return": antagonist_rate,
            "algorithmic_regret": antagonist_rate - agent_rate,
            "positive_value_loss": mean(records.value_loss_sum, records.critic_updates),
            "max_mc": mean(records.max_mc_sum, records.max_mc_updates),
        }

    def step_keys(key: jax.Array) -> tuple[jax.Array, ...]:
        """A step's keys: the next state's, the restarts', the antagonists' inits', one
        per agent for the unroll, and the antagonists' updates'."""
        key, key_reset, key_antagonists, key_unroll, key_antagonist_updates = jax.random.split(
            key, 5
        )
        unroll_keys = jax.random.split(key_unroll, config.num_agents)
        return key, key_reset, key_antagonists, unroll_keys, key_antagonist_updates

    def step_with_levels(
        state: MetaGradState, next_levels: Any, next_slots: jax.Array
    ) -> tuple[MetaGradState, Metrics, FinishedLevels]:
        key, key_reset, key_antagonists, agent_keys, key_antagonist_updates = step_keys(
            state.key
        )
        to_chunks = lambda x: x.reshape((config.num_minibatches, chunk) + x.shape[1:])
        chunks = jax.tree.map(to_chunks, (state.agents, state.records, agent_keys))

        def per_chunk(carry, chunk_state):
            agents, records, keys = chunk_state
            grads, finite, agents, fresh, metrics = chunk_gradient(state.params, agents, keys)
            total, count = carry
            total = jax.tree.map(jnp.add, total, grads)
            # Train the critics here, so only one chunk's fresh rollouts are ever held.
            agents, fresh, terms = jax.lax.stop_gradient(
                (agents, fresh, metrics.pop("level_terms"))
            )
            best = jnp.maximum(records.best_return, terms["best_return"])
            agents, value_loss, pvl, max_mc = jax.vmap(critic_step)(agents, fresh, best)
            records = record_unroll(records, terms, best, pvl, max_mc)
            return (total, count + finite), (agents, records, metrics, value_loss)

        zeros = jax.tree.map(jnp.zeros_like, state.params)
        (total, finite_chunks), (agents, records, metrics, value_loss) = jax.lax.scan(
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
        from_chunks = lambda x: x.reshape((config.num_agents,) + x.shape[2:])
        agents, records = jax.tree.map(from_chunks, (agents, records))
        antagonists = state.antagonists
        if antagonists is not None:
            antagonists, records = train_antagonists(
                antagonists, records, agents, key_antagonist_updates
            )

        # Agents whose lifetime is over (or whose params broke) start again elsewhere.
        params_finite = jax.vmap(
            lambda p: jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(p)]))
        )(agents.params)
        finished = (agents.update_idx >= agents.lifetime) | ~params_finite
        scores = level_scores(records)
        if antagonist is None:
            for name in ("antagonist_return", "algorithmic_regret"):
                scores[name] = jnp.full_like(scores["return"], jnp.nan)
        done = FinishedLevels(
            levels=agents.env_params,
            slots=state.level_slots,
            valid=finished & params_finite & (records.updates > 0),
            restarted=finished,
            scores=scores,
        )

        def restart(new, old):
            return jnp.where(finished.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)

        fresh_agents = jax.vmap(new_agent)(
            jax.random.split(key_reset, config.num_agents), next_levels
        )
        agents = jax.tree.map(restart, fresh_agents, agents)
        records = jax.tree.map(restart, LevelRecord.zeros(config.num_agents), records)
        if antagonists is not None:
            # After the agents' inits: two batched network inits (LAPACK QR) running at
            # once can deadlock jaxlib 0.10's CPU thread pool.
            key_antagonists, _ = jax.lax.optimization_barrier((key_antagonists, fresh_agents))
            antagonists = jax.tree.map(
                restart, new_antagonists(key_antagonists, next_levels), antagonists
            )
        level_slots = jnp.where(finished, jnp.asarray(next_slots, jnp.int32), state.level_slots)

        step_metrics = {k: jnp.nanmean(v) for k, v in metrics.items()}
        step_metrics |= {
            "grad_norm": optax.global_norm(grads),
            "nonfinite_chunks": config.num_minibatches - finite_chunks,
            "agents_reset": jnp.sum(finished),
            "critic_loss": jnp.mean(value_loss),
            "mean_progress": jnp.mean(agents.progress),
        }
        new_state = MetaGradState(
            params=params,
            opt_state=opt_state,
            agents=agents,
            key=key,
            level_slots=level_slots,
            records=records,
            antagonists=antagonists,
        )
        return new_state, step_metrics, done

    def step(state: MetaGradState) -> tuple[MetaGradState, Metrics]:
        key_levels = jax.random.fold_in(state.key, 1)
        levels = sample_levels(key_levels)
        slots = jnp.full(config.num_agents, -1, jnp.int32)
        state, metrics, _ = step_with_levels(state, levels, slots)
        return state, metrics

    return MetaGradient(
        config=config,
        init=init,
        loss=loss,
        step=step,
        step_with_levels=step_with_levels,
        agent_keys=lambda state: step_keys(state.key)[3],
    )


def highest_episode_return(experience: Experience) -> jax.Array:
    """The highest return of a single episode that ended in ``experience`` (``-inf`` if
    none did): MaxMC's reference return (robust PLR, Jiang et al., 2021), which a mean
    over an update's episodes would understate."""
    ended = experience.episode_end
    return jnp.max(jnp.where(ended, experience.episode_return, -jnp.inf))


def _weighted_return(metrics: Metrics) -> jax.Array:
    """Mean return of the episodes that ended during the unroll (NaN if none)."""
    episodes = metrics["episodes"]
    returns = jnp.nan_to_num(metrics["episode_return"]) * episodes
    total = jnp.sum(episodes)
    return jnp.where(total > 0, jnp.sum(returns) / jnp.maximum(total, 1), jnp.nan)
