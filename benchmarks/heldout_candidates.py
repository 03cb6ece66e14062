"""Which (env, budget) pairs can make up the held-out suite of the issue "Discover
something that beats PPO-clip where it was never trained": the suite must sit where
PPO-clip is clearly above random play and clearly below its ceiling, so that a
discovered component can both win and lose there. This measures it, before any
meta-training, so that the suite is declared from data and never tuned afterwards.

Per candidate, PPO-clip trains ``--seeds`` agents at the budget and at ``CEILING_FACTOR``
times it (its ceiling as far as this agent goes), and random play is measured. Score:
the training return over the last 10% of updates (each env's last finished episode).
With ``R`` random play's return, ``P`` PPO-clip's at the budget and ``C`` at the ceiling
budget, ``f = (P - R) / (C - R)`` is the fraction of the reachable gap PPO-clip covers.

The rule, fixed here before the first measurement: a candidate **qualifies** when
``F_LOW <= f <= F_HIGH``, PPO-clip beats random play (one-sample t interval of ``P_i -
R`` over seeds above 0) and the ceiling budget beats the budget (Welch interval of
``C - P`` above 0).

PPO settings: MinAtar games use the per-game settings of the MinAtar claim
(``discovery.claims_dpo_minatar``: 64 envs x 128 steps, per-game Adam lr and b2); every
other env uses ``OTHER_PPO`` (purejaxrl's CartPole PPO with 8 envs).

    python benchmarks/heldout_candidates.py           # every candidate (hours on a CPU)
    python benchmarks/heldout_candidates.py --envs Catch-bsuite,Acrobot-v1 --seeds 8
    python benchmarks/heldout_candidates.py --toy     # two tiny candidates, a minute
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from discovery import envs

# isort: split
import jax
import numpy as np

from discovery import stats
from discovery.agents.ppo import PPOConfig
from discovery.claims_dpo_minatar import GAMES, MINATAR_PPO
from discovery.tasks import random_policy_return
from discovery.train import TrainConfig, train_seeds

CEILING_FACTOR = 4
F_LOW, F_HIGH = 0.2, 0.8
FINAL_FRACTION = 0.1
OTHER_PPO = PPOConfig(num_envs=8, num_steps=128, total_timesteps=100_000, update_epochs=4,
                      num_minibatches=4, lr=2.5e-4)

#: Candidates by kind of env: (name, budgets in env steps per agent).
CANDIDATES: dict[str, list[tuple[str, tuple[float, ...]]]] = {
    "classic control": [("CartPole-v1", (5e4, 1e5)), ("Acrobot-v1", (5e4, 1e5)),
                        ("MountainCar-v0", (2e5,))],
    "bsuite": [("Catch-bsuite", (2e4, 5e4)), ("DeepSea-bsuite", (1e5,)),
               ("UmbrellaChain-bsuite", (5e4,)), ("MemoryChain-bsuite", (5e4,))],
    "misc": [("FourRooms-misc", (5e4,))],
    "MinAtar": [("Breakout-MinAtar", (5e5, 1e6)), ("SpaceInvaders-MinAtar", (5e5, 1e6)),
                ("Asterix-MinAtar", (1e6,)), ("Freeway-MinAtar", (1e6,))],
}
TOY = {"toy": [("CartPole-v1", (2048.0,)), ("Catch-bsuite", (2048.0,))]}


def ppo_for(env: str, budget: float, toy: bool) -> PPOConfig:
    """PPO-clip's settings on ``env`` at ``budget`` env steps per agent."""
    if toy:
        return replace(OTHER_PPO, num_envs=4, num_steps=16, num_minibatches=2,
                       update_epochs=1, total_timesteps=int(budget))
    if env in GAMES:
        lr, b2, _ = GAMES[env]
        base = PPOConfig(**{**MINATAR_PPO, "lr": lr, "adam_b2": b2})
    else:
        base = OTHER_PPO
    return replace(base, total_timesteps=int(budget))


