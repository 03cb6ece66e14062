"""Checks a command runs before any compute: environment names, and whether the PPO
agents' rollout buffers can fit in this machine's memory. Each failure is a
``ConfigError`` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from discovery import envs
from discovery.config import ConfigError


def check_env(name: str, field: str) -> None:
    """Fail fast, naming the config field, on an environment name ``envs.make`` rejects."""
    try:
        _OBS_SIZES[name] = observation_floats(*envs.make(name))
    except ValueError as error:
        # envs.make lists every known name on further lines; keep the message one line.
        first, newline, _ = str(error).partition("\n")
        if newline:
            first = (first.removesuffix("Known environments:").rstrip()
                     + " Allowed: a name `discover envs` lists.")
        raise ConfigError(f"{field}: {first}", field=field) from None


def check_level_source(name: str, field: str) -> None:
    """An env name, or ``<env>/random`` for physics drawn from its level space."""
    base, _, suffix = name.rpartition("/")
    if suffix == "random" and not name.startswith("gridworld/"):
        from discovery.envs.levels import LevelError, make_level_space

        try:
            make_level_space(base)
        except LevelError as error:
            raise ConfigError(f"{field}: {error}", field=field) from None
        return
    check_env(name, field)


#: float32 values a rollout buffer keeps per transition beyond the observations (obs and
#: next obs): action, log-prob, value, reward, terminated, truncated, advantage, target.
_SCALARS_PER_TRANSITION = 8


#: Floats per observation of the envs ``check_env`` made (so they are made only once).
_OBS_SIZES: dict[str, int] = {}


def observation_floats(env: Any, env_params: Any) -> int:
    """Floats in one observation (1 when the env cannot say: this is only an estimate)."""
    try:
        return max(1, math.prod(env.observation_space(env_params).shape))
    except Exception:
        return 1


def obs_size(name: str) -> int:
    """Floats in one observation of env ``name``."""
    if name not in _OBS_SIZES:
        _OBS_SIZES[name] = observation_floats(*envs.make(name))
    return _OBS_SIZES[name]


def rollout_bytes(agents: int, ppo: Any, obs_size: int) -> int:
    """Bytes of the rollout buffers of ``agents`` PPO agents trained at once: per agent,
    ``num_envs x num_steps`` transitions of ``2 x obs_size + 8`` float32 values.

    A lower bound of the run's memory (parameters, optimiser state, minibatch copies and
    XLA's temporaries come on top), so a run above it clearly cannot fit.
    """
    floats = 2 * obs_size + _SCALARS_PER_TRANSITION
    return agents * ppo.num_envs * ppo.num_steps * floats * 4


def machine_memory() -> int | None:
    """Total physical memory in bytes (``os.sysconf``), None where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(needed: int, what: str, lower: str) -> None:
    """Refuse a run whose rollout buffers alone (``needed`` bytes) exceed the machine."""
    total = machine_memory()
    if total is None or needed <= total:
        return
    raise ConfigError(
        f"memory: this run needs at least {needed / 2**30:,.1f} GiB for {what}, more than "
        f"this machine's {total / 2**30:,.1f} GiB; allowed: a run that fits, so lower {lower}",
        field="memory",
    )


def ppo_memory(agents: int, ppo: Any, env_names: Sequence[str], agents_text: str,
                lower: str, together: bool = True) -> None:
    """Check the rollout buffers of ``agents`` agents on each env: summed when the envs
    run in one program (``together``), else the largest."""
    sizes = [rollout_bytes(agents, ppo, obs_size(name)) for name in env_names]
    needed = sum(sizes) if together else max(sizes)
    what = (f"rollout buffers ({agents_text} x num_envs {ppo.num_envs} x num_steps "
            f"{ppo.num_steps} x (2 x observation + {_SCALARS_PER_TRANSITION}) float32)")
    check_memory(needed, what, lower)
