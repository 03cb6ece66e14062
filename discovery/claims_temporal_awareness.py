"""Claim: a temporally-aware drift degrades less away from the training horizon it was
meta-trained for (Jackson et al., 2024, "Discovering Temporally-Aware Reinforcement
Learning Algorithms").

LPO and TA-LPO (the drift that also sees the training progress n/N) are meta-trained by
ES on the same task with the same budget, several meta-seeds each; every discovered
drift then trains fresh PPO agents (new seeds) at 0.25x to 4x the meta-training horizon,
beside PPO-clip and DPO on the same keys. Scores are normalised per env and horizon
(random play 0, PPO-clip 1). One piece per drift and meta-seed: meta-training (resumable
from its checkpoints) and the horizon evaluation (about 8 min on 2 CPU cores at cpu
scale).

The rule, fixed before the cpu run: a drift's *degradation* is its normalised score at
the meta-training horizon minus its mean normalised score at the other horizons. The
claim holds if the 95% CI of LPO's degradation minus TA-LPO's lies above zero and
TA-LPO's mean off-horizon score is not below LPO's; it does not hold if that CI lies
below zero or TA-LPO's off-horizon score is below LPO's with its CI; otherwise it is
inconclusive. CIs come from a two-level bootstrap: meta-seeds, then evaluation seeds
within each (paired across horizons).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from discovery.claims_dpo_minatar import GAMES, MINATAR_PPO
from discovery.reproduce import (
    Piece,
    Progress,
    Report,
    build_config,
    counted,
    es_fitness_text,
    meta_train_and_evaluate,
    meta_training_lines,
    normalised_scores,
    pending_verdict,
)
from discovery.stats import hierarchical_difference_ci, hierarchical_mean_ci, runs_to_settle

TITLE = "Temporal awareness at unseen horizons: LPO vs TA-LPO (Jackson et al., 2024)"
DRIFTS = ("lpo", "ta_lpo")
LABELS = {"lpo": "LPO", "ta_lpo": "TA-LPO"}
EVAL_SEED = 1000  # fresh agents: far from every meta-training seed


@dataclass(frozen=True)
class Scale:
    """One scale of the claim: the meta-training run (any drift and seed), how many
    meta-seeds per drift, and the held-out evaluation."""

    meta_train: dict[str, Any]
    meta_seeds: int
    eval_seeds: int
    horizons: tuple[float, ...]


def _toy() -> dict[str, Any]:
    # The pipeline tests' toy drift run (tests/toys.py), so CI compiles its programs once.
    return {
        "generations": 2, "checkpoint_every": 1,
        "task": {"envs": ["CartPole-v1"], "seeds": 1, "normalise": "none",
                 "ppo": {"num_envs": 2, "num_steps": 16, "total_timesteps": 64,
                         "num_minibatches": 2, "update_epochs": 1, "lr": 2.5e-4}},
        "es": {"population_size": 4},
    }


def _minatar() -> dict[str, Any]:
    # The LPO / TA-LPO MinAtar setting (Lu et al., 2022; Jackson et al., 2024): OpenAI-ES
    # with population 64 (ESConfig's other defaults are the paper's), 800 generations,
    # fitness = final evaluation return over the published PPO returns, per-game Adam.
    return {
        "generations": 800, "checkpoint_every": 10,
        "task": {"envs": list(GAMES), "seeds": 1, "score": "evaluation",
                 "env_lr": [GAMES[g][0] for g in GAMES],
                 "env_adam_b2": [GAMES[g][1] for g in GAMES],
                 "normalise": "fixed", "normalisers": [GAMES[g][2] for g in GAMES],
                 "ppo": dict(MINATAR_PPO)},
        "es": {"population_size": 64},
    }


HORIZONS = (0.25, 0.5, 1.0, 2.0, 4.0)
SCALES = {
    "toy": Scale(_toy(), meta_seeds=1, eval_seeds=2, horizons=(1.0, 2.0)),
    # The README demo's task (CartPole, PPO agents of 8,192 steps at lr 1e-2, ES
    # population 16, 40 generations): the regime where a learned drift beat PPO-clip.
    "cpu": Scale({}, meta_seeds=3, eval_seeds=16, horizons=HORIZONS),
    "paper": Scale(_minatar(), meta_seeds=3, eval_seeds=10, horizons=HORIZONS),
}


def meta_train_config(scale: str, drift: str, meta_seed: int) -> Any:
    """The meta-training config of one piece: the scale's run with this drift and seed."""
    from discovery.drift_training import MetaTrainConfig

    return build_config(MetaTrainConfig, SCALES[scale].meta_train, {
        "name": f"{drift.replace('_', '-')}-meta-seed-{meta_seed}", "seed": meta_seed,
        "task": {"drift": drift}}, source=f"the {scale} scale of {TITLE}")


