"""A sweep's results: the record each cell's ``result.json`` holds, and the summary
(``summary.json``, ``summary.md``, ``summary.png``) ranking the swept values."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from discovery.config import to_dict
from discovery.files import write_json, write_text_atomic
from discovery.sweep_spec import Cell, SweepSpec, _fmt, _is_number


def _cell_record(cell: Cell, metric: str, samples: np.ndarray) -> dict[str, Any]:
    """The fields every ``result.json`` has: identity, config, and the metric's samples."""
    mean, sem = _mean_sem(samples)
    return {
        "cell_id": cell.cell_id,
        "index": cell.index,
        "values": {k: v for k, v in cell.values},
        "seed": cell.seed,
        "overrides": list(cell.overrides),
        "config": to_dict(cell.config),
        "metric": metric,
        "samples": np.asarray(samples, dtype=float).tolist(),
        "mean": mean,
        "sem": sem,
    }


def write_summary(
    spec: SweepSpec,
    cells: Sequence[Cell],
    results: Mapping[str, Mapping[str, Any]],
    sweep_dir: Path,
) -> dict[str, Any]:
    """Write ``summary.json``, ``summary.md`` and ``summary.png`` for the finished cells.

    Points (the swept values, over seeds) are ranked by the metric's mean, highest
    first; a point's mean and standard error pool the samples of all its seeds' cells
    (train: every agent's value; meta-train: one value per cell).
    """
    done = [cell for cell in cells if cell.cell_id in results]
    rows = []
    for cell in done:
        result = results[cell.cell_id]
        rows.append(
            {
                "cell_id": cell.cell_id,
                "values": {k: v for k, v in cell.values},
                "seed": cell.seed,
                "mean": result["mean"],
                "sem": result["sem"],
                "n": _finite_count(result["samples"]),
            }
        )
    points: dict[str, dict[str, Any]] = {}
    for cell in done:
        point = points.setdefault(
            _point_key(cell.values),
            {"values": {k: v for k, v in cell.values}, "cells": [], "samples": []},
        )
        point["cells"].append(cell.cell_id)
        point["samples"] += results[cell.cell_id]["samples"]
    ranked = []
    for point in points.values():
        mean, sem = _mean_sem(np.asarray(point["samples"], dtype=float))
        ranked.append({**point, "mean": mean, "sem": sem, "n": _finite_count(point["samples"])})
    ranked.sort(key=lambda p: -p["mean"] if p["mean"] is not None else math.inf)
    summary = {
        "name": spec.name,
        "command": spec.command,
        "base": None if spec.base is None else str(spec.base),
        "metric": spec.metric,
        "varied": list(spec.varied),
        "seeds": None if spec.seeds is None else list(spec.seeds),
        "cells_total": len(cells),
        "cells_finished": len(done),
        "best": ranked[0] if ranked else None,
        "points": ranked,
        "cells": rows,
    }
    write_json(sweep_dir / "summary.json", summary)
    write_text_atomic(sweep_dir / "summary.md", _markdown(spec, summary))
    _plot_summary(spec, summary, sweep_dir / "summary.png")
    return summary


