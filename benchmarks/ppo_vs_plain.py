"""Our PPO beside a plain single-file JAX PPO on one accelerator, at 1, 16 and 256 vmapped
seeds: how much of a GPU's speed our PPO (written as Mirror Learning, with truncation
bootstrapping and episode statistics) leaves on the table.

The plain PPO is ``ppo_floor.floor_train``: the purejaxrl recipe written from scratch in
one function (rollout by ``lax.scan``, GAE, minibatch epochs, PPO-clip; Schulman et al.,
2017). Both run the same env (``discovery.envs.make``) and settings (the GPU suite's
Breakout-MinAtar PPO: 64 envs x 128 steps, 8 minibatches, 4 epochs, ReLU, lr 1e-2, 5e5
steps per seed), seeds under one ``jit(vmap)``, compile timed apart from the run
(``ppo_speed.time_seeds``), ours then plain at each seed count in one process. Each row
names the card (``gpu_card.card``) and gives env steps/s of each and ours / plain.

    python benchmarks/ppo_vs_plain.py          # on a GPU: about 2 minutes
    python benchmarks/ppo_vs_plain.py --toy    # anywhere: CartPole, tiny, 1 and 2 seeds
"""

from __future__ import annotations

import argparse
import time

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)

# isort: split
from gpu_card import card, print_device
from ppo_floor import measure_floor
from ppo_speed import measure_ppo

#: The Breakout-MinAtar PPO of the GPU suite's rows too (purejaxrl's MinAtar setting at
#: 5e5 steps per seed), so that ours here matches the suite's figures.
BREAKOUT = dict(num_envs=64, num_steps=128, total_timesteps=500_000, num_minibatches=8,
                activation="relu", lr=1e-2)
#: (env, fields both PPOs read, seed counts); ``update_epochs`` is explicit because the
#: plain PPO has no defaults.
GPU = ("Breakout-MinAtar", {**BREAKOUT, "update_epochs": 4}, (1, 16, 256))
TOY = ("CartPole-v1", dict(num_envs=2, num_steps=16, total_timesteps=64, num_minibatches=2,
                           update_epochs=1, lr=2.5e-4), (1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toy", action="store_true", help="tiny sizes, for CI on a CPU")
    args = parser.parse_args()
    env_name, fields, seed_counts = TOY if args.toy else GPU
    start = time.perf_counter()
    print_device()
    print(f"settings: {env_name}, {fields}")
    print("| card | measurement | ours env steps/s | plain env steps/s | ours / plain "
          "| compile s ours / plain | final return ours / plain |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for seeds in seed_counts:
        ours = measure_ppo(env_name, fields, seeds)
        plain = measure_floor(env_name, fields, seeds)
        print(f"| {card()} | ours vs plain PPO, {env_name} ({fields['num_envs']} envs x "
              f"{fields['num_steps']}, {fields['total_timesteps']:,} steps per seed), {seeds} "
              f"seeds vmapped | {ours['steps_per_s']:,.0f} | {plain['steps_per_s']:,.0f} | "
              f"{ours['steps_per_s'] / plain['steps_per_s']:.2f} | {ours['compile_s']:.1f} / "
              f"{plain['compile_s']:.1f} | {ours['final_return']:.1f} / "
              f"{plain['final_return']:.1f} |", flush=True)
    print(f"\nwall time: {time.perf_counter() - start:.0f} s")
    print(f"reproduce: python benchmarks/ppo_vs_plain.py{' --toy' if args.toy else ''}")


if __name__ == "__main__":
    main()