def final_returns(env: str, ppo: PPOConfig, seeds: int, seed: int) -> np.ndarray:
    """PPO-clip's per-seed training return over the last 10% of updates (NaN: diverged)."""
    config = TrainConfig(env=env, drift="ppo", seeds=seeds, seed=seed, ppo=ppo)
    return train_seeds(config).final_returns(FINAL_FRACTION)


def judge(random: float, at_budget: np.ndarray, at_ceiling: np.ndarray) -> dict:
    """The rule above on one candidate's measurements."""
    p, c = np.nanmean(at_budget), np.nanmean(at_ceiling)
    gap = c - random
    fraction = (p - random) / gap if abs(gap) > 1e-9 else float("nan")
    above_random = stats.t_interval(at_budget - random)
    below_ceiling = stats.welch_interval(at_ceiling, at_budget)
    qualifies = bool(F_LOW <= fraction <= F_HIGH and above_random.low > 0
                     and below_ceiling.low > 0)
    return {"fraction": fraction, "above_random": above_random,
            "below_ceiling": below_ceiling, "qualifies": qualifies}


def seeds_text(values: np.ndarray) -> str:
    """``mean (sd)`` over the finite seeds, with ``(n of N)`` when some diverged."""
    finite = int(np.isfinite(values).sum())
    count = "" if finite == values.size else f" ({finite} of {values.size})"
    return stats.mean_sd_text(values) + count


def fraction_text(fraction: float) -> str:
    """``f``, or why there is none (PPO-clip at the ceiling budget equals random play)."""
    return f"{fraction:.2f}" if np.isfinite(fraction) else "n/a (no gap to random play)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default="", help="comma-separated subset of the candidates")
    parser.add_argument("--seeds", type=int, default=16, help="PPO-clip agents per budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--toy", action="store_true", help="two tiny candidates")
    args = parser.parse_args()
    candidates = TOY if args.toy else CANDIDATES
    wanted = {name.strip() for name in args.envs.split(",") if name.strip()}
    known = {env for rows in candidates.values() for env, _ in rows}
    if wanted - known:
        parser.error(f"--envs: {', '.join(sorted(wanted - known))}: not a candidate; "
                     f"allowed: {', '.join(sorted(known))}")
    print(f"# held-out suite candidates: {args.seeds} seeds, ceiling at x{CEILING_FACTOR}, "
          f"qualifies when {F_LOW} <= f <= {F_HIGH} and both intervals exclude 0; "
          f"{jax.device_count()} x {jax.devices()[0].device_kind}")
    print("| kind | env | budget | random | PPO-clip | PPO-clip at ceiling | f | "
          "PPO - random [95% CI] | ceiling - PPO [95% CI] | qualifies | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, rows in candidates.items():
        for env, budgets in rows:
            if wanted and env not in wanted:
                continue
            envs.make(env)  # a bad name fails here, before any training
            random = random_policy_return(env, jax.random.key(args.seed + 1))
            for budget in budgets:
                tic = time.perf_counter()
                at_budget = final_returns(env, ppo_for(env, budget, args.toy), args.seeds,
                                          args.seed)
                at_ceiling = final_returns(
                    env, ppo_for(env, budget * CEILING_FACTOR, args.toy), args.seeds, args.seed)
                verdict = judge(random, at_budget, at_ceiling)
                ar, bc = verdict["above_random"], verdict["below_ceiling"]
                print(f"| {kind} | {env} | {budget:.0e} | {random:.3g} | "
                      f"{seeds_text(at_budget)} | {seeds_text(at_ceiling)} | "
                      f"{fraction_text(verdict['fraction'])} | {ar.estimate:+.3g} [{ar.low:+.3g}, "
                      f"{ar.high:+.3g}] | {bc.estimate:+.3g} [{bc.low:+.3g}, {bc.high:+.3g}] | "
                      f"{'yes' if verdict['qualifies'] else 'no'} | "
                      f"{time.perf_counter() - tic:.0f} |", flush=True)
    print(f"# reproduce: python benchmarks/heldout_candidates.py --seeds {args.seeds}"
          + (" --toy" if args.toy else "") + (f" --envs {args.envs}" if args.envs else ""))


if __name__ == "__main__":
    main()
