"""An agent trained by a learned objective (LPG, Oh et al., 2020).

The agent has a policy ``pi(a|s)`` and a prediction vector ``y(s)`` (a softmax over
``m`` entries whose meaning the objective decides). It collects a ``rollout_len x
num_envs`` rollout, asks the objective for targets ``(pi_hat, y_hat)`` and takes one
gradient step on

    L = -mean(pi_hat * log pi(a|s)) + prediction_weight * mean(KL(y(s) || y_hat))

(Oh et al., 2020, Eq. 2, written as a loss to descend). The policy and the prediction
have separate optimisers, as in GROOVE's inner loop (Jackson et al., 2023): each clips
its own gradient's global norm, and the prediction has its own step size (tabular
agents: SGD, policy lr 40, prediction lr 4), so a large policy gradient never shrinks
the prediction's step. The targets are constants for the agent's own gradient but stay
functions of the objective's params, so ``discovery.meta.metagrad`` can differentiate through a
chain of updates.

Everything an agent needs between updates, its level (``EnvParams``) and lifetime
included, lives in :class:`LPGAgentState`, so a batch of agents on different levels
with different lifetimes is one ``vmap``. A critic is carried too: the agent's own
update never uses it (it has no hand-designed value loss), but meta-gradient training
needs one, trained on the agent's experience, for the meta-loss's advantages.

The objective's interface (:class:`ObjectiveInputs` -> :class:`ObjectiveTargets`) is
defined here, so that agents take any objective as an argument without importing
``discovery``.

Tabular agents (one-hot observations) use bias-free linear layers, which are tables;
``network="mlp"`` gives 2-layer towers for feature observations.

One module (~540 lines): the LPG agent's networks, rollout, objective targets,
updates and lifetime bookkeeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from discovery.agents import distributions
from discovery.agents.networks import orthogonal
from discovery.envs import wrappers

Metrics = dict[str, jax.Array]

#: The agent network's submodule that holds the prediction ``y``; every other parameter
#: belongs to the policy.
PREDICTION_TOWER = "prediction"


@struct.dataclass
class ObjectiveInputs:
    """One environment's trajectory as the meta-network reads it; leading shape ``[T]``.

    Attributes:
      reward: ``[T]`` rewards.
      terminated: ``[T]`` true terminal after step t (no bootstrap; ``d_t``).
      episode_end: ``[T]`` terminated or truncated: the recurrence does not cross it.
      policy_prob: ``[T]`` ``pi(a_t|s_t)`` of the acting policy.
      prediction: ``[T, m]`` the agent's ``y(s_t)``.
      next_prediction: ``[T, m]`` ``y(s_t+1)`` of the state reached before any reset.
      discount: scalar ``gamma``.
      progress: scalar ``n / N``, the fraction of the agent's lifetime spent.
      log_lifetime: scalar ``log N``.
    """

    reward: jax.Array
    terminated: jax.Array
    episode_end: jax.Array
    policy_prob: jax.Array
    prediction: jax.Array
    next_prediction: jax.Array
    discount: jax.Array
    progress: jax.Array
    log_lifetime: jax.Array


@struct.dataclass
class ObjectiveTargets:
    """The meta-network's outputs: ``pi_hat [T]`` and ``y_hat [T, m]`` (a distribution)."""

    pi_hat: jax.Array
    y_hat: jax.Array


@dataclass(frozen=True)
class LPGAgentConfig:
    """Static configuration of an LPG agent (GROOVE's tabular setting by default).

    Attributes:
      num_envs, rollout_len: each update's rollout is ``rollout_len x num_envs`` steps.
      network: ``"tabular"`` (bias-free linear maps of a one-hot observation) or
        ``"mlp"`` (two hidden layers per tower).
      hidden_sizes: MLP widths.
      optimizer: ``"sgd"`` (tabular agents) or ``"adam"`` (function approximation),
        for both the policy and the prediction.
      lr: the policy's step size (GROOVE's tabular agents: SGD, 40).
      prediction_lr: the prediction ``y``'s step size (GROOVE's tabular agents: SGD, 4).
      prediction_weight: weight of the ``KL(y || y_hat)`` term.
      max_grad_norm: clip of the global gradient norm, applied to the policy's and to
        the prediction's gradient separately (GROOVE: 0.5 each).
      discount: ``gamma``, fed to objectives that take it and used by the critic.
      critic_lr: Adam step size of the critic (which only meta-gradient training uses).
    """

    num_envs: int = field(default=64, metadata={"min": 1})
    rollout_len: int = field(default=20, metadata={"min": 1})
    network: Literal["tabular", "mlp"] = "tabular"
    hidden_sizes: tuple[int, ...] = (64, 64)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = field(default=40.0, metadata={"min": 0})
    prediction_lr: float = field(default=4.0, metadata={"min": 0})
    prediction_weight: float = field(default=0.5, metadata={"min": 0})
    max_grad_norm: float = field(default=0.5, metadata={"min": 0})
    discount: float = field(default=0.99, metadata={"min": 0, "max": 1})
    critic_lr: float = field(default=0.05, metadata={"min": 0})

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.rollout_len


