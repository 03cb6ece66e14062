"""Our PPO beside a from-scratch minimal PPO on the same configs, and whether a second
CPU core can be reached: what bounds issue "Speed"'s targets on this machine.

The floor is the textbook PPO-clip recipe (Schulman et al., 2017) in one function and
nothing else: no truncation bootstrapping, no episode statistics beyond the return, no
drift function. If ours runs at the floor's speed, what is left to gain is in the
arithmetic both share, and on a CPU that means using more cores. ``--probe-cores``
checks the ways one JAX process could use a second core (two forced host devices with a
program dispatched to each; two independent vmapped groups in one program, with and
without the scheduler flag the package sets), each in its own process with a time
limit, since they can hang jaxlib 0.10 on CPU.

    python benchmarks/ppo_floor.py --configs cartpole-4x4 --rounds 2
    python benchmarks/ppo_floor.py --configs cartpole-4x4 --rounds 0 --probe-cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ppo_vs_commit import CONFIGS  # noqa: E402


def floor_train(env_name: str, fields: dict[str, Any]):
    """``train(key) -> episode returns [num_updates]`` of the minimal PPO-clip."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from discovery import envs

    env, env_params = envs.make(env_name)
    num_envs, num_steps = fields["num_envs"], fields["num_steps"]
    epochs, minibatches, lr = fields["update_epochs"], fields["num_minibatches"], fields["lr"]
    batch_size = num_envs * num_steps
    num_updates = fields["total_timesteps"] // batch_size
    activation = nn.relu if fields.get("activation") == "relu" else nn.tanh
    gamma, gae_lambda, clip, ent_coef, vf_coef = 0.99, 0.95, 0.2, 0.01, 0.5

    class Network(nn.Module):
        @nn.compact
        def __call__(self, obs):
            x = obs.reshape(obs.shape[:-len(env.observation_space(env_params).shape)] + (-1,))
            init = nn.initializers.orthogonal
            actor = activation(nn.Dense(64, kernel_init=init(np.sqrt(2)))(x))
            actor = activation(nn.Dense(64, kernel_init=init(np.sqrt(2)))(actor))
            logits = nn.Dense(env.action_space(env_params).n, kernel_init=init(0.01))(actor)
            critic = activation(nn.Dense(64, kernel_init=init(np.sqrt(2)))(x))
            critic = activation(nn.Dense(64, kernel_init=init(np.sqrt(2)))(critic))
            return logits, nn.Dense(1, kernel_init=init(1.0))(critic)[..., 0]

    network = Network()
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def schedule(count):
        return lr * (1.0 - (count // (epochs * minibatches)) / num_updates)

    optimizer = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(schedule, eps=1e-5))

    def loss_fn(params, batch):
        obs, action, old_log_prob, old_value, advantage, target = batch
        logits, value = network.apply(params, obs)
        log_probs = jax.nn.log_softmax(logits)
        log_prob = jnp.take_along_axis(log_probs, action[:, None], -1)[:, 0]
        ratio = jnp.exp(log_prob - old_log_prob)
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        actor = -jnp.minimum(ratio * advantage, jnp.clip(ratio, 1 - clip, 1 + clip) * advantage)
        clipped = old_value + jnp.clip(value - old_value, -clip, clip)
        critic = 0.5 * jnp.maximum((value - target) ** 2, (clipped - target) ** 2)
        entropy = -(jnp.exp(log_probs) * log_probs).sum(-1)
        return actor.mean() + vf_coef * critic.mean() - ent_coef * entropy.mean()

    def train(key):
        key, key_reset, key_init = jax.random.split(key, 3)
        obs, env_state = reset(jax.random.split(key_reset, num_envs), env_params)
        params = network.init(key_init, obs)
        running = jnp.zeros(num_envs)

        def update(carry, key):
            params, opt_state, env_state, obs, running = carry

            def act(carry, key):
                env_state, obs, running = carry
                key_act, key_env = jax.random.split(key)
                logits, value = network.apply(params, obs)
                action = jax.random.categorical(key_act, logits)
                log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)
                next_obs, env_state, reward, terminated, truncated, _ = step(
                    jax.random.split(key_env, num_envs), env_state, action, env_params
                )
                done = terminated | truncated
                running = running + reward
                finished = jnp.where(done, running, 0.0)
                running = jnp.where(done, 0.0, running)
                out = (obs, action, log_prob[:, 0], value, reward, done, finished)
                return (env_state, next_obs, running), out

            key_rollout, key_epochs = jax.random.split(key)
            (env_state, obs, running), rollout = jax.lax.scan(
                act, (env_state, obs, running), jax.random.split(key_rollout, num_steps)
            )
            observations, actions, log_probs, values, rewards, dones, finished = rollout
            _, last_value = network.apply(params, obs)

            def backward(carry, step_data):
                advantage, next_value = carry
                done, value, reward = step_data
                delta = reward + gamma * next_value * (1 - done) - value
                advantage = delta + gamma * gae_lambda * (1 - done) * advantage
                return (advantage, value), advantage

            _, advantages = jax.lax.scan(
                backward, (jnp.zeros_like(last_value), last_value), (dones, values, rewards),
                reverse=True,
            )
            batch = (observations, actions, log_probs, values, advantages, advantages + values)
            batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), batch)

            def epoch(carry, key):
                permutation = jax.random.permutation(key, batch_size)
                shuffled = jax.tree.map(
                    lambda x: x[permutation].reshape((minibatches, -1) + x.shape[1:]), batch
                )

                def minibatch(carry, minibatch):
                    params, opt_state = carry
                    grads = jax.grad(loss_fn)(params, minibatch)
                    updates, opt_state = optimizer.update(grads, opt_state, params)
                    return (optax.apply_updates(params, updates), opt_state), None

                return jax.lax.scan(minibatch, carry, shuffled)[0], None

            (params, opt_state), _ = jax.lax.scan(
                epoch, (params, opt_state), jax.random.split(key_epochs, epochs)
            )
            ended = dones.sum()
            mean_return = jnp.where(ended > 0, finished.sum() / jnp.maximum(ended, 1), jnp.nan)
            return (params, opt_state, env_state, obs, running), mean_return

        carry = (params, optimizer.init(params), env_state, obs, running)
        return jax.lax.scan(update, carry, jax.random.split(key, num_updates))[1]

    return train, num_updates * batch_size


