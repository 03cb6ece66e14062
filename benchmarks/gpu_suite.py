"""The GPU benchmark suite in one command (``make bench-gpu``): PPO throughput at 1, 16
and 256 vmapped seeds, an LPO generation at population 64 on MinAtar (Lu et al., 2022),
an LPG meta-gradient step at 512 agents (GROOVE, Jackson et al., 2023), and wall-time
projections of the full paper runs from them. Prints a markdown table for BENCHMARKS.md
and the command that reproduces it.

The paper runs are too long to time whole, so each meta-training figure runs the paper
config for a few generations at a shorter agent lifetime (``--lpo-steps``: PPO steps per
game; the paper's is 1e7) and reads the steady-state generation time (compile is the
first generation's extra); the projection scales it linearly to the paper's lifetime and
generation count. ``--toy`` shrinks everything so that the suite runs on a CPU in about
a minute (CI runs it so that it keeps working between GPU sessions).

    python benchmarks/gpu_suite.py              # on a GPU: under 10 minutes
    python benchmarks/gpu_suite.py --toy        # anywhere, about a minute
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)

# isort: split
import jax
import numpy as np
from ppo_speed import measure_ppo

from discovery.components import COMPONENTS
from discovery.config import config_component, load_config
from discovery.pipeline import meta_train

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is (``--toy`` or the GPU suite's)."""

    ppo_seeds: tuple[int, ...]
    ppo_envs: tuple[tuple[str, dict], ...]  # (env, PPOConfig fields)
    lpo_overrides: tuple[str, ...]
    lpg_overrides: tuple[str, ...]
    generations: int


def gpu_sizes(lpo_steps: int) -> Sizes:
    return Sizes(
        ppo_seeds=(1, 16, 256),
        ppo_envs=(
            ("CartPole-v1", dict(num_envs=4, num_steps=128, total_timesteps=100_000)),
            ("Breakout-MinAtar", dict(num_envs=64, num_steps=128, total_timesteps=500_000,
                                      num_minibatches=8, activation="relu", lr=1e-2)),
        ),
        # The paper config as published (population 64, four games, 64 envs x 128), at a
        # shorter lifetime.
        lpo_overrides=(f"task.ppo.total_timesteps={lpo_steps}", "task.baseline_seeds=2"),
        # GROOVE as published (512 agents, K=5, lifetimes of 250 updates, PLR + regret).
        lpg_overrides=(),
        generations=4,
    )


def toy_sizes() -> Sizes:
    tiny = dict(num_envs=2, num_steps=16, total_timesteps=64, num_minibatches=2,
                update_epochs=1)
    return Sizes(
        ppo_seeds=(1, 2),
        ppo_envs=(("CartPole-v1", tiny),),
        lpo_overrides=(
            "task.envs=[Breakout-MinAtar]", "task.env_lr=[1.0e-2]", "task.env_adam_b2=[0.99]",
            "task.normalisers=[50.08]", "task.baseline_seeds=2", "es.population_size=2",
            "task.ppo.num_envs=2", "task.ppo.num_steps=8", "task.ppo.total_timesteps=32",
            "task.ppo.num_minibatches=2", "task.ppo.update_epochs=1",
        ),
        lpg_overrides=(
            "metagrad.num_agents=2", "metagrad.num_minibatches=1", "metagrad.unroll=2",
            "metagrad.lifetime_min=4", "metagrad.lifetime_max=4", "agent.num_envs=2",
            "agent.rollout_len=4", "levels.max_size=5", "levels.max_objects=1",
            "objective.hidden_size=8", "curriculum.plr.buffer_size=8",
        ),
        generations=2,
    )


