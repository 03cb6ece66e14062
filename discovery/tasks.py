"""Discovery tasks: (component params, key) -> fitness.

A drift-discovery task trains PPO agents with a candidate drift on a set of
environments, several seeds each, and scores the drift by the agents' returns,
normalised per environment so that environments of different scales can be mixed:
``(R - R_random) / (R_ppo - R_random)`` (random play 0, PPO-clip 1), ``R / R_ppo`` (the
MinAtar LPO setting of Lu et al., 2022), or ``R / c`` with fixed published constants.
``R_ppo`` (PPO-clip with the same inner-loop config) and ``R_random`` (a uniformly
random policy's episode return) are measured once, when the task is built. All
population members see the same keys (common random numbers), so fitness differences
come from the params alone.

Every seed gets a return whether or not an episode ended near the end of training
(see ``DriftTaskConfig.score``); a seed's return is NaN only when its training diverged
(a non-finite loss or params), and a member with a diverged seed is non-finite, which
the evolution strategy ranks last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from discovery import envs as env_registry
from discovery.agents.ppo import PPOConfig, diverged, make_evaluate, make_train
from discovery.config import ConfigError
from discovery.drift import Drift, make_drift
from discovery.envs import wrappers
from discovery.meta.curricula import score_population
from discovery.stats import summarise_over_seeds


@dataclass(frozen=True)
class DriftTaskConfig:
    """What a drift is scored on.

    Attributes:
      envs: environment names (``envs.make``) the agents train on.
      drift: the learnable drift's name (``lpo`` or ``ta_lpo``).
      seeds: agents per environment per population member.
      ppo: the inner-loop PPO configuration shared by all environments.
      env_lr: optional per-environment Adam learning rates (same order as ``envs``).
      env_adam_b2: optional per-environment Adam b2 (same order as ``envs``; the MinAtar
        setting of Lu et al., 2022 tunes it per game).
      score: what an agent's return is. ``"evaluation"``: after training, the final
        policy plays one whole episode in each of its envs (the final evaluation return
        that Lu et al., 2022 meta-train on). ``"training"``: the training return over
        the last ``final_fraction`` of updates (each env's last finished episode, or its
        running return before the first one ends).
      final_fraction: the training window for ``score: training``.
      baseline_seeds: seeds used once to measure PPO-clip's return for normalising.
      normalise: ``"ppo_random"`` maps random -> 0 and PPO -> 1 per env; ``"ppo"``
        divides by PPO's measured return; ``"fixed"`` divides by ``normalisers`` (e.g.
        the published PPO returns); ``"none"`` uses raw returns.
      normalisers: per-env positive divisors for ``normalise: fixed``.
      min_baseline_gap: ``ppo_random`` and ``ppo`` are refused when the measured
        denominator is within this fraction of the returns' scale (PPO ~ random, or a
        PPO return near zero), where it would amplify noise or flip ES's ordering.
    """

    envs: tuple[str, ...] = ("CartPole-v1",)
    drift: Literal["lpo", "ta_lpo"] = "lpo"
    seeds: int = field(default=2, metadata={"min": 1, "max": 65536})
    ppo: PPOConfig = field(default_factory=PPOConfig)
    env_lr: tuple[float, ...] = field(default=(), metadata={"gt": 0.0, "max": 1.0})
    env_adam_b2: tuple[float, ...] = field(default=(), metadata={"min": 0.0, "lt": 1.0})
    score: Literal["evaluation", "training"] = "evaluation"
    final_fraction: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    baseline_seeds: int = field(default=16, metadata={"min": 1, "max": 65536})
    normalise: Literal["ppo_random", "ppo", "fixed", "none"] = "ppo_random"
    normalisers: tuple[float, ...] = field(default=(), metadata={"gt": 0.0})
    min_baseline_gap: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0})

    def __post_init__(self) -> None:
        if not self.envs:
            raise ValueError("envs=() must name at least one environment")
        for name in ("env_lr", "env_adam_b2"):
            values = getattr(self, name)
            if values and len(values) != len(self.envs):
                raise ValueError(
                    f"{name}={values} must be empty or give one value per env "
                    f"({len(self.envs)} envs: {', '.join(self.envs)})"
                )
        if self.seeds < 1:
            raise ValueError(f"seeds={self.seeds} must be >= 1")
        check_normalisers(self.normalise, self.normalisers, self.envs, "env")


def check_normalisers(normalise: str, normalisers: tuple[float, ...], envs: tuple[str, ...],
                      what: str) -> None:
    """``normalisers`` fit ``normalise``: one positive finite divisor per env (``what``
    names the envs: "env", "validation env") for ``fixed``, none otherwise."""
    if normalise == "fixed":
        if len(normalisers) != len(envs):
            raise ValueError(
                f"normalisers={normalisers}: normalise=fixed needs one per {what} "
                f"({len(envs)} envs: {', '.join(envs) or 'none'})"
            )
        if not all(np.isfinite(c) and c > 0 for c in normalisers):
            raise ValueError(f"normalisers={normalisers}: each must be a positive finite number")
    elif normalisers:
        raise ValueError(
            f"normalisers={normalisers} is only used with normalise=fixed "
            f"(normalise={normalise!r})"
        )


#: Keyword arguments with which :func:`make_drift_task` builds the drift it meta-trains
#: (beyond these, ``make_lpo_drift``'s defaults); the zoo writes them into its recipes.
TASK_DRIFT_KWARGS = {"clip_eps": 0.2}


def final_return(curve: jax.Array, final_fraction: float) -> jax.Array:
    """Mean of a per-update return curve ``[..., U]`` over its last fraction of updates."""
    num_updates = curve.shape[-1]
    last = max(1, int(round(num_updates * final_fraction)))
    return jnp.mean(curve[..., -last:], axis=-1)


def make_agent_score(
    config: DriftTaskConfig, ppo: PPOConfig, env: Any, env_params: Any, drift: Drift
) -> Callable[..., tuple[jax.Array, Any]]:
    """``score(key, drift_params, hparams, level=None) -> (return, metrics)`` of one PPO
    agent, on ``level`` (``EnvParams``; default ``env_params``).

    The return follows ``config.score`` and is NaN exactly when training diverged.
    ``metrics`` are ``train``'s per-update metrics (for learning curves).
    """
    train = make_train(ppo, env, env_params, drift)
    evaluate = make_evaluate(ppo, env, env_params) if config.score == "evaluation" else None

    def score(key, drift_params, hparams, level=None):
        key_train, key_eval = jax.random.split(key)
        state, metrics = train(key_train, drift_params, level, hparams)
        if evaluate is None:
            value = final_return(metrics["latest_return"], config.final_fraction)
        else:
            value = jnp.mean(evaluate(key_eval, state, level))
        return jnp.where(diverged(state, metrics), jnp.nan, value), metrics

    return score


def env_hparams(config: DriftTaskConfig, index: int) -> Any:
    """PPO's traced hyperparameters on env ``index`` (with its own lr / b2 if given)."""
    hparams = config.ppo.hyperparams()
    if config.env_lr:
        hparams = hparams.replace(lr=jnp.float32(config.env_lr[index]))
    if config.env_adam_b2:
        hparams = hparams.replace(adam_b2=jnp.float32(config.env_adam_b2[index]))
    return hparams


