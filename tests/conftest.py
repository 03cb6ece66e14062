"""Import the package first, so its XLA flags (the jaxlib 0.10 CPU hang fix) are set
before any test module starts JAX's backend (with a cheaper LLVM optimisation level, see
below), and JAX's persistent compilation cache in
a fresh folder for this session: tests that rebuild the same program (every tiny
meta-training run builds its baselines anew) load it instead of compiling it again,
while the suite still starts cold, as on a fresh machine. pytest-xdist's workers
inherit the folder from the controller, which removes it at the end."""

import os
import shutil
import tempfile

_CACHE_ENV = "DISCOVERY_COMPILATION_CACHE"
_OWN_CACHE = None
if _CACHE_ENV not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="discovery-tests-jax-cache-")
    os.environ[_CACHE_ENV] = _OWN_CACHE

# XLA's LLVM backend at optimisation level 1 instead of its default: on the 2-core CI
# kind a tiny PPO program compiles in 6.2 s instead of 10.3 s, and training runs are
# within noise of the default (benchmarks/xla_opt_level.py, BENCHMARKS.md); compiling is
# most of the suite's time. Semantics are unchanged (no fast-math); a level the user
# set is kept.
_OPT_LEVEL = "--xla_backend_optimization_level"
if _OPT_LEVEL not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_OPT_LEVEL}=1".strip()

import envs  # noqa: E402, F401


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
