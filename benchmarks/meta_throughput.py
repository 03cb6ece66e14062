"""Meta-training throughput: env steps/s of one ES generation at several population sizes.

Each generation trains ``population x seeds`` PPO agents (vmapped, sharded over devices)
for a lifetime each. Printed beside one PPO agent's env steps/s with the same inner
config in the same process, so the cost of growing the population is visible.

    python benchmarks/meta_throughput.py                      # populations 8 16 32 64
    python benchmarks/meta_throughput.py --devices 2          # 2 forced CPU devices (subprocess)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)

# isort: split
import jax

from discovery.agents.ppo import PPOConfig, make_train
from discovery.meta.es import ESConfig, make_es
from discovery.meta.optimizers import es_optimizer, population_devices
from discovery.tasks import DriftTaskConfig, make_drift_task


def single_agent_steps_per_s(task_config: DriftTaskConfig) -> float:
    env, env_params = envs.make(task_config.envs[0])
    from discovery.drift import make_drift

    drift = make_drift(task_config.drift)
    train = jax.jit(make_train(task_config.ppo, env, env_params, drift))
    params = drift.init(jax.random.key(0))
    jax.block_until_ready(train(jax.random.key(0), params))
    tic = time.perf_counter()
    jax.block_until_ready(train(jax.random.key(1), params))
    ppo = task_config.ppo
    return ppo.num_updates * ppo.steps_per_update / (time.perf_counter() - tic)


def generation_steps_per_s(task, population: int, generations: int = 2) -> tuple[float, float]:
    """(compile s, env steps/s) of the jitted generation step."""
    params = task.init_params(jax.random.key(1))
    es = make_es(ESConfig(population_size=population), params)
    optimizer = es_optimizer(es, task.fitness, population_devices(population))
    state = optimizer.init(jax.random.key(2), params, None, jax.random.key(3))

    def step(state):
        return optimizer.step(state, None)[:2]

    tic = time.perf_counter()
    state, metrics = step(state)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - tic
    tic = time.perf_counter()
    for _ in range(generations):
        state, metrics = step(state)
    jax.block_until_ready(metrics)
    elapsed = (time.perf_counter() - tic) / generations
    ppo = task.config.ppo
    steps = population * task.config.seeds * ppo.num_updates * ppo.steps_per_update
    return compile_s, steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--steps", type=int, default=8192, help="agent lifetime in env steps")
    parser.add_argument("--seeds", type=int, default=1, help="agents per member")
    parser.add_argument("--devices", type=int, default=1, help="forced CPU devices (subprocess)")
    args = parser.parse_args()
    odd = [p for p in args.populations if p < 2 or p % 2]
    if odd:
        parser.error(f"--populations: got {odd}; allowed: even sizes >= 2 (OpenAI-ES samples "
                     "antithetic pairs; one agent's rate is printed as the first row anyway)")
    if args.devices > 1 and len(jax.devices()) != args.devices:
        env = dict(os.environ)
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={args.devices}"
        )
        argv = [a for a in sys.argv[1:]]
        sys.exit(subprocess.run([sys.executable, __file__, *argv], env=env).returncode)

    task_config = DriftTaskConfig(
        envs=("CartPole-v1",), seeds=args.seeds, baseline_seeds=1,
        ppo=PPOConfig(total_timesteps=args.steps, lr=1e-2),
    )
    print(f"jax {jax.__version__}, {len(jax.devices())} x {jax.devices()[0].device_kind}; "
          f"CartPole-v1, lifetime {args.steps} steps, {args.seeds} seed(s) per member, LPO")
    single = single_agent_steps_per_s(task_config)
    task = make_drift_task(task_config, jax.random.key(0))
    print("| population | agents | compile s | env steps/s | x one agent's steps/s |")
    print("|---|---|---|---|---|")
    print(f"| 1 agent, plain PPO | 1 | - | {single:,.0f} | 1.0 |", flush=True)
    for population in args.populations:
        compile_s, rate = generation_steps_per_s(task, population)
        print(f"| {population} | {population * args.seeds} | {compile_s:.1f} | {rate:,.0f} | "
              f"{rate / single:.2f} |", flush=True)
    print(f"\nreproduce: python benchmarks/meta_throughput.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
