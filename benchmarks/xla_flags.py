"""Compile and run time of PPO programs under sets of XLA CPU flags.

Each measurement runs in a fresh process with one set of flags added to the package's
own (``default`` adds none) and the compilation cache off, so every compile is real:

* ``compile``: lowering and compiling a tiny CartPole scoring program (PPO training plus
  the final-policy evaluation, 2 seeds vmapped), the kind of program every test and
  every short ``discover`` command compiles;
* ``run``: a second call (compiled already) of CartPole, 4 envs x 128, 2e5 steps, and
  of Breakout-MinAtar, 64 envs x 128, 5e5 steps, 4 seeds vmapped each.

The flag sets alternate over ``--repeats`` rounds, since a shared machine drifts.
Prints a table and the command that reproduces it.

    python benchmarks/xla_flags.py                     # default vs the tests' set, 3 rounds
    python benchmarks/xla_flags.py --repeats 2 -- default \
        "--xla_backend_optimization_level=1" \
        "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

import numpy as np

CHILD = r"""
import json, sys, time
from discovery import envs  # noqa: F401  (the package's XLA flags)
import jax
from discovery.agents.ppo import PPOConfig, make_train
from discovery.drift import make_drift
from discovery.tasks import DriftTaskConfig, make_agent_score
from discovery.envs import registry

out = {}
tiny = DriftTaskConfig(envs=("CartPole-v1",), seeds=2, ppo=PPOConfig(
    num_envs=2, num_steps=16, total_timesteps=64, num_minibatches=2, update_epochs=1))
env, env_params = registry.make("CartPole-v1")
drift = make_drift("lpo")
score = jax.jit(jax.vmap(make_agent_score(tiny, tiny.ppo, env, env_params, drift),
                         in_axes=(0, None, None)))
args = (jax.random.split(jax.random.key(0), 2), drift.init(jax.random.key(1)),
        tiny.ppo.hyperparams())
lowered = score.lower(*args)
tic = time.perf_counter()
lowered.compile()
out["compile"] = time.perf_counter() - tic

settings = {
    "CartPole-v1": PPOConfig(num_envs=4, num_steps=128, total_timesteps=200_000),
    "Breakout-MinAtar": PPOConfig(num_envs=64, num_steps=128, total_timesteps=500_000,
                                  num_minibatches=8, activation="relu", lr=5e-3),
}
ppo = make_drift("ppo")
for name, config in settings.items():
    env, env_params = registry.make(name)
    train = jax.jit(jax.vmap(make_train(config, env, env_params, ppo), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(0), 4)
    params = ppo.init(keys[0])
    jax.block_until_ready(train(keys, params))
    tic = time.perf_counter()
    jax.block_until_ready(train(keys, params))
    out[name] = time.perf_counter() - tic
print(json.dumps(out))
"""


TESTS_FLAGS = "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false"


def measure(flag_set: str) -> dict[str, float]:
    """One fresh process's figures with ``flag_set`` (``default``: none) added."""
    env = dict(os.environ, DISCOVERY_COMPILATION_CACHE="off")
    if flag_set != "default":
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag_set}".strip()
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flag_sets", nargs="*", default=["default", TESTS_FLAGS],
                        help="each one set of XLA_FLAGS, quoted, after '--'; 'default' adds none")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {flags: [] for flags in args.flag_sets}
    for round_index in range(args.repeats):
        for flags in args.flag_sets:
            results[flags].append(measure(flags))
            print(f"round {round_index}, {flags}: {results[flags][-1]}", flush=True)

    print(f"\n{platform.node()} ({os.cpu_count()} CPUs), mean ± s.d. over {args.repeats} "
          "rounds, seconds")
    fields = ["compile", "CartPole-v1", "Breakout-MinAtar"]
    print("| XLA_FLAGS added | tiny program compile | CartPole 2e5 x 4 seeds run "
          "| Breakout 5e5 x 4 seeds run |")
    print("|---|---|---|---|")
    for flags, runs in results.items():
        cells = []
        for name in fields:
            values = np.array([run[name] for run in runs])
            spread = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.2f} ± {spread:.2f}")
        print(f"| {flags} | " + " | ".join(cells) + " |")
    quoted = " ".join(f'"{flags}"' for flags in args.flag_sets)
    print(f"\ncommand: python benchmarks/xla_flags.py --repeats {args.repeats} -- {quoted}")


if __name__ == "__main__":
    main()
