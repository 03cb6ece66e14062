"""Claim: a drift discovered by LPO transfers to environments it never saw, where it
performs at least as well as PPO-clip (Lu et al., 2022, "Discovered Policy
Optimisation": LPO meta-trained by ES on one Brax env per run was transferred to other
Brax envs).

LPO is meta-trained by ES on several cheap environments at once (classic control,
bsuite, and MinAtar at a short horizon), each agent's return normalised per env
(random 0, PPO-clip 1) so that no env's scale dominates the fitness. Each discovered
drift then trains fresh PPO agents on environments outside that set, beside PPO-clip
and DPO on the same keys. One piece per meta-seed: meta-training (resumable from its
checkpoints) and the held-out evaluation.

The rule (:mod:`discovery.verdicts`), fixed in December 2026 after the three cpu
meta-seeds had run (their first rule, a two-level bootstrap, covered about 80% where it
claimed 95%): the unit is the meta-seed; its score is the learned drift's normalised
score minus PPO-clip's, paired by evaluation seed, averaged over seeds and then over the
held-out envs where PPO-clip is neither at its ceiling nor at random play's level
(:func:`excluded_envs`). That score gets the t interval over meta-seeds and an exact
sign-flip p; declared effect :data:`EFFECT`. Precondition: ES improved its own mean
fitness by at least :data:`TRAINING_MARGIN` (PPO-clip 1) from the first tenth of its
generations to the last, averaged over the meta-seeds: a search that found nothing has
nothing to transfer. The same difference against DPO is reported beside it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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

TITLE = "A discovered drift that transfers to unseen environments (Lu et al., 2022)"
EVAL_SEED = 1000  # fresh agents: far from every meta-training seed
#: The smallest mean difference to PPO-clip (normalised: PPO-clip 1) that would count.
EFFECT = 0.10
#: How much ES must lift its own mean fitness (PPO-clip 1) for the precondition.
TRAINING_MARGIN = 0.05
#: PPO-clip within this share of random play's return (or of its own) is at the floor.
FLOOR_SHARE = 0.05
CLAIM = "the discovered drift beats PPO-clip on envs it never saw"


@dataclass(frozen=True)
class Scale:
    """One scale: the LPO meta-training run (``MetaTrainConfig`` fields over its
    defaults), the held-out envs, meta-seeds and fresh seeds per env, and how the
    held-out agents' PPO differs from the meta-training's (``key=value`` overrides)."""

    meta_train: dict[str, Any]
    held_out: tuple[str, ...]
    meta_seeds: int
    eval_seeds: int
    eval_ppo: tuple[str, ...] = ()


SCALES = {
    # The pipeline tests' toy drift run (tests/toys.py), so CI compiles its programs once.
    "toy": Scale({
        "generations": 2, "checkpoint_every": 1,
        "task": {"envs": ["CartPole-v1"], "seeds": 1, "normalise": "none",
                 "ppo": {"num_envs": 2, "num_steps": 16, "total_timesteps": 64,
                         "num_minibatches": 2, "update_epochs": 1, "lr": 2.5e-4}},
        "es": {"population_size": 4},
    }, held_out=("Catch-bsuite",), meta_seeds=1, eval_seeds=2),
    # The demo's aggressive short-lifetime regime (4 envs x 128 steps, lr 1e-2), where
    # the drift's shape matters, on four cheap envs at 16,384 steps per agent, 2 agents
    # per env and member, ES population 16 for 40 generations (planned at about 20 min
    # on 2 cores; measured 83 min a piece beside other pieces, BENCHMARKS.md). Held out:
    # envs where PPO-clip at these settings clearly beats random play (measured before
    # the run, 8 seeds: Breakout 4.4 vs 0.4, Freeway 0.9 vs 0.0, FourRooms 0.96 vs 0.38,
    # UmbrellaChain 0.77 vs 0.0), so that the normaliser means something; Asterix (0.53
    # vs 0.48) and MountainCar (PPO-clip never reaches the flag) would divide by noise.
    "cpu": Scale({
        "generations": 40, "checkpoint_every": 5,
        "task": {"envs": ["CartPole-v1", "Acrobot-v1", "Catch-bsuite",
                          "SpaceInvaders-MinAtar"],
                 "seeds": 2, "ppo": {"total_timesteps": 16384, "lr": 1e-2}},
    }, held_out=("Breakout-MinAtar", "Freeway-MinAtar", "FourRooms-misc",
                 "UmbrellaChain-bsuite"), meta_seeds=3, eval_seeds=16),
    # LPO's own setting: the MinAtar meta-training of the temporal-awareness claim's
    # paper scale, evaluated on Brax tasks it never saw (Lu et al., 2022), whose agents
    # train with the paper's Brax PPO settings (its Ant setting: 3e7 steps, 2048 envs x
    # 5 steps, 32 minibatches, 4 epochs, gamma 0.97, lr 3e-4, reward scaling 10, observation
    # normalisation) and a 64x64 tanh MLP, not the MinAtar meta-training's PPO. Not yet run
    # (no GPU lent).
    "paper": Scale({}, held_out=("brax/ant", "brax/halfcheetah", "brax/hopper",
                                 "brax/walker2d"), meta_seeds=3, eval_seeds=10,
                   eval_ppo=("ppo.total_timesteps=30000000", "ppo.num_envs=2048",
                             "ppo.num_steps=5", "ppo.num_minibatches=32", "ppo.update_epochs=4",
                             "ppo.gamma=0.97", "ppo.gae_lambda=0.95", "ppo.lr=3e-4",
                             "ppo.adam_b2=0.999", "ppo.ent_coef=0.01", "ppo.reward_scale=10",
                             "ppo.normalize_obs=true", "ppo.activation=tanh")),
}


def meta_train_config(scale: str, meta_seed: int) -> Any:
    """The meta-training config of one piece: LPO at this scale, from this seed."""
    from discovery.config import to_dict
    from discovery.drift_training import MetaTrainConfig

    if scale == "paper":
        from discovery.claims_temporal_awareness import meta_train_config as minatar

        return build_config(MetaTrainConfig, to_dict(minatar("paper", "lpo", meta_seed)),
                            {"name": f"lpo-transfer-meta-seed-{meta_seed}"},
                            source=f"the paper scale of {TITLE}")
    return build_config(MetaTrainConfig, SCALES[scale].meta_train, {
        "name": f"lpo-transfer-meta-seed-{meta_seed}", "seed": meta_seed,
        "task": {"drift": "lpo"}}, source=f"the {scale} scale of {TITLE}")


def pieces(scale: str) -> list[Piece]:
    return [Piece(f"meta-seed-{seed}", _runner(scale, seed))
            for seed in range(SCALES[scale].meta_seeds)]


def _runner(scale: str, meta_seed: int):
    def run(folder: Path, progress: Progress) -> dict[str, Any]:
        from discovery.evaluate import EvaluateConfig

        setting = SCALES[scale]
        evaluation = EvaluateConfig(envs=setting.held_out, seeds=setting.eval_seeds,
                                    seed=EVAL_SEED)
        return {"meta_seed": meta_seed,
                **meta_train_and_evaluate(meta_train_config(scale, meta_seed), folder,
                                          evaluation, setting.eval_ppo, progress)}

    return run


def _paired(record: dict[str, Any], baseline: str) -> np.ndarray:
    """``[envs, seeds]``: the learned drift's normalised score minus ``baseline``'s, by seed."""
    return (normalised_scores(record, "learned") - normalised_scores(record, baseline))[0]


def _over_envs(m: np.ndarray) -> np.ndarray:
    return np.nanmean(np.nanmean(m, axis=-1), axis=-1)


def _env(i: int):
    return lambda m: np.nanmean(m[..., i, :], axis=-1)


def excluded_envs(records: list[dict[str, Any]], envs: list[str]) -> dict[str, str]:
    """Held-out envs that cannot tell a drift from PPO-clip, with why: PPO-clip at its
    ceiling (every seed the same return, and no method above it) or at the floor (its
    mean within :data:`FLOOR_SHARE` of random play's)."""
    out = {}
    for env in envs:
        runs = {m: [x for r in records for x in r["final"]["1"][env][m] if x is not None]
                for m in ("ppo_clip", "learned", "dpo")}
        ppo = np.asarray(runs["ppo_clip"], np.float64)
        if not ppo.size:
            out[env] = "PPO-clip has no finite return"
            continue
        others = [x for m in ("learned", "dpo") for x in runs[m]]
        if np.ptp(ppo) == 0 and (not others or ppo[0] >= max(others)):
            out[env] = f"PPO-clip at its ceiling ({ppo[0]:g} on every seed)"
            continue
        random = float(records[0]["normalisers"]["1"][env][0])
        if abs(ppo.mean() - random) <= FLOOR_SHARE * max(abs(random), abs(ppo.mean()), 1e-9):
            out[env] = f"PPO-clip at random play's level ({ppo.mean():.2f} vs {random:.2f})"
    return out


def report(records: dict[str, dict[str, Any]], scale: str, expected: list[str]) -> Report:
    setting = SCALES[scale]
    done = [name for name in expected if name in records]
    runs = [records[n] for n in done]
    envs = runs[0]["envs"] if runs else list(setting.held_out)
    learned = [normalised_scores(r, "learned")[0] for r in runs]
    dpo = [normalised_scores(r, "dpo")[0] for r in runs]
    versus = {b: [_paired(r, b) for r in runs] for b in ("ppo_clip", "dpo")}
    excluded = excluded_envs(runs, envs) if runs else {}
    kept = [i for i, env in enumerate(envs) if env not in excluded]

    def units(groups: list[np.ndarray], columns: list[int]) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an env with no finite score
            return np.array([float(np.nanmean(np.nanmean(m[columns], axis=-1)))
                             if columns else np.nan for m in groups], np.float64)

    rows, per_env = [], {}
    for i, env in enumerate(envs):
        cells = {"learned": units(learned, [i]), "dpo": units(dpo, [i]),
                 **{f"learned_minus_{b}": units(versus[b], [i]) for b in versus}}
        per_env[env] = {k: v.tolist() for k, v in cells.items()}
        ppo = [x for r in runs for x in r["final"]["1"][env]["ppo_clip"] if x is not None]
        note = f" (excluded: {excluded[env]})" if env in excluded else ""
        versus_text = [mean_sd_text(cells[f"learned_minus_{b}"], signed=True) for b in versus]
        rows.append(f"| {env}{note} | {np.mean(ppo):.2f} | {mean_sd_text(cells['dpo'])} | "
                    f"{mean_sd_text(cells['learned'])} | {' | '.join(versus_text)} |" if ppo else
                    f"| {env} | n/a | n/a | n/a | n/a | n/a |")
    overall = {b: units(versus[b], kept) for b in versus}
    gaps = {b: compare(overall[b], np.zeros_like(overall[b]), paired=True) for b in versus}
    rows.append(f"| **mean over the envs kept** | | | | "
                f"{gaps['ppo_clip'].interval.text(signed=True)} | "
                f"{gaps['dpo'].interval.text(signed=True)} |")
    config = meta_train_config(scale, 0)
    task = config.task
    lift = _fitness_lift([records[n] for n in done], task)
    verdict = _verdict(gaps["ppo_clip"], gaps["dpo"], scale, len(done), len(expected), lift,
                       len(kept))
    held_out_ppo = ("PPO settings " + ", ".join(o.removeprefix("ppo.") for o in setting.eval_ppo)
                    if setting.eval_ppo else "the meta-training's PPO settings")
    lines = [
        f"## {TITLE} [{scale}]\n",
        "**Paper's claim** (Lu et al., 2022, abstract and its Brax transfer results): LPO, "
        "meta-trained by ES on one Brax env per run, discovers a drift that transfers to "
        "other Brax envs, where it and its closed form DPO perform at least as well as "
        "PPO-clip.\n",
        f"**What we test**: the learned drift's normalised score minus PPO-clip's on envs "
        f"it never saw, declared effect {EFFECT:g} (PPO-clip 1).\n",
        "**Deviations**:\n",
        "| | paper | here |",
        "|---|---|---|",
        f"| meta-training envs | one Brax env per run | {', '.join(task.envs)} at once |",
        f"| ES | population 32 x 1,025 generations | population {config.es.population_size} "
        f"x {config.generations} generations |",
        f"| held-out envs | other Brax envs | {', '.join(envs)} |",
        "",
        f"**Units**: {setting.meta_seeds} meta-seeds (done: {len(done)}); PPO agents of "
        f"{task.ppo.total_timesteps:,} env steps (lr {task.ppo.lr:g}), {task.seeds} per "
        f"env and member, fitness normalised per env ({task.normalise}). Each discovered "
        f"drift trains {setting.eval_seeds} fresh PPO agents per held-out env beside "
        f"PPO-clip and DPO on the same keys, with {held_out_ppo}. Normalised score: random "
        "play 0, PPO-clip 1; cells mean (sd) over meta-seeds; the mean over the envs kept "
        "with the 95% t interval over meta-seeds.\n",
        f"**Preconditions**: ES lifted its own mean fitness by at least {TRAINING_MARGIN:g} "
        f"(PPO-clip 1) from the first tenth of its generations to the last ("
        f"{'measured ' + format(lift, '+.2f') if lift is not None else 'no log to tell'}); "
        "held-out envs where PPO-clip is at its ceiling or at random play's level are "
        f"excluded ({len(excluded)} of {len(envs)}).\n",
        "| held-out env | PPO-clip return | DPO | learned LPO | LPO - PPO-clip | "
        "LPO - DPO |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        *meta_training_lines({f"meta-seed {records[n]['meta_seed']}": records[n] for n in done},
                             es_fitness_text(task)),
        f"**Verdict**: {verdict.text()}\n",
    ]
    summary = {"claim": "drift-transfer", "scale": scale, "pieces_done": done,
               "pieces_expected": expected, "envs": per_env, "excluded_envs": excluded,
               "training_fitness_lift": lift,
               "learned_minus_ppo_clip": gaps["ppo_clip"].interval.as_dict(),
               "learned_minus_dpo": gaps["dpo"].interval.as_dict()}
    return Report("\n".join(lines), summary, verdict.text(),
                  lambda path: _plot(learned, dpo, envs, path))