@dataclass(frozen=True, eq=False)
class DriftTask:
    """A built drift-discovery task.

    ``fitness(population, key) -> (fitness[P], returns[P, E, S])`` takes drift params
    with a leading population axis; ``returns`` are per seed, NaN where training
    diverged. ``ppo_returns`` and ``random_returns`` are ``R_ppo`` and ``R_random`` per
    env. ``fitness_on_levels(population, key, levels [S]) -> (fitness [P], returns
    [P, 1, S], level_scores)`` trains one agent per level of the task's one env (for
    curricula; see :func:`make_level_fitness`), or is ``None`` when not built.
    """

    config: DriftTaskConfig
    drift: Drift
    fitness: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]
    ppo_returns: np.ndarray
    random_returns: np.ndarray
    fitness_on_levels: Callable[..., tuple[Any, ...]] | None = None

    def init_params(self, key: jax.Array) -> Any:
        return self.drift.init(key)


def _env_scorers(
    config: DriftTaskConfig, drift: Drift, seeds: int | None = None
) -> list[Callable[..., Any]]:
    """Per env: ``score(drift_params, key) -> returns [seeds]`` (NaN where diverged)."""
    seeds = config.seeds if seeds is None else seeds
    scorers = []
    for index, name in enumerate(config.envs):
        env, env_params = env_registry.make(name)
        agent_score = make_agent_score(config, config.ppo, env, env_params, drift)
        hparams = env_hparams(config, index)

        def score(drift_params, key, agent_score=agent_score, hparams=hparams):
            keys = jax.random.split(key, seeds)
            returns, _ = jax.vmap(agent_score, in_axes=(0, None, None))(
                keys, drift_params, hparams
            )
            return returns

        scorers.append(score)
    return scorers


