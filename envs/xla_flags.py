"""Work around the XLA:CPU scheduler hang in jaxlib 0.10 before the backend starts.

jaxlib 0.10.2 on CPU hangs forever on vmapped multi-seed training programs unless
``--xla_cpu_enable_concurrency_optimized_scheduler=false`` is in ``XLA_FLAGS``
(measured on a 2-core CPU: a 4-seed vmapped CartPole PPO program hung in 3 of 3 runs
without it and ran in 2 of 2 with it). XLA reads ``XLA_FLAGS`` when the first backend starts,
so ``discovery.envs`` calls :func:`configure_xla_flags` on import, and the ``discovery``
package imports it first, before any of its modules can start JAX.
"""

from __future__ import annotations

import os
import sys
import warnings

SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"
_FLAG_VALUE = f"{SCHEDULER_FLAG}=false"
OPT_OUT_ENV = "DISCOVERY_KEEP_XLA_FLAGS"


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # private API moved: assume not started, the flag is harmless
        return False


def configure_xla_flags() -> None:
    """Append the CPU-scheduler flag to ``XLA_FLAGS`` unless the user already set it.

    Set ``DISCOVERY_KEEP_XLA_FLAGS=1`` to leave ``XLA_FLAGS`` untouched. Warns when
    JAX's backend is already running, since the flag then has no effect.
    """
    if os.environ.get(OPT_OUT_ENV):
        return
    current = os.environ.get("XLA_FLAGS", "")
    if SCHEDULER_FLAG in current:
        return
    os.environ["XLA_FLAGS"] = f"{current} {_FLAG_VALUE}".strip()
    if _backend_started():
        warnings.warn(
            "JAX's backend started before Discovery was imported, so "
            f"{_FLAG_VALUE} could not take effect; vmapped training may hang on CPU "
            "with jaxlib 0.10. Import discovery (or envs/agents/meta) before running "
            "any JAX computation, or export XLA_FLAGS yourself.",
            RuntimeWarning,
            stacklevel=2,
        )
