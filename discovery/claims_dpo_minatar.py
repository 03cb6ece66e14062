"""Claim: DPO, the closed form of the drift discovered by LPO, performs at least as well
as PPO-clip on MinAtar (Lu et al., 2022, "Discovered Policy Optimisation").

No meta-training: PPO-clip and DPO train on Asterix, Breakout, Freeway and
SpaceInvaders with the MinAtar PPO settings of the LPO re-implementation (Jackson et
al., 2024: 64 envs x 128 steps, 4 epochs, 8 minibatches, MLP 2x64 ReLU, Adam lr / b2
per game), 1e7 steps, seeds vmapped. One piece per game and drift (about 15-25 min on
2 CPU cores at 5 seeds). A seed's score is its mean episode return over the last 10% of
updates. The comparison is DPO - PPO-clip per game and, relative to PPO-clip's mean,
averaged over the games, each with a 95% bootstrap CI over seeds.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from discovery.reproduce import Piece, Progress, Report, no_progress, pending_verdict
from discovery.stats import bootstrap_mean_ci, bootstrap_mean_difference_ci, runs_to_settle

TITLE = "DPO vs PPO-clip on MinAtar (Lu et al., 2022)"
DRIFTS = ("ppo", "dpo")
#: Adam (lr, b2) per game (Jackson et al., 2024), and the published PPO return the LPO
#: MinAtar setting normalises by (for the "paper's figure" column).
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


def _runner(game: str, drift_name: str, seeds: int, fields: dict[str, Any]):
    def run(folder: Path, progress: Progress) -> dict[str, Any]:
        from discovery.agents.ppo import PPOConfig
        from discovery.evaluate import final_mean
        from discovery.train import TrainConfig, train_seeds

        lr, adam_b2, _ = GAMES[game]
        config = PPOConfig(lr=lr, adam_b2=adam_b2, **fields)
        # Seed 0 for both drifts: the same agent keys, so the comparison is paired. Chunked
        # updates (host callbacks) only when someone watches the progress.
        def on_update(update: int) -> None:
            progress(update + 1, config.num_updates, "PPO updates")

        result = train_seeds(TrainConfig(env=game, drift=drift_name, seeds=seeds, ppo=config),
                             on_update=None if progress is no_progress else on_update)
        curves = np.asarray(result.metrics["episode_return"], np.float64)
        finals = final_mean(curves, FINAL_FRACTION)
        stride = max(1, curves.shape[1] // CURVE_POINTS)
        points = _window_means(curves, stride)
        return {
            "game": game,
            "drift": drift_name,
            "seeds": seeds,
            "ppo": {**fields, "lr": lr, "adam_b2": adam_b2},
            "final_returns": [None if not np.isfinite(x) else float(x) for x in finals],
            # Each window's last update (before stop 27: the update kept).
            "curve_env_steps": [int(min(u + stride, curves.shape[1]) * config.steps_per_update)
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


def report(records: dict[str, dict[str, Any]], scale: str, expected: list[str]) -> Report:
    games = [g for g in GAMES if any(f"{g}/{d}" in expected for d in DRIFTS)]
    done = [name for name in expected if name in records]
    rows, summary_games, relative = [], {}, []
    for game in games:
        ppo, dpo = (_finals(records.get(f"{game}/{d}")) for d in DRIFTS)
        ppo_ci, dpo_ci = bootstrap_mean_ci(ppo), bootstrap_mean_ci(dpo)
        diff = bootstrap_mean_difference_ci(dpo, ppo)
        if ppo.size and dpo.size:
            relative.append((dpo, ppo))
        summary_games[game] = {"ppo": ppo_ci.as_dict(), "dpo": dpo_ci.as_dict(),
                               "dpo_minus_ppo": diff.as_dict()}
        rows.append(f"| {game} | {GAMES[game][2]:.2f} | {ppo_ci.text(1)} ({ppo_ci.n}) | "
                    f"{dpo_ci.text(1)} ({dpo_ci.n}) | {diff.text(1)} |")
    overall = _relative_over_games(relative)
    complete = len(done) == len(expected)
    _, seeds, fields = SCALES[scale]
    verdict = _verdict(overall, complete, scale, len(done), len(expected), seeds)
    lines = [
        f"## {TITLE} [{scale}]\n",
        "**Paper**: DPO, the closed form of the drift LPO discovered, performs at least as "
        "well as PPO-clip (Lu et al., 2022). The published PPO returns of the LPO MinAtar "
        "setting are shown beside ours; per-game DPO figures of the paper are not in our "
        "reference notes, so the check is the direction and size of DPO - PPO-clip.\n",
        f"**Setup**: {seeds} seeds per game and drift (the same keys for both), "
        f"{fields['total_timesteps']:,} env steps, {fields['num_envs']} envs x "
        f"{fields['num_steps']} steps, {fields['update_epochs']} epochs x "
        f"{fields['num_minibatches']} minibatches, Adam lr / b2 per game; score = mean "
        f"episode return over the last {FINAL_FRACTION:.0%} of updates; 95% bootstrap CIs "
        f"over seeds. Pieces done: {len(done)} of {len(expected)}.\n",
        "| game | published PPO | PPO-clip (seeds) | DPO (seeds) | DPO - PPO-clip |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"DPO - PPO-clip relative to PPO-clip, mean over games: {overall.text(3)}.\n",
        f"**Verdict**: {verdict}\n",
    ]
    summary = {"claim": "dpo-vs-ppo-minatar", "scale": scale, "pieces_done": done,
               "pieces_expected": expected, "games": summary_games,
               "relative_difference_over_games": overall.as_dict()}
    return Report("\n".join(lines), summary, verdict,
                  lambda path: _plot(records, games, path))


def _relative_over_games(groups: list[tuple[np.ndarray, np.ndarray]], samples: int = 2000):
    """Mean over games of (mean DPO - mean PPO) / |mean PPO|, seeds resampled within each
    game and drift (a stratified bootstrap)."""
    from discovery.stats import Interval, percentile_interval, resampled_means

    if not groups:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(0)
    per_game, point = [], []
    for dpo, ppo in groups:
        dpo, ppo = dpo[np.isfinite(dpo)], ppo[np.isfinite(ppo)]
        if not (dpo.size and ppo.size and ppo.mean() != 0):
            continue
        a, b = resampled_means(dpo, samples, rng), resampled_means(ppo, samples, rng)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_game.append((a - b) / np.abs(b))
        point.append((dpo.mean() - ppo.mean()) / abs(ppo.mean()))
    if not point:
        return Interval(float("nan"), float("nan"), float("nan"))
    return percentile_interval(float(np.mean(point)), np.mean(per_game, axis=0), n=len(point))


def _verdict(overall: Any, complete: bool, scale: str, done: int, expected: int,
             seeds: int) -> str:
    if not complete:
        return pending_verdict("dpo-vs-ppo-minatar", scale, done, expected)
    if not np.isfinite(overall.estimate):
        return "inconclusive: no game has finite returns for both drifts."
    ci = f"(relative difference {overall.estimate:+.3f}, 95% CI [{overall.low:+.3f}, " \
         f"{overall.high:+.3f}])"
    if overall.low > 0:
        return f"holds at this scale: DPO's returns are above PPO-clip's {ci}."
    if overall.high < 0:
        return f"does not hold at this scale: DPO's returns are below PPO-clip's {ci}."
    needed = runs_to_settle(overall, seeds)
    settle = (f"a difference this size would need about {needed:,} seeds per game (not "
              f"{seeds}) for its CI to exclude zero, if the spread between seeds stays as "
              "measured" if needed is not None else "the estimate is zero, so more seeds "
              "would narrow the CI around no difference")
    return f"inconclusive at this scale: the CI spans no difference {ci}; {settle}."


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