def random_play(name: str, key: jax.Array, num_envs: int = 16, steps: int = 2000
                ) -> tuple[float, float]:
    """A uniformly random policy on ``name`` for ``steps`` steps of ``num_envs`` envs:
    ``(mean episode return, mean reward per step)``, the normalisation floors of
    episodic scores and of reward rates (LPG's gridworlds)."""
    env, env_params = env_registry.make(name)
    vec_env = wrappers.VecEnv(wrappers.EpisodeStatistics(env), num_envs)
    action_space = env.action_space(env_params)

    def run(key):
        key, reset_key = jax.random.split(key)
        obs, state = vec_env.reset(reset_key, env_params)

        def step(state, key):
            key_act, key_env = jax.random.split(key)
            actions = jax.vmap(action_space.sample)(jax.random.split(key_act, num_envs))
            _, state, reward, _, _, info = vec_env.step(key_env, state, actions, env_params)
            return state, (info["returned_episode"], info["returned_episode_returns"], reward)

        _, (ended, returns, rewards) = jax.lax.scan(step, state, jax.random.split(key, steps))
        return jnp.sum(returns * ended) / jnp.maximum(ended.sum(), 1), jnp.mean(rewards)

    episode_return, reward_rate = jax.jit(run)(key)
    return float(episode_return), float(reward_rate)


def random_policy_return(name: str, key: jax.Array, num_envs: int = 16, steps: int = 2000) -> float:
    """Mean episode return of a uniformly random policy on ``name`` (a normalisation floor)."""
    return random_play(name, key, num_envs, steps)[0]


def ppo_params_for(drift: Drift, key: jax.Array) -> Any:
    """Params with which the learned drift *is* PPO-clip (a zero output layer)."""
    params = drift.init(key)
    return {**params, "w2": jnp.zeros_like(params["w2"])}


def make_evaluator(
    config: DriftTaskConfig, drift: Drift, seeds: int
) -> Callable[[Any, jax.Array], np.ndarray]:
    """``evaluate(drift_params, key) -> returns [E, seeds]`` of fresh agents (NaN where
    training diverged), scored as ``config.score`` says.

    Each env's program is compiled once, on the first call, and reused for every params
    pytree of the same shape (e.g. a learned drift and its PPO-clip point).
    """
    scores = [jax.jit(score) for score in _env_scorers(config, drift, seeds)]

    def evaluate(drift_params: Any, key: jax.Array) -> np.ndarray:
        env_keys = jax.random.split(key, len(scores))
        return np.stack([np.asarray(score(drift_params, k)) for score, k in zip(scores, env_keys)])

    evaluate.programs = tuple(scores)  # the jitted per-env programs (tests count compiles)
    return evaluate


def evaluate_drift(
    config: DriftTaskConfig, drift: Drift, drift_params: Any, key: jax.Array, seeds: int
) -> np.ndarray:
    """Returns ``[E, seeds]`` of fresh agents trained with ``drift_params``."""
    return make_evaluator(config, drift, seeds)(drift_params, key)


