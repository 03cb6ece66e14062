"""Question: does DPO, the closed form of the drift LPO discovered, match PPO-clip on
MinAtar when both use PPO-clip's tuned MinAtar settings?

Lu et al. (2022, "Discovered Policy Optimisation") claim DPO performs at least as well
as PPO-clip on Brax (their abstract); they publish no DPO MinAtar figure, so this is
our question, not a reproduction of theirs. No meta-training: PPO-clip and DPO train on
Asterix, Breakout, Freeway and SpaceInvaders with PPO's tuned MinAtar settings of
Goldie et al. (2025, learn-rl-algorithms: 64 envs x 128 steps, 4 epochs, 8 minibatches,
MLP 2x64 ReLU, Adam lr / b2 per game), 1e7 steps, seeds vmapped. One piece per game and
drift (about 15-25 min on 2 CPU cores at 5 seeds). A seed's score is its mean episode
return over the last 10% of updates; a seed whose agent diverged scores nothing.

The rule (:mod:`discovery.verdicts`), fixed in December 2026 after the cpu and paper
pieces had run (their first rule was a bootstrap): both drifts train from the same keys,
so the unit is the seed, paired across drifts: a seed's score is the mean over games of
(DPO - PPO-clip) / |PPO-clip's mean on the game|; paired t interval and exact sign-flip
p over the seeds; declared effect :data:`EFFECT`, in the direction DPO above PPO-clip.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from discovery.reproduce import Piece, Progress, Report, no_progress, pending_verdict
from discovery.stats import NO_DATA, mean_sd_text, paired_interval
from discovery.verdicts import Verdict, compare, decide

TITLE = "DPO vs PPO-clip on MinAtar at PPO's tuned settings (Lu et al., 2022's DPO)"
DRIFTS = ("ppo", "dpo")
#: The relative difference (DPO - PPO-clip over PPO-clip's mean, averaged over games)
#: that would count: 5% of PPO-clip's return.
EFFECT = 0.05
CLAIM = "DPO trains MinAtar agents at least as well as PPO-clip at PPO's tuned settings"
#: Adam (lr, b2) per game (Goldie et al., 2025), and the published PPO return of that
#: MinAtar setting (for the "published PPO" column).
GAMES = {
    "Asterix-MinAtar": (3e-3, 0.999, 15.04),
    "Breakout-MinAtar": (1e-2, 0.99, 50.08),
    "Freeway-MinAtar": (1e-3, 0.99, 61.84),
    "SpaceInvaders-MinAtar": (7e-3, 0.99, 167.09),
}
FINAL_FRACTION = 0.1
CURVE_POINTS = 100

# The MinAtar PPO settings shared by every game; scale -> (games, seeds, PPO fields).
MINATAR_PPO = dict(num_envs=64, num_steps=128, total_timesteps=10_000_000, update_epochs=4,
            num_minibatches=8, activation="relu")
SCALES = {
    "toy": (("Breakout-MinAtar",), 2, dict(num_envs=4, num_steps=16, total_timesteps=512,
                                           update_epochs=1, num_minibatches=2,
                                           activation="relu")),
    "cpu": (tuple(GAMES), 5, MINATAR_PPO),
    "paper": (tuple(GAMES), 10, MINATAR_PPO),
}


def pieces(scale: str) -> list[Piece]:
    games, seeds, fields = SCALES[scale]
    return [Piece(f"{game}/{drift}", _runner(game, drift, seeds, fields))
            for game in games for drift in DRIFTS]


def train_drift(env: str, drift_name: str, seeds: int, fields: dict[str, Any],
                progress: Progress) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One piece's PPO run: ``seeds`` agents with ``drift_name`` on ``env``, from seed 0
    (so PPO-clip and DPO train from the same keys: the comparison is paired). Returns the
    episode-return curves ``[seeds, updates]``, each seed's final score (NaN where it
    diverged) and which seeds diverged. Updates run in chunks (host callbacks) only when
    someone watches the progress."""
    from discovery.agents.ppo import PPOConfig
    from discovery.evaluate import final_mean
    from discovery.train import TrainConfig, train_seeds

    config = PPOConfig(**fields)

    def on_update(update: int) -> None:
        progress(update + 1, config.num_updates, "PPO updates")

    result = train_seeds(TrainConfig(env=env, drift=drift_name, seeds=seeds, ppo=config),
                         on_update=None if progress is no_progress else on_update)
    curves = np.asarray(result.metrics["episode_return"], np.float64)
    finals = np.where(result.diverged, np.nan, final_mean(curves, FINAL_FRACTION))
    return curves, finals, np.asarray(result.diverged)


