"""One entry point for every environment: ``make(name, **overrides) -> (env, env_params)``.

Names are gymnax's registered ids (``"CartPole-v1"``, ``"Breakout-MinAtar"``, ...), the
paper-style MinAtar alias (``"MinAtar-Breakout"``), brax envs as ``"brax/<name>"`` and the
LPG/GROOVE gridworlds as ``"gridworld/<layout>"`` (plus ``"gridworld/random"``).
Overrides replace fields of the env's ``EnvParams`` (gymnax, gridworld) or set adapter
options (brax), and are validated so that a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import gzip
import importlib
import io
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import gymnax
import jax
import jax.numpy as jnp
from gymnax.environments.classic_control import cartpole

from discovery.envs import gridworld
from discovery.files import write_bytes_atomic

BRAX_PREFIX = "brax/"
GRIDWORLD_PREFIX = "gridworld/"
BRAX_INSTALL_HINT = 'pip install "rl-discovery[brax]"'

# brax 0.14's registry (brax.envs._envs), used by list_envs when brax is not installed.
_STATIC_BRAX_NAMES = (
    "ant",
    "fast",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "inverted_pendulum",
    "inverted_double_pendulum",
    "pusher",
    "reacher",
    "swimmer",
    "walker2d",
)

_MINATAR_SUFFIX = "-MinAtar"
_MINATAR_PREFIX = "MinAtar-"

# gymnax.utils.load_mnist downloads here (its default ``directory``) when MNISTBandit
# is constructed.
_MNIST_NAME = "MNISTBandit-bsuite"
_MNIST_DIR = "/tmp/mnist"
_MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_MNIST_TIMEOUT_S = 30.0


def _cartpole_total_mass(params: Any) -> Any:
    return params.masscart + params.masspole


def _cartpole_polemass_length(params: Any) -> Any:
    return params.masspole * params.length


# EnvParams fields that gymnax stores but which are functions of other fields. They are
# recomputed after overrides and may not be overridden themselves.
_DERIVED_FIELDS: dict[str, dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "CartPole-v1": {
        "total_mass": ("masscart + masspole", _cartpole_total_mass),
        "polemass_length": ("masspole * length", _cartpole_polemass_length),
    },
}


def with_derived_params(name: str, env_params: Any) -> Any:
    """Recompute the derived ``EnvParams`` fields of env ``name`` from the primary ones.

    Only CartPole-v1 has such fields (``total_mass``, ``polemass_length``); other
    params are returned unchanged. Works on traced values, so curricula can call it.
    """
    derived = _DERIVED_FIELDS.get(name, {})
    if not derived:
        return env_params
    return env_params.replace(**{field: fn(env_params) for field, (_, fn) in derived.items()})


class ConsistentCartPole(cartpole.CartPole):
    """gymnax's CartPole-v1 that derives ``total_mass`` and ``polemass_length`` in ``step``.

    gymnax's CartPole stores both in EnvParams; a level that changes ``masspole``,
    ``masscart`` or ``length`` through ``params.replace`` would otherwise step with stale
    derived values. Here the stored derived fields are ignored and recomputed.
    """

    def step_env(
        self, key: jax.Array, state: Any, action: Any, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, dict[str, Any]]:
        return super().step_env(key, state, action, with_derived_params("CartPole-v1", params))


def _family(name: str) -> str:
    if name.startswith(BRAX_PREFIX):
        return "brax"
    if name.startswith(GRIDWORLD_PREFIX):
        return "gridworld"
    for suffix, family in (("-MinAtar", "MinAtar"), ("-bsuite", "bsuite"), ("-misc", "misc")):
        if name.endswith(suffix):
            return family
    return "classic control"


def _gymnax_names() -> list[str]:
    return list(gymnax.registered_envs)


def import_brax() -> Any:
    """``brax.envs``, imported with stdout muted: brax imports ``mujoco.mjx``, which prints
    "Failed to import warp" when the optional GPU backend is missing (noise, not an
    error)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module("brax.envs")


def _brax_names() -> list[str]:
    try:
        brax_envs = import_brax()
        names = list(brax_envs._envs)
    except Exception:  # brax missing or broken: the names it shipped with
        names = list(_STATIC_BRAX_NAMES)
    return [BRAX_PREFIX + n for n in names]