def normaliser(
    config: DriftTaskConfig, ppo_returns: np.ndarray | None, random_returns: np.ndarray | None,
    section: str = "task",
) -> tuple[np.ndarray, np.ndarray]:
    """``(offset, scale)`` per env with ``normalised = (R - offset) / scale``.

    Refuses a measured denominator that would invert or blow up ES's ordering: PPO's
    return at or below random play's (``ppo_random``), or a non-positive PPO return
    (``ppo``, e.g. Acrobot, MountainCar, Pendulum), or one within ``min_baseline_gap``
    of it relative to the returns' scale. ``section`` is the config section the
    normalisation is set in (``task``, ``validation``), named in the error.
    """
    if config.normalise == "none":
        return np.zeros(len(config.envs)), np.ones(len(config.envs))
    if config.normalise == "fixed":
        return np.zeros(len(config.envs)), np.asarray(config.normalisers, np.float64)
    magnitude = np.maximum(np.abs(ppo_returns), np.abs(random_returns))
    if config.normalise == "ppo_random":
        offset, scale = random_returns, ppo_returns - random_returns
        need = "PPO-clip's return must exceed random play's"
    else:
        offset, scale = np.zeros_like(ppo_returns), ppo_returns
        need = "PPO-clip's return must be positive"
    for name, ppo, rnd, s, m in zip(config.envs, ppo_returns, random_returns, scale, magnitude):
        if not s > config.min_baseline_gap * m:
            raise ConfigError(
                f"{section}.normalise={config.normalise!r} cannot normalise {name}: PPO-clip "
                f"returns {ppo:.4g} and random play {rnd:.4g}; {need} by more than "
                f"min_baseline_gap={config.min_baseline_gap} of the returns' scale. Use "
                f"normalise=fixed with {section}.normalisers (e.g. published returns), "
                "ppo_random for envs with negative returns, or none",
                field=f"{section}.normalise",
            )
    return np.asarray(offset, np.float64), np.asarray(scale, np.float64)


def make_level_fitness(
    config: DriftTaskConfig,
    drift: Drift,
    offset: float,
    scale: float,
    antagonist_params: Any | None = None,
) -> Callable[[Any, jax.Array, Any], tuple[jax.Array, jax.Array, dict[str, jax.Array]]]:
    """``fitness_on_levels(population, key, levels)`` on the task's one env: each member
    trains one agent per level (the same keys across the population), normalised as the
    task says with the default level's baselines.

    Fitness and level scores are :func:`discovery.meta.curricula.score_population`'s
    (a member with a diverged agent is ``-inf``). With ``antagonist_params`` (the
    drift's PPO-clip point: the hand-designed baseline), PPO-clip also trains on every
    level with the same keys, and each level is scored by ``"antagonist_return"`` and
    ``"algorithmic_regret"``, PPO-clip's normalised return minus the population's
    (GROOVE's regret, Jackson et al., 2023, with PPO-clip as the antagonist).
    """
    env, env_params = env_registry.make(config.envs[0])
    agent_score = make_agent_score(config, config.ppo, env, env_params, drift)
    hparams = env_hparams(config, 0)

    def level_returns(drift_params, keys, levels):
        returns, _ = jax.vmap(agent_score, in_axes=(0, None, None, 0))(
            keys, drift_params, hparams, levels
        )
        return returns

    def fitness_on_levels(population, key, levels):
        count = jax.tree.leaves(levels)[0].shape[0]
        keys = jax.random.split(key, count)
        members = jax.tree.leaves(population)[0].shape[0]
        if antagonist_params is not None:
            # PPO-clip trains as one more member: one batched program (two concurrent
            # batched LAPACK calls, one per network init, can deadlock jaxlib 0.10's CPU
            # thread pool; measured on 2 cores).
            population = jax.tree.map(
                lambda p, a: jnp.concatenate([p, a[None]]), population, antagonist_params
            )
        returns = jax.vmap(level_returns, in_axes=(0, None, None))(population, keys, levels)
        normalised = (returns - offset) / scale
        fitness, level_scores = score_population(normalised[:members])
        if antagonist_params is not None:
            level_scores |= {
                "antagonist_return": normalised[members],
                "algorithmic_regret": normalised[members] - level_scores["return"],
            }
        return fitness, returns[:members, None, :], level_scores

    return fitness_on_levels


