"""Figures written into run directories: learning curves, fitness curves, drifts.

Drawn with matplotlib's object API (``matplotlib.figure.Figure``, ``fig.savefig``),
never pyplot's: pyplot would create figures through a global backend, and switching that
to Agg (so that a figure needs no display) would also switch a notebook's inline backend,
so that its own ``plt`` figures no longer showed. A ``Figure`` saves itself with the
backend its file format needs, in a terminal, a notebook or a job alike. Imported lazily
so that importing Discovery does not import matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

# Keywords of ``Figure.subplots`` (the grid); every other keyword goes to ``Figure``.
_GRID_KEYWORDS = frozenset(
    {"sharex", "sharey", "squeeze", "width_ratios", "height_ratios", "subplot_kw",
     "gridspec_kw"}
)


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """``(fig, axes)`` as ``pyplot.subplots`` returns them, but a free-standing
    ``matplotlib.figure.Figure``: no pyplot state, no backend switched. ``figsize``,
    ``constrained_layout`` and the like go to the figure, ``squeeze``, ``sharex`` and
    the like to its grid of axes."""
    from matplotlib.figure import Figure

    grid = {name: kwargs.pop(name) for name in list(kwargs) if name in _GRID_KEYWORDS}
    fig = Figure(**kwargs)
    return fig, fig.subplots(nrows, ncols, **grid)


def close(fig: Any) -> None:
    """Nothing to do: a ``Figure`` made by :func:`subplots` is registered nowhere, and is
    freed with its last reference (kept so that callers read as they do with pyplot)."""


def pyplot() -> SimpleNamespace:
    """The two pyplot calls figure code here makes, ``subplots`` and ``close``, on the
    Figure API above: ``plt = pyplot(); fig, ax = plt.subplots(...)`` draws without
    touching pyplot's backend (a notebook's inline figures keep showing)."""
    return SimpleNamespace(subplots=subplots, close=close)


def _finish(fig: Any, ax: Any, title: str, path: Path, legend: str) -> Path:
    """Title and legend on ``ax``, then ``fig`` saved to ``path``."""
    ax.set_title(title)
    ax.legend(loc=legend)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_learning_curve(
    env_steps: np.ndarray, returns: np.ndarray, path: Path, title: str = ""
) -> Path:
    """Mean episode return over seeds with a min-max band; ``returns`` is ``[S, U]``."""
    fig, ax = subplots(figsize=(6, 4))
    mean = np.nanmean(returns, axis=0)
    ax.plot(env_steps, mean, label=f"mean of {returns.shape[0]} seeds")
    ax.fill_between(
        env_steps, np.nanmin(returns, axis=0), np.nanmax(returns, axis=0), alpha=0.25,
        label="min-max over seeds",
    )
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    return _finish(fig, ax, title, path, legend="lower right")


def plot_fitness(history: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> Path:
    """Population fitness (mean, min-max band, max) over generations."""
    generations = [r["generation"] for r in history]
    fig, ax = subplots(figsize=(6, 4))
    mean = np.array([r["fitness_mean"] for r in history], dtype=float)
    ax.plot(generations, mean, label="population mean")
    ax.fill_between(
        generations,
        [r["fitness_min"] for r in history],
        [r["fitness_max"] for r in history],
        alpha=0.25,
        label="min-max",
    )
    ax.plot(generations, [r["fitness_max"] for r in history], lw=0.8, label="population max")
    ax.axhline(1.0, color="k", ls="--", lw=0.8, label="PPO-clip (normalised)")
    ax.set_xlabel("generation")
    ax.set_ylabel("normalised fitness")
    return _finish(fig, ax, title, path, legend="lower right")


def plot_drifts(
    drifts: Mapping[str, Any], path: Path, progress: float = 0.0, title: str = ""
) -> Path:
    """Heatmaps of drift functions over ``(r, A)``, side by side (Lu et al., 2022, Fig. 3).

    ``drifts`` maps a label to a callable ``(ratio, advantage, progress) -> drift``.
    """
    ratio = np.linspace(0.0, 2.0, 201)[1:]
    advantage = np.linspace(-2.0, 2.0, 201)
    grid_r, grid_a = np.meshgrid(ratio, advantage, indexing="xy")
    values = {label: np.asarray(fn(grid_r, grid_a, progress)) for label, fn in drifts.items()}
    vmax = max(float(np.percentile(v, 99)) for v in values.values()) or 1.0
    fig, axes = subplots(
        1, len(values), figsize=(4 * len(values), 3.6), squeeze=False, constrained_layout=True
    )
    for ax, (label, value) in zip(axes[0], values.items()):
        image = ax.pcolormesh(grid_r, grid_a, value, vmin=0.0, vmax=vmax, shading="auto")
        ax.axvline(1.0, color="w", lw=0.5)
        ax.set_title(label)
        ax.set_xlabel("ratio r")
    axes[0][0].set_ylabel("advantage A")
    fig.colorbar(image, ax=axes[0].tolist(), label="drift D(r, A)")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120)
    return path


def plot_metric_history(
    history: Sequence[Mapping[str, Any]], metric: str, path: Path, title: str = ""
) -> Path:
    """One logged metric over generations, raw and as a running mean over 10."""
    generations = np.array([r["generation"] for r in history])
    values = np.array([r.get(metric, np.nan) for r in history], dtype=float)
    fig, ax = subplots(figsize=(6, 4))
    ax.plot(generations, values, alpha=0.35, label=metric)
    if len(values) >= 10:
        kernel = np.ones(10) / 10
        smooth = np.convolve(np.nan_to_num(values), kernel, mode="valid")
        ax.plot(generations[9:], smooth, label="running mean (10)")
    ax.set_xlabel("generation")
    ax.set_ylabel(metric)
    return _finish(fig, ax, title, path, legend="best")
