"""A2C: the hand-designed actor-critic baseline for discrete-action environments.

Synchronous advantage actor-critic (Mnih et al., 2016, "Asynchronous Methods for Deep
Reinforcement Learning", in its synchronous A2C form) with GAE advantages (Schulman et
al., 2016). Each update collects one ``rollout_len x num_envs`` rollout, with the
environment state carried across updates (no reset between them), and takes one
gradient step on

    L = -mean(log pi(a|s) A) - ent_coef * mean(H[pi(.|s)])
        + vf_coef * 0.5 * mean((V(s) - G)^2),

``A`` the GAE advantage (optionally normalised over the batch) and ``G = A + V`` its
value target, both held fixed. It is the baseline that learned LPG objectives are
measured against on the tabular gridworlds (Oh et al., 2020) and GROOVE's antagonist
(Jackson et al., 2023: an A2C agent with entropy 0.01 trained for the level's
lifetime; algorithmic regret is its mean return minus the LPG agent's).

``network="tabular"`` is GROOVE's tabular agent: a bias-free linear actor and critic on
the observation, which for one-hot observations is a table (initialised at zero:
uniform policy, zero values), trained with SGD. ``network="mlp"`` uses separate ReLU
towers (``discovery.agents.networks.ActorCritic``).

Everything that fixes a shape or a loop length lives in :class:`A2CConfig`; the numbers
one may sweep live in the traced :class:`A2CHyperparams`, so ``train`` vmaps over seeds,
hyperparameters and levels (``env_params``) in one compiled program.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from discovery.agents.networks import ActorCritic, PolicyOutput
from discovery.agents.rollout import Transition, critic_gae, make_rollout
from discovery.envs import wrappers

Metrics = dict[str, jax.Array]


@dataclass(frozen=True)
class A2CConfig:
    """Static A2C configuration; defaults are the tabular antagonist (GROOVE's shape).

    ``num_envs x rollout_len`` steps per update and ``num_updates`` updates per lifetime
    (GROOVE: 64 x 20, 250). The float fields are copied into :class:`A2CHyperparams` by
    :meth:`hyperparams` so they can be traced and vmapped over.

    ``lr`` and ``vf_coef`` are tuned for the tabular network with SGD (an lr grid of
    1..200 by ``vf_coef`` 0.01..0.5, 4-16 seeds, on ``gridworld/dense``,
    ``gridworld/sparse`` and 16 random levels). Gradients of the batch-mean loss on
    one-hot inputs are small (each table row's gradient scales with its visit frequency;
    the 0.5 norm clip practically never binds), so the actor needs ``lr`` of order 100:
    ``lr`` 60..200 learns fastest; at 30 ``dense`` learns 3x more slowly and 7 of 16
    ``sparse`` seeds end unsolved; at 10 or less ``sparse`` is solved on at most half
    the seeds. The critic's curvature is ``vf_coef`` times the visit fraction of each
    state (at most 1), so ``lr * vf_coef <= 2`` keeps its SGD step stable however the
    visits concentrate; ``lr * vf_coef`` of 5..50 made the value loss oscillate (up
    to 150) on ``dense`` or some random levels. Without advantage normalisation the
    same lrs learn nothing on ``sparse`` (gradients ~1e-4). For ``network="mlp"`` use
    Adam, ``lr`` about 3e-3 and ``vf_coef=0.5``.
    """

    num_envs: int = 64
    rollout_len: int = 20
    num_updates: int = 250
    network: Literal["tabular", "mlp"] = "tabular"
    hidden_sizes: tuple[int, ...] = (64, 64)  # mlp only
    activation: Literal["tanh", "relu"] = "relu"  # mlp only
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 100.0
    adam_eps: float = 1e-8
    gamma: float = 0.99
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    vf_coef: float = 0.02
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True  # GROOVE: over the whole update batch

    def __post_init__(self) -> None:
        for name in ("num_envs", "rollout_len", "num_updates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.network not in ("tabular", "mlp"):
            raise ValueError(f"network={self.network!r} must be 'tabular' or 'mlp'")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer={self.optimizer!r} must be 'sgd' or 'adam'")

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.rollout_len

    def hyperparams(self) -> A2CHyperparams:
        return A2CHyperparams(
            lr=jnp.float32(self.lr),
            gamma=jnp.float32(self.gamma),
            gae_lambda=jnp.float32(self.gae_lambda),
            ent_coef=jnp.float32(self.ent_coef),
            vf_coef=jnp.float32(self.vf_coef),
            max_grad_norm=jnp.float32(self.max_grad_norm),
        )


@struct.dataclass
class A2CHyperparams:
    """A2C's traced hyperparameters (scalars; vmap over them to sweep in one program)."""

    lr: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array
    ent_coef: jax.Array
    vf_coef: jax.Array
    max_grad_norm: jax.Array


@struct.dataclass
class A2CState:
    """Everything an A2C agent carries between updates.

    ``env_state`` and ``obs`` (``[num_envs, obs_dim]``) are those of the running
    episodes; ``update_idx`` counts updates. Keys are passed in, never stored.
    """

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    update_idx: jax.Array


class TabularActorCritic(nn.Module):
    """Bias-free linear actor (logits) and critic on the observation, zero-initialised.

    With one-hot observations each row of the weights is one state's entry in a table.
    ``__call__(obs[..., obs_dim]) -> (PolicyOutput(logits[..., action_dim]), value[...])``.
    """

    action_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[PolicyOutput, jax.Array]:
        obs = obs.astype(jnp.float32)
        dense = lambda n, name: nn.Dense(
            n, use_bias=False, kernel_init=nn.initializers.zeros, name=name
        )
        logits = dense(self.action_dim, "actor")(obs)
        value = dense(1, "critic")(obs)[..., 0]
        return PolicyOutput(logits=logits), value


class _FloatObs(nn.Module):
    """Cast observations to float32 before an inner module (gymnax grids are ints)."""

    inner: nn.Module

    def __call__(self, obs: jax.Array) -> tuple[PolicyOutput, jax.Array]:
        return self.inner(obs.astype(jnp.float32))


class A2C(NamedTuple):
    """The functions :func:`make_a2c` builds; all are pure, jittable and vmappable.

    - ``init(key, env_params=None) -> A2CState``
    - ``update(state, key, env_params=None, hparams=None) -> (A2CState, metrics)``:
      one rollout (drawn with ``key``) and one gradient step; ``metrics`` are scalars.
    - ``train(key, env_params=None, hparams=None, lifetime=None) -> (A2CState, metrics)``:
      ``config.num_updates`` updates under ``lax.scan``; metrics ``[num_updates]``.
    - ``loss(params, traj, advantage, target, hparams) -> (loss, aux)``: the A2C loss
      on a flat batch (``traj`` fields ``[B, ...]``, ``advantage`` and ``target``
      ``[B]``).
    - ``network``: the flax module, ``apply(params, obs) -> (PolicyOutput, value)``.
    """

    init: Callable[..., A2CState]
    update: Callable[..., tuple[A2CState, Metrics]]
    train: Callable[..., tuple[A2CState, Metrics]]
    loss: Callable[..., tuple[jax.Array, Metrics]]
    network: nn.Module


def wrap_env(config: A2CConfig, env: Any) -> wrappers.VecEnv:
    """A2C's wrapper stack: flat observations, episode statistics, ``num_envs`` copies."""
    env = wrappers.FlattenObservation(env)
    env = wrappers.EpisodeStatistics(env)
    return wrappers.VecEnv(env, config.num_envs)


def make_network(config: A2CConfig, action_dim: int) -> nn.Module:
    if config.network == "tabular":
        return TabularActorCritic(action_dim=action_dim)
    return _FloatObs(
        ActorCritic(
            action_dim=action_dim,
            discrete=True,
            hidden_sizes=tuple(config.hidden_sizes),
            activation=config.activation,
        )
    )


def make_optimizer(config: A2CConfig, hp: A2CHyperparams) -> optax.GradientTransformation:
    """Global-norm clipping then SGD or Adam; the state's structure does not depend on ``hp``."""
    if config.optimizer == "sgd":
        step = optax.sgd(hp.lr)
    else:
        step = optax.adam(hp.lr, eps=config.adam_eps)
    return optax.chain(optax.clip_by_global_norm(hp.max_grad_norm), step)


def make_a2c(config: A2CConfig, env: Any, env_params: Any) -> A2C:
    """Build A2C for a discrete-action gymnax-API ``env``.

    ``env_params`` is the default level; every function also takes ``env_params`` (a
    level, possibly traced and vmapped over). ``hparams=None`` means
    ``config.hyperparams()``.

    ``train`` metrics, each ``[num_updates]``: ``episode_return`` / ``episode_length``
    (mean over the episodes that ended during the update's rollout, NaN if none did),
    ``episodes``, ``actor_loss`` (the policy-gradient term, ``-mean(log pi * A)``),
    ``value_loss`` (``0.5 * mean((V - G)^2)``), ``entropy``, ``reward_per_step`` and
    ``grad_norm`` (before clipping). With a traced ``lifetime`` (int, at most
    ``num_updates``), updates from index ``lifetime`` on are discarded, as in GROOVE:
    the state stops changing and their metrics are NaN (``episodes`` 0); score them with
    ``final_return(metrics["episode_return"], fraction, lifetime)``.
    """
    action_space = env.action_space(env_params)
    if not hasattr(action_space, "n"):
        raise TypeError(f"A2C needs a discrete action space, got {action_space}")
    vec_env = wrap_env(config, env)
    network = make_network(config, int(action_space.n))
    default_env_params = env_params

    def init(key: jax.Array, env_params: Any = None) -> A2CState:
        env_params = default_env_params if env_params is None else env_params
        key_reset, key_init = jax.random.split(key)
        obs, env_state = vec_env.reset(key_reset, env_params)
        params = network.init(key_init, obs)
        opt_state = make_optimizer(config, config.hyperparams()).init(params)
        return A2CState(
            params=params,
            opt_state=opt_state,
            env_state=env_state,
            obs=obs,
            update_idx=jnp.int32(0),
        )

    def loss(
        params: Any,
        traj: Transition,
        advantage: jax.Array,
        target: jax.Array,
        hparams: A2CHyperparams,
    ) -> tuple[jax.Array, Metrics]:
        policy, value = network.apply(params, traj.obs)
        if config.normalize_advantage:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        advantage = jax.lax.stop_gradient(advantage)
        target = jax.lax.stop_gradient(target)
        actor_loss = -jnp.mean(policy.log_prob(traj.action) * advantage)
        value_loss = 0.5 * jnp.mean((value - target) ** 2)
        entropy = jnp.mean(policy.entropy())
        total = actor_loss + hparams.vf_coef * value_loss - hparams.ent_coef * entropy
        return total, {"actor_loss": actor_loss, "value_loss": value_loss, "entropy": entropy}

    grad_fn = jax.grad(loss, has_aux=True)

    scan = make_rollout(vec_env, network, config.rollout_len)

    def rollout(
        state: A2CState, key: jax.Array, env_params: Any
    ) -> tuple[A2CState, Transition, tuple[jax.Array, jax.Array, jax.Array]]:
        (env_state, obs), (traj, episode) = scan(
            state.params, state.env_state, state.obs, key, env_params
        )
        return state.replace(env_state=env_state, obs=obs), traj, episode[:3]

    def update(
        state: A2CState,
        key: jax.Array,
        env_params: Any = None,
        hparams: A2CHyperparams | None = None,
    ) -> tuple[A2CState, Metrics]:
        env_params = default_env_params if env_params is None else env_params
        hp = config.hyperparams() if hparams is None else hparams
        state, traj, (ended, ep_returns, ep_lengths) = rollout(state, key, env_params)
        advantage, target = critic_gae(network, state.params, traj, hp.gamma, hp.gae_lambda)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])
        traj, advantage, target = jax.tree.map(flat, (traj, advantage, target))
        grads, metrics = grad_fn(state.params, traj, advantage, target, hp)
        optimizer = make_optimizer(config, hp)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        episodes = ended.sum()
        safe = jnp.maximum(episodes, 1)
        metrics["grad_norm"] = optax.global_norm(grads)
        metrics["episodes"] = episodes
        metrics["reward_per_step"] = jnp.mean(traj.reward)
        metrics["episode_return"] = jnp.where(
            episodes > 0, jnp.sum(ep_returns * ended) / safe, jnp.nan
        )
        metrics["episode_length"] = jnp.where(
            episodes > 0, jnp.sum(ep_lengths * ended) / safe, jnp.nan
        )
        state = state.replace(
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            update_idx=state.update_idx + 1,
        )
        return state, metrics

    def train(
        key: jax.Array,
        env_params: Any = None,
        hparams: A2CHyperparams | None = None,
        lifetime: jax.Array | int | None = None,
    ) -> tuple[A2CState, Metrics]:
        env_params = default_env_params if env_params is None else env_params
        hp = config.hyperparams() if hparams is None else hparams

        def step(state: A2CState, key: jax.Array) -> tuple[A2CState, Metrics]:
            new_state, metrics = update(state, key, env_params, hp)
            if lifetime is None:
                return new_state, metrics
            active = state.update_idx < lifetime
            new_state = jax.tree.map(lambda new, old: jnp.where(active, new, old), new_state, state)
            metrics = {
                name: jnp.where(active, value, 0 if name == "episodes" else jnp.nan)
                for name, value in metrics.items()
            }
            return new_state, metrics

        key_init, key_updates = jax.random.split(key)
        update_keys = jax.random.split(key_updates, config.num_updates)
        return jax.lax.scan(step, init(key_init, env_params), update_keys)

    return A2C(init=init, update=update, train=train, loss=loss, network=network)


def final_return(
    episode_return: jax.Array,
    fraction: float = 0.1,
    lifetime: jax.Array | int | None = None,
) -> jax.Array:
    """Mean per-update episode return over the last ``fraction`` of the lifetime.

    Args:
      episode_return: ``[..., U]``, e.g. ``metrics["episode_return"]`` from ``train``.
      fraction: share of the lifetime to average over (at least one update).
      lifetime: ``[...]`` or scalar updates actually trained (``train``'s ``lifetime``);
        ``None`` means all ``U``.

    Returns ``[...]``. Updates in which no episode ended (NaN) are skipped; if none
    ended in the window the result is NaN.
    """
    num_updates = episode_return.shape[-1]
    if lifetime is None:
        last = max(1, int(round(num_updates * fraction)))
        return jnp.nanmean(episode_return[..., -last:], axis=-1)
    lifetime = jnp.asarray(lifetime)[..., None]
    last = jnp.maximum(1, jnp.round(lifetime * fraction).astype(jnp.int32))
    index = jnp.arange(num_updates)
    window = (index >= lifetime - last) & (index < lifetime)
    return jnp.nanmean(jnp.where(window, episode_return, jnp.nan), axis=-1)
