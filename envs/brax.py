"""Brax environments behind gymnax's API.

:class:`BraxToGymnax` turns a brax ``Env`` (``reset(rng) -> State``,
``step(State, action) -> State``) into a gymnax ``Environment``: ``reset(key, params)``
and ``step(key, state, action, params)`` returning ``obs, state, reward, terminated,
truncated, info`` with auto-reset and ``info["final_observation"]``. The episode time
limit gives ``truncated`` and brax's own ``done`` gives ``terminated``; brax's
``EpisodeWrapper`` merges the two, which is why it is not used here.

Importing this module imports brax; ``discovery.envs.registry`` imports it only for ``brax/`` names.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from discovery.envs.registry import import_brax

brax_envs = import_brax()
from brax.envs.base import State as BraxState  # noqa: E402

BACKENDS = ("spring", "positional", "generalized", "mjx")
# spring is brax's fastest pipeline on CPU (mjx, brax's own default, is several times
# slower there); pass backend="mjx" for MuJoCo-accurate contacts.
DEFAULT_BACKEND = "spring"
# brax envs that refuse the default backend (brax 0.14's swimmer supports only this one).
_ENV_DEFAULT_BACKEND = {"swimmer": "generalized"}
DEFAULT_EPISODE_LENGTH = 1000


@struct.dataclass
class BraxEnvParams:
    """Params of a brax env. ``max_steps_in_episode`` counts brax steps (with repeats)."""

    max_steps_in_episode: int = DEFAULT_EPISODE_LENGTH


@struct.dataclass
class BraxEnvState:
    """The wrapped brax ``State`` and the number of brax steps taken this episode."""

    brax_state: BraxState
    time: jax.Array


def brax_env_names() -> list[str]:
    """Names in brax's registry (without the ``brax/`` prefix)."""
    return list(brax_envs._envs)


class BraxToGymnax(environment.Environment[BraxEnvState, BraxEnvParams]):
    """A brax env with gymnax's API (see the module docstring).

    Args:
        brax_env: an un-wrapped brax env (no ``EpisodeWrapper``/``AutoResetWrapper``).
        episode_length: default ``max_steps_in_episode``; like brax's ``EpisodeWrapper``
            it counts brax steps, so an episode has ``episode_length / action_repeat``
            agent steps.
        action_repeat: brax steps per agent step (static). Rewards are summed up to and
            including a terminal step; after one the brax state is held fixed.
        name: the name reported by ``env.name`` (default: the brax class name).
    """

    _supports_transition_gradients = True  # brax pipelines are differentiable

    def __init__(
        self,
        brax_env: Any,
        episode_length: int = DEFAULT_EPISODE_LENGTH,
        action_repeat: int = 1,
        name: str | None = None,
    ):
        super().__init__()
        self._name = name or f"brax/{type(brax_env).__name__}"
        self.brax_env = brax_env
        self.episode_length = int(episode_length)
        self.action_repeat = int(action_repeat)
        self._obs_shape: tuple[int, ...] | None = None

    @property
    def default_params(self) -> BraxEnvParams:
        return BraxEnvParams(max_steps_in_episode=self.episode_length)

    @property
    def name(self) -> str:
        return self._name

    @property
    def num_actions(self) -> int:
        return int(self.brax_env.action_size)

    def _brax_reset(self, key: jax.Array) -> BraxState:
        state = self.brax_env.reset(key)
        # brax mixes python floats, weak and strong float32 in reward/done; gymnax's
        # auto-reset selects between reset and stepped states, which needs equal dtypes.
        return state.replace(
            reward=jnp.asarray(state.reward, jnp.float32),
            done=jnp.asarray(state.done, jnp.float32),
        )

    def _brax_step(self, state: BraxState, action: jax.Array) -> BraxState:
        state = self.brax_env.step(state, action)
        return state.replace(
            reward=jnp.asarray(state.reward, jnp.float32),
            done=jnp.asarray(state.done, jnp.float32),
        )

    def reset_env(self, key: jax.Array, params: BraxEnvParams) -> tuple[jax.Array, BraxEnvState]:
        brax_state = self._brax_reset(key)
        return brax_state.obs, BraxEnvState(brax_state=brax_state, time=jnp.int32(0))

    def step_env(
        self,
        key: jax.Array,
        state: BraxEnvState,
        action: jax.Array,
        params: BraxEnvParams,
    ) -> tuple[jax.Array, BraxEnvState, jax.Array, jax.Array, dict[str, Any]]:
        del key  # brax dynamics are deterministic
        action = jnp.asarray(action, jnp.float32)
        if self.action_repeat == 1:
            brax_state = self._brax_step(state.brax_state, action)
            reward = brax_state.reward
            terminated = brax_state.done > 0.5
        else:

            def substep(carry, _):
                prev, done = carry
                nxt = self._brax_step(prev, action)
                reward = jnp.where(done, 0.0, nxt.reward)
                nxt = jax.tree.map(lambda a, b: jnp.where(done, a, b), prev, nxt)
                return (nxt, jnp.logical_or(done, nxt.done > 0.5)), reward

            (brax_state, terminated), rewards = jax.lax.scan(
                substep, (state.brax_state, jnp.bool_(False)), None, self.action_repeat
            )
            reward = rewards.sum()
        new_state = BraxEnvState(brax_state=brax_state, time=state.time + self.action_repeat)
        info = {"metrics": brax_state.metrics}
        obs, new_state = self._apply_transition_gradient_policy(brax_state.obs, new_state)
        return obs, new_state, reward, terminated, info

    def is_terminated(self, state: BraxEnvState, params: BraxEnvParams) -> jax.Array:
        return state.brax_state.done > 0.5

    def action_space(self, params: BraxEnvParams | None = None) -> spaces.Box:
        """Brax actions are in [-1, 1]; envs rescale them to their actuator ranges."""
        return spaces.Box(-1.0, 1.0, shape=(self.num_actions,), dtype=jnp.float32)

    def observation_space(self, params: BraxEnvParams | None = None) -> spaces.Box:
        """Unbounded Box; the shape comes from tracing ``reset`` (``jax.eval_shape``).

        brax's ``observation_size`` runs an un-jitted reset (about 30 s for ant), so it
        is never called.
        """
        if self._obs_shape is None:
            abstract = jax.eval_shape(self.brax_env.reset, jax.random.key(0))
            if not hasattr(abstract.obs, "shape"):
                raise TypeError(f"{self.name}: only array observations are supported")
            self._obs_shape = tuple(abstract.obs.shape)
        return spaces.Box(-jnp.inf, jnp.inf, shape=self._obs_shape, dtype=jnp.float32)


