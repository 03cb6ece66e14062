"""Evaluate a discovered drift on environments (and lifetimes) it never saw.

Loads a ``discover meta-train`` run (its ``config.yaml`` and ``mean_params.msgpack``),
then trains fresh PPO agents with PPO-clip, DPO and the learned drift on each held-out
environment, with the run's inner-loop PPO config (only the lifetime changes per env),
all seeds vmapped, the same seeds for every drift. Prints final returns, mean and
standard error.

    discover demo && python benchmarks/drift_transfer.py runs/lpo-cartpole-demo
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)

# isort: split
import jax
import numpy as np

from discovery.config import load_config
from discovery.drift import make_drift
from discovery.drift_training import MetaTrainConfig
from discovery.meta_run import load_params
from discovery.tasks import DriftTaskConfig, evaluate_drift

# Held-out environments and lifetimes (env steps per agent). CartPole at 8x the
# meta-training lifetime asks the temporally-aware paper's question: does it generalise
# to another horizon?
HELD_OUT = {
    "Acrobot-v1": 65_536,
    "Catch-bsuite": 32_768,
    "Breakout-MinAtar": 262_144,
    "CartPole-v1": 65_536,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--envs", nargs="+", default=list(HELD_OUT))
    args = parser.parse_args()
    config = load_config(MetaTrainConfig, args.run_dir / "config.yaml")
    learned = make_drift(config.task.drift)
    learned_params = load_params(args.run_dir / "mean_params.msgpack",
                                 learned.init(jax.random.key(0)))
    drifts = {
        "PPO-clip": (make_drift("ppo"), None),
        "DPO": (make_drift("dpo"), None),
        f"learned ({config.task.drift})": (learned, learned_params),
    }
    print(f"run {args.run_dir} (meta-trained on {', '.join(config.task.envs)}, "
          f"{config.task.ppo.total_timesteps} steps, lr {config.task.ppo.lr}); "
          f"{args.seeds} seeds per cell, final return = mean over the last "
          f"{config.task.final_fraction:.0%} of updates, mean ± s.e.")
    print("| env | steps | " + " | ".join(drifts) + " |")
    print("|---|---|" + "---|" * len(drifts))
    key = jax.random.key(1234)
    for name in args.envs:
        steps = HELD_OUT.get(name, config.task.ppo.total_timesteps)
        task = DriftTaskConfig(
            envs=(name,), drift=config.task.drift, seeds=args.seeds,
            ppo=replace(config.task.ppo, total_timesteps=steps),
            final_fraction=config.task.final_fraction,
        )
        cells = []
        tic = time.perf_counter()
        for drift, params in drifts.values():
            params = drift.init(jax.random.key(0)) if params is None else params
            returns = evaluate_drift(task, drift, params, key, args.seeds)[0]
            cells.append(f"{returns.mean():.2f} ± {returns.std() / np.sqrt(len(returns)):.2f}")
        print(f"| {name} | {steps:,} | " + " | ".join(cells) + " |"
              f"  <!-- {time.perf_counter() - tic:.0f} s -->", flush=True)
    print(f"\nreproduce: python benchmarks/drift_transfer.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
