"""Join a multi-process ``jax.distributed`` job before anything starts JAX's backend.

JAX refuses ``jax.distributed.initialize()`` once a backend exists, and importing
gymnax already creates arrays; so the package joins while it is being imported, when
the standard coordinator variable (``JAX_COORDINATOR_ADDRESS``, with
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or a cluster JAX detects) is set.
"""

from __future__ import annotations

import os

import jax


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