def pieces(scale: str) -> list[Piece]:
    return [Piece(f"{drift}/meta-seed-{seed}", _runner(scale, drift, seed))
            for seed in range(SCALES[scale].meta_seeds) for drift in DRIFTS]


def _runner(scale: str, drift: str, meta_seed: int):
    def run(folder: Path, progress: Progress) -> dict[str, Any]:
        from discovery.evaluate import EvaluateConfig

        setting = SCALES[scale]
        evaluation = EvaluateConfig(seeds=setting.eval_seeds, horizons=setting.horizons,
                                    seed=EVAL_SEED)
        return {"drift": drift, "meta_seed": meta_seed,
                **meta_train_and_evaluate(meta_train_config(scale, drift, meta_seed), folder,
                                          evaluation, progress=progress)}

    return run


def _key(horizon: float) -> str:
    return f"{horizon:g}"


def _over_envs(record: dict[str, Any], method: str) -> np.ndarray:
    """``[horizons, eval seeds]``: ``method``'s normalised score averaged over the envs."""
    return normalised_scores(record, method).mean(axis=1)


def _statistics(horizons: list[str]) -> dict[str, Any]:
    """Statistics of meta-seeds' ``[..., H, S]`` normalised scores (one value each)."""
    at = horizons.index(_key(1.0)) if _key(1.0) in horizons else None
    off = [i for i, h in enumerate(horizons) if h != _key(1.0)]

    def mean_at(i):
        return lambda m: np.nanmean(m[..., i, :], axis=-1)

    def off_mean(m):
        return np.nanmean(m[..., off, :], axis=(-2, -1)) if off else np.nan * m[..., 0, 0]

    def degradation(m):
        return mean_at(at)(m) - off_mean(m) if at is not None else np.nan * m[..., 0, 0]

    return {"per_horizon": [mean_at(i) for i in range(len(horizons))],
            "off_horizon": off_mean, "degradation": degradation}


def report(records: dict[str, dict[str, Any]], scale: str, expected: list[str]) -> Report:
    setting = SCALES[scale]
    horizons = [_key(h) for h in setting.horizons]
    stat = _statistics(horizons)
    done = [name for name in expected if name in records]
    learned = {d: [_over_envs(records[n], "learned") for n in done
                   if records[n]["drift"] == d] for d in DRIFTS}
    dpo = [_over_envs(records[n], "dpo") for n in done]
    length = next((records[n]["training_length"] for n in done), None)
    ppo_returns = {h: [x for n in done for runs in records[n]["final"][h].values()
                       for x in runs["ppo_clip"] if x is not None] for h in horizons}

    rows, per_horizon = [], {}
    for i, h in enumerate(horizons):
        cells = {d: hierarchical_mean_ci(learned[d], stat["per_horizon"][i], seed=i)
                 for d in DRIFTS}
        dpo_cell = hierarchical_mean_ci(dpo, stat["per_horizon"][i], seed=i)
        per_horizon[h] = {**{d: cells[d].as_dict() for d in DRIFTS}, "dpo": dpo_cell.as_dict()}
        steps = f"{int(round(length * float(h))):,}" if length else "?"
        ppo = f"{np.mean(ppo_returns[h]):.1f}" if ppo_returns[h] else "n/a"
        mark = " (meta-trained)" if h == _key(1.0) else ""
        rows.append(f"| x{h}{mark} | {steps} | {ppo} | {dpo_cell.text()} | "
                    f"{cells['lpo'].text()} | {cells['ta_lpo'].text()} |")
    degradation = {d: hierarchical_mean_ci(learned[d], stat["degradation"], seed=100)
                   for d in DRIFTS}
    gap = hierarchical_difference_ci(learned["lpo"], learned["ta_lpo"], stat["degradation"],
                                     seed=200)
    off = hierarchical_difference_ci(learned["ta_lpo"], learned["lpo"], stat["off_horizon"],
                                     seed=300)
    verdict = _verdict(gap, off, scale, len(done), len(expected), setting.meta_seeds)
    counts = {d: len(learned[d]) for d in DRIFTS}
    config = meta_train_config(scale, "lpo", 0)
    task = config.task
    lines = [
        f"## {TITLE} [{scale}]\n",
        "**Paper**: a drift that sees the training progress n/N (TA-LPO) keeps its "
        "advantage at training horizons it was not meta-trained for, where LPO's "
        "discovered drift falls back (Jackson et al., 2024).\n",
        f"**Setup**: LPO and TA-LPO meta-trained by ES ({config.generations} generations, "
        f"population {config.es.population_size}) on {', '.join(task.envs)} with PPO "
        f"agents of {task.ppo.total_timesteps:,} env steps ({task.seeds} per env and "
        f"member), {setting.meta_seeds} meta-seeds each; each discovered drift trains "
        f"{setting.eval_seeds} fresh PPO agents per horizon beside PPO-clip and DPO on "
        "the same keys. Normalised score: random play 0, PPO-clip 1 at that horizon; "
        "95% CIs from a two-level bootstrap (meta-seeds, then evaluation seeds). "
        f"Meta-seeds done: LPO {counts['lpo']}, TA-LPO {counts['ta_lpo']} of "
        f"{setting.meta_seeds}.\n",
        "| horizon | env steps | PPO-clip return | DPO | LPO | TA-LPO |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Degradation (score at x1 minus mean score at the other horizons): LPO "
        f"{degradation['lpo'].text()}, TA-LPO {degradation['ta_lpo'].text()}; LPO - TA-LPO "
        f"{gap.text()}. Off-horizon score, TA-LPO - LPO: {off.text()}.\n",
        *meta_training_lines(
            {f"{LABELS[records[n]['drift']]}, meta-seed {records[n]['meta_seed']}": records[n]
             for n in done}, es_fitness_text(task)),
        f"**Verdict**: {verdict}\n",
    ]
    summary = {"claim": "temporal-awareness", "scale": scale, "pieces_done": done,
               "pieces_expected": expected, "per_horizon": per_horizon,
               "degradation": {d: degradation[d].as_dict() for d in DRIFTS},
               "degradation_lpo_minus_ta_lpo": gap.as_dict(),
               "off_horizon_ta_lpo_minus_lpo": off.as_dict()}
    return Report("\n".join(lines), summary, verdict,
                  lambda path: _plot(learned, dpo, setting.horizons, stat, path))