def _runner(game: str, drift_name: str, seeds: int, fields: dict[str, Any]):
    def run(folder: Path, progress: Progress) -> dict[str, Any]:
        lr, adam_b2, _ = GAMES[game]
        fields_here = {**fields, "lr": lr, "adam_b2": adam_b2}
        curves, finals, diverged = train_drift(game, drift_name, seeds, fields_here, progress)
        steps_per_update = fields_here["num_envs"] * fields_here["num_steps"]
        stride = max(1, curves.shape[1] // CURVE_POINTS)
        points = _window_means(curves, stride)
        return {
            "game": game,
            "drift": drift_name,
            "seeds": seeds,
            "ppo": fields_here,
            "final_returns": [None if not np.isfinite(x) else float(x) for x in finals],
            "diverged": [bool(x) for x in diverged],
            # Each window's last update (before stop 27: the update kept).
            "curve_env_steps": [int(min(u + stride, curves.shape[1]) * steps_per_update)
                                for u in range(0, curves.shape[1], stride)],
            "curves": [[None if not np.isfinite(x) else round(float(x), 3) for x in row]
                       for row in points],
        }

    return run


def _window_means(curves: np.ndarray, stride: int) -> np.ndarray:
    """``[seeds, ceil(updates / stride)]``: each window of ``stride`` updates' mean return
    over the updates where an episode ended (NaN where none did). Records before stop 27
    kept every ``stride``-th update instead, which on Freeway (episodes of 2,500 steps,
    every ~20 updates) is mostly NaN."""
    windows = [curves[:, first:first + stride] for first in range(0, curves.shape[1], stride)]
    with warnings.catch_warnings():  # a window in which no episode ended
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.stack([np.nanmean(window, axis=1) for window in windows], axis=1)


def _finals(record: dict[str, Any] | None) -> np.ndarray:
    if record is None:
        return np.array([])
    return np.array([np.nan if x is None else x for x in record["final_returns"]], float)


def compare_drifts(records: dict[str, dict[str, Any]], settings: list[str]
                   ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, Any]], np.ndarray,
                              dict[str, int]]:
    """PPO-clip against DPO over ``settings`` (games or tasks), both trained from the same
    keys: per setting ``(ppo, dpo, paired interval of DPO - PPO-clip)``; per seed, the mean
    over settings of (DPO - PPO-clip) / |PPO-clip's mean on the setting| (empty unless
    every setting has the same seeds); and the diverged seeds per drift."""
    cells, relative = {}, []
    diverged = {d: 0 for d in DRIFTS}
    for setting in settings:
        ppo, dpo = (_finals(records.get(f"{setting}/{d}")) for d in DRIFTS)
        for drift in DRIFTS:
            diverged[drift] += sum((records.get(f"{setting}/{drift}") or {}).get("diverged",
                                                                                   []))
        paired = ppo.size == dpo.size and ppo.size > 0
        cells[setting] = (ppo, dpo, paired_interval(dpo, ppo) if paired else NO_DATA)
        if paired and np.isfinite(ppo).any() and np.nanmean(ppo) != 0:
            relative.append((dpo - ppo) / abs(np.nanmean(ppo)))
    per_seed = (np.mean(np.stack(relative), axis=0) if relative and
                len({r.size for r in relative}) == 1 else np.array([]))
    return cells, per_seed, diverged


