"""Import the package first, so its XLA flags (the jaxlib 0.10 CPU hang fix) are set
before any test module starts JAX's backend (with flags that compile faster, see
below), and JAX's persistent compilation cache in
a fresh folder for this session: tests that rebuild the same program (every tiny
meta-training run builds its baselines anew) load it instead of compiling it again,
while the suite still starts cold, as on a fresh machine. pytest-xdist's workers
inherit the folder from the controller, which removes it at the end. Every program is
kept, however fast it compiled: the workers, notebook kernels and CLI subprocesses each
start with an empty in-memory cache, and would otherwise each compile again the same
few hundred tiny eager-op programs (about 13% of the suite's compile time, stop 20)."""

import os
import shutil
import tempfile

import pytest

_CACHE_ENV = "DISCOVERY_COMPILATION_CACHE"
_OWN_CACHE = None
if _CACHE_ENV not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="discovery-tests-jax-cache-")
    os.environ[_CACHE_ENV] = _OWN_CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# XLA CPU flags that compile faster, since compiling is most of the suite's time (60-75%,
# measured per test through jax.monitoring). Each is added unless the user set it.
# Measured on the 2-core CI kind (benchmarks/xla_flags.py, BENCHMARKS.md): a tiny PPO
# program compiles in 3.6 s with both, 5.8 s at level 1 alone, 6.7 s with neither; long
# runs pay for it (CartPole 4 envs x 2e5 steps: 11.0 s vs 6.6 s; Breakout: 42.6 vs 37.6 s),
# and the whole suite still went from 15 min 00 s to 11 min 12 s. Level 0 compiles faster
# again but runs 2-4x slower, which cost the suite as much as it saved (stop 20). The
# longest-running learning test compiles its program with RUN_OPTIMISED instead (jax.jit's
# compiler_options, per program). Semantics are unchanged: no fast-math, only LLVM's
# optimisation level and XLA's older (elemental) fusion code generator.
_FAST_COMPILE_FLAGS = {
    "--xla_backend_optimization_level": "1",
    "--xla_cpu_use_fusion_emitters": "false",
}
_flags = os.environ.get("XLA_FLAGS", "")
for _name, _value in _FAST_COMPILE_FLAGS.items():
    if _name not in _flags:
        _flags = f"{_flags} {_name}={_value}".strip()
os.environ["XLA_FLAGS"] = _flags

from discovery import envs  # noqa: E402, F401

# For a program that runs long: optimised code for 1.6x the compile time (CartPole 4 seeds
# x 1e5 steps: compile 8.9 s + run 4.5 s, against 5.5 s + 7.8 s with the flags above; the
# CartPole learning test, 8 agents x 5e5 steps: 68 s against 75 s).
RUN_OPTIMISED = {"xla_backend_optimization_level": 2, "xla_cpu_use_fusion_emitters": True}


@pytest.fixture(scope="session")
def run_optimised() -> dict:
    """``jax.jit(..., compiler_options=run_optimised)`` for a program that runs long."""
    return dict(RUN_OPTIMISED)


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