def _verdict(gap: Any, off: Any, scale: str, done: int, expected: int,
             meta_seeds: int) -> str:
    if done < expected:
        return pending_verdict("temporal-awareness", scale, done, expected)
    if not (math.isfinite(gap.estimate) and math.isfinite(off.estimate)):
        return "inconclusive: no finite normalised scores for both drifts."
    ci = (f"(degradation LPO - TA-LPO {gap.estimate:+.2f}, 95% CI [{gap.low:+.2f}, "
          f"{gap.high:+.2f}]; off-horizon TA-LPO - LPO {off.estimate:+.2f} "
          f"[{off.low:+.2f}, {off.high:+.2f}])")
    if gap.low > 0 and off.estimate >= 0:
        return f"holds at this scale: TA-LPO degrades less away from its horizon {ci}."
    if gap.high < 0 or off.high < 0:
        return f"does not hold at this scale: TA-LPO does not degrade less {ci}."
    needed = runs_to_settle(gap, meta_seeds)
    more = (f": a degradation gap this size would need about {needed:,} meta-seeds per drift "
            f"(not {meta_seeds}) for its CI to exclude zero" if needed is not None else "")
    return (f"inconclusive at this scale: the CIs span no difference {ci}; the spread "
            f"between meta-seeds dominates them{more}, and the paper's own setting, four "
            "MinAtar games at 1e7 steps, is `--scale paper` (GPU).")


def _plot(learned: dict[str, list[np.ndarray]], dpo: list[np.ndarray],
          horizons: tuple[float, ...], stat: dict[str, Any], path: Path) -> None:
    from discovery.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = np.array(horizons)
    ax.axhline(1.0, color="grey", lw=1, ls="--", label="PPO-clip")
    series = [(LABELS[d], learned[d], f"C{i}") for i, d in enumerate(DRIFTS)]
    for label, groups, colour in [*series, ("DPO", dpo, "C2")]:
        if not groups:
            continue
        means = np.stack([f(np.stack(groups)) for f in stat["per_horizon"]], axis=-1)
        if label != "DPO":
            for row in means:
                ax.plot(x, row, color=colour, lw=0.8, alpha=0.4)
        ax.plot(x, means.mean(axis=0), color=colour, lw=2, marker="o",
                label=f"{label} ({counted(len(groups), 'meta-seed')})" if label != "DPO" else label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [f"x{h:g}" for h in horizons])
    ax.set_xlabel("training horizon (multiple of the meta-training one)")
    ax.set_ylabel("normalised score (PPO-clip 1)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