def measure_baselines(
    config: DriftTaskConfig,
    drift: Drift,
    key: jax.Array,
    evaluate: Callable[[Any, jax.Array], np.ndarray] | None = None,
    what: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """``(ppo_returns, random_returns)`` per env of ``config``: PPO-clip's mean return over
    ``config.baseline_seeds`` fresh agents (``evaluate``, default
    :func:`make_evaluator`'s with those seeds) and a uniformly random policy's.

    Raises ``ConfigError`` when every PPO-clip seed diverged on an env (no drift can be
    scored against it); ``what`` says which envs these are in that message.
    """
    key_ppo, key_random = jax.random.split(key)
    if evaluate is None:
        evaluate = make_evaluator(config, drift, config.baseline_seeds)
    baseline = evaluate(ppo_params_for(drift, key_ppo), key_ppo)
    summary = summarise_over_seeds(baseline)
    for name, mean in zip(config.envs, summary["mean"]):
        if mean is None:
            raise ConfigError(
                f"task.ppo: the PPO-clip baseline diverged on {name}{what} in all "
                f"{config.baseline_seeds} seeds "
                "(non-finite losses or params), so no drift can be scored against it: check "
                "task.ppo (lr, num_envs, num_steps, total_timesteps)",
                field="task.ppo",
            )
    ppo_returns = np.asarray(summary["mean"], np.float64)
    random_returns = np.array(
        [random_policy_return(name, k) for name, k in
         zip(config.envs, jax.random.split(key_random, len(config.envs)))]
    )
    return ppo_returns, random_returns


def make_drift_task(
    config: DriftTaskConfig,
    key: jax.Array,
    on_levels: bool = False,
    antagonist: bool = False,
    drift: Drift | None = None,
) -> DriftTask:
    """Build the task and measure its normalisation baselines (PPO-clip, random policy).

    ``on_levels`` also builds ``fitness_on_levels`` (for a curriculum over the one env's
    levels), with PPO-clip as the antagonist of algorithmic regret if ``antagonist``.
    ``drift`` is the learnable drift to score (default: ``config.drift``'s); it must be
    PPO-clip when its output layer ``w2`` is zero (:func:`ppo_params_for`).

    Raises ``ConfigError`` when every baseline seed diverged on an env, or when the
    normalisation the config asks for is not meaningful on the measured baselines.
    """
    if drift is None:
        drift = make_drift(config.drift, **TASK_DRIFT_KWARGS)
    scorers = _env_scorers(config, drift)

    key_ppo, _ = jax.random.split(key)
    ppo_returns, random_returns = measure_baselines(config, drift, key)
    offset, scale = normaliser(config, ppo_returns, random_returns)
    offset_j, scale_j = jnp.asarray(offset, jnp.float32), jnp.asarray(scale, jnp.float32)

    def returns_of(drift_params, key):
        env_keys = jax.random.split(key, len(scorers))
        return jnp.stack([score(drift_params, k) for score, k in zip(scorers, env_keys)])

    def fitness(population, key):
        returns = jax.vmap(returns_of, in_axes=(0, None))(population, key)
        normalised = (returns.mean(axis=-1) - offset_j) / scale_j
        return normalised.mean(axis=-1), returns

    fitness_on_levels = None
    if on_levels:
        fitness_on_levels = make_level_fitness(
            config, drift, float(offset[0]), float(scale[0]),
            ppo_params_for(drift, key_ppo) if antagonist else None,
        )
    return DriftTask(config, drift, fitness, ppo_returns, random_returns, fitness_on_levels)