def report(records: dict[str, dict[str, Any]], scale: str, expected: list[str]) -> Report:
    games = [g for g in GAMES if any(f"{g}/{d}" in expected for d in DRIFTS)]
    done = [name for name in expected if name in records]
    flagged = any("diverged" in record for record in records.values())
    cells, per_seed, diverged = compare_drifts(records, games)
    rows, summary_games = [], {}
    for game, (ppo, dpo, diff) in cells.items():
        summary_games[game] = {"ppo": ppo.tolist(), "dpo": dpo.tolist(),
                               "dpo_minus_ppo": diff.as_dict()}
        rows.append(f"| {game} | {GAMES[game][2]:.2f} | {mean_sd_text(ppo, 1)} "
                    f"({np.isfinite(ppo).sum()}) | {mean_sd_text(dpo, 1)} "
                    f"({np.isfinite(dpo).sum()}) | {diff.text(1, signed=True)} |")
    overall = compare(per_seed, np.zeros_like(per_seed), paired=True, unit="seed")
    _, seeds, fields = SCALES[scale]
    verdict = _verdict(overall, len(done), len(expected), scale, diverged)
    lines = [
        f"## {TITLE} [{scale}]\n",
        "**Paper's claim** (Lu et al., 2022, abstract): DPO performs at least "
        "as well as PPO-clip on Brax (that claim is `dpo-vs-ppo-brax`). They publish no DPO "
        "MinAtar figure.\n",
        "**What we test** (our question): DPO vs PPO-clip on four MinAtar games with PPO's "
        "tuned MinAtar settings (Goldie et al., 2025), which favour PPO-clip; declared "
        f"effect {EFFECT:g} of PPO-clip's return, in DPO's favour.\n",
        "**Deviations**: not the paper's benchmark (MinAtar, not Brax); PPO-clip's tuned "
        "settings, not DPO's own.\n",
        f"**Units**: {seeds} seeds per game and drift (the same keys for both: paired), "
        f"{fields['total_timesteps']:,} env steps, {fields['num_envs']} envs x "
        f"{fields['num_steps']} steps, {fields['update_epochs']} epochs x "
        f"{fields['num_minibatches']} minibatches, Adam lr / b2 per game; score = mean "
        f"episode return over the last {FINAL_FRACTION:.0%} of updates; cells mean (sd) "
        f"(seeds); DPO - PPO-clip with the paired 95% t interval over seeds. Pieces done: "
        f"{len(done)} of {len(expected)}.\n",
        "**Preconditions**: every game has paired seeds with finite scores; diverged seeds "
        "score nothing (" + (f"diverged: PPO-clip {diverged['ppo']}, DPO {diverged['dpo']}"
                             if flagged else "these records, from before December 2026, do "
                             "not say which seeds diverged") + ").\n",
        "| game | published PPO | PPO-clip (seeds) | DPO (seeds) | DPO - PPO-clip |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"DPO - PPO-clip relative to PPO-clip, a seed's mean over games: {overall.text(3)}.\n",
        f"**Verdict**: {verdict.text()}\n",
    ]
    summary = {"claim": "dpo-vs-ppo-minatar", "scale": scale, "pieces_done": done,
               "pieces_expected": expected, "games": summary_games,
               "relative_difference_per_seed": per_seed.tolist(),
               "relative_difference_over_games": overall.interval.as_dict(),
               "sign_flip_p": overall.p, "diverged": diverged}
    return Report("\n".join(lines), summary, verdict.text(),
                  lambda path: _plot(records, games, path))


def _verdict(overall: Any, done: int, expected: int, scale: str,
             diverged: dict[str, int]) -> Verdict:
    if done < expected:
        return Verdict("pending", pending_verdict("dpo-vs-ppo-minatar", scale, done,
                                                  expected).split(": ", 1)[1])
    failed = ["fewer than two seeds have paired finite scores on every game"] \
        if overall.units < 2 else []
    verdict = decide(overall, EFFECT, CLAIM, failed)
    if sum(diverged.values()):
        return Verdict(verdict.kind, f"{verdict.reason} Diverged seeds (scored nothing): "
                       f"PPO-clip {diverged['ppo']}, DPO {diverged['dpo']}.")
    return verdict


def _plot(records: dict[str, dict[str, Any]], games: list[str], path: Path) -> None:
    from discovery.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(games), figsize=(4 * len(games), 3.2), squeeze=False)
    for ax, game in zip(axes[0], games):
        for drift in DRIFTS:
            record = records.get(f"{game}/{drift}")
            if record is None:
                continue
            curves = np.array([[np.nan if x is None else x for x in row]
                               for row in record["curves"]], float)
            with warnings.catch_warnings():  # updates where no seed's episode ended
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(curves, axis=0)
            steps = np.asarray(record["curve_env_steps"])
            ended = np.isfinite(mean)  # joined across points where no episode ended
            ax.plot(steps[ended], mean[ended], label=f"{drift} ({len(curves)} seeds)")
        ax.set_title(game)
        ax.set_xlabel("env steps")
        if ax.get_lines():
            ax.legend(loc="lower right")
    axes[0][0].set_ylabel("episode return")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
