"""Claim: LPG meta-trained on levels chosen by prioritised level replay scored by
algorithmic regret generalises better to unseen gridworlds than LPG meta-trained with
domain randomisation (Jackson et al., 2023, "Discovering General Reinforcement
Learning Algorithms with Adversarial Environment Design", GROOVE).

Both arms are the same LPG meta-gradient run from the same seeds and differ only in
the curriculum: ``dr`` gives every agent whose lifetime ends a fresh random level;
``plr`` replays levels from a buffer ranked by algorithmic regret (an A2C antagonist's
final reward rate on the level minus the LPG agent's). Each discovered objective then
trains fresh agents on the held-out layouts beside A2C (same seeds); the yardstick is
GROOVE's: final reward per step normalised by A2C's on the layout. One piece per arm and
meta-seed (meta-training resumable from its checkpoints, then the evaluation).

The rule, fixed before the cpu run: a meta-seed's score is the mean over the held-out
layouts of the A2C-normalised rate (a layout where A2C's rate is zero takes no part);
the claim holds if the 95% CI of PLR's mean score minus DR's lies above zero, does not
hold if it lies below, and is otherwise inconclusive. CIs come from a two-level
bootstrap: meta-seeds, then evaluation seeds within each (paired across layouts).
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
    meta_train_and_evaluate,
    meta_training_lines,
    normalised_scores,
    pending_verdict,
)
from discovery.stats import hierarchical_difference_ci, hierarchical_mean_ci, runs_to_settle

TITLE = "GROOVE: LPG with PLR + algorithmic regret vs domain randomisation (Jackson et al., 2023)"
ARMS = {
    "dr": {"kind": "dr"},
    "plr": {"kind": "plr", "score": "algorithmic_regret"},
}
LABELS = {"dr": "LPG + DR", "plr": "LPG + PLR (regret)"}
EVAL_SEED = 1000  # fresh agents: far from every meta-training seed


@dataclass(frozen=True)
class Scale:
    """One scale: the meta-training run (``ObjectiveMetaTrainConfig`` fields over its
    defaults, the curriculum aside), PLR's buffer, meta-seeds per arm, eval seeds."""

    meta_train: dict[str, Any]
    buffer_size: int
    meta_seeds: int
    eval_seeds: int


SCALES = {
    # The pipeline tests' toy LPG run (tests/toys.py), so CI compiles its programs once.
    "toy": Scale({
        "generations": 2, "checkpoint_every": 1,
        "objective": {"prediction_size": 4, "hidden_size": 8},
        "agent": {"num_envs": 4, "rollout_len": 5},
        "levels": {"max_size": 4, "max_objects": 1, "held_out": ["dense"]},
        "metagrad": {"num_agents": 4, "num_minibatches": 2, "unroll": 2,
                     "lifetime_min": 6, "lifetime_max": 6},
        "eval_lifetime": 30,
    }, buffer_size=4, meta_seeds=1, eval_seeds=2),
    # The CPU-sized LPG run (ObjectiveMetaTrainConfig's defaults) grown as far as a
    # 2-core CPU allows (planned at ~20 min of meta-training; measured 30-117 min a
    # piece with other runs sharing the machine, BENCHMARKS.md): 32 agents (not 16) on
    # levels up to 8x8 with 4 objects (not 6x6 with 3), lifetimes of 100 updates (not
    # 50), 1,500 meta-updates (not 1,000 as in BENCHMARKS.md's first comparison), a
    # 512-level PLR buffer.
    "cpu": Scale({
        "generations": 1500, "checkpoint_every": 100,
        "levels": {"max_size": 8, "max_objects": 4},
        "metagrad": {"num_agents": 32, "lifetime_min": 100, "lifetime_max": 100},
    }, buffer_size=512, meta_seeds=3, eval_seeds=16),
    # GROOVE's setting (the defaults of the objective, agent, levels and meta-gradient
    # configs are GROOVE's): 512 agents of 250 updates on up-to-10x10 levels with 5
    # objects, a GRU meta-network of 256 units, 5,000 meta-updates, a 4,000-level buffer.
    "paper": Scale({
        "generations": 5000, "checkpoint_every": 100,
        "objective": {"hidden_size": 256}, "agent": {"num_envs": 64},
        "levels": {"max_size": 10, "max_objects": 5},
        "metagrad": {"num_agents": 512, "num_minibatches": 16, "lr": 1e-4,
                     "lifetime_min": 250, "lifetime_max": 250},
    }, buffer_size=4000, meta_seeds=3, eval_seeds=8),
}


