"""PPO returns on MinAtar at 1e7 steps: our PPO against the published range.

Inner-loop config of the DPO/LPO MinAtar setting (Lu et al., 2022): 64 envs
x 128 steps, 4 epochs, 8 minibatches, gamma 0.99, lambda 0.95, clip 0.2, entropy 0.01,
value 0.5, grad-norm 0.5, linear lr anneal, MLP 2x64 ReLU on the flattened observation,
Adam lr / b2 tuned per env. Seeds are vmapped in one jitted call per env.

    python benchmarks/minatar_returns.py --envs Breakout-MinAtar SpaceInvaders-MinAtar --seeds 3
"""

from __future__ import annotations

import argparse
import sys
import time

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)

# isort: split
import jax
import numpy as np

from discovery.agents.ppo import PPOConfig, make_train
from discovery.claims_dpo_minatar import GAMES, MINATAR_PPO
from discovery.drift import make_drift


def run(name: str, seeds: int, steps: int, drift_name: str) -> tuple[np.ndarray, float]:
    lr, adam_b2, _ = GAMES[name]  # per game, as the DPO vs PPO-clip claim trains them
    config = PPOConfig(**{**MINATAR_PPO, "total_timesteps": steps}, lr=lr, adam_b2=adam_b2)
    env, env_params = envs.make(name)
    drift = make_drift(drift_name)
    train = jax.jit(jax.vmap(make_train(config, env, env_params, drift), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(0), seeds)
    tic = time.perf_counter()
    _, metrics = train(keys, drift.init(keys[0]))
    returns = np.asarray(jax.block_until_ready(metrics["episode_return"]))
    elapsed = time.perf_counter() - tic
    last = max(1, returns.shape[1] // 50)  # the final 2% of updates
    return np.nanmean(returns[:, -last:], axis=1), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Breakout-MinAtar", "SpaceInvaders-MinAtar"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=float, default=1e7)
    parser.add_argument("--drift", default="ppo")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind}")
    print("| env | drift | seeds | steps | final return per seed | mean | wall s (incl. compile) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.envs:
        finals, elapsed = run(name, args.seeds, int(args.steps), args.drift)
        print(f"| {name} | {args.drift} | {args.seeds} | {int(args.steps):.0e} | "
              f"{', '.join(f'{x:.1f}' for x in finals)} | {finals.mean():.1f} | {elapsed:.0f} |",
              flush=True)
    print(f"\nreproduce: python benchmarks/minatar_returns.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
