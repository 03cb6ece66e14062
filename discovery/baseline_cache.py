"""A cache of hand-designed baselines' held-out runs, so that evaluating a second
discovered component on the same envs and budgets does not train PPO-clip, DPO or A2C
again.

An entry is one JSON file (never pickle), ``<root>/<kind>/<env>-<digest>.json``,
holding its key and its arrays. The key is everything the numbers depend on: the env,
the inner agent's whole config (its budget included), the seeds and the exact PRNG key
data, the evaluation episodes, the package version, a digest of the source of the code
that trains and scores the agents, the versions of JAX and the libraries it trains with,
the backend, the device count and ``XLA_FLAGS``. A hit is checked against the stored
key (a digest collision or a file copied in by hand is a miss), and arrays round-trip
exactly (float64 through JSON's shortest repr; NaN and infinities as strings), so a hit
gives the very numbers the computation would. Files are written atomically
(:func:`discovery.files.write_json`), and a file that does not parse is recomputed and
replaced, with a note.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from discovery.files import loads_strict, to_json, write_json

#: Bump when what an entry holds changes meaning.
FORMAT = 1

#: The modules whose source the numbers depend on (digested into every key).
CODE_MODULES = (
    "discovery.agents",
    "discovery.envs",
    "discovery.drift",
    "discovery.devices",
    "discovery.drift_evaluation",
    "discovery.objective_evaluation",
    "discovery.objective_training",
    "discovery.tasks",
)

_NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/discovery/baselines``, else ``~/.cache/discovery/baselines``."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root).expanduser() / "discovery" / "baselines"


@functools.cache
def code_digest(modules: tuple[str, ...] = CODE_MODULES) -> str:
    """SHA-256 over the source files of ``modules`` (a package: all its ``.py`` files), so
    that editing the code that trains a baseline invalidates its cache entries."""
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            digest.update(f"{name}: missing".encode())
            continue
        origin = Path(spec.origin)
        files = sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(f"{name}/{path.name}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


#: The distributions whose versions the numbers depend on (in every key).
PACKAGES = ("jax", "jaxlib", "flax", "optax", "gymnax", "brax", "numpy")


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment_key() -> dict[str, Any]:
    """What besides the inputs decides the numbers: the package's version and code, its
    dependencies' versions, the backend, the device count and ``XLA_FLAGS``."""
    import jax

    from discovery import __version__

    return {
        "format": FORMAT,
        "discovery": __version__,
        "code": code_digest(),
        "packages": {name: _version(name) for name in PACKAGES},
        "backend": jax.default_backend(),
        "local_devices": jax.local_device_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def key_data(key: Any) -> list[int]:
    """A PRNG key's raw words, for a cache key."""
    import jax

    return [int(word) for word in np.asarray(jax.random.key_data(key)).ravel()]


def encode_array(values: np.ndarray) -> dict[str, Any]:
    """An array as exact JSON: float64 values, non-finite ones as strings."""
    array = np.asarray(values, dtype=np.float64)
    data = [float(x) if np.isfinite(x) else ("NaN" if np.isnan(x) else
                                             ("Infinity" if x > 0 else "-Infinity"))
            for x in array.ravel()]
    return {"shape": list(array.shape), "data": data}


def decode_array(stored: Mapping[str, Any]) -> np.ndarray:
    """The inverse of :func:`encode_array`."""
    data = [_NON_FINITE[x] if isinstance(x, str) else float(x) for x in stored["data"]]
    return np.asarray(data, dtype=np.float64).reshape(stored["shape"])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60] or "entry"


def _digest(kind: str, key: Mapping[str, Any]) -> str:
    text = json.dumps({"kind": kind, "key": key}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class BaselineCache:
    """Baseline runs on disk under ``root`` (created on the first write).

    ``log`` receives one line per hit, and per unreadable file replaced.
    """

    def __init__(self, root: str | Path, log: Callable[[str], None] = print) -> None:
        self.root = Path(root).expanduser()
        self.log = log

    def path(self, kind: str, key: Mapping[str, Any]) -> Path:
        """Where the entry of ``key`` lives (whether or not it exists)."""
        env = str(key.get("env", "entry"))
        return self.root / kind / f"{_slug(env)}-{_digest(kind, key)[:24]}.json"

    def get(self, kind: str, key: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or ``None`` (absent, unreadable or another key)."""
        path = self.path(kind, key)
        if not path.is_file():
            return None
        try:
            stored = loads_strict(path.read_text())
            if stored.get("kind") != kind or stored.get("key") != to_json(key):
                return None
            return {name: decode_array(value) for name, value in stored["arrays"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            self.log(f"baseline cache: ignoring unreadable {path} ({error}); recomputing")
            return None

    def put(self, kind: str, key: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Path:
        """Store ``arrays`` under ``key`` (atomically: a temp file, then a rename)."""
        path = self.path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_json(path, {"kind": kind, "key": to_json(key),
                                 "arrays": {n: encode_array(a) for n, a in arrays.items()}})

    def fetch(self, kind: str, key: Mapping[str, Any],
              compute: Callable[[], Mapping[str, np.ndarray]],
              what: str) -> tuple[dict[str, np.ndarray], bool]:
        """``(arrays, hit)``: the stored arrays of ``key`` (logging that ``what`` came from
        the cache), else ``compute()``'s, stored for next time."""
        cached = self.get(kind, key)
        if cached is not None:
            self.log(f"baseline cache: using cached {what} ({self.path(kind, key)})")
            return cached, True
        arrays = {name: np.asarray(value, np.float64) for name, value in compute().items()}
        self.put(kind, key, arrays)
        return arrays, False


def fetch(cache: BaselineCache | None, kind: str, key: Mapping[str, Any],
          compute: Callable[[], Mapping[str, np.ndarray]],
          what: str) -> tuple[dict[str, np.ndarray], bool]:
    """:meth:`BaselineCache.fetch`, or ``compute()`` alone without a cache."""
    if cache is None:
        return {name: np.asarray(v, np.float64) for name, v in compute().items()}, False
    return cache.fetch(kind, key, compute, what)


def cache_from_flags(directory: str | None, disabled: bool,
                     log: Callable[[str], None] = print) -> BaselineCache | None:
    """The cache ``--baseline-cache DIR`` / ``--no-baseline-cache`` ask for, checked before
    any compute: an explicit folder that cannot hold it is a ``ConfigError`` naming the
    flag; the default folder (:func:`default_cache_dir`) that cannot is skipped, saying so."""
    from discovery.config import ConfigError
    from discovery.files import folder_problem

    if disabled:
        if directory is not None:
            raise ConfigError(f"--baseline-cache: got {directory!r} with --no-baseline-cache; "
                              "allowed: one of the two", field="--baseline-cache")
        return None
    root = Path(directory).expanduser() if directory is not None else default_cache_dir()
    problem = folder_problem(root)
    if problem is None:
        return BaselineCache(root, log)
    if directory is not None:
        raise ConfigError(f"--baseline-cache: {directory!r} cannot hold the cache: {problem}; "
                          "allowed: a folder you can write to, or --no-baseline-cache",
                          field="--baseline-cache")
    log(f"baseline cache: off ({problem}); --baseline-cache DIR picks another folder")
    return None
