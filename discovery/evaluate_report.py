"""The files of a ``discover evaluate`` report (:func:`discovery.evaluate.summarise`'s
dict): ``results.json`` (strict JSON, no NaN), ``results.md`` (how to read it, then per
horizon the scores, references, paired differences and aggregates), ``curves.png``
(training curves) and ``profiles.png`` (performance profiles, Agarwal et al., 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from discovery import stats
from discovery.evaluate import json_float
from discovery.files import write_json, write_text_atomic
from discovery.plots import pyplot


def _cell(interval: dict[str, float | None], runs: int, signed: bool = False) -> str:
    """``mean [low, high]``, with ``(n of runs)`` when some runs diverged or had no score."""
    estimate = interval.get("estimate")
    if estimate is None or not np.isfinite(estimate):
        return f"n/a (0 of {runs})"
    form = "+.3g" if signed else ".3g"
    text = f"{estimate:{form}} [{interval['low']:{form}}, {interval['high']:{form}}]"
    return text if interval["n"] == runs else f"{text} ({interval['n']} of {runs})"


def _number(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3g}"


def _p_text(p: float | None, how: str) -> str:
    if p is None:
        return "n/a"
    return f"{p:.3g}" + ("" if how == "exact" else " (MC)")


def _envs_text(envs: Sequence[str]) -> str:
    return ", ".join(envs) if envs else "no env"


def markdown_table(report: dict[str, Any]) -> str:
    """The report as markdown: how to read it, then per horizon the scores, references,
    paired differences and aggregates, each aggregate naming its envs."""
    methods, baselines = report["methods"], report["baselines"]
    labels = list(report["scores"].values())
    conf = f"{100 * report['confidence']:g}%"
    lines = [
        f"# Evaluation of `{report['component']}` ({report['kind']})",
        "",
        f"- Score: {report['metric']}." + (f" Also: {'; '.join(labels[1:])}." if labels[1:]
                                          else ""),
        f"- {report['seeds']} seeds per method and env; every method trains on the same "
        "per-env keys, so seed i of the learned component is paired with seed i of each "
        "baseline.",
        f"- Means: {conf} bootstrap CIs over seeds. Learned minus baseline: per seed, "
        f"{conf} t interval and a two-sided sign-flip p (exact up to "
        f"{stats.EXACT_SIGN_FLIP_UNITS} pairs, else Monte Carlo: MC).",
        f"- Normalised: {report['normalisation']}. Across envs: IQM and mean of normalised "
        "scores (stratified bootstrap), mean of the per-env paired normalised differences "
        "(t interval, stratified sign flips) and the probability of improvement P(learned > "
        "baseline) (stratified bootstrap; Agarwal et al., 2021); each names its envs.",
        "- A seed that diverged or has no score is left out and counted: (n of m).",
    ]
    if report["cached_baselines"]:
        lines.append(f"- Baselines read from the cache: {', '.join(report['cached_baselines'])}.")
    for table in report["horizons"]:
        lines += _horizon_markdown(report, table, methods, baselines)
    return "\n".join(lines) + "\n"


def _horizon_markdown(report: dict[str, Any], table: dict[str, Any], methods: list[str],
                      baselines: list[str]) -> list[str]:
    """One horizon's tables."""
    seeds, unit = report["seeds"], report["horizon_unit"]
    lengths = ", ".join(f"{n} {v:g}" for n, v in table["training_lengths"].items())
    covered = table["aggregate_envs"]
    runs = len(covered) * seeds
    lines = ["", f"## horizon x{table['horizon']:g}", "", f"Training length ({unit}): {lengths}."]
    if table["excluded_envs"]:
        lines.append("Left out of the aggregates: " + "; ".join(
            f"{n} ({why})" for n, why in table["excluded_envs"].items()) + ".")
    for index, (name, label) in enumerate(report["scores"].items()):
        title = "mean [CI]" + (" (primary)" if index == 0 else "")
        lines += ["", f"### {label}: {title}", ""]
        extra = ["random play"] if index == 0 else []
        lines.append("| env | " + " | ".join([*methods, *extra]) + " |")
        lines.append("|---|" + "---|" * (len(methods) + len(extra)))
        for env, row in table["envs"].items():
            cells = [_cell(row[m]["scores"][name]["mean"], seeds) for m in methods]
            if index == 0:
                cells.append(_number(table["references"][env]["random"]))
            lines.append(f"| {env} | " + " | ".join(cells) + " |")
        if index == 0:
            blank = " |" * len(extra)
            for stat in ("iqm", "mean"):
                cells = " | ".join(_cell(table["aggregate"][m][stat], runs) for m in methods)
                lines.append(f"| **{stat.upper() if stat == 'iqm' else stat} (normalised)** "
                             f"over {_envs_text(covered)} | {cells} |{blank}")
    lines += ["", "### learned minus baseline, paired by seed", ""]
    lines.append("| env | " + " | ".join(f"learned - {b} | p" for b in baselines) + " |")
    lines.append("|---|" + "---|---|" * len(baselines))
    for env, row in table["paired"].items():
        cells = [f"{_cell(row[b]['difference'], seeds, signed=True)} | "
                 f"{_p_text(row[b]['p'], row[b]['p_method'])}" for b in baselines]
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    paired = table["paired_aggregate"]
    cells = [f"{_cell(paired[b]['normalised_difference'], runs, signed=True)} | "
             f"{_p_text(paired[b]['p'], paired[b]['p_method'])}" for b in baselines]
    lines.append(f"| **normalised, mean over {_envs_text(paired[baselines[0]]['envs'])}** | "
                 + " | ".join(cells) + " |")
    poi = table["probability_of_improvement"]
    cells = [f"{_cell(poi[b]['overall'], len(poi[b]['envs']))} | " for b in baselines]
    lines.append(f"| **P(learned > baseline), mean over {_envs_text(poi[baselines[0]]['envs'])}"
                 "** | " + " | ".join(cells) + " |")
    return lines