def meta_train_config(scale: str, arm: str, meta_seed: int) -> Any:
    """The meta-training config of one piece: the scale's run with this arm's curriculum."""
    from discovery.objective_training import ObjectiveMetaTrainConfig

    setting = SCALES[scale]
    curriculum = {**ARMS[arm], "plr": {"buffer_size": setting.buffer_size}}
    return build_config(ObjectiveMetaTrainConfig, setting.meta_train, {
        "name": f"lpg-{arm}-meta-seed-{meta_seed}", "seed": meta_seed,
        "curriculum": curriculum}, source=f"the {scale} scale of {TITLE}")


def pieces(scale: str) -> list[Piece]:
    return [Piece(f"{arm}/meta-seed-{seed}", _runner(scale, arm, seed))
            for seed in range(SCALES[scale].meta_seeds) for arm in ARMS]


def _runner(scale: str, arm: str, meta_seed: int):
    def run(folder: Path, progress: Progress) -> dict[str, Any]:
        from discovery.evaluate import EvaluateConfig

        evaluation = EvaluateConfig(seeds=SCALES[scale].eval_seeds, seed=EVAL_SEED)
        return {"arm": arm, "meta_seed": meta_seed,
                **meta_train_and_evaluate(meta_train_config(scale, arm, meta_seed), folder,
                                          evaluation, progress=progress)}

    return run


def _layout_means(m: np.ndarray) -> np.ndarray:
    return np.nanmean(m, axis=-1)


def _score(m: np.ndarray) -> np.ndarray:
    """A meta-seed's score from its ``[..., layouts, seeds]`` normalised rates."""
    return np.nanmean(_layout_means(m), axis=-1)


def _per_layout(i: int):
    return lambda m: _layout_means(m)[..., i]


def report(records: dict[str, dict[str, Any]], scale: str, expected: list[str]) -> Report:
    setting = SCALES[scale]
    done = [name for name in expected if name in records]
    # [layouts, seeds] per meta-seed at the evaluation's one horizon.
    scores = {arm: [normalised_scores(records[n], "learned")[0] for n in done
                    if records[n]["arm"] == arm] for arm in ARMS}
    config = meta_train_config(scale, "plr", 0)
    layouts = next((records[n]["envs"] for n in done), list(config.levels.held_out))
    a2c = {layout: [x for n in done for x in records[n]["final"]["1"][layout]["a2c"]
                    if x is not None] for layout in layouts}

    rows, per_layout = [], {}
    for i, layout in enumerate(layouts):
        cells = {arm: hierarchical_mean_ci(scores[arm], _per_layout(i), seed=i) for arm in ARMS}
        diff = hierarchical_difference_ci(scores["plr"], scores["dr"], _per_layout(i), seed=i)
        per_layout[layout] = {**{arm: cells[arm].as_dict() for arm in ARMS},
                              "plr_minus_dr": diff.as_dict()}
        rate = f"{1000 * np.mean(a2c[layout]):.2f}" if a2c[layout] else "n/a"
        rows.append(f"| {layout} | {_layout_size(layout)} | {rate} | {cells['dr'].text()} | "
                    f"{cells['plr'].text()} | {diff.text()} |")
    overall = {arm: hierarchical_mean_ci(scores[arm], _score, seed=100) for arm in ARMS}
    gap = hierarchical_difference_ci(scores["plr"], scores["dr"], _score, seed=200)
    rows.append(f"| **mean over layouts** | | | {overall['dr'].text()} | "
                f"{overall['plr'].text()} | {gap.text()} |")
    verdict = _verdict(gap, scale, len(done), len(expected), SCALES[scale].meta_seeds)
    counts = {arm: len(scores[arm]) for arm in ARMS}
    lines = [
        f"## {TITLE} [{scale}]\n",
        "**Paper**: LPG meta-trained on levels from prioritised level replay scored by "
        "algorithmic regret (against an A2C antagonist) generalises better to unseen "
        "gridworlds and to Atari than LPG meta-trained on uniformly random levels "
        "(Jackson et al., 2023), at 512 agents, 250-update lifetimes, up-to-10x10 levels "
        "and a 4,000-level buffer.\n",
        f"**Setup**: both arms meta-trained by meta-gradients ({config.generations} Adam "
        f"updates at meta lr {config.metagrad.lr:g}, GROOVE's being 1e-4, each over "
        f"{config.metagrad.num_agents} agents x K = {config.metagrad.unroll}, "
        f"lifetimes of {config.metagrad.lifetime_max} updates, random levels up to "
        f"{config.levels.max_size}x{config.levels.max_size} with up to "
        f"{config.levels.max_objects} objects; PLR buffer {setting.buffer_size}), "
        f"{setting.meta_seeds} meta-seeds each (done: DR {counts['dr']}, PLR "
        f"{counts['plr']}); {setting.eval_seeds} fresh agents per held-out layout and "
        f"method, {config.eval_lifetime} updates. Score: final reward per step over A2C's "
        "mean on the layout (A2C = 1); 95% CIs from a two-level bootstrap (meta-seeds, "
        "then evaluation seeds).\n",
        "| held-out layout | size | A2C reward per 1000 steps | LPG + DR | LPG + PLR (regret) "
        "| PLR - DR |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        *meta_training_lines(
            {f"{LABELS[records[n]['arm']]}, meta-seed {records[n]['meta_seed']}": records[n]
             for n in done},
            "the agents' reward per 1000 steps while the objective was meta-trained", 1000),
        f"**Verdict**: {verdict}\n",
    ]
    summary = {"claim": "groove-plr-vs-dr", "scale": scale, "pieces_done": done,
               "pieces_expected": expected, "layouts": per_layout,
               "mean_over_layouts": {arm: overall[arm].as_dict() for arm in ARMS},
               "plr_minus_dr": gap.as_dict()}
    return Report("\n".join(lines), summary, verdict,
                  lambda path: _plot(scores, layouts, path))