def _gridworld_names() -> list[str]:
    return [GRIDWORLD_PREFIX + n for n in (*gridworld.LAYOUTS, gridworld.RANDOM_LEVEL)]


def list_envs() -> list[str]:
    """All canonical environment names ``make`` accepts (aliases not included).

    Brax names come from brax's own registry when brax is importable, else from the
    list brax 0.14 ships.
    """
    return _gymnax_names() + _brax_names() + _gridworld_names()


def _aliases() -> dict[str, str]:
    """Paper-style ``MinAtar-<Game>`` names for gymnax's ``<Game>-MinAtar``."""
    return {
        _MINATAR_PREFIX + n[: -len(_MINATAR_SUFFIX)]: n
        for n in _gymnax_names()
        if n.endswith(_MINATAR_SUFFIX)
    }


def _unknown_name_error(name: str) -> ValueError:
    known = list_envs()
    aliases = _aliases()
    close = difflib.get_close_matches(name, known + list(aliases), n=3, cutoff=0.6)
    families: dict[str, list[str]] = {}
    for n in known:
        families.setdefault(_family(n), []).append(n)
    listing = "\n".join(f"  {fam}: {', '.join(names)}" for fam, names in families.items())
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"Unknown environment {name!r}.{hint} Names are case-sensitive; MinAtar games "
        f"also accept '{_MINATAR_PREFIX}<Game>'. Known environments:\n{listing}"
    )


def make(
    name: str, *, env_kwargs: Mapping[str, Any] | None = None, **overrides: Any
) -> tuple[Any, Any]:
    """Create environment ``name`` and its params, gymnax-style.

    Args:
        name: a name from :func:`list_envs`, or a ``MinAtar-<Game>`` alias.
        env_kwargs: constructor arguments that fix shapes and so cannot live in
            EnvParams (e.g. ``{"size": 10}`` for DeepSea-bsuite, or a brax env's
            constructor arguments such as ``{"ctrl_cost_weight": 0.5}``, or a gridworld's
            ``max_size``, ``max_objects``, ``observation``).
        **overrides: for gymnax envs, ``EnvParams`` fields to replace (derived fields
            are recomputed); for brax envs, adapter options ``backend``,
            ``episode_length``, ``action_repeat`` or the param ``max_steps_in_episode``.

    Returns:
        ``(env, env_params)``: an env with gymnax's API and its default params with the
        overrides applied.

    Raises:
        ValueError: unknown name (with close matches), unknown or derived override,
            invalid constructor argument.
        ImportError: a brax env was asked for and brax is not installed.
        NotImplementedError: brax/swimmer with a jax that breaks brax's fluid model.
        RuntimeError: MNISTBandit-bsuite's dataset is not cached and cannot be fetched.
    """
    env_kwargs = dict(env_kwargs or {})
    if name.startswith(BRAX_PREFIX):
        return _make_brax(name, env_kwargs, overrides)
    if name.startswith(GRIDWORLD_PREFIX):
        return _make_gridworld(name, env_kwargs, overrides)
    canonical = _aliases().get(name, name)
    if canonical not in gymnax.registered_envs:
        raise _unknown_name_error(name)
    return _make_gymnax(canonical, env_kwargs, overrides)


def _make_gymnax(
    name: str, env_kwargs: dict[str, Any], overrides: Mapping[str, Any]
) -> tuple[Any, Any]:
    if name == _MNIST_NAME:
        _ensure_mnist(_MNIST_DIR)
    try:
        if name == "CartPole-v1":
            env = ConsistentCartPole(**env_kwargs)
            env_params = env.default_params
        else:
            env, env_params = gymnax.make(name, **env_kwargs)
    except TypeError as err:
        if not env_kwargs:
            raise
        raise ValueError(
            f"Invalid env_kwargs {env_kwargs!r} for {name!r}: {err}. env_kwargs are "
            "passed to the gymnax environment's constructor."
        ) from err
    except (OSError, EOFError) as err:
        if name != _MNIST_NAME:
            raise
        raise RuntimeError(
            f"{name}: gymnax could not read the MNIST files in {_MNIST_DIR} ({err}). "
            f"They may be truncated from an interrupted download; delete {_MNIST_DIR} "
            "and try again."
        ) from err
    return env, apply_overrides(name, env_params, overrides)


