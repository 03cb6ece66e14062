"""Split a batch of independent runs (seeds, population members) over this process's
devices: one CPU device per core by default (:mod:`discovery.process_setup`), or the
GPUs of a multi-GPU host.

One program for all devices (``shard_map``): each device runs the function on an equal
slice of the batch, at once, with no collective, since the runs are independent. It
compiles once, where a jitted call per device would compile once per device. Each
run's arithmetic is that of a smaller batch of the same function: the same up to float
rounding (XLA may order a differently sized batch's reductions otherwise), and the
very program of old on one device.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

AXIS = "devices"
_warned: set[tuple[int, int, str]] = set()


def split_count(batch: int, what: str = "the batch", devices: int | None = None) -> int:
    """How many local devices a batch of ``batch`` independent runs is split over: the
    most that divide it evenly. Warns, once per case, when that leaves devices idle."""
    available = jax.local_device_count() if devices is None else devices
    count = max(d for d in range(1, min(available, batch) + 1) if batch % d == 0)
    if count < available and (batch, available, what) not in _warned:
        _warned.add((batch, available, what))
        warnings.warn(
            f"{what} ({batch}) does not divide evenly over the {available} devices, so it "
            f"runs on {count}; a multiple of {available} uses them all", RuntimeWarning,
            stacklevel=2)
    return count


def split_over(
    fn: Callable[..., Any],
    devices: Sequence[jax.Device],
    num_shared: int,
    out_axes: Any = 0,
) -> Callable[..., Any]:
    """Jit ``fn(batched, *shared)`` so that the leading axis of ``batched`` (a pytree) is
    split evenly over ``devices`` and ``num_shared`` further arguments are copied to each.

    ``fn`` maps that axis to axis ``out_axes`` of each output (an int for all outputs,
    or a pytree prefix of them). With one device this is ``jax.jit(fn)``.
    """
    if len(devices) == 1:
        return jax.jit(fn)
    mesh = Mesh(np.asarray(devices), (AXIS,))

    def spec(axis: int) -> PartitionSpec:
        return PartitionSpec(*([None] * axis), AXIS)

    out_specs = jax.tree.map(spec, out_axes)
    in_specs = (PartitionSpec(AXIS), *[PartitionSpec()] * num_shared)
    # check_vma=False: the per-device slices are independent runs, and the scan carries
    # of an agent's training need not be marked as varying over the device axis.
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                                 check_vma=False))


def run_split(fn: Callable[..., Any], batched: Any, *shared: Any, what: str = "the batch",
              out_axes: Any = 0) -> Any:
    """Run ``fn(batched, *shared)`` once, split over as many local devices as divide the
    batch (:func:`split_count`, :func:`split_over`)."""
    size = jax.tree.leaves(batched)[0].shape[0]
    devices = jax.local_devices()[:split_count(size, what)]
    return split_over(fn, devices, len(shared), out_axes)(batched, *shared)