def _layout_size(name: str) -> str:
    """A held-out layout's grid size (the meta-training levels' sizes are in the setup)."""
    from discovery.envs.gridworld import LAYOUTS

    layout = LAYOUTS.get(name)
    return f"{layout.height}x{layout.width}" if layout is not None else "n/a"


def _verdict(gap: Any, scale: str, done: int, expected: int, meta_seeds: int) -> str:
    if done < expected:
        return pending_verdict("groove-plr-vs-dr", scale, done, expected)
    if not math.isfinite(gap.estimate):
        return "inconclusive: no finite normalised rates for both arms."
    ci = f"(PLR - DR {gap.estimate:+.2f}, 95% CI [{gap.low:+.2f}, {gap.high:+.2f}])"
    if gap.low > 0:
        return f"holds at this scale: PLR + regret generalises better than DR {ci}."
    if gap.high < 0:
        return f"does not hold at this scale: DR generalises better than PLR + regret {ci}."
    needed = runs_to_settle(gap, meta_seeds)
    more = (f"; at this scale about {needed:,} meta-seeds per arm (not {meta_seeds}) would "
            "settle it if the estimate and spread stay as measured" if needed is not None
            else "")
    return (f"inconclusive at this scale: the CI spans no difference {ci}{more}; GROOVE's "
            "own scale (512 agents, 10x10 levels, `--scale paper`) is the paper's test.")


def _plot(scores: dict[str, list[np.ndarray]], layouts: list[str], path: Path) -> None:
    from discovery.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = np.arange(len(layouts))
    for offset, (arm, groups) in zip((-0.15, 0.15), scores.items()):
        if not groups:
            continue
        per_seed = _layout_means(np.stack(groups))  # [meta-seeds, layouts]
        ax.scatter(np.repeat(x + offset, len(groups)).reshape(len(layouts), -1).T,
                   per_seed, s=14, alpha=0.5, color=f"C{int(offset > 0)}")
        ax.bar(x + offset, np.nanmean(per_seed, axis=0), width=0.3, alpha=0.6,
               color=f"C{int(offset > 0)}",
               label=f"{LABELS[arm]} ({counted(len(groups), 'meta-seed')})")
    ax.axhline(1.0, color="grey", lw=1, ls="--", label="A2C")
    ax.set_xticks(x, layouts)
    ax.set_ylabel("reward rate / A2C's")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
