"""Claim: DPO, the closed form of the drift LPO discovered, performs at least as well as
PPO-clip on Brax (Lu et al., 2022, "Discovered Policy Optimisation", abstract).

No meta-training: PPO-clip and DPO train on the Brax tasks with the PPO settings Lu et
al. used there (their Ant setting: 3e7 env steps, 2048 envs x 5 steps, 32 minibatches,
4 epochs, gamma 0.97, lambda 0.95, Adam lr 3e-4, entropy 0.01, reward scaling 10,
observation normalisation) and a 64x64 tanh MLP; both drifts from the same keys, seeds
vmapped. One piece per task and drift; the paper scale needs a GPU (3e7 steps x 10
seeds per piece), and the cpu scale has no pieces: its verdict says why.

The rule (:mod:`discovery.verdicts`), fixed in December 2026 before any piece ran: a
seed's score is its mean episode return over the last 10% of updates (a diverged seed
scores nothing); both drifts share keys, so the unit is the seed, paired across drifts:
its score is the mean over tasks of (DPO - PPO-clip) / |PPO-clip's mean on the task|.
Paired t interval and exact sign-flip p over the seeds; declared effect :data:`EFFECT`,
in the direction DPO above PPO-clip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from discovery.claims_dpo_minatar import FINAL_FRACTION, compare_drifts, train_drift
from discovery.reproduce import Piece, Progress, Report, pending_verdict
from discovery.stats import mean_sd_text
from discovery.verdicts import UNTESTABLE, Verdict, compare, decide

TITLE = "DPO vs PPO-clip on Brax (Lu et al., 2022)"
NAME = "dpo-vs-ppo-brax"
DRIFTS = ("ppo", "dpo")
TASKS = ("brax/ant", "brax/halfcheetah", "brax/hopper", "brax/walker2d")
#: The relative difference (DPO - PPO-clip over PPO-clip's mean, averaged over tasks)
#: that would count: 5% of PPO-clip's return.
EFFECT = 0.05
CLAIM = "DPO trains Brax agents at least as well as PPO-clip"
#: Lu et al.'s Brax PPO (their Ant setting), as PPOConfig fields.
BRAX_PPO = dict(total_timesteps=30_000_000, num_envs=2048, num_steps=5, num_minibatches=32,
                update_epochs=4, gamma=0.97, gae_lambda=0.95, lr=3e-4, adam_b2=0.999,
                ent_coef=0.01, reward_scale=10.0, normalize_obs=True, activation="tanh")
# scale -> (tasks, seeds, PPO fields); the toy scale checks the pipeline only.
SCALES = {
    "toy": (("brax/ant",), 2, dict(BRAX_PPO, total_timesteps=2 * 16 * 4, num_envs=16,
                                   num_steps=2, num_minibatches=2, update_epochs=1)),
    "cpu": ((), 0, BRAX_PPO),
    "paper": (TASKS, 10, BRAX_PPO),
}
#: Why the cpu scale cannot test the claim.
CPU_UNTESTABLE = ("Lu et al.'s Brax budget is 3e8 env steps a piece (10 seeds x 3e7) and 8 "
                  "pieces; a 2-core CPU steps Brax's ant at 12-27 thousand steps a second "
                  "with random actions, before any learning, so a piece would take 3-7 "
                  "hours and the claim 1-2 days, and no smaller budget is the paper's. Run "
                  f"`discover reproduce {NAME} --scale paper` on a GPU")


def pieces(scale: str) -> list[Piece]:
    tasks, seeds, fields = SCALES[scale]
    return [Piece(f"{task}/{drift}", _runner(task, drift, seeds, fields))
            for task in tasks for drift in DRIFTS]


def _runner(task: str, drift_name: str, seeds: int, fields: dict[str, Any]):
    def run(folder: Path, progress: Progress) -> dict[str, Any]:
        _, finals, diverged = train_drift(task, drift_name, seeds, fields, progress)
        return {"task": task, "drift": drift_name, "seeds": seeds, "ppo": dict(fields),
                "final_returns": [None if not np.isfinite(x) else float(x) for x in finals],
                "diverged": [bool(x) for x in diverged]}

    return run



def report(records: dict[str, dict[str, Any]], scale: str, expected: list[str]) -> Report:
    tasks, seeds, fields = SCALES[scale]
    done = [name for name in expected if name in records]
    cells, per_seed, diverged = compare_drifts(records, list(tasks or TASKS))
    rows, per_task = [], {}
    for task, (ppo, dpo, diff) in cells.items():
        per_task[task] = {"ppo": ppo.tolist(), "dpo": dpo.tolist(),
                          "dpo_minus_ppo": diff.as_dict()}
        rows.append(f"| {task} | {_mean_sd(ppo)} | {_mean_sd(dpo)} | "
                    f"{diff.text(1, signed=True)} |")
    overall = compare(per_seed, np.zeros_like(per_seed), paired=True, unit="seed")
    if scale == "cpu":
        verdict = Verdict(UNTESTABLE, f"precondition failed: {CPU_UNTESTABLE}.")
    elif len(done) < len(expected):
        verdict = Verdict("pending", pending_verdict(NAME, scale, len(done),
                                                     len(expected)).split(": ", 1)[1])
    else:
        failed = ["fewer than two seeds have paired finite scores on every task"] \
            if overall.units < 2 else []
        verdict = decide(overall, EFFECT, CLAIM, failed)
    lines = [
        f"## {TITLE} [{scale}]\n",
        "**Paper's claim** (Lu et al., 2022, abstract): LPO and its closed form DPO reach "
        "state-of-the-art performance on Brax, DPO at least as good as PPO-clip.\n",
        f"**What we test**: DPO vs PPO-clip on {', '.join(TASKS)} with Lu et al.'s Brax PPO "
        f"settings; declared effect {EFFECT:g} of PPO-clip's return, in DPO's favour.\n",
        "**Deviations**: brax 0.14's environments (the paper used an earlier brax); a "
        "64x64 tanh MLP for both drifts.\n",
        ("**Units**: no pieces at this scale (the paper scale has 10 seeds per task and drift). "
         if not seeds else f"**Units**: {seeds} seeds per task and drift (the same keys for "
         "both: paired), ") + f"Agents of "
        f"{fields['total_timesteps']:,} env steps, {fields['num_envs']} envs x "
        f"{fields['num_steps']} steps, {fields['update_epochs']} epochs x "
        f"{fields['num_minibatches']} minibatches; score = mean episode return over the last "
        f"{FINAL_FRACTION:.0%} of updates; cells mean (sd); DPO - PPO-clip with the paired "
        f"95% t interval over seeds. Pieces done: {len(done)} of {len(expected)}.\n",
        f"**Preconditions**: a GPU-sized budget (the cpu scale has no pieces); every task "
        f"has paired seeds with finite scores; diverged seeds score nothing (diverged: "
        f"PPO-clip {diverged['ppo']}, DPO {diverged['dpo']}).\n",
        "| task | PPO-clip | DPO | DPO - PPO-clip |",
        "|---|---|---|---|",
        *rows,
        "",
        f"DPO - PPO-clip relative to PPO-clip, a seed's mean over tasks: {overall.text(3)}.\n",
        f"**Verdict**: {verdict.text()}\n",
    ]
    summary = {"claim": NAME, "scale": scale, "pieces_done": done,
               "pieces_expected": expected, "tasks": per_task,
               "relative_difference_per_seed": per_seed.tolist(),
               "relative_difference_over_tasks": overall.interval.as_dict(),
               "sign_flip_p": overall.p, "diverged": diverged}
    return Report("\n".join(lines), summary, verdict.text(), None)


def _mean_sd(values: np.ndarray) -> str:
    return f"{mean_sd_text(values, 1)} ({np.isfinite(values).sum()})" if values.size else "n/a"
