"""JAX's persistent compilation cache, on by default.

Every ``discover`` command compiles several programs (baselines, training, evaluation)
of 2-30 s each on CPU. JAX can keep compiled programs on disk, keyed by the program,
the XLA flags, the backend and the jax version, so a second identical run (or a test
that rebuilds the same program) loads it instead of compiling again.

``DISCOVERY_COMPILATION_CACHE``: unset uses ``$XDG_CACHE_HOME/discovery/jax`` (or
``~/.cache/discovery/jax``); a path uses that folder; ``0`` / ``off`` turns the cache
off. A folder the user already gave JAX (``JAX_COMPILATION_CACHE_DIR``) is kept. The
folder is not size-capped (JAX's cap needs the ``filelock`` package); delete it at any
time to reclaim the space. Programs that compile in under half a second are not kept,
unless JAX's own ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` says otherwise (the
test suite sets 0, so that its processes share even the tiny eager-op programs).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

CACHE_ENV = "DISCOVERY_COMPILATION_CACHE"
OFF = ("0", "off", "false", "no")
MIN_COMPILE_SECONDS = 0.5  # cheaper programs are not worth a disk entry
MIN_COMPILE_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"  # JAX's own, if the user set it


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "discovery" / "jax"


def configure_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at Discovery's folder; returns the folder
    in use (``None`` when off)."""
    setting = os.environ.get(CACHE_ENV, "").strip()
    if setting.lower() in OFF:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    path = Path(setting).expanduser() if setting else default_cache_dir()
    jax.config.update("jax_compilation_cache_dir", str(path))
    if MIN_COMPILE_ENV not in os.environ:  # JAX read the user's value at import
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path