def _jnp_clip_takes_a_min() -> bool:
    try:
        jnp.clip(jnp.zeros(()), a_min=0.0)
    except TypeError:
        return False
    return True


_ADAPTER_OPTIONS = ("backend", "episode_length", "action_repeat", "max_steps_in_episode")


def make_brax(
    name: str, *, env_kwargs: dict[str, Any] | None = None, **options: Any
) -> tuple[BraxToGymnax, BraxEnvParams]:
    """Create brax env ``name`` (e.g. ``"ant"``) as a gymnax env with its params.

    Options: ``backend`` (one of :data:`BACKENDS`, default ``"spring"``, or
    ``"generalized"`` for swimmer, the only one it supports),
    ``episode_length`` (default 1000) or its alias ``max_steps_in_episode``,
    ``action_repeat`` (default 1). ``env_kwargs`` go to the brax env's constructor.
    """
    unknown = [k for k in options if k not in _ADAPTER_OPTIONS]
    if unknown:
        field = unknown[0]
        raise ValueError(
            f"brax/{name}: unknown option {field!r} (got {field}={options[field]!r}). "
            f"Allowed options: {', '.join(_ADAPTER_OPTIONS)}; constructor arguments of "
            "the brax env go in env_kwargs."
        )
    backend = options.get("backend", _ENV_DEFAULT_BACKEND.get(name, DEFAULT_BACKEND))
    if backend not in BACKENDS:
        raise ValueError(
            f"brax/{name}: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}."
        )
    if "episode_length" in options and "max_steps_in_episode" in options:
        if options["episode_length"] != options["max_steps_in_episode"]:
            raise ValueError(
                f"brax/{name}: episode_length={options['episode_length']!r} and "
                f"max_steps_in_episode={options['max_steps_in_episode']!r} name the same "
                "quantity; give one of them."
            )
    episode_length = options.get(
        "episode_length", options.get("max_steps_in_episode", DEFAULT_EPISODE_LENGTH)
    )
    action_repeat = options.get("action_repeat", 1)
    for option, value in (("episode_length", episode_length), ("action_repeat", action_repeat)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"brax/{name}: {option} must be a positive int, got {value!r}.")
    if name == "swimmer" and not _jnp_clip_takes_a_min():
        raise NotImplementedError(
            "brax/swimmer cannot run with this jax: brax 0.14's fluid model (used only by "
            "swimmer) calls jnp.clip(a_min=...), which jax has removed."
        )
    env_kwargs = dict(env_kwargs or {})
    if "backend" in env_kwargs:
        raise ValueError(f"brax/{name}: pass backend as an option, not in env_kwargs.")
    try:
        brax_env = brax_envs.get_environment(name, backend=backend, **env_kwargs)
    except TypeError as err:
        raise ValueError(f"brax/{name}: invalid env_kwargs {env_kwargs!r}: {err}") from err
    except ValueError as err:
        if "backend" not in str(err):
            raise
        raise ValueError(
            f"brax/{name} does not support backend={backend!r} ({err}); pick another of "
            f"{', '.join(BACKENDS)}."
        ) from err
    env = BraxToGymnax(
        brax_env, episode_length=episode_length, action_repeat=action_repeat, name=f"brax/{name}"
    )
    return env, env.default_params
