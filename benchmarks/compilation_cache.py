"""Wall time of a ``discover`` command run twice: with an empty compilation cache, then
again with the programs the first run left on disk (JAX's persistent cache, on by
default: ``envs/compilation_cache.py``).

Each command runs as a fresh process (as a user runs it) with
``DISCOVERY_COMPILATION_CACHE`` pointing at a new empty folder, then once more with the
same folder, into its own runs folder each time; the first run compiles, the second
loads. Prints a table and the command that reproduces it.

    python benchmarks/compilation_cache.py
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Short runs of the three commands that compile most: training, meta-training (its
# baselines, generation step and final evaluation) and held-out evaluation.
COMMANDS = {
    "train": ["train", "--env", "CartPole-v1", "--drift", "dpo", "--seeds", "4",
              "--total-steps", "5e4"],
    "meta-train": ["meta-train", str(REPO / "configs" / "lpo_cartpole.yaml"), "--set",
                   "generations=2"],
    "evaluate": ["evaluate", "zoo:lpo-cartpole-demo", "--seeds", "4"],
}


def timed_run(argv: list[str], cache: Path, runs: Path) -> float:
    """Seconds of wall time of ``discover ARGV`` in a fresh process."""
    discover = shutil.which("discover", path=os.path.dirname(sys.executable))
    if discover is None:
        raise SystemExit("the discover console script is not installed beside this Python")
    env = dict(os.environ, DISCOVERY_COMPILATION_CACHE=str(cache))
    start = time.perf_counter()
    done = subprocess.run([discover, *argv, "--runs-dir", str(runs)], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"discover {' '.join(argv)} failed:\n{done.stdout[-2000:]}"
                         f"{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", default=",".join(COMMANDS),
                        help=f"comma-separated, from {', '.join(COMMANDS)}")
    args = parser.parse_args()
    names = [name.strip() for name in args.commands.split(",") if name.strip()]
    unknown = [name for name in names if name not in COMMANDS]
    if unknown:
        raise SystemExit(f"--commands: unknown {unknown}; allowed: {', '.join(COMMANDS)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="discovery-cache-bench-") as folder:
        for name in names:
            cache = Path(folder) / name / "cache"
            first = timed_run(COMMANDS[name], cache, Path(folder) / name / "first")
            second = timed_run(COMMANDS[name], cache, Path(folder) / name / "second")
            rows.append((name, first, second))
    print(f"machine: {platform.node()} ({os.cpu_count()} CPUs), python {platform.python_version()}")
    print("| command | first run, empty cache (s) | second run, cache filled (s) | ratio |")
    print("|---|---|---|---|")
    for name, first, second in rows:
        command = " ".join(COMMANDS[name]).replace(f"{REPO}{os.sep}", "")
        print(f"| `discover {command}` | {first:.1f} | {second:.1f} | "
              f"{first / second:.2f}x |")
    print(f"reproduce: python benchmarks/compilation_cache.py --commands {','.join(names)}")


if __name__ == "__main__":
    main()
