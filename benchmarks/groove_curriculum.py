"""GROOVE at CPU scale: LPG meta-trained with PLR + algorithmic regret versus domain
randomisation, both tested on the held-out gridworld layouts.

Runs objective meta-training twice from the same seed and config (the CPU-sized
default of ``ObjectiveMetaTrainConfig``, or a YAML config, plus ``--set`` overrides),
once with ``curriculum.kind=dr`` (a fresh random level for every agent) and once with
``curriculum.kind=plr`` scored by algorithmic regret against an A2C antagonist (GROOVE,
Jackson et al., 2023). Then fresh agents train on each held-out layout with each
discovered objective and with A2C (same seeds), and the script prints final returns,
reward rates, and reward rates normalised by A2C's (GROOVE's yardstick), mean ± s.e.
over seeds, with each run's meta-training cost. With ``--meta-seeds N`` both arms are
meta-trained from N seeds, and the A2C-normalised rates are also averaged over them
(± s.e. over meta-seeds); finished runs (with a ``summary.json``) are not run again.

    python benchmarks/groove_curriculum.py --set generations=1000 --meta-seeds 3
    python benchmarks/groove_curriculum.py --from-runs runs/bench-groove  # evaluate again
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)

# isort: split
import numpy as np

from discovery.config import load_config, save_config
from discovery.objective_run import load_finished_run, write_objective_results
from discovery.objective_training import (
    ObjectiveMetaTrainConfig,
    meta_train,
)

CURRICULA = {
    "dr": ["curriculum.kind=dr"],
    "plr": ["curriculum.kind=plr", "curriculum.score=algorithmic_regret"],
}
LABELS = {"dr": "LPG + DR", "plr": "LPG + PLR (regret)"}


def _run(args: argparse.Namespace, kind: str, seed: int) -> tuple[dict, list[dict], float]:
    root = args.from_runs if args.from_runs is not None else args.run_root
    run_dir = root / f"seed{seed}" / kind
    if args.from_runs is not None or (run_dir / "summary.json").exists():
        config = load_config(ObjectiveMetaTrainConfig, run_dir / "config.yaml")
        result = load_finished_run(config, run_dir)
        if args.from_runs is None:  # finished earlier: reuse its evaluation
            return json.loads((run_dir / "summary.json").read_text()), result.history, float("nan")
        meta_s = float("nan")
    else:
        overrides = [*args.overrides, *CURRICULA[kind], f"name=groove-cpu-{kind}-{seed}",
                     f"seed={seed}"]
        config = load_config(ObjectiveMetaTrainConfig, args.config, overrides)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        tic = time.perf_counter()
        result = meta_train(config, run_dir)
        meta_s = time.perf_counter() - tic
    summary = write_objective_results(result, config)
    return summary, result.history, meta_s


def _cell(values: list[float], index: int, scale: float = 1.0) -> str:
    row = np.asarray(values[index], dtype=float) * scale
    finite = row[np.isfinite(row)]
    if finite.size == 0:
        return f"n/a (0 of {row.size} seeds)"
    sem = finite.std() / np.sqrt(finite.size)
    text = f"{finite.mean():.2f} ± {sem:.2f}"
    return text if finite.size == row.size else f"{text} ({finite.size} of {row.size} seeds)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=None, help="YAML objective config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--run-root", type=Path, default=Path("runs/bench-groove"))
    parser.add_argument("--from-runs", type=Path, default=None,
                        help="skip meta-training: evaluate the finished runs again")
    parser.add_argument("--meta-seeds", type=int, default=1,
                        help="meta-train each arm from this many seeds (0, 1, ...)")
    args = parser.parse_args()

    normalised_by_seed = []
    for seed in range(args.meta_seeds):
        print(f"\n## meta-seed {seed}")
        normalised_by_seed.append(_report_seed(args, seed))
    if args.meta_seeds > 1:
        _report_across_seeds(normalised_by_seed)
    print(f"reproduce: python benchmarks/groove_curriculum.py {' '.join(sys.argv[1:])}".rstrip())


def _report_across_seeds(normalised_by_seed: list[tuple[list[str], np.ndarray]]) -> None:
    """Per layout and arm: the mean over meta-seeds of the mean normalised rate."""
    layouts = normalised_by_seed[0][0]
    table = np.stack([values for _, values in normalised_by_seed])  # [seeds, arms, layouts]
    seeds = table.shape[0]
    print(f"\n## across {seeds} meta-seeds: A2C-normalised reward rate, mean ± s.e. over "
          "meta-seeds")
    print("| layout | " + " | ".join(LABELS.values()) + " | meta-seeds PLR > DR |")
    print("|---|" + "---|" * (len(LABELS) + 1))
    for index, layout in enumerate(layouts):
        cells = []
        for arm in range(len(LABELS)):
            column = table[:, arm, index]
            column = column[np.isfinite(column)]
            cells.append(f"{column.mean():.2f} ± {column.std() / np.sqrt(column.size):.2f}"
                         if column.size else "n/a")
        wins = int(np.sum(table[:, 1, index] > table[:, 0, index]))
        print(f"| {layout} | " + " | ".join(cells) + f" | {wins} of {seeds} |")


def _report_seed(args: argparse.Namespace, seed: int) -> tuple[list[str], np.ndarray]:
    """Meta-train (or load) both arms from ``seed``; print their tables; return the mean
    A2C-normalised rate per arm and layout."""
    summaries, histories = {}, {}
    for kind in CURRICULA:
        summary, history, meta_s = _run(args, kind, seed)
        summaries[kind], histories[kind] = summary, history
        steady = history[1:] or history
        rate = history[0]["env_steps"] * len(steady) / sum(r["wall_time_s"] for r in steady)
        last = history[-1]
        buffer = ""
        if "curriculum_fill" in last:
            buffer = (f"; buffer fill {last['curriculum_fill']:.2f}, score mean "
                      f"{last['curriculum_score_mean']:.4f}, diversity "
                      f"{last['curriculum_diversity']:.3f}")
        print(f"{LABELS[kind]}: {len(history)} generations, {meta_s:.0f} s (compile included), "
              f"steady {rate:,.0f} agent env steps/s (antagonists included); agents' return "
              f"first fifth {summary['curve_first_window']:.3f} -> last fifth "
              f"{summary['curve_last_window']:.3f}{buffer}")

    evaluation = {kind: summaries[kind]["evaluation"] for kind in CURRICULA}
    first = evaluation["dr"]
    layouts = first["layouts"]
    a2c_rate = np.asarray(first["a2c"]["reward_rate"]["per_seed"], dtype=float)
    print(f"\nheld-out layouts: {first['seeds']} seeds, {first['lifetime']} updates; "
          "mean ± s.e. over seeds")
    header = "| layout | " + " | ".join(LABELS.values()) + " | A2C |"
    rule = "|---|" + "---|" * (len(LABELS) + 1)
    for title, field, scale in (("final return (last 10%; seeds where an episode ended)",
                                 "return", 1.0),
                                ("reward per 1000 steps", "reward_rate", 1000.0)):
        print(f"\n{title}:\n{header}\n{rule}")
        for index, layout in enumerate(layouts):
            cells = []
            for method in [*(evaluation[k]["learned"] for k in CURRICULA), first["a2c"]]:
                cells.append(_cell(method[field]["per_seed"], index, scale))
            print(f"| {layout} | " + " | ".join(cells) + " |")

    print("\nreward rate normalised by A2C's mean on the layout (GROOVE's yardstick):")
    print("| layout | " + " | ".join(LABELS.values()) + " |")
    print("|---|" + "---|" * len(LABELS))
    wins = 0
    normalised_means = np.full((len(CURRICULA), len(layouts)), np.nan)
    for index, layout in enumerate(layouts):
        reference = np.nanmean(a2c_rate[index])
        cells, means = [], []
        for kind in CURRICULA:
            rate = np.asarray(evaluation[kind]["learned"]["reward_rate"]["per_seed"], dtype=float)
            normalised = rate[index] / reference if abs(reference) > 1e-9 else rate[index] * np.nan
            finite = normalised[np.isfinite(normalised)]
            means.append(finite.mean() if finite.size else np.nan)
            normalised_means[len(means) - 1, index] = means[-1]
            cells.append(_cell([normalised.tolist()], 0))
        wins += int(means[1] > means[0])
        print(f"| {layout} | " + " | ".join(cells) + " |")
    print(f"\nPLR + regret beats DR on {wins} of {len(layouts)} held-out layouts (normalised rate)")
    return list(layouts), normalised_means


if __name__ == "__main__":
    main()
