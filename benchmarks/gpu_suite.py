"""The GPU benchmark suite in one command (``make bench-gpu``): PPO throughput at 1, 16
and 256 vmapped seeds, an LPO generation at population 64 on MinAtar (Lu et al., 2022),
an LPG meta-gradient step at 512 agents (GROOVE, Jackson et al., 2023), and wall-time
projections of the full paper runs from them. Prints a markdown table for BENCHMARKS.md,
each row opening with the card it was measured on (``gpu_card.card``: a CPU reads
``cpu (no GPU)``), and the command that reproduces it.

The paper runs are too long to time whole, so each meta-training figure runs the paper
config for a few generations (``--generations``, 3 on a GPU: the first compiles, the
others give the steady time) at a shorter agent lifetime (``--lpo-steps``: PPO steps per
game; the paper's is 1e7) and reads the steady-state generation time (compile is the
first generation's extra); the projection scales it linearly to the paper's lifetime and
generation count. Building the LPO task first trains PPO-clip baselines on each game (a
compile per game): its time is a row of its own, since at stop 28 it, not the
generations, was most of what ran out of time. Each generation's time is printed as it
ends, so a run stopped at a deadline still shows how far it got. ``--toy`` shrinks
everything so that the suite runs on a CPU in about a minute (CI runs it so that it keeps
working between GPU sessions).

    python benchmarks/gpu_suite.py              # on a GPU: under 10 minutes
    python benchmarks/gpu_suite.py --toy        # anywhere, about a minute
    python benchmarks/gpu_suite.py --parts lpo  # one part (gpu_session.py runs them so)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)

# isort: split
import numpy as np
from gpu_card import card, print_device
from ppo_speed import measure_ppo
from ppo_vs_plain import BREAKOUT

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


def gpu_sizes(lpo_steps: int, generations: int) -> Sizes:
    return Sizes(
        ppo_seeds=(1, 16, 256),
        ppo_envs=(
            ("CartPole-v1", dict(num_envs=4, num_steps=128, total_timesteps=100_000)),
            ("Breakout-MinAtar", BREAKOUT),
        ),
        # The paper config as published (population 64, four games, 64 envs x 128), at a
        # shorter lifetime.
        lpo_overrides=(f"task.ppo.total_timesteps={lpo_steps}", "task.baseline_seeds=2"),
        # GROOVE as published (512 agents, K=5, lifetimes of 250 updates, PLR + regret).
        lpg_overrides=(),
        generations=generations,
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


@dataclass(frozen=True)
class GenerationTimes:
    """A short meta-training run's times: ``build_s`` (building the task before the first
    generation, e.g. the LPO task's PPO-clip baselines), ``first_s`` (the first
    generation, compile included) and ``steady_s`` (the median of the others)."""

    config: object
    paper_generations: int
    build_s: float
    first_s: float
    steady_s: float


def generation_times(label: str, config_path: Path, overrides: tuple[str, ...],
                     generations: int) -> GenerationTimes:
    """Time a short meta-training run of ``config_path``, printing each generation's time
    as it ends (so that a run stopped at a deadline still shows how far it got)."""
    kind = config_component(config_path, overrides)
    config_class = COMPONENTS[kind].config_class
    paper_generations = load_config(config_class, config_path).generations
    config = load_config(config_class, config_path,
                         (*overrides, f"generations={generations}", "checkpoint_every=1000"))
    tic = time.perf_counter()

    def progress(record: dict) -> None:
        print(f"{label} generation {record['generation'] + 1} of {generations}: "
              f"{record['wall_time_s']:.2f} s ({time.perf_counter() - tic:.0f} s since "
              "the build began)", flush=True)

    print(f"{label}: building the task and running {generations} generations", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as run_dir:
        history = meta_train(config, run_dir, on_generation=progress).history
    total = time.perf_counter() - tic
    times = [record["wall_time_s"] for record in history]
    return GenerationTimes(config, paper_generations, total - sum(times), times[0],
                           float(np.median(times[1:])))


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


PARTS = ("ppo", "lpo", "lpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toy", action="store_true", help="tiny sizes, for CI on a CPU")
    parser.add_argument("--lpo-steps", type=int, default=131_072,
                        help="PPO steps per game in the timed LPO generations (paper: 1e7)")
    parser.add_argument("--generations", type=int, default=3,
                        help="meta-training generations timed (the first compiles; at least 2)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"which rows to measure, comma-separated from {', '.join(PARTS)}")
    args = parser.parse_args()
    parts = args.parts.split(",")
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        parser.error(f"--parts: {', '.join(unknown)} is not one of {', '.join(PARTS)}")
    if args.generations < 2:
        parser.error("--generations: at least 2 (the first one compiles)")
    sizes = toy_sizes() if args.toy else gpu_sizes(args.lpo_steps, args.generations)
    suite_start = time.perf_counter()

    print_device()
    print("| card | measurement | compile s | figure |")
    print("|---|---|---|---|", flush=True)
    if "ppo" in parts:
        measure_ppo_rows(sizes)
    if "lpo" in parts:
        measure_lpo_rows(sizes)
    if "lpg" in parts:
        measure_lpg_rows(sizes)
    print(f"\nsuite wall time: {hours(time.perf_counter() - suite_start)}")
    print(f"reproduce: python benchmarks/gpu_suite.py{' --toy' if args.toy else ''}"
          f"{'' if args.toy else f' --lpo-steps {args.lpo_steps}'}"
          f"{'' if args.toy else f' --generations {args.generations}'}"
          f"{'' if parts == list(PARTS) else f' --parts {args.parts}'}")


def measure_ppo_rows(sizes: Sizes) -> None:
    for env_name, fields in sizes.ppo_envs:
        for seeds in sizes.ppo_seeds:
            ppo = measure_ppo(env_name, fields, seeds)
            print(f"| {card()} | PPO {env_name} ({fields['num_envs']} envs x "
                  f"{fields['num_steps']}), {seeds} seeds vmapped | {ppo['compile_s']:.1f} | "
                  f"{ppo['steps_per_s']:,.0f} env steps/s |", flush=True)


def measure_lpo_rows(sizes: Sizes) -> None:
    timed = generation_times("LPO", CONFIGS / "lpo_minatar.yaml", sizes.lpo_overrides,
                             sizes.generations)
    lpo, steady = timed.config, timed.steady_s
    games = len(lpo.task.envs)
    lifetime = lpo.task.ppo.total_timesteps
    steps = lpo.es.population_size * games * lpo.task.seeds * lifetime
    paper_generation = steady * 10_000_000 / lifetime
    print(f"| {card()} | LPO task build: PPO-clip baselines ({lpo.task.baseline_seeds} seeds) "
          f"on {games} MinAtar games, {lifetime:,} steps each, compile included | | "
          f"{timed.build_s:.0f} s |", flush=True)
    print(f"| {card()} | LPO generation, population {lpo.es.population_size}, {games} MinAtar "
          f"games, {lifetime:,} PPO steps each | {timed.first_s - steady:.0f} | "
          f"{steady:.2f} s ({steps / steady:,.0f} env steps/s) |", flush=True)
    print(f"| {card()} | projected: LPO paper run ({timed.paper_generations} generations at "
          f"1e7 steps per game) | | {hours(timed.paper_generations * paper_generation)} |",
          flush=True)


def measure_lpg_rows(sizes: Sizes) -> None:
    timed = generation_times("GROOVE", CONFIGS / "groove_gridworld.yaml",
                             sizes.lpg_overrides, sizes.generations)
    lpg, steady = timed.config, timed.steady_s
    print(f"| {card()} | LPG meta-gradient step, {lpg.metagrad.num_agents} agents, K="
          f"{lpg.metagrad.unroll}, PLR + regret | {timed.first_s - steady:.0f} | "
          f"{steady:.2f} s |", flush=True)
    print(f"| {card()} | projected: GROOVE run ({timed.paper_generations} meta-steps) | | "
          f"{hours(timed.paper_generations * steady)} |", flush=True)


if __name__ == "__main__":
    main()