def measure_floor(env_name: str, fields: dict[str, Any], seeds: int) -> dict[str, float]:
    """The floor's ``compile_s``, ``run_s``, ``steps_per_s`` and ``final_return``, measured
    like ``ppo_speed.measure_ppo``."""
    from ppo_speed import time_seeds

    train, steps = floor_train(env_name, fields)
    return time_seeds(train, seeds, steps)


def measure_ours_split(env_name: str, fields: dict[str, Any], seeds: int,
                       how: str) -> dict[str, float]:
    """Ours with the seeds in one vmapped program (``how="one"``, as shipped), in two
    independent vmapped halves of one program (``"groups"``), or in two halves on two
    forced host devices, one program dispatched to each (``"devices"``). Also the CPU
    cores the run kept busy (process CPU time over wall time, compile excluded)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from discovery import envs
    from discovery.agents.ppo import PPOConfig, make_train
    from discovery.drift import make_drift

    env, env_params = envs.make(env_name)
    config = PPOConfig(**fields)
    drift = make_drift("ppo")
    train = make_train(config, env, env_params, drift)
    params = drift.init(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), seeds)
    vmapped = jax.vmap(lambda key: train(key, params)[1]["episode_return"])
    if how == "devices":
        parts = [jax.device_put(keys[i::2], device) for i, device in enumerate(jax.devices())]
        programs = [jax.jit(vmapped).lower(part).compile() for part in parts]
    elif how == "groups":
        halves = jax.jit(lambda keys: jnp.concatenate([vmapped(keys[0::2]), vmapped(keys[1::2])]))
        parts, programs = [keys], [halves.lower(keys).compile()]
    else:
        parts, programs = [keys], [jax.jit(vmapped).lower(keys).compile()]
    wall, cpu = time.perf_counter(), time.process_time()
    outputs = [program(part) for program, part in zip(programs, parts)]
    returns = np.concatenate([np.asarray(jax.block_until_ready(o)) for o in outputs])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    steps = seeds * config.num_updates * config.steps_per_update
    return {"run_s": wall, "steps_per_s": steps / wall, "cores": cpu / wall,
            "final_return": float(np.nanmean(returns[:, -max(1, returns.shape[1] // 10):]))}


def child(kind: str, config: str, timeout_s: float,
          env: dict[str, str] | None = None) -> dict[str, float] | None:
    """Run one measurement in a fresh process: its result, or ``None`` if it did not end
    within ``timeout_s``."""
    try:
        done = subprocess.run([sys.executable, __file__, "--child", kind, config],
                              capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"{kind} {config} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_child(kind: str, config: str) -> None:
    """The body of one ``--child`` process: print one JSON measurement."""
    env_name, fields, seeds = CONFIGS[config]
    if kind == "ours":
        from ppo_speed import measure_ppo

        result = measure_ppo(env_name, fields, seeds)
    elif kind == "floor":
        result = measure_floor(env_name, fields, seeds)
    else:
        result = measure_ours_split(env_name, fields, seeds, kind)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=sorted(CONFIGS))
    parser.add_argument("--rounds", type=int, default=2, help="alternating floor/ours rounds")
    parser.add_argument("--probe-cores", action="store_true",
                        help="also try the ways to a second core (time-limited)")
    parser.add_argument("--probe-timeout", type=float, default=180.0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(*args.child)
        return
    print("| config | floor env steps/s | ours | ours / floor (median) "
          "| final return floor / ours |")
    print("|---|---|---|---|---|")
    for config in args.configs:
        floor, ours = [], []
        for _ in range(args.rounds):
            floor.append(child("floor", config, 3600))
            ours.append(child("ours", config, 3600))
        if args.rounds:
            ratio = statistics.median(o["steps_per_s"] / f["steps_per_s"]
                                      for f, o in zip(floor, ours))
            rates = [", ".join(f"{m['steps_per_s'] / 1e3:.0f} k" for m in measured)
                     for measured in (floor, ours)]
            print(f"| {config} | {rates[0]} | {rates[1]} | {ratio:.2f} | "
                  f"{floor[-1]['final_return']:.1f} / {ours[-1]['final_return']:.1f} |", flush=True)
    if args.probe_cores:
        print("\n| config | how | env steps/s | CPU cores busy (CPU time / wall, run only) |")
        print("|---|---|---|---|")
        def with_flag(flag: str) -> dict[str, str]:
            return {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flag}"}

        # The package adds the scheduler flag that keeps jaxlib 0.10 from hanging unless
        # XLA_FLAGS already sets it; the last probe sets it the other way.
        concurrent = with_flag("--xla_cpu_enable_concurrency_optimized_scheduler=true")
        for config in args.configs:
            for kind, how, env in [
                ("one", "one vmapped program (as shipped)", None),
                ("groups", "two vmapped halves in one program", None),
                ("devices", "two forced host devices, a program each",
                 with_flag("--xla_force_host_platform_device_count=2")),
                ("groups", "two halves, XLA's concurrency-optimised scheduler on", concurrent),
            ]:
                result = child(kind, config, args.probe_timeout, env)
                if result is None:
                    print(f"| {config} | {how} | hung (killed after {args.probe_timeout:.0f} s)"
                          " | - |", flush=True)
                else:
                    print(f"| {config} | {how} | {result['steps_per_s']:,.0f} | "
                          f"{result['cores']:.2f} |", flush=True)
    print(f"\nreproduce: python benchmarks/ppo_floor.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