def _verdict(gap: Any, dpo: Any, scale: str, done: int, expected: int,
             lift: float | None, kept: int) -> Verdict:
    if done < expected:
        return Verdict("pending", pending_verdict("drift-transfer", scale, done,
                                                  expected).split(": ", 1)[1])
    failed = []
    if lift is not None and lift < TRAINING_MARGIN:
        failed.append(f"ES did not lift its own mean fitness by {TRAINING_MARGIN:g} of "
                      f"PPO-clip's (first tenth to last: {lift:+.2f}), so nothing was "
                      "discovered to transfer")
    if kept == 0:
        failed.append("every held-out env is at PPO-clip's ceiling or at random play's level")
    if gap.units < 2:
        failed.append("fewer than two meta-seeds with a finite score")
    verdict = decide(gap, EFFECT, CLAIM, failed)
    return Verdict(verdict.kind, f"{verdict.reason} Against DPO: {dpo.text()}.",
                   verdict.failed)


def _fitness_lift(records: list[dict[str, Any]], task: Any) -> float | None:
    """Mean over the runs of their ES mean fitness's last tenth minus its first, when the
    fitness is on the PPO-clip-1 scale and the runs' logs are there."""
    lifts = []
    for record in records:
        curve = (record.get("meta_training", {}).get("training_curve") or {})
        means = [m for m in curve.get("span_means", []) if m is not None]
        if len(means) >= 2:
            lifts.append(means[-1] - means[0])
    if not lifts or task.normalise not in ("ppo_random", "ppo"):
        return None
    return float(np.mean(lifts))


def _plot(learned: list[np.ndarray], dpo: list[np.ndarray], envs: list[str], path: Path) -> None:
    from discovery.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    x = np.arange(len(envs))
    for offset, (label, groups, colour) in zip(
            (-0.15, 0.15), (("learned LPO", learned, "C0"), ("DPO", dpo, "C2"))):
        if not groups:
            continue
        per_seed = np.nanmean(np.stack(groups), axis=-1)  # [meta-seeds, envs]
        ax.bar(x + offset, np.nanmean(per_seed, axis=0), width=0.3, alpha=0.6, color=colour,
               label=f"{label} ({counted(len(groups), 'meta-seed')})" if label != "DPO" else label)
        ax.scatter(np.tile(x + offset, len(groups)), per_seed.ravel(), s=14, color=colour)
    ax.axhline(1.0, color="grey", lw=1, ls="--", label="PPO-clip")
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set_xticks(x, envs, fontsize=7)
    ax.set_ylabel("normalised score (PPO-clip 1)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
