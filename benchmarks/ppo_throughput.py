"""PPO training throughput beside the raw environment's, measured in one process.

For each environment: raw env steps/s (random actions, jitted scan, same batch as PPO),
then PPO's env steps/s at 1 seed and at N vmapped seeds, compile and run timed apart.
Prints a table and the command that reproduces it.

    python benchmarks/ppo_throughput.py                  # defaults below
    python benchmarks/ppo_throughput.py --steps 1e6 --seeds 1 16
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)

# isort: split
import jax
import numpy as np

from discovery.agents.ppo import PPOConfig, make_train
from discovery.drift import make_drift
from discovery.envs import wrappers

SETTINGS = {
    "CartPole-v1": dict(num_envs=64, num_steps=128, network="mlp", lr=2.5e-4),
    "Breakout-MinAtar": dict(num_envs=64, num_steps=128, network="mlp", lr=5e-3),
}


def raw_env_steps_per_s(name: str, num_envs: int, steps: int) -> float:
    env, env_params = envs.make(name)
    vec_env = wrappers.VecEnv(env, num_envs)
    space = env.action_space(env_params)

    def run(key):
        obs, state = vec_env.reset(key, env_params)

        def step(state, key):
            key_act, key_env = jax.random.split(key)
            actions = jax.vmap(space.sample)(jax.random.split(key_act, num_envs))
            _, state, reward, *_ = vec_env.step(key_env, state, actions, env_params)
            return state, reward

        return jax.lax.scan(step, state, jax.random.split(key, steps))[1].sum()

    compiled = jax.jit(run).lower(jax.random.key(0)).compile()
    jax.block_until_ready(compiled(jax.random.key(1)))
    tic = time.perf_counter()
    jax.block_until_ready(compiled(jax.random.key(2)))
    return num_envs * steps / (time.perf_counter() - tic)


def ppo_steps_per_s(name: str, total_steps: int, seeds: int) -> tuple[float, float, float]:
    """Returns (compile s, run s, env steps/s over all seeds)."""
    env, env_params = envs.make(name)
    config = PPOConfig(total_timesteps=total_steps, **SETTINGS[name])
    drift = make_drift("ppo")
    train = jax.jit(jax.vmap(make_train(config, env, env_params, drift), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(0), seeds)
    params = drift.init(keys[0])
    tic = time.perf_counter()
    compiled = train.lower(keys, params).compile()
    compile_s = time.perf_counter() - tic
    tic = time.perf_counter()
    _, metrics = compiled(keys, params)
    returns = np.asarray(jax.block_until_ready(metrics["episode_return"]))
    run_s = time.perf_counter() - tic
    steps = seeds * config.num_updates * config.steps_per_update
    final = np.nanmean(returns[:, -max(1, returns.shape[1] // 20):], axis=1)
    print(f"    {name} seeds={seeds}: final return per seed {np.round(final, 1).tolist()}")
    return compile_s, run_s, steps / run_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(SETTINGS))
    parser.add_argument("--steps", type=float, default=5e5, help="env steps per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, "
          f"{jax.device_count()} x {jax.devices()[0].device_kind}, jax {jax.__version__}")
    rows = []
    for name in args.envs:
        num_envs = SETTINGS[name]["num_envs"]
        raw = raw_env_steps_per_s(name, num_envs, 1000)
        base_run = None
        for seeds in args.seeds:
            compile_s, run_s, rate = ppo_steps_per_s(name, int(args.steps), seeds)
            base_run = run_s if seeds == args.seeds[0] else base_run
            rows.append((name, num_envs, seeds, compile_s, run_s, rate, raw,
                         run_s / base_run))
    print()
    print("| env | envs | seeds | compile s | run s | PPO steps/s | raw env steps/s "
          "| PPO / raw | wall vs 1st |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, num_envs, seeds, compile_s, run_s, rate, raw, rel in rows:
        print(f"| {name} | {num_envs} | {seeds} | {compile_s:.1f} | {run_s:.1f} | {rate:,.0f} | "
              f"{raw:,.0f} | {rate / raw:.1%} | {rel:.1f}x |")
    print(f"\nreproduce: python benchmarks/ppo_throughput.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
