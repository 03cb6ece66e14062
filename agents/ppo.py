"""PPO written as Mirror Learning: the drift function is an argument.

Each update maximises ``E[r A] - E[D(r, A)]`` over minibatches (Kuba et al., 2022;
Lu et al., 2022), with ``A`` normalised per minibatch before the drift sees it, plus
the usual clipped value loss and entropy bonus. With ``D = ppo_clip_drift`` this is
PPO (Schulman et al., 2017). ``make_train`` closes over everything that fixes a shape
or a loop length; ``train(key, drift_params, env_params, hparams)`` takes everything
one may vmap over (seeds, drift params, environment physics, hyperparameters), in the
order every agent's ``train`` takes them.

One module (~460 lines): PPO's config, rollout, Mirror Learning update, training
loop and final evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from discovery.agents.networks import ActorCritic, all_finite
from discovery.agents.rollout import Transition, critic_gae, make_rollout
from discovery.envs import wrappers

Metrics = dict[str, jax.Array]


@dataclass(frozen=True)
class PPOConfig:
    """Static PPO configuration; defaults are purejaxrl's CartPole-v1 PPO
    baseline (the code of Lu et al., 2022, "Discovered Policy Optimisation").

    Fields that fix shapes or loop lengths are static; the float hyperparameters are
    also copied into :class:`PPOHyperparams` by :meth:`hyperparams` so they can be
    traced and vmapped over.

    Attributes:
      num_envs: parallel environments per agent.
      num_steps: env steps per environment between updates (the rollout length).
      total_timesteps: env steps per agent over its whole training.
      update_epochs: passes over each rollout per update.
      num_minibatches: minibatches per epoch.
      lr: Adam step size (annealed linearly to 0 when ``anneal_lr``).
      anneal_lr: decay the step size linearly over training.
      adam_b1: Adam's first-moment decay.
      adam_b2: Adam's second-moment decay.
      adam_eps: Adam's epsilon.
      gamma: discount factor.
      gae_lambda: GAE's lambda.
      ent_coef: weight of the policy-entropy bonus.
      vf_coef: weight of the value loss.
      vf_clip: clip range of the value update around the old value.
      max_grad_norm: global gradient norm clip.
      normalize_advantage: standardise advantages per minibatch.
      network: ``mlp`` (vector observations) or ``cnn`` (image observations, MinAtar).
      hidden_sizes: widths of the hidden layers of actor and critic.
      activation: hidden-layer nonlinearity.
      normalize_obs: running mean/std normalisation of observations.
      normalize_reward: scale rewards by a running std of the discounted return.
      reward_scale: multiplies every reward the agent learns from (brax's fixed
        ``reward_scaling``, 10 in Lu et al.'s (2022) brax Ant setting); returns are
        always reported unscaled.
    """

    # Bounds (checked by discovery.config when a config is loaded): what can run at all,
    # plus caps far above any sensible setting that stop a typo (1e30) before it allocates.
    num_envs: int = field(default=4, metadata={"min": 1, "max": 2**20})
    num_steps: int = field(default=128, metadata={"min": 1, "max": 2**20})
    total_timesteps: int = field(default=500_000, metadata={"min": 1, "max": 10**10})
    update_epochs: int = field(default=4, metadata={"min": 1, "max": 10_000})
    num_minibatches: int = field(default=4, metadata={"min": 1, "max": 2**20})
    lr: float = field(default=2.5e-4, metadata={"gt": 0, "max": 1})
    anneal_lr: bool = True
    adam_b1: float = field(default=0.9, metadata={"min": 0, "lt": 1})
    adam_b2: float = field(default=0.999, metadata={"min": 0, "lt": 1})
    adam_eps: float = field(default=1e-5, metadata={"gt": 0, "max": 1})
    gamma: float = field(default=0.99, metadata={"min": 0, "max": 1})
    gae_lambda: float = field(default=0.95, metadata={"min": 0, "max": 1})
    ent_coef: float = field(default=0.01, metadata={"min": 0, "max": 10})
    vf_coef: float = field(default=0.5, metadata={"min": 0, "max": 100})
    vf_clip: float = field(default=0.2, metadata={"min": 0, "max": 1e6})
    max_grad_norm: float = field(default=0.5, metadata={"gt": 0, "max": 1e6})
    normalize_advantage: bool = True
    network: Literal["mlp", "cnn"] = "mlp"
    hidden_sizes: tuple[int, ...] = field(default=(64, 64), metadata={"min": 1, "max": 65536})
    activation: Literal["tanh", "relu"] = "tanh"
    normalize_obs: bool = False
    normalize_reward: bool = False
    reward_scale: float = field(default=1.0, metadata={"gt": 0, "max": 1e6})

    def __post_init__(self) -> None:
        positive_ints = ("num_envs", "num_steps", "update_epochs", "num_minibatches")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.total_timesteps < self.steps_per_update:
            raise ValueError(
                f"total_timesteps={self.total_timesteps} is less than one update "
                f"(num_envs * num_steps = {self.steps_per_update})"
            )
        if self.steps_per_update % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} must divide num_envs * num_steps "
                f"= {self.steps_per_update}"
            )

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.steps_per_update

    @property
    def minibatch_size(self) -> int:
        return self.steps_per_update // self.num_minibatches

    def hyperparams(self) -> PPOHyperparams:
        return PPOHyperparams(
            lr=jnp.float32(self.lr),
            adam_b1=jnp.float32(self.adam_b1),
            adam_b2=jnp.float32(self.adam_b2),
            gamma=jnp.float32(self.gamma),
            gae_lambda=jnp.float32(self.gae_lambda),
            ent_coef=jnp.float32(self.ent_coef),
            vf_coef=jnp.float32(self.vf_coef),
            vf_clip=jnp.float32(self.vf_clip),
            max_grad_norm=jnp.float32(self.max_grad_norm),
            reward_scale=jnp.float32(self.reward_scale),
        )


@struct.dataclass
class PPOHyperparams:
    """PPO's traced hyperparameters (scalars; vmap over them to sweep in one program)."""

    lr: jax.Array
    adam_b1: jax.Array
    adam_b2: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array
    ent_coef: jax.Array
    vf_coef: jax.Array
    vf_clip: jax.Array
    max_grad_norm: jax.Array
    reward_scale: jax.Array


@struct.dataclass
class PPOState:
    """Everything a PPO agent carries between updates."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    update_idx: jax.Array


def wrap_env(config: PPOConfig, env: Any, env_params: Any, gamma: float) -> tuple[Any, bool, int]:
    """Apply PPO's wrapper stack; returns ``(vec_env, discrete, action_dim)``."""
    action_space = env.action_space(env_params)
    discrete = hasattr(action_space, "n")
    if config.network == "mlp":
        env = wrappers.FlattenObservation(env)
    env = wrappers.EpisodeStatistics(env)
    if not discrete:
        env = wrappers.ClipAction(env, low=action_space.low, high=action_space.high)
    env = wrappers.VecEnv(env, config.num_envs)
    if config.normalize_obs:
        env = wrappers.NormalizeVecObservation(env)
    if config.normalize_reward:
        env = wrappers.NormalizeVecReward(env, gamma)
    action_dim = int(action_space.n) if discrete else int(action_space.shape[0])
    return env, discrete, action_dim


def make_network(config: PPOConfig, discrete: bool, action_dim: int) -> ActorCritic:
    return ActorCritic(
        action_dim=action_dim,
        discrete=discrete,
        hidden_sizes=tuple(config.hidden_sizes),
        activation=config.activation,
        conv=config.network == "cnn",
    )


def make_optimizer(
    config: PPOConfig, hp: PPOHyperparams, num_updates: jax.Array | int, eps_root: float = 0.0
) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam whose step size anneals linearly to zero over
    ``num_updates`` updates (when ``config.anneal_lr``). ``eps_root > 0`` keeps Adam
    differentiable where a gradient is exactly zero (``sqrt'(0)`` is infinite), for
    meta-gradients through the updates."""
    grad_steps_per_update = config.update_epochs * config.num_minibatches

    def learning_rate(count: jax.Array) -> jax.Array:
        if not config.anneal_lr:
            return hp.lr
        done = (count // grad_steps_per_update).astype(jnp.float32)
        return hp.lr * (1.0 - done / num_updates)

    return optax.chain(
        optax.clip_by_global_norm(hp.max_grad_norm),
        optax.adam(
            learning_rate, b1=hp.adam_b1, b2=hp.adam_b2, eps=config.adam_eps, eps_root=eps_root
        ),
    )


def make_learn(
    config: PPOConfig, network: ActorCritic, drift: Callable[..., jax.Array]
) -> Callable[..., Any]:
    """Build ``learn(params, opt_state, optimizer, traj, key, drift_params, progress, hp)
    -> (params, opt_state, aux)``: GAE on a rollout, then ``update_epochs`` passes of
    ``num_minibatches`` shuffled minibatches, each one step of ``optimizer`` on the
    Mirror Learning loss (see the module docstring). ``aux`` holds the losses
    ``[epochs, minibatches]``. Differentiable in ``drift_params``."""

    def loss_fn(params, batch, drift_params, progress, hp: PPOHyperparams):
        obs, action, old_log_prob, old_value, advantage, target = batch
        policy, value = network.apply(params, obs)
        log_prob = policy.log_prob(action)
        log_ratio = log_prob - old_log_prob
        ratio = jnp.exp(log_ratio)
        if config.normalize_advantage:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        if getattr(drift, "uses_log_ratio", False):  # DPO: finite where the ratio is not
            drift_value = drift(drift_params, ratio, advantage, progress, log_ratio)
        else:
            drift_value = drift(drift_params, ratio, advantage, progress)
        actor_loss = -jnp.mean(ratio * advantage - drift_value)
        value_clipped = old_value + jnp.clip(value - old_value, -hp.vf_clip, hp.vf_clip)
        value_loss = 0.5 * jnp.mean(
            jnp.maximum((value - target) ** 2, (value_clipped - target) ** 2)
        )
        entropy = jnp.mean(policy.entropy())
        total = actor_loss + hp.vf_coef * value_loss - hp.ent_coef * entropy
        aux = {
            "actor_loss": actor_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "drift": jnp.mean(drift_value),
            "approx_kl": jnp.mean((ratio - 1.0) - jnp.log(ratio)),
        }
        return total, aux

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def learn(params, opt_state, optimizer, traj: Transition, key, drift_params, progress, hp):
        advantage, target = critic_gae(network, params, traj, hp.gamma, hp.gae_lambda)
        # Only what the loss reads is shuffled into minibatches (not the rewards, flags
        # or next observations: on MinAtar those would double the gather).
        batch = (traj.obs, traj.action, traj.log_prob, traj.value, advantage, target)
        batch = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)

        def minibatch_step(carry, minibatch):
            params, opt_state = carry
            grads, aux = grad_fn(params, minibatch, drift_params, progress, hp)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), aux

        def epoch(carry, epoch_key):
            permutation = jax.random.permutation(epoch_key, config.steps_per_update)
            minibatches = jax.tree.map(
                lambda x: x[permutation].reshape(
                    (config.num_minibatches, config.minibatch_size) + x.shape[1:]
                ),
                batch,
            )
            return jax.lax.scan(minibatch_step, carry, minibatches)

        epoch_keys = jax.random.split(key, config.update_epochs)
        (params, opt_state), aux = jax.lax.scan(epoch, (params, opt_state), epoch_keys)
        return params, opt_state, aux

    return learn


def make_train_stages(
    config: PPOConfig, env: Any, env_params: Any, drift: Callable[..., jax.Array]
) -> tuple[Callable[..., tuple[PPOState, jax.Array]], Callable[..., tuple[PPOState, Metrics]]]:
    """``(start, advance)``: a PPO training run in two stages, so that a caller can run
    its updates in chunks from the host (e.g. to report progress between them, which a
    host callback inside the program would do at the price of JAX's persistent cache:
    JAX does not cache programs with host callbacks).

    * ``start(key, env_params=None, hparams=None) -> (state, update_keys)``: the initial
      state and one key per update, ``[num_updates]``.
    * ``advance(state, update_keys, drift_params, env_params=None, hparams=None) ->
      (state, metrics)``: one PPO update per key, metrics ``[len(update_keys)]``.

    ``advance`` over all the keys at once is :func:`make_train`'s ``train``; over
    consecutive slices of them it takes the same steps (the means of the losses it
    reports may differ in the last bits: XLA reduces them in another order).
    """
    vec_env, discrete, action_dim = wrap_env(config, env, env_params, config.gamma)
    network = make_network(config, discrete, action_dim)
    default_env_params = env_params
    num_updates = config.num_updates
    rollout = make_rollout(vec_env, network, config.num_steps)
    learn = make_learn(config, network, drift)

    def start(
        key: jax.Array, env_params: Any = None, hparams: PPOHyperparams | None = None
    ) -> tuple[PPOState, jax.Array]:
        hp = config.hyperparams() if hparams is None else hparams
        env_params = default_env_params if env_params is None else env_params
        optimizer = make_optimizer(config, hp, num_updates)
        key, key_reset, key_init = jax.random.split(key, 3)
        obs, env_state = vec_env.reset(key_reset, env_params)
        params = network.init(key_init, obs)
        state = PPOState(
            params=params,
            opt_state=optimizer.init(params),
            env_state=env_state,
            obs=obs,
            update_idx=jnp.int32(0),
        )
        return state, jax.random.split(key, num_updates)

    def advance(
        state: PPOState,
        update_keys: jax.Array,
        drift_params: Any,
        env_params: Any = None,
        hparams: PPOHyperparams | None = None,
    ) -> tuple[PPOState, Metrics]:
        hp = config.hyperparams() if hparams is None else hparams
        env_params = default_env_params if env_params is None else env_params
        optimizer = make_optimizer(config, hp, num_updates)

        def update(state: PPOState, key: jax.Array) -> tuple[PPOState, Metrics]:
            key_rollout, key_epochs = jax.random.split(key)
            progress = state.update_idx.astype(jnp.float32) / num_updates
            (env_state, obs), (traj, (ended, ep_returns, ep_lengths, latest)) = rollout(
                state.params, state.env_state, state.obs, key_rollout, env_params,
                hp.reward_scale,
            )
            params, opt_state, aux = learn(
                state.params, state.opt_state, optimizer, traj, key_epochs, drift_params,
                progress, hp,
            )
            metrics = {k: v.mean() for k, v in aux.items()}
            metrics |= episode_metrics(ended, ep_returns, ep_lengths)
            metrics["latest_return"] = latest.mean()
            state = state.replace(
                params=params,
                opt_state=opt_state,
                env_state=env_state,
                obs=obs,
                update_idx=state.update_idx + 1,
            )
            return state, metrics

        return jax.lax.scan(update, state, update_keys)

    return start, advance


def make_train(
    config: PPOConfig, env: Any, env_params: Any, drift: Callable[..., jax.Array]
) -> Callable[..., tuple[PPOState, Metrics]]:
    """Build ``train(key, drift_params, env_params=None, hparams=None) -> (state, metrics)``.

    ``drift(params, ratio, advantage, progress) -> drift`` is any valid drift
    (``discovery.drift``). ``metrics`` are per update, each of shape ``[num_updates]``:
    ``episode_return`` / ``episode_length`` (mean over episodes that ended during the
    update's rollout, NaN if none did), ``episodes``, ``actor_loss``, ``value_loss``,
    ``entropy``, ``drift``, ``approx_kl``. Jittable and vmappable over every argument.

    ``latest_return`` is defined at every update whether or not an episode ended: the
    mean over the rollout's steps and envs of each env's last finished episode return
    (the running return before its first episode finishes).

    For progress reports between updates, run the two stages of
    :func:`make_train_stages` in chunks instead.
    """
    start, advance = make_train_stages(config, env, env_params, drift)

    def train(
        key: jax.Array,
        drift_params: Any,
        env_params: Any = None,
        hparams: PPOHyperparams | None = None,
    ) -> tuple[PPOState, Metrics]:
        state, update_keys = start(key, env_params, hparams)
        return advance(state, update_keys, drift_params, env_params, hparams)

    return train


def episode_metrics(
    ended: jax.Array, returns: jax.Array, lengths: jax.Array | None = None
) -> Metrics:
    """``episodes`` that ended in a rollout, and their mean ``episode_return`` and (when
    ``lengths`` are given) ``episode_length``, NaN when none did."""
    episodes = ended.sum()
    safe = jnp.maximum(episodes, 1)
    metrics = {
        "episodes": episodes,
        "episode_return": jnp.where(episodes > 0, jnp.sum(returns * ended) / safe, jnp.nan),
    }
    if lengths is not None:
        metrics["episode_length"] = jnp.where(
            episodes > 0, jnp.sum(lengths * ended) / safe, jnp.nan
        )
    return metrics


def diverged(state: PPOState, metrics: Metrics) -> jax.Array:
    """True when training diverged: a non-finite loss at any update or non-finite final
    params. Shapes: one agent's ``train`` outputs (vmap for more)."""
    losses = jnp.stack([metrics["actor_loss"], metrics["value_loss"]])
    return ~(jnp.all(jnp.isfinite(losses)) & all_finite(state.params))


def episode_limit(env_params: Any) -> int:
    """The env's time limit in steps (``max_steps_in_episode``), as a Python int."""
    limit = getattr(env_params, "max_steps_in_episode", None)
    if limit is None:
        raise ValueError(
            f"{type(env_params).__name__} has no max_steps_in_episode: evaluation episodes "
            "need a time limit; pass max_steps"
        )
    return int(limit)


def make_evaluate(
    config: PPOConfig, env: Any, env_params: Any, max_steps: int | None = None
) -> Callable[..., jax.Array]:
    """Build ``evaluate(key, state, env_params=None) -> returns [num_envs]``.

    The trained policy (sampling its actions, as in training) plays on from the training
    envs' final state: each env first finishes the episode that training left in
    progress, then plays one whole episode with the final policy, whose undiscounted
    return is its score. Every episode ends within the env's time limit, so every env
    gets a score; an env that has not finished within ``2 * max_steps`` steps (an env
    that ignores its own limit) scores NaN. Observation statistics (when normalised)
    carry over from training. This is the final evaluation return that Lu et al.
    (2022) meta-train LPO on, and it exists whether or not any episode ended during
    the last updates of training.
    """
    vec_env, discrete, action_dim = wrap_env(config, env, env_params, config.gamma)
    network = make_network(config, discrete, action_dim)
    default_env_params = env_params
    limit = 2 * (episode_limit(env_params) if max_steps is None else int(max_steps))

    def evaluate(key: jax.Array, state: PPOState, env_params: Any = None) -> jax.Array:
        env_params = default_env_params if env_params is None else env_params
        # phase per env: 0 finishing the training episode, 1 the scored episode, 2 done.
        phase = jnp.zeros(config.num_envs, jnp.int32)
        score = jnp.full(config.num_envs, jnp.nan, jnp.float32)

        def unfinished(carry):
            _, _, _, phase, _, step = carry
            return (step < limit) & jnp.any(phase < 2)

        def play(carry):
            key, env_state, obs, phase, score, step = carry
            key, key_act, key_env = jax.random.split(key, 3)
            policy, _ = network.apply(state.params, obs)
            obs, env_state, _, _, _, info = vec_env.step(
                key_env, env_state, policy.sample(key_act), env_params
            )
            ended = info["returned_episode"] & (phase < 2)
            score = jnp.where(ended & (phase == 1), info["returned_episode_returns"], score)
            return key, env_state, obs, phase + ended, score, step + 1

        carry = (key, state.env_state, state.obs, phase, score, jnp.int32(0))
        return jax.lax.while_loop(unfinished, play, carry)[4]

    return evaluate