def _save(fig: Any, path: Path) -> Path:
    plt = pyplot()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


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
            ax.set_ylabel(report["curve_label"])
    axes[0][0].legend()
    return _save(fig, path)


def plot_profiles(report: dict[str, Any], path: Path) -> Path:
    """Performance profiles per horizon: the fraction of runs whose normalised score
    exceeds tau, with a stratified-bootstrap band (Agarwal et al., 2021)."""
    plt = pyplot()
    tables = report["horizons"]
    fig, axes = plt.subplots(1, len(tables), figsize=(4.5 * len(tables), 3.5), squeeze=False)
    for ax, table in zip(axes[0], tables):
        profiles = table["profiles"]
        taus = np.asarray(profiles["taus"], np.float64)
        for method, curve in profiles["methods"].items():
            as_array = {k: np.array([np.nan if v is None else v for v in curve[k]], np.float64)
                        for k in ("fraction", "low", "high")}
            ax.plot(taus, as_array["fraction"], label=method)
            ax.fill_between(taus, as_array["low"], as_array["high"], alpha=0.2)
        if not taus.size:
            ax.text(0.5, 0.5, "no finite normalised score", ha="center", transform=ax.transAxes)
        ax.set_title(f"x{table['horizon']:g}: {_envs_text(profiles['envs'])}", fontsize=9)
        ax.set_xlabel(f"normalised score tau ({report['normalisation']})")
        ax.set_ylabel("fraction of runs with score > tau")
        ax.set_ylim(-0.02, 1.02)
    if tables and tables[0]["profiles"]["methods"]:
        axes[0][0].legend()
    return _save(fig, path)


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """``results.json``, ``results.md``, ``curves.png`` and ``profiles.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    serialisable = {k: v for k, v in report.items() if k != "curves"}
    serialisable["curves"] = {
        str(horizon): {
            name: {
                method: {
                    "mean": [json_float(x) for x in stats.bootstrap_curve_band(run.curves)[0]],
                    "steps_per_update": run.steps_per_update,
                }
                for method, run in per_env.items()
            }
            for name, per_env in per_horizon.items()
        }
        for horizon, per_horizon in report["curves"].items()
    }
    serialisable["curves_label"] = report["curve_label"]
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "results.md",
        "plot": out_dir / "curves.png",
        "profiles": out_dir / "profiles.png",
    }
    write_json(paths["json"], serialisable)
    write_text_atomic(paths["markdown"], markdown_table(report))
    plot_curves(report, paths["plot"])
    plot_profiles(report, paths["profiles"])
    return paths
