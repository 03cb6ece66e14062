"""`discover evaluate`: fresh agents trained with a discovered component, beside the
hand-designed baselines, on (held-out) environments, with confidence intervals.

A discovered drift (LPO / TA-LPO) trains PPO agents next to PPO-clip and DPO (Lu et al.,
2022); a discovered objective (LPG / TA-LPG) trains LPG agents next to A2C on gridworld
layouts (GROOVE, Jackson et al., 2023). All seeds of one method on one environment are
one vmapped program. Reported per environment: final return, mean with a 95% bootstrap
CI over seeds; normalised scores (drifts: random play 0, PPO-clip 1; objectives: A2C's
reward rate 1); and, across environments, the IQM of the normalised scores with a
stratified bootstrap CI (Agarwal et al., 2021; :mod:`discovery.stats`).

``horizons`` asks the temporally-aware paper's question (Jackson et al., 2024): how a
component discovered for one training horizon does at others. Each horizon is a
multiple of the horizon it was meta-trained at (PPO's total steps, or the LPG agents'
lifetime), and every method is re-run at it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from discovery import stats
from discovery.components import COMPONENTS
from discovery.files import write_json, write_text_atomic
from discovery.plots import pyplot


@dataclass(frozen=True)
class EvaluateConfig:
    """What to evaluate a discovered component on.

    Attributes:
      envs: environments (drifts: ``envs.make`` names; objectives: gridworld layouts,
        ``"dense"`` or ``"gridworld/dense"``); empty means the component's own
        meta-training envs (drifts) or held-out layouts (objectives).
      seeds: fresh agents per method and environment.
      horizons: training horizons as multiples of the meta-training one.
      final_fraction: final return = mean episode return over this last fraction.
      confidence: coverage of the bootstrap intervals.
      bootstrap_samples: bootstrap resamples.
      seed: the evaluation's seed (every method shares the per-env keys).
    """

    envs: tuple[str, ...] = ()
    seeds: int = field(default=8, metadata={"min": 2, "max": 65536})
    horizons: tuple[float, ...] = (1.0,)
    final_fraction: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    confidence: float = field(default=0.95, metadata={"min": 0.5, "max": 0.999})
    bootstrap_samples: int = field(default=2000, metadata={"min": 100})
    seed: int = 0

    def __post_init__(self) -> None:
        for horizon in self.horizons:
            if not (isinstance(horizon, (int, float)) and math.isfinite(horizon) and horizon > 0):
                raise ValueError(f"horizons: got {horizon!r}; allowed: positive numbers")
        if not self.horizons:
            raise ValueError("horizons=() must give at least one horizon (1.0 = as trained)")


@dataclass(frozen=True)
class MethodCurves:
    """One method on one env at one horizon: per-update returns ``[S, U]`` and finals ``[S]``."""

    curves: np.ndarray
    final: np.ndarray
    steps_per_update: int


def final_mean(curves: np.ndarray, fraction: float) -> np.ndarray:
    """Per seed, the mean of the finite values over the last ``fraction`` of ``[S, U]``."""
    last = max(1, int(round(curves.shape[-1] * fraction)))
    window = curves[:, -last:]
    with np.errstate(invalid="ignore"):
        counts = np.sum(np.isfinite(window), axis=-1)
        total = np.nansum(window, axis=-1)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def normaliser(offset: float, reference: float) -> tuple[float, float]:
    """``(offset, scale)`` mapping ``offset`` to 0 and ``reference`` to 1; the scale is NaN
    when the two coincide (no ordering can be read off a zero gap)."""
    scale = reference - offset
    return offset, scale if abs(scale) > 1e-9 else float("nan")


def recorded_config(entry: Any) -> dict[str, Any]:
    """The meta-training config recorded with a zoo entry (or run), as a dict."""
    return dict(entry.manifest.get("provenance", {}).get("config") or {})


@dataclass(frozen=True)
class HeldOut:
    """A component's held-out runs, as its evaluator (the registry's) returns them.

    Attributes:
      results: ``{horizon: {env: {method: MethodCurves}}}``, the learned component's
        method first, then its hand-designed baselines.
      env_names: the envs (or layouts) in order.
      training_length: the meta-training horizon that ``horizons`` multiply.
      horizon_unit: what ``training_length`` counts (``"env steps"``, ...).
      metric: what a final score is, for the report.
      normalisation: how scores are normalised, for the report.
      normalisers: ``{horizon: {env: (offset, scale)}}``, normalised = (x - offset) / scale.
    """

    results: dict[float, dict[str, dict[str, MethodCurves]]]
    env_names: list[str]
    training_length: float
    horizon_unit: str
    metric: str
    normalisation: str
    normalisers: dict[float, dict[str, tuple[float, float]]]


def evaluate_component(
    entry: Any, config: EvaluateConfig, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Train and score every method; returns the report that :func:`write_report` saves.

    ``entry`` is a loaded zoo entry (:func:`discovery.zoo.load`); ``overrides`` adjust
    the inner loop (``ppo.FIELD=VALUE`` for drifts, ``agent.FIELD=VALUE`` for objectives).
    """
    held = COMPONENTS[entry.kind].held_out(entry, config, overrides)
    results, env_names, norms = held.results, held.env_names, held.normalisers
    base = held.training_length
    boot = {"confidence": config.confidence, "samples": config.bootstrap_samples}
    horizons = []
    for horizon, per_env in results.items():
        methods = list(next(iter(per_env.values())))
        table: dict[str, Any] = {"horizon": horizon, "training_length": base * horizon,
                                 "envs": {}, "aggregate": {}}
        for name in env_names:
            offset, scale = norms[horizon][name]
            table["envs"][name] = {}
            for method in methods:
                run = per_env[name][method]
                normalised = (run.final - offset) / scale
                table["envs"][name][method] = {
                    "final": stats.bootstrap_mean_ci(run.final, **boot).as_dict(),
                    "normalised": stats.bootstrap_mean_ci(normalised, **boot).as_dict(),
                    "per_seed": [_json_float(x) for x in run.final],
                }
        for method in methods:
            scores = np.stack([
                (per_env[n][method].final - norms[horizon][n][0]) / norms[horizon][n][1]
                for n in env_names
            ])
            table["aggregate"][method] = {
                "iqm": stats.stratified_bootstrap_iqm(scores, **boot).as_dict(),
                "mean": stats.bootstrap_mean_ci(scores, **boot).as_dict(),
            }
        horizons.append(table)
    return {
        "component": entry.name,
        "kind": entry.kind,
        "metric": held.metric,
        "normalisation": held.normalisation,
        "horizon_unit": held.horizon_unit,
        "seeds": config.seeds,
        "confidence": config.confidence,
        "envs": env_names,
        "horizons": horizons,
        "curves": results,
    }


