"""Why an Asterix-MinAtar piece of ``dpo-vs-ppo-minatar`` took over 4.4 min on an H200
when the other games' took 2-3 min (BENCHMARKS.md, stop 28): each game's PPO at the
claim's paper settings, timed apart, so that one GPU run tells whether the env step, the
episode length or compile is what differs.

Per game, three measurements at the piece's settings (``claims_dpo_minatar``: 64 envs x
128 steps, 4 epochs, 8 minibatches, MLP 2x64 ReLU, the game's Adam lr and b2, 10 seeds
vmapped, PPO-clip):

* **PPO**: ``--updates`` updates under one ``jit(vmap)`` over the seeds: compile s
  (the piece's program has the same shapes, only a longer scan) and env steps/s;
* **env step alone**: random actions in the same number of envs (seeds x 64), stepped
  ``--env-steps`` times by ``lax.scan`` with the env's own auto-reset: env steps/s with
  no network, and the mean episode length of random play;
* the mean episode length of the PPO agents over the timed updates.

The last column projects a whole piece run alone on the card (compile + 1e7 steps per
seed at the measured rate), to set beside stop 28's wall times (those ran eight pieces
side by side). If Asterix's env-only rate is far below the others', the env step is the
cause; if its compile is, compile; if neither, look at what its episode length changes.

    python benchmarks/minatar_probe.py          # on a GPU: about 1.5 minutes
    python benchmarks/minatar_probe.py --toy    # anywhere: two games, tiny
"""

from __future__ import annotations

import argparse
import time
import warnings

from discovery import envs

# isort: split
import jax
import numpy as np
from gpu_card import card, print_device

from discovery.agents.ppo import PPOConfig, make_train
from discovery.claims_dpo_minatar import GAMES, MINATAR_PPO, SCALES
from discovery.drift import make_drift

PAPER_GAMES, PAPER_SEEDS, _ = SCALES["paper"]


def time_program(function, *args) -> tuple[float, float, object]:
    """``(compile s, run s, outputs as numpy)`` of ``jax.jit(function)(*args)``."""
    tic = time.perf_counter()
    compiled = jax.jit(function).lower(*args).compile()
    compile_s = time.perf_counter() - tic
    tic = time.perf_counter()
    outputs = jax.device_get(jax.block_until_ready(compiled(*args)))
    return compile_s, time.perf_counter() - tic, outputs


def probe_ppo(game: str, fields: dict, seeds: int, updates: int) -> dict[str, float]:
    """PPO-clip on ``game`` for ``updates`` updates, ``seeds`` vmapped: compile s, env
    steps/s, seconds per update, mean episode length and return."""
    lr, adam_b2, _ = GAMES[game]
    steps_per_update = fields["num_envs"] * fields["num_steps"]
    config = PPOConfig(lr=lr, adam_b2=adam_b2,
                       **{**fields, "total_timesteps": updates * steps_per_update})
    env, env_params = envs.make(game)
    drift = make_drift("ppo")
    train = make_train(config, env, env_params, drift)
    params = drift.init(jax.random.key(0))

    def run(keys):
        metrics = jax.vmap(lambda key: train(key, params)[1])(keys)
        return metrics["episode_length"], metrics["episode_return"]

    compile_s, run_s, (lengths, returns) = time_program(
        run, jax.random.split(jax.random.key(1), seeds))
    with warnings.catch_warnings():  # updates in which no episode ended are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"compile_s": compile_s, "steps_per_s": seeds * updates * steps_per_update / run_s,
                "update_s": run_s / updates, "episode_length": float(np.nanmean(lengths)),
                "episode_return": float(np.nanmean(returns))}


def probe_env(game: str, num_envs: int, steps: int) -> dict[str, float]:
    """``num_envs`` copies of ``game`` stepped ``steps`` times with uniform random actions
    (the env's auto-reset included): compile s, env steps/s, mean episode length."""
    env, env_params = envs.make(game)
    actions = env.action_space(env_params).n
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def run(key):
        key_reset, key_steps = jax.random.split(key)
        _, state = reset(jax.random.split(key_reset, num_envs), env_params)

        def one(state, key):
            key_action, key_step = jax.random.split(key)
            action = jax.random.randint(key_action, (num_envs,), 0, actions)
            _, state, _, terminated, truncated, _ = step(
                jax.random.split(key_step, num_envs), state, action, env_params)
            return state, (terminated | truncated).sum()

        _, ended = jax.lax.scan(one, state, jax.random.split(key_steps, steps))
        return ended.sum()

    compile_s, run_s, ended = time_program(run, jax.random.key(2))
    total = num_envs * steps
    return {"compile_s": compile_s, "steps_per_s": total / run_s,
            "episode_length": total / ended if ended else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toy", action="store_true", help="tiny sizes, for CI on a CPU")
    parser.add_argument("--updates", type=int, default=32, help="PPO updates timed per game")
    parser.add_argument("--env-steps", type=int, default=2048,
                        help="random-action steps per env timed per game")
    args = parser.parse_args()
    if args.toy:
        games, seeds, updates, env_steps = ("Asterix-MinAtar", "Breakout-MinAtar"), 2, 2, 64
        fields = dict(MINATAR_PPO, num_envs=4, num_steps=16, update_epochs=1,
                      num_minibatches=2)
    else:
        games, seeds, updates, env_steps = PAPER_GAMES, PAPER_SEEDS, args.updates, args.env_steps
        fields = dict(MINATAR_PPO)
    paper_updates = MINATAR_PPO["total_timesteps"] // (fields["num_envs"] * fields["num_steps"])
    start = time.perf_counter()
    print_device()
    print(f"settings: {seeds} seeds vmapped x {fields['num_envs']} envs x "
          f"{fields['num_steps']} steps, {updates} PPO updates timed, {env_steps} random steps "
          f"per env; projection: compile + {paper_updates} updates")
    print("| card | game | PPO compile s | PPO env steps/s | s per update | env step alone, "
          "random actions (env steps/s) | env-only compile s | episode length random / PPO "
          "| projected piece alone, 1e7 steps x seeds |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for game in games:
        ppo = probe_ppo(game, fields, seeds, updates)
        alone = probe_env(game, seeds * fields["num_envs"], env_steps)
        piece_s = ppo["compile_s"] + paper_updates * ppo["update_s"]
        print(f"| {card()} | {game} | {ppo['compile_s']:.1f} | {ppo['steps_per_s']:,.0f} | "
              f"{ppo['update_s']:.4f} | {alone['steps_per_s']:,.0f} | {alone['compile_s']:.1f} "
              f"| {alone['episode_length']:.0f} / {ppo['episode_length']:.0f} | "
              f"{piece_s:.0f} s ({seeds} seeds) |", flush=True)
    print(f"\nwall time: {time.perf_counter() - start:.0f} s")
    print(f"reproduce: python benchmarks/minatar_probe.py"
          f"{' --toy' if args.toy else f' --updates {updates} --env-steps {env_steps}'}")


if __name__ == "__main__":
    main()
