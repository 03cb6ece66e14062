"""PPO env steps/s of this checkout beside an older commit's, interleaved in one run.

purejaxrl is not installable here, so speed is compared with the code as it was: the old
commit is checked out into a temporary folder (``git worktree``), and each measurement
runs in its own process that imports ``discovery`` either from that folder or from this
checkout. Configs are purejaxrl's (its CartPole and MinAtar PPO settings), run through
``make_train`` under ``jit(vmap(train))`` over seeds; compile is timed apart from the run.
Rounds alternate old / new so that a machine that slows down mid-run slows both.

    python benchmarks/ppo_vs_commit.py --base a59a358              # all configs, 3 rounds
    python benchmarks/ppo_vs_commit.py --base a59a358 --configs cartpole-4x4 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (env, PPOConfig fields, seeds vmapped); purejaxrl's configs.
CONFIGS = {
    "cartpole-4x4": ("CartPole-v1", dict(num_envs=4, num_steps=128, total_timesteps=500_000,
                                         update_epochs=4, num_minibatches=4, lr=2.5e-4), 4),
    "cartpole-64x1": ("CartPole-v1", dict(num_envs=64, num_steps=128,
                                          total_timesteps=5_000_000, update_epochs=4,
                                          num_minibatches=4, lr=2.5e-4), 1),
    "breakout": ("Breakout-MinAtar", dict(num_envs=64, num_steps=128,
                                          total_timesteps=1_000_000, update_epochs=4,
                                          num_minibatches=8, lr=5e-3, activation="relu"), 1),
}

# What one measurement process runs (argv: benchmarks folder, [env, fields, seeds]):
# benchmarks/ppo_speed.py, importing whichever ``discovery`` PYTHONPATH puts first.
CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ppo_speed import measure_ppo
print(json.dumps(measure_ppo(*json.loads(sys.argv[2]))))
"""


def shadow_tree(checkout: Path, into: Path) -> Path:
    """A folder whose ``discovery`` package is ``checkout``'s (its envs/, agents/ and meta/
    as ``discovery.envs`` ... , as the install's package-dir maps them)."""
    package = into / "discovery"
    package.mkdir(parents=True)
    for path in (checkout / "discovery").iterdir():
        (package / path.name).symlink_to(path)
    for folder in ("envs", "agents", "meta"):
        (package / folder).symlink_to(checkout / folder)
    return into


def measure(tree: Path | None, config: str) -> dict:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")])
    env_name, fields, seeds = CONFIGS[config]
    argv = [sys.executable, "-c", CHILD, str(Path(__file__).resolve().parent),
            json.dumps([env_name, fields, seeds])]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ppo-vs-commit-") as scratch:
        old = Path(scratch) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old),
                        args.base], check=True)
        try:
            old_tree = shadow_tree(old, Path(scratch) / "old-import")
            results = {(c, v): [] for c in args.configs for v in ("old", "new")}
            for round_ in range(args.rounds):
                for config in args.configs:
                    for version, tree in (("old", old_tree), ("new", None)):
                        result = measure(tree, config)
                        results[config, version].append(result)
                        print(f"round {round_} {config} {version}: "
                              f"{result['steps_per_s']:,.0f} steps/s, "
                              f"compile {result['compile_s']:.1f} s, "
                              f"final return {result['final_return']:.1f}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           check=False)

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}")
    print(f"| config | {args.base} env steps/s | this checkout | ratio (median) "
          "| compile s old / new | final return old / new |")
    print("|---|---|---|---|---|---|")
    for config in args.configs:
        old_runs, new_runs = results[config, "old"], results[config, "new"]
        old_speed = [r["steps_per_s"] for r in old_runs]
        new_speed = [r["steps_per_s"] for r in new_runs]
        ratio = statistics.median(n / o for n, o in zip(new_speed, old_speed))
        print(f"| {config} | {', '.join(f'{s / 1e3:.0f} k' for s in old_speed)} "
              f"| {', '.join(f'{s / 1e3:.0f} k' for s in new_speed)} | {ratio:.2f} "
              f"| {statistics.median(r['compile_s'] for r in old_runs):.1f} / "
              f"{statistics.median(r['compile_s'] for r in new_runs):.1f} "
              f"| {statistics.mean(r['final_return'] for r in old_runs):.1f} / "
              f"{statistics.mean(r['final_return'] for r in new_runs):.1f} |")
    print(f"\nreproduce: python benchmarks/ppo_vs_commit.py --base {args.base} "
          f"--configs {' '.join(args.configs)} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
