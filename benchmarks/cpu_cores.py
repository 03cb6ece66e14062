"""Both CPU cores: the same work pinned to one core (``taskset -c 0``: one CPU device)
and free (one device per core, the default), each in a fresh process; then two free
jobs side by side.

Workloads:
* ``lpo``: one ES generation of ``configs/lpo_cartpole.yaml`` (the demo: population 16
  x 4 seeds of CartPole PPO), timed after a first, compiling generation;
* ``minatar``: a 16-seed Breakout-MinAtar PPO run with the MinAtar claim's settings,
  shortened to ``--minatar-updates`` updates, timed on its second call.

Each row prints the seconds, the ratio free / pinned, and whether the numbers (the
generation's fitness, the runs' returns) agree: bit for bit or to float rounding.

    python benchmarks/cpu_cores.py                     # both workloads, side by side too
    python benchmarks/cpu_cores.py --workloads lpo --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def child(workload: str, minatar_updates: int, generations: int) -> None:
    """Run one workload in this process and print a JSON line of its figures."""
    import jax

    if workload == "lpo":
        from discovery.config import load_config
        from discovery.drift_training import MetaTrainConfig, build

        config = load_config(MetaTrainConfig, str(ROOT / "configs" / "lpo_cartpole.yaml"))
        run = build(config)
        state = run.optimizer.init(run.key, run.params, None, run.generation_key)
        tic = time.perf_counter()
        state, metrics, _ = run.optimizer.step(state, None)
        jax.block_until_ready(metrics)
        first = time.perf_counter() - tic
        tic = time.perf_counter()
        for _ in range(generations):
            state, metrics, _ = run.optimizer.step(state, None)
        jax.block_until_ready(metrics)
        seconds = (time.perf_counter() - tic) / generations
        numbers = [float(metrics["fitness_mean"]), float(metrics["fitness_max"])]
    else:
        from discovery.agents.ppo import PPOConfig
        from discovery.claims_dpo_minatar import MINATAR_PPO
        from discovery.train import TrainConfig, train_seeds

        fields = dict(MINATAR_PPO, total_timesteps=64 * 128 * minatar_updates)
        config = TrainConfig(env="Breakout-MinAtar", seeds=16, ppo=PPOConfig(**fields))
        tic = time.perf_counter()
        train_seeds(config)
        first = time.perf_counter() - tic
        tic = time.perf_counter()
        result = train_seeds(config)
        seconds = time.perf_counter() - tic
        numbers = result.metrics["latest_return"][:, -1].tolist()
    print(json.dumps({"devices": jax.device_count(), "first_s": first, "seconds": seconds,
                      "numbers": numbers}), flush=True)


def start(workload: str, pinned: bool, args: argparse.Namespace) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DISCOVERY_CPU_DEVICES"}
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if not f.startswith("--xla_force_host_platform_device_count"))
    env["DISCOVERY_COMPILATION_CACHE"] = args.cache
    argv = [sys.executable, __file__, "--child", workload,
            "--minatar-updates", str(args.minatar_updates),
            "--generations", str(args.generations)]
    if pinned:
        argv = ["taskset", "-c", "0", *argv]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=3600)
    if process.returncode:
        sys.exit(f"child failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def agreement(a: list[float], b: list[float]) -> str:
    a, b = np.asarray(a), np.asarray(b)
    if np.array_equal(a, b, equal_nan=True):
        return "bit for bit"
    return f"max relative difference {np.nanmax(np.abs(a - b) / np.maximum(np.abs(a), 1e-9)):.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["lpo", "minatar"],
                        choices=["lpo", "minatar"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--minatar-updates", type=int, default=8)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--no-side-by-side", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.minatar_updates, args.generations)
        return
    if not shutil.which("taskset"):
        sys.exit("taskset (util-linux) is needed to pin a run to one core")
    cores = len(os.sched_getaffinity(0))
    cache = tempfile.mkdtemp(prefix="cpu-cores-cache-")
    args.cache = cache  # shared, so that only the first run of each workload compiles cold
    print(f"{cores} usable cores; {os.uname().machine}; each figure a fresh process")
    print("| workload | pinned (taskset -c 0, 1 device) s | free (1 device per core) s "
          "| free / pinned | numbers |")
    print("|---|---|---|---|---|")
    for workload in args.workloads:
        finish(start(workload, False, args))  # fill the compilation cache
        for _ in range(args.repeats):
            pinned = finish(start(workload, True, args))
            free = finish(start(workload, False, args))
            print(f"| {workload} | {pinned['seconds']:.2f} | {free['seconds']:.2f} "
                  f"({free['devices']} devices) | {free['seconds'] / pinned['seconds']:.2f} "
                  f"| {agreement(pinned['numbers'], free['numbers'])} |", flush=True)
    if not args.no_side_by_side:
        print("\nTwo free jobs started at once (each splits over every core):")
        print("| workload | alone s | each of two side by side s | side by side / alone |")
        print("|---|---|---|---|")
        for workload in args.workloads:
            alone = finish(start(workload, False, args))
            both = [finish(p) for p in [start(workload, False, args) for _ in range(2)]]
            each = max(b["seconds"] for b in both)
            times = ", ".join(f"{b['seconds']:.2f}" for b in both)
            print(f"| {workload} | {alone['seconds']:.2f} | {times} | "
                  f"{each / alone['seconds']:.2f} |", flush=True)
    shutil.rmtree(cache, ignore_errors=True)
    print(f"\nreproduce: python benchmarks/cpu_cores.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
