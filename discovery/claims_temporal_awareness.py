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

The rule (:mod:`discovery.verdicts`), fixed in December 2026 after the three cpu
meta-seeds per drift had run (their first rule, a two-level bootstrap, covered about 80%
where it claimed 95%): a drift's *degradation* is its normalised score at the
meta-training horizon minus its mean normalised score at the other horizons. The unit is
the meta-seed, paired across the drifts (the same meta-training seed and evaluation
keys). Precondition: LPO falls back off its horizon (its mean degradation is above
zero), without which there is nothing for temporal awareness to fix. Then LPO's
degradation minus TA-LPO's gets the paired t interval and exact sign-flip p over the
meta-seeds, declared effect :data:`EFFECT`; per horizon, TA-LPO - LPO is shown the same
way.
"""

from __future__ import annotations

import warnings
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
from discovery.stats import mean_sd_text
from discovery.verdicts import Verdict, compare, decide

TITLE = "Temporal awareness at unseen horizons: LPO vs TA-LPO (Jackson et al., 2024)"
DRIFTS = ("lpo", "ta_lpo")
LABELS = {"lpo": "LPO", "ta_lpo": "TA-LPO"}
EVAL_SEED = 1000  # fresh agents: far from every meta-training seed
#: The smallest gap in degradation (LPO's minus TA-LPO's, normalised score: PPO-clip 1)
#: that would count as the paper's effect.
EFFECT = 0.10
CLAIM = "TA-LPO degrades less than LPO away from its meta-training horizon"


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


def _parameter_counts() -> dict[str, int]:
    """Each learned drift's number of parameters (what its ES budget has to search)."""
    import jax

    from discovery.drift import make_drift

    return {d: sum(int(x.size) for x in jax.tree.leaves(make_drift(d).init(jax.random.key(0))))
            for d in DRIFTS}


