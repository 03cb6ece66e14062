"""Process setup, done once when ``discovery`` is first imported, before JAX's backend
starts: one CPU device per core, the persistent compilation cache, the
``jax.distributed`` join.

* **CPU devices.** XLA runs a small program on one core, so a 2-core machine ran every
  meta-training run at one core's speed. Discovery splits the host into one JAX device
  per usable core (``--xla_force_host_platform_device_count``), and splits populations
  and seeds over them (:mod:`discovery.devices`). ``DISCOVERY_CPU_DEVICES=N`` (or
  ``discover --cpu-devices N``) asks for ``N``; ``auto`` (the default) means one per
  core this process may run on (``taskset`` narrows it). Without the variable, a
  count already in ``XLA_FLAGS`` is kept. GPU and TPU runs are unaffected: the flag shapes only the
  host platform.
* **Compilation cache.** Every ``discover`` command compiles several programs of 2-30 s
  each on CPU; JAX keeps them on disk, keyed by program, flags, backend and version.
  ``DISCOVERY_COMPILATION_CACHE``: unset uses ``$XDG_CACHE_HOME/discovery/jax`` (or
  ``~/.cache/discovery/jax``), a path uses that folder, ``0`` / ``off`` turns it off. A
  folder the user gave JAX (``JAX_COMPILATION_CACHE_DIR``) is kept. Not size-capped
  (JAX's cap needs ``filelock``): delete it at any time. Programs that compile in under
  half a second are not kept unless ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` says
  otherwise. JAX writes an entry straight into its final name, so a write cut short (a
  full disk, ``ulimit -f``, a kill) left a truncated entry that every later run read,
  warned about and never replaced; Discovery's cache writes each entry to a temp file
  renamed into place, and drops an entry it cannot decompress when it reads it (JAX
  then compiles and writes it anew): :func:`make_cache_entries_atomic`.
* **Distributed join.** JAX refuses ``jax.distributed.initialize()`` once a backend
  exists, so the package joins on import when the standard coordinator variable
  (``JAX_COORDINATOR_ADDRESS``, with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or a
  cluster JAX detects) is set.

Nothing here starts the backend: importing ``discovery`` leaves it to the first
computation, so the CLI can still set the device count from its flags. Nor does it
import JAX (about 4 s): the device count is an environment variable, and the cache and
the join run the moment JAX is first imported (:func:`after_import`), still before any
program compiles, so ``discover --help`` answers at once.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

CPU_DEVICES_ENV = "DISCOVERY_CPU_DEVICES"
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
MAX_CPU_DEVICES = 1024
CACHE_ENV = "DISCOVERY_COMPILATION_CACHE"
CACHE_OFF = ("0", "off", "false", "no")
MIN_COMPILE_SECONDS = 0.5  # cheaper programs are not worth a disk entry
MIN_COMPILE_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"  # JAX's own, if the user set it


# ----------------------------------------------------------------------------- devices


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: ``taskset -c 0`` gives 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def parse_cpu_devices(value: str, source: str = CPU_DEVICES_ENV) -> int:
    """``"auto"`` (or empty) -> one device per usable core; a positive integer -> itself.
    Anything else is a :class:`ValueError` naming ``source``, the value and what is allowed."""
    text = value.strip().lower()
    if text in ("", "auto"):
        return usable_cores()
    if not text.isdigit() or not 1 <= int(text) <= MAX_CPU_DEVICES:
        raise ValueError(f"{source}={value!r}: allowed: 'auto' or an integer from 1 to "
                         f"{MAX_CPU_DEVICES} (CPU devices to split the host into)")
    return int(text)


def backend_started() -> bool:
    """Whether JAX's backend is running (then XLA_FLAGS can no longer change)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # private API moved: assume not started
        return False


def _flag_count(flags: str) -> int | None:
    match = re.search(rf"{DEVICE_COUNT_FLAG}=(\d+)", flags)
    return int(match.group(1)) if match else None


def configure_cpu_devices(count: int | None = None) -> int:
    """Split the host into ``count`` CPU devices through ``XLA_FLAGS``; returns the count
    in force. ``None`` takes ``$DISCOVERY_CPU_DEVICES`` if set, else a count already in
    ``XLA_FLAGS`` (the user's, or a parent process's), else one per usable core.

    Once JAX's backend runs the flag cannot change: asking for another count then
    raises :class:`RuntimeError`.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    current = _flag_count(flags)
    if count is None:
        setting = os.environ.get(CPU_DEVICES_ENV)
        if setting is None and current is not None:
            return current
        count = parse_cpu_devices(setting or "auto")
    if current == count:
        return count
    if backend_started():
        running = current if current is not None else 1
        raise RuntimeError(
            f"JAX's backend already runs with {running} CPU device(s); {count} can only be "
            f"set before the first JAX computation (export {CPU_DEVICES_ENV}={count})")
    flags = re.sub(rf"\s*{DEVICE_COUNT_FLAG}=\S*", "", flags).strip()
    os.environ["XLA_FLAGS"] = f"{flags} {DEVICE_COUNT_FLAG}={count}".strip()
    return count


# ------------------------------------------------------------------- compilation cache


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "discovery" / "jax"


def configure_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at Discovery's folder, its entries written
    whole (:func:`make_cache_entries_atomic`); returns the folder in use (``None`` when
    off)."""
    import jax

    setting = os.environ.get(CACHE_ENV, "").strip()
    if setting.lower() in CACHE_OFF:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    make_cache_entries_atomic()  # the user's folder (below) too
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    path = Path(setting).expanduser() if setting else default_cache_dir()
    jax.config.update("jax_compilation_cache_dir", str(path))
    if MIN_COMPILE_ENV not in os.environ:  # JAX read the user's value at import
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path


