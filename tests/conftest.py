"""Import the package first, so its process setup runs before any test module starts
JAX's backend (with flags that compile faster, see below; one CPU device per test
process, see below), and JAX's persistent compilation cache in
a fresh folder for this session: tests that rebuild the same program (every tiny
meta-training run builds its baselines anew) load it instead of compiling it again,
while the suite still starts cold, as on a fresh machine. pytest-xdist's workers
inherit the folder from the controller, which removes it at the end. Every program is
kept, however fast it compiled: the workers, notebook kernels and CLI subprocesses each
start with an empty in-memory cache, and would otherwise each compile again the same
few hundred tiny eager-op programs (about 13% of the suite's compile time, stop 20)."""

import os
import shutil
import sys
import tempfile

import pytest

_CACHE_ENV = "DISCOVERY_COMPILATION_CACHE"
_OWN_CACHE = None
if _CACHE_ENV not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="discovery-tests-jax-cache-")
    os.environ[_CACHE_ENV] = _OWN_CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# The user's cache folder (``discover evaluate``'s baseline cache, matplotlib's font list)
# is a fresh one for this session too: a test never reads a baseline an earlier suite (or
# the user) computed, and never writes into the user's home.
_OWN_XDG_CACHE = tempfile.mkdtemp(prefix="discovery-tests-xdg-cache-")
os.environ["XDG_CACHE_HOME"] = _OWN_XDG_CACHE

# XLA CPU flags that compile faster, since compiling is most of the suite's time.
# Each is added unless the user set it. LLVM's optimisation level 0 and XLA's older
# (elemental) fusion code generator: a tiny PPO program compiles in ~2 s instead of
# 6.7 s at XLA's defaults, and runs 2-4x slower (benchmarks/xla_flags.py, BENCHMARKS.md).
# Measured on the whole suite (2-core CI kind, stop 23): level 1 -> level 0 took it from
# 10 min 38 s to 7 min 04 s, summed compile time 625 s -> 297 s, now that the largest
# programs (meta-gradients through PPO updates) dominate; at stop 20, before those, level
# 0 cost as much as it saved. The tests that run long compile their program with
# RUN_OPTIMISED instead (jax.jit's compiler_options, per program), and the demo test runs
# in its own process at level 1. Semantics are unchanged: no fast-math, only LLVM's
# optimisation level and the fusion code generator.
_FAST_COMPILE_FLAGS = {
    "--xla_backend_optimization_level": "0",
    "--xla_cpu_use_fusion_emitters": "false",
}
_flags = os.environ.get("XLA_FLAGS", "")
for _name, _value in _FAST_COMPILE_FLAGS.items():
    if _name not in _flags:
        _flags = f"{_flags} {_name}={_value}".strip()
os.environ["XLA_FLAGS"] = _flags

# One CPU device per test process: pytest-xdist already runs a test file per core, and
# every process of a test (in-process calls, CLI subprocesses, notebook kernels) then
# computes on the same device layout. The tests of the multi-device split force two
# devices in their own processes (tests/test_devices.py, tests/meta/test_loop.py).
os.environ.setdefault("DISCOVERY_CPU_DEVICES", "1")

import discovery  # noqa: E402, F401

# For a program that runs long: optimised code for twice the compile time (CartPole 4
# seeds x 1e5 steps, stop 20: compile 8.9 s + run 4.5 s, against 4.2 s + 16.4 s with the
# flags above).
RUN_OPTIMISED = {"xla_backend_optimization_level": 2, "xla_cpu_use_fusion_emitters": True}


@pytest.fixture(scope="session")
def run_optimised() -> dict:
    """``jax.jit(..., compiler_options=run_optimised)`` for a program that runs long."""
    return dict(RUN_OPTIMISED)


@pytest.fixture(scope="session")
def discover_script() -> str:
    """The ``discover`` console script installed beside this Python (for tests that run
    the CLI as its own process)."""
    script = shutil.which("discover", path=os.path.dirname(sys.executable))
    assert script, "the discover console script is not installed beside this Python"
    return script


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
    shutil.rmtree(_OWN_XDG_CACHE, ignore_errors=True)