def report(records: dict[str, dict[str, Any]], scale: str, expected: list[str]) -> Report:
    setting = SCALES[scale]
    horizons = [_key(h) for h in setting.horizons]
    stat = _statistics(horizons)
    done = [name for name in expected if name in records]
    names = {d: sorted((n for n in done if records[n]["drift"] == d),
                       key=lambda n: records[n]["meta_seed"]) for d in DRIFTS}
    learned = {d: [_over_envs(records[n], "learned") for n in names[d]] for d in DRIFTS}
    dpo = [_over_envs(records[n], "dpo") for n in done]
    length = next((records[n]["training_length"] for n in done), None)
    ppo_returns = {h: [x for n in done for runs in records[n]["final"][h].values()
                       for x in runs["ppo_clip"] if x is not None] for h in horizons}

    def units(groups: list[np.ndarray], statistic) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a horizon with no finite score
            return np.array([float(statistic(m)) for m in groups], np.float64)

    def paired(a: np.ndarray, b: np.ndarray):
        size = min(a.size, b.size)  # meta-seeds both drifts have, in meta-seed order
        return compare(a[:size], b[:size], paired=True)

    rows, per_horizon = [], {}
    for i, h in enumerate(horizons):
        cells = {d: units(learned[d], stat["per_horizon"][i]) for d in DRIFTS}
        dpo_cell = units(dpo, stat["per_horizon"][i])
        diff = paired(cells["ta_lpo"], cells["lpo"])
        per_horizon[h] = {**{d: cells[d].tolist() for d in DRIFTS}, "dpo": dpo_cell.tolist(),
                          "ta_lpo_minus_lpo": diff.interval.as_dict()}
        steps = f"{int(round(length * float(h))):,}" if length else "?"
        ppo = f"{np.mean(ppo_returns[h]):.1f}" if ppo_returns[h] else "n/a"
        mark = " (meta-trained)" if h == _key(1.0) else ""
        rows.append(f"| x{h}{mark} | {steps} | {ppo} | {mean_sd_text(dpo_cell)} | "
                    f"{mean_sd_text(cells['lpo'])} | {mean_sd_text(cells['ta_lpo'])} | "
                    f"{diff.interval.text(signed=True)} |")
    degradation = {d: units(learned[d], stat["degradation"]) for d in DRIFTS}
    gap = paired(degradation["lpo"], degradation["ta_lpo"])
    verdict = _verdict(gap, degradation["lpo"], scale, len(done), len(expected))
    counts = {d: len(learned[d]) for d in DRIFTS}
    config = meta_train_config(scale, "lpo", 0)
    task = config.task
    sizes = _parameter_counts()
    lines = [
        f"## {TITLE} [{scale}]\n",
        "**Paper's claim** (Jackson et al., 2024, as its summaries state it; the body's "
        "sections were not checked here): LPO's discovered "
        "drift, meta-trained at one training horizon, falls back at other horizons, while "
        "TA-LPO (which also sees the training progress n/N) keeps its advantage over PPO-clip "
        "across horizons; both meta-trained on MinAtar SpaceInvaders alone.\n",
        f"**What we test**: LPO's degradation (score at x1 minus mean score at the other "
        f"horizons) minus TA-LPO's, declared effect {EFFECT:g} of PPO-clip's normalised "
        "score.\n",
        "**Deviations**:\n",
        "| | paper | here |",
        "|---|---|---|",
        f"| meta-training task | SpaceInvaders-MinAtar, 1e7 steps | {', '.join(task.envs)}, "
        f"{task.ppo.total_timesteps:,} steps |",
        f"| ES | population 64 x 800 generations | population {config.es.population_size} x "
        f"{config.generations} generations |",
        f"| parameters searched | - | LPO {sizes['lpo']:,}, TA-LPO {sizes['ta_lpo']:,} on the "
        "same ES budget (TA-LPO has the larger search) |",
        "",
        f"**Units**: {setting.meta_seeds} meta-seeds per drift (done: LPO {counts['lpo']}, "
        f"TA-LPO {counts['ta_lpo']}), paired by meta-seed; each discovered drift trains "
        f"{setting.eval_seeds} fresh PPO agents per horizon beside PPO-clip and DPO on the "
        "same keys. Normalised score: random play 0, PPO-clip 1 at that horizon; cells mean "
        "(sd) over meta-seeds; TA-LPO - LPO with the paired 95% t interval.\n",
        "**Preconditions**: LPO falls back off its horizon (mean degradation above zero); "
        "each drift has at least two meta-seeds.\n",
        "| horizon | env steps | PPO-clip return | DPO | LPO | TA-LPO | TA-LPO - LPO |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Degradation (score at x1 minus mean score at the other horizons): LPO "
        f"{mean_sd_text(degradation['lpo'])}, TA-LPO {mean_sd_text(degradation['ta_lpo'])}; LPO - "
        f"TA-LPO {gap.text()}.\n",
        *meta_training_lines(
            {f"{LABELS[records[n]['drift']]}, meta-seed {records[n]['meta_seed']}": records[n]
             for n in done}, es_fitness_text(task)),
        f"**Verdict**: {verdict.text()}\n",
    ]
    summary = {"claim": "temporal-awareness", "scale": scale, "pieces_done": done,
               "pieces_expected": expected, "per_horizon": per_horizon,
               "degradation": {d: degradation[d].tolist() for d in DRIFTS},
               "degradation_lpo_minus_ta_lpo": gap.interval.as_dict(),
               "sign_flip_p": gap.p}
    return Report("\n".join(lines), summary, verdict.text(),
                  lambda path: _plot(learned, dpo, setting.horizons, stat, path))


def _verdict(gap: Any, lpo_degradation: np.ndarray, scale: str, done: int,
             expected: int) -> Verdict:
    if done < expected:
        return Verdict("pending", pending_verdict("temporal-awareness", scale, done,
                                                  expected).split(": ", 1)[1])
    failed = []
    finite = lpo_degradation[np.isfinite(lpo_degradation)]
    if finite.size and finite.mean() <= 0:
        failed.append(f"LPO does not fall back off its horizon (its mean degradation is "
                      f"{finite.mean():+.2f}, not above zero), so there is nothing for "
                      "temporal awareness to fix here")
    if gap.units < 2:
        failed.append("fewer than two meta-seeds per drift with finite scores")
    return decide(gap, EFFECT, CLAIM, failed)


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