def apply_overrides(name: str, env_params: Any, overrides: Mapping[str, Any]) -> Any:
    """Return ``env_params`` with ``overrides`` replaced, validated against its fields.

    Derived fields (CartPole's ``total_mass``, ``polemass_length``) are recomputed and
    refused as overrides.
    """
    if not overrides:
        return env_params
    allowed = [f.name for f in dataclasses.fields(env_params)]
    derived = _DERIVED_FIELDS.get(name, {})
    for field, value in overrides.items():
        if field in derived:
            formula = derived[field][0]
            raise ValueError(
                f"{name}: EnvParams field {field!r} (got {field}={value!r}) is derived as "
                f"{formula} and recomputed automatically; override the fields it is computed "
                "from instead."
            )
        if field not in allowed:
            settable = [f for f in allowed if f not in derived]
            raise ValueError(
                f"{name}: unknown EnvParams field {field!r} (got {field}={value!r}). "
                f"Allowed fields: {', '.join(settable)}."
            )
    return with_derived_params(name, env_params.replace(**overrides))


def _make_gridworld(
    name: str, env_kwargs: dict[str, Any], overrides: Mapping[str, Any]
) -> tuple[Any, Any]:
    level = name[len(GRIDWORLD_PREFIX) :]
    known = _gridworld_names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"Unknown gridworld {name!r}.{hint} Known gridworlds: {', '.join(known)}.")
    try:
        env, env_params = gridworld.make_gridworld(level, **env_kwargs)
    except TypeError as err:
        raise ValueError(
            f"Invalid env_kwargs {env_kwargs!r} for {name!r}: {err}. Gridworlds take "
            "max_size, max_objects and observation."
        ) from err
    params = apply_overrides(name, env_params, overrides)
    # Overrides keep each field's dtype and shape, so one compiled step serves every level.
    for field in overrides:
        value, reference = getattr(params, field), getattr(env_params, field)
        value = jnp.asarray(value, reference.dtype)
        if value.shape != reference.shape:
            raise ValueError(
                f"{name}: override {field} has shape {value.shape}, expected {reference.shape}."
            )
        params = params.replace(**{field: value})
    return env, params


def _make_brax(
    name: str, env_kwargs: dict[str, Any], overrides: Mapping[str, Any]
) -> tuple[Any, Any]:
    try:
        import_brax()
    except ImportError as err:
        raise ImportError(
            f"{name!r} needs brax, which is not installed (or failed to import: {err}). "
            f"Install it with: {BRAX_INSTALL_HINT}"
        ) from err
    from discovery.envs import brax as brax_adapter

    brax_name = name[len(BRAX_PREFIX) :]
    if brax_name not in brax_adapter.brax_env_names():
        raise _unknown_name_error(name)
    return brax_adapter.make_brax(brax_name, env_kwargs=env_kwargs, **overrides)


def _ensure_mnist(directory: str) -> None:
    """Make sure gymnax's MNIST files are cached, downloading them with a timeout.

    gymnax's ``MNISTBandit`` downloads MNIST inside its constructor with
    ``urlretrieve`` (no timeout, partial files left behind on failure). Fetching here
    first, atomically and with a timeout, turns an offline machine into a clear error.
    """
    os.makedirs(directory, exist_ok=True)
    for filename in _MNIST_FILES:
        target = os.path.join(directory, filename)
        if os.path.isfile(target) and os.path.getsize(target) > 0:
            continue
        url = _MNIST_URL + filename
        try:
            with urllib.request.urlopen(url, timeout=_MNIST_TIMEOUT_S) as response:
                data = response.read()
            gzip.decompress(data)  # rejects an HTML error page or a cut-off file
        except (urllib.error.URLError, OSError, EOFError, ValueError) as err:
            raise RuntimeError(
                f"{_MNIST_NAME} needs the MNIST dataset, which gymnax downloads from "
                f"{_MNIST_URL} into {directory} when the env is created, and the download "
                f"of {filename} failed ({err}). On a machine without network access, "
                f"copy the files {', '.join(_MNIST_FILES)} into {directory} first."
            ) from err
        write_bytes_atomic(target, data)