class _Tower(nn.Module):
    """A bias-free linear map (tabular) or an MLP, ``[..., obs] -> [..., features]``."""

    features: int
    tabular: bool
    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        if self.tabular:
            # Zero tables: a uniform policy and prediction in every state at birth.
            return nn.Dense(self.features, use_bias=False, kernel_init=nn.initializers.zeros)(obs)
        x = obs
        for size in self.hidden_sizes:
            x = nn.relu(nn.Dense(size)(x))
        return nn.Dense(self.features, kernel_init=orthogonal(0.01))(x)


class PolicyPrediction(nn.Module):
    """``obs -> (action logits [..., A], prediction logits [..., m])``."""

    num_actions: int
    prediction_size: int
    tabular: bool
    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        logits = _Tower(self.num_actions, self.tabular, self.hidden_sizes, name="actor")(obs)
        y = _Tower(
            self.prediction_size, self.tabular, self.hidden_sizes, name=PREDICTION_TOWER
        )(obs)
        return logits, y


class Critic(nn.Module):
    """``obs -> value [...]`` (used only by the meta-loss)."""

    tabular: bool
    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return _Tower(1, self.tabular, self.hidden_sizes, name="value")(obs)[..., 0]


@struct.dataclass
class Experience:
    """A rollout; every field has leading shape ``[T, N]``.

    ``next_obs`` is the observation reached before any auto-reset
    (gymnax's ``final_observation``), so truncated steps can bootstrap.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    episode_end: jax.Array
    episode_return: jax.Array  # return of the episode that ended at this step (else 0)


@struct.dataclass
class LPGAgentState:
    """One agent: its parameters, optimiser, environments, level and lifetime.

    ``update_idx`` counts updates in the current lifetime of ``lifetime`` updates.
    """

    params: Any
    opt_state: Any
    critic_params: Any
    critic_opt_state: Any
    env_state: Any
    obs: jax.Array
    env_params: Any
    update_idx: jax.Array
    lifetime: jax.Array

    @property
    def progress(self) -> jax.Array:
        """``n / N``: the fraction of the lifetime spent."""
        return self.update_idx.astype(jnp.float32) / self.lifetime.astype(jnp.float32)


@dataclass(frozen=True, eq=False)
class LPGAgent:
    """The pure functions of an LPG agent (built by :func:`make_lpg_agent`).

    Attributes:
      init: ``init(key, env_params, lifetime) -> LPGAgentState``.
      rollout: ``rollout(state, key) -> (state, Experience)``: act with the current policy.
      targets: ``targets(objective_params, params, experience, state) -> ObjectiveTargets``
        with leading shape ``[T, N]``.
      update: ``update(objective_params, state, experience, key=None) -> (state,
        metrics)``: one gradient step on the learned objective's targets
        (differentiable in ``objective_params``; deterministic, so ``key`` is unused and
        taken only for the :class:`~discovery.meta.metagrad.Learner` protocol);
        ``metrics["targets"]`` holds those targets.
      step: ``step(objective_params, state, key) -> (state, experience, metrics)``:
        rollout then update.
      train: ``train(key, objective_params, env_params, lifetime, num_updates) ->
        (state, metrics [num_updates])``: a whole lifetime; updates after ``lifetime``
        are skipped (so lifetimes can differ under one ``vmap``).
      critic_update: ``critic_update(state, experience, target) -> (state, loss)``: one
        Adam step of the critic towards value targets ``[T, N]``.
      policy_logits, prediction_logits, value: the networks' outputs for observations.
      log_prob_and_entropy: ``(params, obs, action) -> (log_prob, entropy)`` per step.
      prediction_entropy: ``(params, obs) -> mean entropy of the prediction y``.
    """

    config: LPGAgentConfig
    num_actions: int
    init: Callable[..., LPGAgentState]
    rollout: Callable[..., tuple[LPGAgentState, Experience]]
    targets: Callable[..., ObjectiveTargets]
    update: Callable[..., tuple[LPGAgentState, Metrics]]
    step: Callable[..., tuple[LPGAgentState, Experience, Metrics]]
    train: Callable[..., tuple[LPGAgentState, Metrics]]
    critic_update: Callable[..., tuple[LPGAgentState, jax.Array]]
    policy_logits: Callable[[Any, jax.Array], jax.Array]
    prediction_logits: Callable[[Any, jax.Array], jax.Array]
    value: Callable[[Any, jax.Array], jax.Array]
    log_prob_and_entropy: Callable[..., tuple[jax.Array, jax.Array]]
    prediction_entropy: Callable[[Any, jax.Array], jax.Array]

    @property
    def discount(self) -> float:
        return self.config.discount


def agent_param_labels(params: Any) -> Any:
    """``"prediction"`` for each leaf of the prediction tower, ``"policy"`` for the rest
    (the labels by which :func:`make_agent_optimizer` splits the parameters)."""

    def label(path: tuple[Any, ...], _: Any) -> str:
        names = {getattr(entry, "key", getattr(entry, "name", None)) for entry in path}
        return "prediction" if PREDICTION_TOWER in names else "policy"

    return jax.tree_util.tree_map_with_path(label, params)


def make_agent_optimizer(config: LPGAgentConfig) -> optax.GradientTransformation:
    """The agent's optimiser: one for the policy (``lr``) and one for the prediction
    (``prediction_lr``), each clipping the global norm of its own part of the gradient
    to ``max_grad_norm`` (GROOVE's inner loop, Jackson et al., 2023). One joint clip
    would let a large policy gradient shrink the prediction's step, and vice versa.

    Every operation is differentiable, for meta-gradients (Adam gets ``eps_root`` so its
    square root has a finite gradient where a table entry saw no gradient).
    """

    def part(lr: float) -> optax.GradientTransformation:
        if config.optimizer == "sgd":
            inner = optax.sgd(lr)
        else:
            inner = optax.adam(lr, eps_root=1e-8)
        return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), inner)

    return optax.multi_transform(
        {"policy": part(config.lr), "prediction": part(config.prediction_lr)},
        agent_param_labels,
    )


def make_lpg_agent(
    config: LPGAgentConfig, env: Any, env_params: Any, objective: Any
) -> LPGAgent:
    """Build an agent for ``env`` (discrete actions) trained by ``objective``.

    ``objective`` is any learned objective with ``apply(params, ObjectiveInputs) ->
    ObjectiveTargets`` over one trajectory and ``config.prediction_size`` (such as
    ``discovery.objective.make_objective(...)``); its params are arguments of every
    function, never captured.
    """
    action_space = env.action_space(env_params)
    if not hasattr(action_space, "n"):
        raise ValueError(f"LPG agents need discrete actions; {env.name} has {action_space}")
    num_actions = int(action_space.n)
    vec_env = wrappers.VecEnv(
        wrappers.EpisodeStatistics(wrappers.FlattenObservation(env)), config.num_envs
    )
    tabular = config.network == "tabular"
    hidden = tuple(config.hidden_sizes)
    policy_net = PolicyPrediction(num_actions, objective.config.prediction_size, tabular, hidden)
    critic_net = Critic(tabular, hidden)
    optimizer = make_agent_optimizer(config)
    critic_optimizer = optax.adam(config.critic_lr, eps_root=1e-8)
    discount = jnp.float32(config.discount)

    def policy_logits(params, obs):
        return policy_net.apply(params, obs)[0]

    def prediction_logits(params, obs):
        return policy_net.apply(params, obs)[1]

    def value(critic_params, obs):
        return critic_net.apply(critic_params, obs)

    def log_prob_and_entropy(params, obs, action):
        logits = policy_logits(params, obs)
        log_prob = distributions.categorical_log_prob(logits, action)
        return log_prob, distributions.categorical_entropy(logits)

    def prediction_entropy(params, obs):
        return jnp.mean(distributions.categorical_entropy(prediction_logits(params, obs)))

    def init(key: jax.Array, env_params: Any, lifetime: jax.Array) -> LPGAgentState:
        key_reset, key_policy, key_critic = jax.random.split(key, 3)
        obs, env_state = vec_env.reset(key_reset, env_params)
        params = policy_net.init(key_policy, obs)
        critic_params = critic_net.init(key_critic, obs)
        return LPGAgentState(
            params=params,
            opt_state=optimizer.init(params),
            critic_params=critic_params,
            critic_opt_state=critic_optimizer.init(critic_params),
            env_state=env_state,
            obs=obs,
            env_params=env_params,
            update_idx=jnp.int32(0),
            lifetime=jnp.asarray(lifetime, jnp.int32),
        )

    def rollout(state: LPGAgentState, key: jax.Array) -> tuple[LPGAgentState, Experience]:
        params = jax.lax.stop_gradient(state.params)

        def env_step(carry, step_key):
            env_state, obs = carry
            key_act, key_env = jax.random.split(step_key)
            action = distributions.categorical_sample(key_act, policy_logits(params, obs))
            next_obs, env_state, reward, terminated, truncated, info = vec_env.step(
                key_env, env_state, action, state.env_params
            )
            experience = Experience(
                obs=obs,
                action=action,
                reward=reward.astype(jnp.float32),
                terminated=terminated,
                truncated=truncated,
                next_obs=info["final_observation"],
                episode_end=info["returned_episode"],
                episode_return=jnp.where(
                    info["returned_episode"], info["returned_episode_returns"], 0.0
                ),
            )
            return (env_state, next_obs), experience

        keys = jax.random.split(key, config.rollout_len)
        (env_state, obs), experience = jax.lax.scan(
            env_step, (state.env_state, state.obs), keys
        )
        return state.replace(env_state=env_state, obs=obs), experience

    def targets(
        objective_params: Any, params: Any, experience: Experience, state: LPGAgentState
    ) -> ObjectiveTargets:
        logits, y_logits = policy_net.apply(params, experience.obs)
        _, next_y_logits = policy_net.apply(params, experience.next_obs)
        log_prob = distributions.categorical_log_prob(logits, experience.action)
        inputs = ObjectiveInputs(
            reward=experience.reward,
            terminated=experience.terminated,
            episode_end=experience.episode_end,
            policy_prob=jnp.exp(log_prob),
            prediction=jax.nn.softmax(y_logits),
            next_prediction=jax.nn.softmax(next_y_logits),
            discount=discount,
            progress=state.progress,
            log_lifetime=jnp.log(state.lifetime.astype(jnp.float32)),
        )
        per_env = jax.vmap(objective.apply, in_axes=(None, _env_axes(inputs)), out_axes=1)
        return per_env(objective_params, inputs)

    def agent_loss(params, experience: Experience, target: ObjectiveTargets):
        logits, y_logits = policy_net.apply(params, experience.obs)
        log_prob = distributions.categorical_log_prob(logits, experience.action)
        log_y = jax.nn.log_softmax(y_logits)
        kl = jnp.sum(jnp.exp(log_y) * (log_y - jnp.log(target.y_hat + 1e-8)), axis=-1)
        policy_term = -jnp.mean(target.pi_hat * log_prob)
        prediction_term = jnp.mean(kl)
        loss = policy_term + config.prediction_weight * prediction_term
        aux = {
            "entropy": jnp.mean(distributions.categorical_entropy(logits)),
            "prediction_kl": prediction_term,
        }
        return loss, aux

    def update(
        objective_params: Any,
        state: LPGAgentState,
        experience: Experience,
        key: jax.Array | None = None,
    ) -> tuple[LPGAgentState, Metrics]:
        target = targets(objective_params, state.params, experience, state)
        grads, aux = jax.grad(agent_loss, has_aux=True)(state.params, experience, target)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        episodes = experience.episode_end.sum()
        metrics = {
            **aux,
            "pi_hat_mean": jnp.mean(target.pi_hat),
            "pi_hat_std": jnp.std(target.pi_hat),
            "reward_per_step": jnp.mean(experience.reward),
            "episodes": episodes,
            "episode_return": jnp.where(
                episodes > 0, experience.episode_return.sum() / jnp.maximum(episodes, 1), jnp.nan
            ),
        }
        new_state = state.replace(
            params=params, opt_state=opt_state, update_idx=state.update_idx + 1
        )
        return new_state, metrics | {"targets": target}

    def step(objective_params: Any, state: LPGAgentState, key: jax.Array):
        state, experience = rollout(state, key)
        state, metrics = update(objective_params, state, experience)
        return state, experience, metrics

    def critic_update(
        state: LPGAgentState, experience: Experience, target: jax.Array
    ) -> tuple[LPGAgentState, jax.Array]:
        def value_loss(critic_params):
            return 0.5 * jnp.mean((value(critic_params, experience.obs) - target) ** 2)

        loss, grads = jax.value_and_grad(value_loss)(state.critic_params)
        updates, opt_state = critic_optimizer.update(grads, state.critic_opt_state)
        critic_params = optax.apply_updates(state.critic_params, updates)
        return state.replace(critic_params=critic_params, critic_opt_state=opt_state), loss

    def train(
        key: jax.Array,
        objective_params: Any,
        env_params: Any,
        lifetime: jax.Array,
        num_updates: int,
    ) -> tuple[LPGAgentState, Metrics]:
        key_init, key_updates = jax.random.split(key)
        state = init(key_init, env_params, lifetime)

        def one_update(state: LPGAgentState, key: jax.Array):
            new_state, _, metrics = step(objective_params, state, key)
            metrics.pop("targets")
            alive = state.update_idx < state.lifetime
            state = jax.tree.map(lambda new, old: jnp.where(alive, new, old), new_state, state)
            metrics["alive"] = alive
            return state, metrics

        return jax.lax.scan(one_update, state, jax.random.split(key_updates, num_updates))

    return LPGAgent(
        config=config,
        num_actions=num_actions,
        init=init,
        rollout=rollout,
        targets=targets,
        update=update,
        step=step,
        train=train,
        critic_update=critic_update,
        policy_logits=policy_logits,
        prediction_logits=prediction_logits,
        value=value,
        log_prob_and_entropy=log_prob_and_entropy,
        prediction_entropy=prediction_entropy,
    )


def _env_axes(inputs: ObjectiveInputs) -> ObjectiveInputs:
    """vmap axes that map a ``[T, N]`` rollout's inputs to per-environment trajectories."""
    scalar = ("discount", "progress", "log_lifetime")
    return ObjectiveInputs(**{
        name: None if name in scalar else 1 for name in ObjectiveInputs.__dataclass_fields__
    })


def sample_lifetime(key: jax.Array, low: int, high: int) -> jax.Array:
    """An integer lifetime, log-uniform in ``[low, high]``."""
    log_n = jax.random.uniform(key, minval=math.log(low), maxval=math.log(high + 1))
    return jnp.clip(jnp.floor(jnp.exp(log_n)), low, high).astype(jnp.int32)


def lifetime_final_return(metrics: Metrics, fraction: float = 0.1) -> jax.Array:
    """Mean episode return over the last ``fraction`` of each agent's lifetime.

    ``metrics`` come from :meth:`LPGAgent.train`, possibly vmapped: shape
    ``[..., num_updates]`` (updates last). Agents whose lifetime is shorter than the scan
    are frozen after it (``alive`` marks the live updates). Episodes are weighted by
    how many ended in each update; NaN where none ended in the window. Returns ``[...]``.
    """
    alive = metrics["alive"]
    lived = jnp.sum(alive, axis=-1, keepdims=True)
    index = jnp.arange(alive.shape[-1])
    start = jnp.floor(lived * (1.0 - fraction)).astype(jnp.int32)
    window = alive & (index >= start)
    episodes = jnp.where(window, metrics["episodes"], 0)
    returns = jnp.where(window, jnp.nan_to_num(metrics["episode_return"]) * episodes, 0.0)
    total = jnp.sum(episodes, axis=-1)
    return jnp.where(total > 0, jnp.sum(returns, axis=-1) / jnp.maximum(total, 1), jnp.nan)


def lifetime_final_reward_rate(metrics: Metrics, fraction: float = 0.1) -> jax.Array:
    """Mean reward per step over the last ``fraction`` of each agent's lifetime.

    Defined even where no episode ends in the window (levels whose episodes outlast it),
    so it complements :func:`lifetime_final_return`. Shapes as there.
    """
    alive = metrics["alive"]
    lived = jnp.sum(alive, axis=-1, keepdims=True)
    start = jnp.floor(lived * (1.0 - fraction)).astype(jnp.int32)
    window = alive & (jnp.arange(alive.shape[-1]) >= start)
    total = jnp.sum(jnp.where(window, metrics["reward_per_step"], 0.0), axis=-1)
    return total / jnp.maximum(jnp.sum(window, axis=-1), 1)
