"""Discover an LPG objective on random gridworlds, then test it on held-out layouts.

Runs objective meta-training (the CPU-sized default of ``ObjectiveMetaTrainConfig``,
or a YAML config, plus ``--set`` overrides), then trains fresh agents on each held-out
layout with the discovered objective, with the randomly initialised objective that
meta-training started from, and with the hand-designed A2C baseline (same seeds, same
rollout shape and lifetime). Prints the meta-training cost (agent env steps per
second, compile excluded) and the held-out final returns, mean ± s.e. over seeds.

    python benchmarks/lpg_gridworld.py --set generations=1500
    python benchmarks/lpg_gridworld.py --from-run runs/bench-lpg-gridworld  # evaluate again
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=None, help="YAML objective config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench-lpg-gridworld"))
    parser.add_argument("--from-run", type=Path, default=None,
                        help="skip meta-training: evaluate this finished run's objective again")
    args = parser.parse_args()
    if args.from_run is not None:
        config = load_config(ObjectiveMetaTrainConfig, args.from_run / "config.yaml",
                             args.overrides)
        result = load_finished_run(config, args.from_run)
        meta_s = float("nan")
    else:
        config = load_config(ObjectiveMetaTrainConfig, args.config, args.overrides)
        args.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, args.run_dir / "config.yaml")
        tic = time.perf_counter()
        result = meta_train(config, args.run_dir)
        meta_s = time.perf_counter() - tic
    history = result.history
    steady = history[1:] or history
    steps_per_generation = history[0]["env_steps"]
    rate = steps_per_generation * len(steady) / sum(r["wall_time_s"] for r in steady)
    tic = time.perf_counter()
    summary = write_objective_results(result, config)
    eval_s = time.perf_counter() - tic

    print(f"{config.objective.kind} by {config.optimizer}: {len(history)} generations, "
          f"{config.metagrad.num_agents} agents x K={config.metagrad.unroll} on "
          f"{', '.join(config.levels.train)} ({config.levels.max_size}x"
          f"{config.levels.max_size}, <= {config.levels.max_objects} objects)")
    print(f"meta-training: {meta_s:.0f} s in all (compile included); steady "
          f"{rate:,.0f} agent env steps/s; {summary['curve']} first fifth "
          f"{summary['curve_first_window']:.3f} -> last fifth {summary['curve_last_window']:.3f}")
    evaluation = summary["evaluation"]
    methods = {"learned": "discovered LPG", "initial_objective": "initial (random) LPG",
               "a2c": "A2C"}
    print(f"\nheld-out layouts: {evaluation['seeds']} seeds, {evaluation['lifetime']} updates of "
          f"{config.agent.num_envs} x {config.agent.rollout_len} steps; final return "
          f"(last 10% of the lifetime, over the seeds where an episode ended), mean ± s.e. "
          f"({eval_s:.0f} s)")
    print("| layout | " + " | ".join(methods.values()) + " |")
    print("|---|" + "---|" * len(methods))
    for index, layout in enumerate(evaluation["layouts"]):
        cells = [_return_cell(evaluation[m]["return"], index, evaluation["seeds"])
                 for m in methods]
        print(f"| {layout} | " + " | ".join(cells) + " |")
    print("\nreward per 1000 steps over the same window (defined where episodes outlast it):")
    print("| layout | " + " | ".join(methods.values()) + " |")
    print("|---|" + "---|" * len(methods))
    for index, layout in enumerate(evaluation["layouts"]):
        cells = [
            f"{1000 * evaluation[m]['reward_rate']['mean'][index]:.1f} ± "
            f"{1000 * evaluation[m]['reward_rate']['sem'][index]:.1f}"
            for m in methods
        ]
        print(f"| {layout} | " + " | ".join(cells) + " |")
    learned = np.array(evaluation["learned"]["reward_rate"]["mean"])
    initial = np.array(evaluation["initial_objective"]["reward_rate"]["mean"])
    a2c = np.array(evaluation["a2c"]["reward_rate"]["mean"])
    layouts = len(evaluation["layouts"])
    print(f"\nby reward rate, the discovered objective beats its initialisation on "
          f"{np.sum(learned > initial)} of {layouts} layouts and A2C on "
          f"{np.sum(learned > a2c)} of {layouts}")
    print(f"reproduce: python benchmarks/lpg_gridworld.py {' '.join(sys.argv[1:])}".rstrip())


def _return_cell(summary: dict, index: int, seeds: int) -> str:
    """``mean ± s.e. (k of n seeds)``, or ``n/a`` where no seed finished an episode."""
    mean, sem, covered = (summary[k][index] for k in ("mean", "sem", "seeds_covered"))
    if mean is None:
        return f"n/a (0 of {seeds} seeds)"
    text = f"{mean:.2f}" + ("" if sem is None else f" ± {sem:.2f}")
    return text if covered == seeds else f"{text} ({covered} of {seeds} seeds)"


if __name__ == "__main__":
    main()