def _json_float(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _cell(interval: dict[str, float], runs: int) -> str:
    """``mean [low, high]``, with ``(n of runs)`` when some runs diverged or had no score."""
    if not np.isfinite(interval["estimate"]):
        return f"n/a (0 of {runs})"
    text = f"{interval['estimate']:.3g} [{interval['low']:.3g}, {interval['high']:.3g}]"
    return text if interval["n"] == runs else f"{text} ({interval['n']} of {runs})"


def markdown_table(report: dict[str, Any]) -> str:
    """Per horizon: one row per env, one column per method (mean [95% CI]), then IQM."""
    lines = [
        f"# Evaluation of `{report['component']}` ({report['kind']})",
        "",
        f"{report['metric']}, mean over {report['seeds']} seeds with "
        f"{100 * report['confidence']:g}% bootstrap CIs; normalised: {report['normalisation']}; "
        "aggregate: IQM of normalised scores (stratified bootstrap).",
    ]
    for table in report["horizons"]:
        methods = list(table["aggregate"])
        lines += ["", f"## horizon x{table['horizon']:g} ({table['training_length']:g} "
                      f"{report['horizon_unit']})", ""]
        lines.append("| env | " + " | ".join(methods) + " |")
        lines.append("|---|" + "---|" * len(methods))
        for name, row in table["envs"].items():
            cells = " | ".join(_cell(row[m]["final"], report["seeds"]) for m in methods)
            lines.append(f"| {name} | {cells} |")
        lines.append("| **IQM (normalised)** | "
                     + " | ".join(_cell(table["aggregate"][m]["iqm"], len(table["envs"])
                                        * report["seeds"]) for m in methods) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(report: dict[str, Any], path: Path) -> Path:
    """Learning curves per env (columns) and horizon (rows), mean with a shaded CI."""
    plt = pyplot()
    results = report["curves"]
    horizons = list(results)
    env_names = report["envs"]
    fig, axes = plt.subplots(
        len(horizons), len(env_names), figsize=(4 * len(env_names), 3 * len(horizons)),
        squeeze=False,
    )
    for row, horizon in enumerate(horizons):
        for col, name in enumerate(env_names):
            ax = axes[row][col]
            for method, run in results[horizon][name].items():
                mean, low, high = stats.bootstrap_curve_band(run.curves)
                x = np.arange(1, mean.size + 1) * run.steps_per_update
                ax.plot(x, mean, label=method)
                ax.fill_between(x, low, high, alpha=0.25)
            ax.set_title(f"{name} (x{horizon:g})")
            ax.set_xlabel("env steps")
            ax.set_ylabel(report["metric"].replace("final ", ""))
    axes[0][0].legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """``results.json``, ``results.md`` and ``curves.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    serialisable = {k: v for k, v in report.items() if k != "curves"}
    serialisable["curves"] = {
        str(horizon): {
            name: {
                method: {
                    "mean": [_json_float(x) for x in stats.bootstrap_curve_band(run.curves)[0]],
                    "steps_per_update": run.steps_per_update,
                }
                for method, run in per_env.items()
            }
            for name, per_env in per_horizon.items()
        }
        for horizon, per_horizon in report["curves"].items()
    }
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "results.md",
        "plot": out_dir / "curves.png",
    }
    write_json(paths["json"], serialisable)
    write_text_atomic(paths["markdown"], markdown_table(report))
    plot_curves(report, paths["plot"])
    return paths


def run_evaluate(
    ref: str, config: EvaluateConfig, out_dir: Path, overrides: Sequence[str] = (),
    load: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Load ``ref`` (``RUN_DIR`` or ``zoo:NAME``), evaluate it, write the report files."""
    if load is None:
        from discovery.zoo import load
    entry = load(ref)
    report = evaluate_component(entry, config, overrides)
    write_report(report, out_dir)
    return report