def _entry_is_readable(value: bytes) -> bool:
    """Whether a cache entry decompresses (a truncated one does not), with the codec JAX
    wrote it with."""
    from jax._src import compilation_cache

    try:
        compilation_cache.decompress_executable(value)
    except Exception:  # zlib.error, zstd's errors: JAX's own reader fails on them too
        return False
    return True


def _atomic_cache_class(base: type) -> type:
    """JAX's file cache (``base``, ``jax._src.lru_cache.LRUCache``) with atomic writes
    and unreadable entries dropped on read; see :func:`make_cache_entries_atomic`."""
    from jax._src import lru_cache

    suffix = getattr(lru_cache, "_CACHE_SUFFIX", "-cache")
    is_local = getattr(lru_cache, "_is_local_filesystem", lambda path: "://" not in path)

    class AtomicEntriesCache(base):  # type: ignore[misc, valid-type]
        """Entries land whole or not at all; a damaged one is removed when read."""

        def _atomic(self) -> bool:
            # JAX's own path (with its file lock) when it evicts, or off the local disk.
            return not getattr(self, "eviction_enabled", False) and is_local(str(self.path))

        def get(self, key: str) -> bytes | None:
            value = super().get(key)
            if value is None or _entry_is_readable(value):
                return value
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(str(self.path), f"{key}{suffix}"))
            return None

        def put(self, key: str, value: bytes) -> None:
            if not self._atomic():
                return super().put(key, value)
            folder = str(self.path)
            target = os.path.join(folder, f"{key}{suffix}")
            if os.path.exists(target):
                return None
            # The temp name does not end in the suffix, so JAX never reads it as an entry.
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(value)
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            return None

    return AtomicEntriesCache


def make_cache_entries_atomic() -> bool:
    """Make JAX's persistent cache write each entry atomically (a temp file in the cache
    folder, renamed over the entry's name) and drop, on read, an entry that does not
    decompress, so JAX compiles and writes it again instead of warning on every run.

    JAX (0.4-0.10) writes ``<key>-cache`` with ``Path.write_bytes``; it builds its
    cache object from ``jax._src.compilation_cache.LRUCache`` on the first compile, so
    replacing that class (or the class of a cache already built) with a subclass
    changes only how entries are written and read. Returns whether it could (``False``
    where JAX's internals moved: the cache then works as JAX ships it).
    """
    try:
        from jax._src import compilation_cache, lru_cache

        base = lru_cache.LRUCache
    except (ImportError, AttributeError):
        return False
    current = getattr(compilation_cache, "LRUCache", None)
    if getattr(current, "_discovery_atomic", False):
        return True
    if current is not base:
        return False
    atomic: Any = _atomic_cache_class(base)
    atomic._discovery_atomic = True
    compilation_cache.LRUCache = atomic
    built = getattr(compilation_cache, "_cache", None)
    if type(built) is base:  # a compile already built it: the same object, our methods
        built.__class__ = atomic
    elif type(getattr(built, "_base_cache", None)) is base:  # JAX's VerificationCache
        built._base_cache.__class__ = atomic
    return True


# ------------------------------------------------------------------------- distributed


def distributed_started() -> bool:
    """Whether this process already joined a ``jax.distributed`` job."""
    try:
        from jax._src import distributed

        return distributed.global_state.client is not None
    except (ImportError, AttributeError):
        return False


def join_distributed_job() -> bool:
    """Call ``jax.distributed.initialize()`` when a coordinator is configured and this
    process has not joined yet; returns whether the process is in a job."""
    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address and not distributed_started():
        import jax

        # jax.distributed.initialize() reads only the address from the environment; the
        # process count and id come from a detected cluster unless given here.
        counts = {}
        for name, argument in (("JAX_NUM_PROCESSES", "num_processes"),
                               ("JAX_PROCESS_ID", "process_id")):
            value = os.environ.get(name)
            if value is not None:
                if not value.strip().isdigit():
                    raise ValueError(f"{name}={value!r}: allowed: a non-negative integer")
                counts[argument] = int(value)
        jax.distributed.initialize(coordinator_address=address, **counts)
    return distributed_started()


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds module ``name`` as the other finders would, and runs ``callback`` once its
    module has executed (then leaves ``sys.meta_path``)."""

    def __init__(self, name: str, callback: Callable[[], None]) -> None:
        self.name, self.callback = name, callback

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, callback = spec.loader, self.callback
        exec_module = loader.exec_module

        def exec_then_call(module: Any) -> None:
            exec_module(module)
            loader.exec_module = exec_module  # type: ignore[method-assign]
            callback()

        loader.exec_module = exec_then_call  # type: ignore[method-assign]
        return spec


def after_import(name: str, callback: Callable[[], None]) -> None:
    """Run ``callback`` now if module ``name`` is imported, else right after its first
    import (before any code that imported it goes on)."""
    if name in sys.modules:
        callback()
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, callback))


def setup_jax() -> None:
    """The setup that needs JAX itself: the compilation cache and the distributed join."""
    configure_compilation_cache()
    join_distributed_job()


def setup_process() -> None:
    """Everything above, in order; run once by ``import discovery``.

    When JAX already ran before ``discovery`` was imported (a notebook that computed
    first), its devices stay as they are; only a count the user asked for in
    ``$DISCOVERY_CPU_DEVICES`` warns that it could not take effect.
    """
    if not backend_started():
        configure_cpu_devices()
    elif CPU_DEVICES_ENV in os.environ:
        warnings.warn(f"{CPU_DEVICES_ENV} has no effect: JAX's backend started before "
                      "discovery was imported; import discovery first", RuntimeWarning,
                      stacklevel=2)
    after_import("jax", setup_jax)