def generation_times(config_path: Path, overrides: tuple[str, ...], generations: int):
    """``(config, paper generations, first generation s, steady generation s)`` of a short
    meta-training run of ``config_path`` (the first generation includes compiling; steady
    is the median of the others)."""
    kind = config_component(config_path, overrides)
    config_class = COMPONENTS[kind].config_class
    paper_generations = load_config(config_class, config_path).generations
    config = load_config(config_class, config_path,
                         (*overrides, f"generations={generations}", "checkpoint_every=1000"))
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as run_dir:
        history = meta_train(config, run_dir).history
    times = [record["wall_time_s"] for record in history]
    return config, paper_generations, times[0], float(np.median(times[1:]))


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


PARTS = ("ppo", "lpo", "lpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toy", action="store_true", help="tiny sizes, for CI on a CPU")
    parser.add_argument("--lpo-steps", type=int, default=131_072,
                        help="PPO steps per game in the timed LPO generations (paper: 1e7)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"which rows to measure, comma-separated from {', '.join(PARTS)}")
    args = parser.parse_args()
    parts = args.parts.split(",")
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        parser.error(f"--parts: {', '.join(unknown)} is not one of {', '.join(PARTS)}")
    sizes = toy_sizes() if args.toy else gpu_sizes(args.lpo_steps)
    suite_start = time.perf_counter()

    device = jax.devices()[0]
    print(f"device: {device.platform} {device.device_kind} x {jax.device_count()}; "
          f"{platform.node()}, jax {jax.__version__}\n")
    print("| measurement | compile s | figure |")
    print("|---|---|---|")
    if "ppo" in parts:
        measure_ppo_rows(sizes)
    if "lpo" in parts:
        measure_lpo_rows(sizes)
    if "lpg" in parts:
        measure_lpg_rows(sizes)
    print(f"\nsuite wall time: {hours(time.perf_counter() - suite_start)}")
    print(f"reproduce: python benchmarks/gpu_suite.py{' --toy' if args.toy else ''}"
          f"{'' if args.toy else f' --lpo-steps {args.lpo_steps}'}"
          f"{'' if parts == list(PARTS) else f' --parts {args.parts}'}")


def measure_ppo_rows(sizes: Sizes) -> None:
    for env_name, fields in sizes.ppo_envs:
        for seeds in sizes.ppo_seeds:
            ppo = measure_ppo(env_name, fields, seeds)
            print(f"| PPO {env_name} ({fields['num_envs']} envs x {fields['num_steps']}), "
                  f"{seeds} seeds vmapped | {ppo['compile_s']:.1f} | "
                  f"{ppo['steps_per_s']:,.0f} env steps/s |", flush=True)


def measure_lpo_rows(sizes: Sizes) -> None:
    lpo, lpo_generations, first, steady = generation_times(
        CONFIGS / "lpo_minatar.yaml", sizes.lpo_overrides, sizes.generations)
    games = len(lpo.task.envs)
    lifetime = lpo.task.ppo.total_timesteps
    steps = lpo.es.population_size * games * lpo.task.seeds * lifetime
    paper_generation = steady * 10_000_000 / lifetime
    print(f"| LPO generation, population {lpo.es.population_size}, {games} MinAtar games, "
          f"{lifetime:,} PPO steps each | {first - steady:.0f} | {steady:.2f} s "
          f"({steps / steady:,.0f} env steps/s) |", flush=True)
    print(f"| projected: LPO paper run ({lpo_generations} generations at 1e7 steps per "
          f"game) | | {hours(lpo_generations * paper_generation)} |", flush=True)


def measure_lpg_rows(sizes: Sizes) -> None:
    lpg, lpg_generations, first, steady = generation_times(
        CONFIGS / "groove_gridworld.yaml", sizes.lpg_overrides, sizes.generations)
    print(f"| LPG meta-gradient step, {lpg.metagrad.num_agents} agents, K="
          f"{lpg.metagrad.unroll}, PLR + regret | {first - steady:.0f} | {steady:.2f} s |",
          flush=True)
    print(f"| projected: GROOVE run ({lpg_generations} meta-steps) | | "
          f"{hours(lpg_generations * steady)} |", flush=True)


if __name__ == "__main__":
    main()
