"""Claim: a drift discovered by LPO transfers to environments it never saw, where it
performs at least as well as PPO-clip (Lu et al., 2022, "Discovered Policy
Optimisation": LPO meta-trained on MinAtar outperformed PPO on held-out Brax tasks).

LPO is meta-trained by ES on several cheap environments at once (classic control,
bsuite, and MinAtar at a short horizon), each agent's return normalised per env
(random 0, PPO-clip 1) so that no env's scale dominates the fitness. Each discovered
drift then trains fresh PPO agents on environments outside that set, beside PPO-clip
and DPO on the same keys. One piece per meta-seed: meta-training (resumable from its
checkpoints) and the held-out evaluation.

The rule, fixed before the cpu run: per meta-seed and held-out env, the learned drift's
normalised score minus PPO-clip's, paired by seed, averaged over seeds and then over
the held-out envs; the claim holds if the 95% CI of that mean (two-level bootstrap:
meta-seeds, then seeds) lies above zero, does not hold if it lies below, and is
otherwise inconclusive. The same difference against DPO is reported beside it.
"""

from __future__ import annotations

import math
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
from discovery.stats import hierarchical_mean_ci

TITLE = "A discovered drift that transfers to unseen environments (Lu et al., 2022)"
EVAL_SEED = 1000  # fresh agents: far from every meta-training seed


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


def report(records: dict[str, dict[str, Any]], scale: str, expected: list[str]) -> Report:
    setting = SCALES[scale]
    done = [name for name in expected if name in records]
    runs = [records[n] for n in done]
    envs = runs[0]["envs"] if runs else list(setting.held_out)
    learned = [normalised_scores(r, "learned")[0] for r in runs]
    dpo = [normalised_scores(r, "dpo")[0] for r in runs]
    versus = {b: [_paired(r, b) for r in runs] for b in ("ppo_clip", "dpo")}
    rows, per_env = [], {}
    for i, env in enumerate(envs):
        cells = {"learned": hierarchical_mean_ci(learned, _env(i), seed=i),
                 "dpo": hierarchical_mean_ci(dpo, _env(i), seed=i),
                 **{f"learned_minus_{b}": hierarchical_mean_ci(versus[b], _env(i), seed=i)
                    for b in versus}}
        per_env[env] = {k: v.as_dict() for k, v in cells.items()}
        ppo = [x for r in runs for x in r["final"]["1"][env]["ppo_clip"] if x is not None]
        versus_text = [cells[f"learned_minus_{b}"].text(signed=True) for b in versus]
        rows.append(f"| {env} | {np.mean(ppo):.2f} | {cells['dpo'].text()} | "
                    f"{cells['learned'].text()} | {' | '.join(versus_text)} |" if ppo else
                    f"| {env} | n/a | n/a | n/a | n/a | n/a |")
    overall = {b: hierarchical_mean_ci(versus[b], _over_envs, seed=100 + k)
               for k, b in enumerate(versus)}
    rows.append(f"| **mean over envs** | | | | {overall['ppo_clip'].text(signed=True)} | "
                f"{overall['dpo'].text(signed=True)} |")
    config = meta_train_config(scale, 0)
    task = config.task
    verdict = _verdict(overall["ppo_clip"], overall["dpo"], scale, len(done), len(expected),
                       _best_fitness([records[n] for n in done], task))
    held_out_ppo = ("PPO settings " + ", ".join(o.removeprefix("ppo.") for o in setting.eval_ppo)
                    if setting.eval_ppo else "the meta-training's PPO settings")
    lines = [
        f"## {TITLE} [{scale}]\n",
        "**Paper**: LPO's drift, meta-trained by ES on MinAtar, outperformed PPO-clip on "
        "Brax tasks it never saw (Lu et al., 2022).\n",
        f"**Setup**: LPO meta-trained by ES ({config.generations} generations, population "
        f"{config.es.population_size}) on {', '.join(task.envs)} at once, PPO agents of "
        f"{task.ppo.total_timesteps:,} env steps (lr {task.ppo.lr:g}), {task.seeds} per "
        f"env and member, fitness normalised per env ({task.normalise}); "
        f"{setting.meta_seeds} meta-seeds (done: {len(done)}). Each discovered drift "
        f"trains {setting.eval_seeds} fresh PPO agents per held-out env beside PPO-clip "
        f"and DPO on the same keys, with {held_out_ppo}. Normalised "
        "score: random play 0, PPO-clip 1; differences paired by seed; 95% CIs from a "
        "two-level bootstrap (meta-seeds, then seeds).\n",
        "| held-out env | PPO-clip return | DPO | learned LPO | LPO - PPO-clip | "
        "LPO - DPO |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        *meta_training_lines({f"meta-seed {records[n]['meta_seed']}": records[n] for n in done},
                             es_fitness_text(task)),
        f"**Verdict**: {verdict}\n",
    ]
    summary = {"claim": "drift-transfer", "scale": scale, "pieces_done": done,
               "pieces_expected": expected, "envs": per_env,
               "learned_minus_ppo_clip": overall["ppo_clip"].as_dict(),
               "learned_minus_dpo": overall["dpo"].as_dict()}
    return Report("\n".join(lines), summary, verdict,
                  lambda path: _plot(learned, dpo, envs, path))


def _verdict(gap: Any, dpo: Any, scale: str, done: int, expected: int,
             best_fitness: float | None = None) -> str:
    """The rule fixed before the run; ``best_fitness``, the best tenth of the runs' ES
    fitness (PPO-clip 1), says whether meta-training itself found anything."""
    if done < expected:
        return pending_verdict("drift-transfer", scale, done, expected)
    if not math.isfinite(gap.estimate):
        return "inconclusive: no held-out env has finite normalised scores."
    ci = (f"(LPO - PPO-clip {gap.estimate:+.2f}, 95% CI [{gap.low:+.2f}, {gap.high:+.2f}]; "
          f"LPO - DPO {dpo.estimate:+.2f} [{dpo.low:+.2f}, {dpo.high:+.2f}])")
    if gap.low > 0:
        return f"holds at this scale: the drift beats PPO-clip on envs it never saw {ci}."
    if gap.high < 0:
        if best_fitness is None:
            trained = ""
        elif best_fitness < 1.1:
            trained = (" ES did not lift the population's fitness on its training envs 10% "
                       f"above PPO-clip's either (best tenth {best_fitness:.2f}, PPO-clip 1).")
        else:
            trained = (" On its training envs ES did lift the population's fitness to "
                       f"{best_fitness:.2f} of PPO-clip's (best tenth): it did not transfer.")
        return (f"does not hold at this scale: the discovered drift trails PPO-clip held out "
                f"{ci}.{trained} LPO's own test, a drift meta-trained on MinAtar for 800 "
                "generations evaluated on Brax, is `--scale paper` (GPU).")
    return (f"inconclusive at this scale: the CI spans no difference {ci}; 4x the "
            "meta-seeds would halve it, and the paper's own test, a MinAtar-trained drift on "
            "Brax, is `--scale paper` (GPU).")


def _best_fitness(records: list[dict[str, Any]], task: Any) -> float | None:
    """The best tenth of any run's ES fitness, when it is on the PPO-clip-1 scale."""
    means = [m for r in records
             for m in (r.get("meta_training", {}).get("training_curve") or {}).get("span_means", [])
             if m is not None]
    return max(means) if means and task.normalise in ("ppo_random", "ppo") else None


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
