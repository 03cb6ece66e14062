"""The card a benchmark's figures come from, named on every row they print.

The GPU scripts (``gpu_suite.py``, ``ppo_vs_plain.py``, ``minatar_probe.py``) also run at
toy size on a CPU so that tests keep them working between GPU sessions; a CPU figure must
never read as a GPU one. So each row's first cell is :func:`card` (the device kind JAX
reports, e.g. ``NVIDIA H200``; on any other platform the kind followed by ``(no GPU)``),
and :func:`print_device` opens each script's output with the device and, where there is
no GPU, a line saying so.
"""

from __future__ import annotations

import platform

import jax

#: The line a script prints where no GPU is present (the session and tests look for it).
NO_GPU = "NO GPU present: every figure below is measured on a CPU (toy sizes), not a GPU"


def on_gpu() -> bool:
    """Whether JAX's default device is a GPU."""
    return jax.devices()[0].platform == "gpu"


def card() -> str:
    """The first cell of every row: the default device's kind, marked where it is no GPU."""
    kind = jax.devices()[0].device_kind
    return kind if on_gpu() else f"{kind} (no GPU)"


def print_device() -> None:
    """The output's first lines: the device, the host and jax; :data:`NO_GPU` on a CPU."""
    device = jax.devices()[0]
    print(f"device: {device.platform} {device.device_kind} x {jax.device_count()}; "
          f"{platform.node()}, jax {jax.__version__}")
    if not on_gpu():
        print(NO_GPU)
    print(flush=True)