def _markdown(spec: SweepSpec, summary: Mapping[str, Any]) -> str:
    varied = list(spec.varied)
    metric = spec.metric
    over = "agents" if spec.command == "train" else "seeds"
    lines = [
        f"# Sweep `{spec.name}`",
        "",
        f"- command: `{spec.command}`; base: `{summary['base'] or 'defaults'}`; "
        f"fixed: {', '.join(f'`{s}`' for s in spec.set) or 'none'}",
        f"- {summary['cells_finished']} of {summary['cells_total']} cells finished; "
        f"seeds: {summary['seeds'] if summary['seeds'] is not None else 'config seed'}",
        f"- metric: `{metric}`, mean ± standard error over {over}"
        + (" of every seed" if spec.command == "train" else ""),
        "",
        f"## Ranked by {metric}",
        "",
        "| rank | " + " | ".join(varied) + f" | {metric} | n |",
        "|---:|" + "---|" * len(varied) + "---:|---:|",
    ]
    for rank, point in enumerate(summary["points"], 1):
        values = [_fmt(point["values"].get(k)) for k in varied]
        lines.append(
            f"| {rank} | " + " | ".join(values)
            + f" | {_pm(point['mean'], point['sem'])} | {point['n']} |"
        )
    lines += [
        "",
        "## Cells",
        "",
        "| cell | " + " | ".join(varied) + f" | seed | {metric} | n |",
        "|---|" + "---|" * len(varied) + "---:|---:|---:|",
    ]
    for row in summary["cells"]:
        values = [_fmt(row["values"].get(k)) for k in varied]
        seed = "-" if row["seed"] is None else str(row["seed"])
        lines.append(
            f"| `{row['cell_id']}` | " + " | ".join(values)
            + f" | {seed} | {_pm(row['mean'], row['sem'])} | {row['n']} |"
        )
    return "\n".join(lines) + "\n"


def _plot_summary(spec: SweepSpec, summary: Mapping[str, Any], path: Path) -> None:
    """The metric per point with standard-error bars (and each cell's mean as a dot);
    against the swept value when a single numeric field varies."""
    from discovery.plots import pyplot

    plt = pyplot()
    points = summary["points"]
    varied = list(spec.varied)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    cell_means = {row["cell_id"]: row["mean"] for row in summary["cells"]}
    numeric = len(varied) == 1 and bool(points) and all(
        _is_number(p["values"][varied[0]]) for p in points
    )
    if numeric:
        key = varied[0]
        order = sorted(points, key=lambda p: p["values"][key])
        x = np.array([p["values"][key] for p in order], dtype=float)
        ax.errorbar(x, _nan([p["mean"] for p in order]), yerr=_nan([p["sem"] for p in order]),
                    marker="o", capsize=4, label="mean ± s.e.")
        for p in order:
            ys = _nan([cell_means[c] for c in p["cells"]])
            ax.scatter([p["values"][key]] * len(ys), ys, s=10, color="gray", alpha=0.6)
        log = (spec.random is not None and key in spec.random.fields
               and spec.random.fields[key].kind == "log_uniform")
        if log or (np.all(x > 0) and x.max() / x.min() >= 10):
            ax.set_xscale("log")
        ax.set_xlabel(key)
    else:
        x = np.arange(len(points))
        ax.errorbar(x, _nan([p["mean"] for p in points]), yerr=_nan([p["sem"] for p in points]),
                    fmt="o", capsize=4, label="mean ± s.e.")
        for i, p in enumerate(points):
            ys = _nan([cell_means[c] for c in p["cells"]])
            ax.scatter([i] * len(ys), ys, s=10, color="gray", alpha=0.6)
        labels = [_short_label(p["values"]) for p in points]
        ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("swept values (ranked)")
    ax.scatter([], [], s=10, color="gray", alpha=0.6, label="cell means (one per seed)")
    ax.set_ylabel(spec.metric)
    ax.set_title(f"sweep {spec.name}")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _short_label(values: Mapping[str, Any]) -> str:
    return ",".join(f"{k.rsplit('.', 1)[-1]}={_fmt(v)}" for k, v in values.items())


def _point_key(values: tuple[tuple[str, Any], ...]) -> str:
    return json.dumps([[k, v] for k, v in values])


def _mean_sem(samples: np.ndarray) -> tuple[float | None, float | None]:
    """Mean and standard error (``std(ddof=1) / sqrt(n)``) of the finite samples."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None, None
    sem = float(np.std(x, ddof=1) / np.sqrt(x.size)) if x.size > 1 else None
    return float(np.mean(x)), sem


def _finite_count(samples: Sequence[float | None]) -> int:
    return int(np.sum(np.isfinite(_nan(samples))))


def _pm(mean: float | None, sem: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.4g}" if sem is None else f"{mean:.4g} ± {sem:.2g}"


def _nan(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)
