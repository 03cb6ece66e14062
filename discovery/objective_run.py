"""`discover meta-train` for learned objectives: run, evaluate on held-out layouts, report.

A run folder holds ``config.yaml``, ``metrics.jsonl``, ``checkpoints/``,
``objective_params.msgpack`` (flax msgpack, no pickle), ``meta_training.png`` and
``summary.json``, whose evaluation compares, on each held-out layout and with fresh
seeds, agents trained by the discovered objective, by a randomly initialised objective
(what meta-training started from), and by the hand-designed A2C baseline.

The headline of each method (``mean``, ``sem``, ``per_seed``) is the final reward per
step, which every seed has; the final episode return is reported beside it (``return``)
with the number of seeds it covers, since it is missing where no episode ended in the
final window (as on layouts whose episodes outlast it; LPG, Oh et al., 2020, and GROOVE,
Jackson et al., 2023, report returns). ``summary.json`` is strict JSON: a missing value
is ``null``, never NaN.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from discovery import envs as env_registry
from discovery.agents.a2c import make_a2c
from discovery.agents.lpg_agent import lifetime_final_return, lifetime_final_reward_rate
from discovery.envs.registry import GRIDWORLD_PREFIX
from discovery.files import write_json
from discovery.lpg_task import make_objective_evaluator
from discovery.meta_run import load_params, save_params
from discovery.objective import Objective, make_objective
from discovery.objective_training import ObjectiveMetaTrainConfig, a2c_like
from discovery.pipeline import MetaTrainResult
from discovery.plots import plot_metric_history
from discovery.run_folder import RunFolderPlan
from discovery.run_progress import metagrad_line, number, run_with_progress
from discovery.stats import summarise_over_seeds


def a2c_baseline(
    config: ObjectiveMetaTrainConfig, layouts: tuple[str, ...], key: jax.Array
) -> dict[str, np.ndarray]:
    """The A2C baseline with the LPG agents' rollout shape and lifetime:
    ``{"return", "reward_rate"}``, each ``[L, seeds]`` (as the objective evaluator's)."""
    a2c_config = a2c_like(config.agent, config.eval_lifetime)
    results: dict[str, list[np.ndarray]] = {"return": [], "reward_rate": []}
    for name, layout_key in zip(layouts, jax.random.split(key, len(layouts))):
        env, params = env_registry.make(GRIDWORLD_PREFIX + name)
        a2c = make_a2c(a2c_config, env, params)
        keys = jax.random.split(layout_key, config.eval_seeds)
        _, metrics = jax.jit(jax.vmap(a2c.train))(keys)
        metrics = {**metrics, "alive": jnp.ones_like(metrics["episodes"], dtype=bool)}
        results["return"].append(np.asarray(lifetime_final_return(metrics)))
        results["reward_rate"].append(np.asarray(lifetime_final_reward_rate(metrics)))
    return {name: np.stack(values) for name, values in results.items()}


@dataclass
class FinishedRun:
    """A finished run read back from its folder: the objective, its discovered params
    and the log (what :func:`evaluate_held_out` and the results writer need)."""

    run_dir: Path
    component: Objective
    params: Any
    history: list[dict[str, Any]]


def evaluate_held_out(
    config: ObjectiveMetaTrainConfig, result: MetaTrainResult | FinishedRun
) -> dict[str, Any]:
    """Held-out final reward rate (the headline) and final return of the discovered
    objective, of its random initialisation, and of A2C, on the same seeds; each method's
    entry as :func:`discovery.stats.summarise_over_seeds` gives (with the seeds covered)."""
    layouts = tuple(config.levels.held_out)
    key = jax.random.key(config.seed + 1)
    evaluate = make_objective_evaluator(
        result.component, config.agent, layouts, config.eval_seeds, config.eval_lifetime
    )
    initial = result.component.init(jax.random.split(jax.random.key(config.seed), 3)[0])
    results = {
        "learned": evaluate(result.params, key),
        "initial_objective": evaluate(initial, key),
        "a2c": a2c_baseline(config, layouts, key),
    }
    report: dict[str, Any] = {
        "layouts": list(layouts),
        "seeds": config.eval_seeds,
        "lifetime": config.eval_lifetime,
        "headline": "reward_rate",
    }
    for method, metrics in results.items():
        rate = summarise_over_seeds(metrics["reward_rate"])
        returns = summarise_over_seeds(metrics["return"])
        report[method] = {**rate, "reward_rate": rate, "return": returns}
    return report


def load_finished_run(config: ObjectiveMetaTrainConfig, run_dir: Path) -> FinishedRun:
    """A finished run's objective params and log, e.g. to evaluate it again."""
    objective = make_objective(config.objective)
    params = load_params(run_dir / "objective_params.msgpack", objective.init(jax.random.key(0)))
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    history = [json.loads(line) for line in lines]
    return FinishedRun(run_dir, objective, params, history)


def write_objective_results(
    result: MetaTrainResult | FinishedRun, config: ObjectiveMetaTrainConfig
) -> dict[str, Any]:
    """Params, the meta-training plot, held-out evaluation and ``summary.json``."""
    run_dir = result.run_dir
    save_params(result.params, run_dir / "objective_params.msgpack")
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    curve = "episode_return" if config.optimizer == "metagrad" else "fitness_mean"
    plot_metric_history(
        history, curve, run_dir / "meta_training.png",
        title=f"{config.name}: {config.objective.kind} by {config.optimizer}",
    )
    window = max(1, len(history) // 5)

    def window_mean(records):
        values = np.array([r.get(curve, np.nan) for r in records], dtype=float)
        return float(np.nanmean(values)) if np.isfinite(values).any() else None

    summary = {
        "name": config.name,
        "component": config.component,
        "learned": config.objective.kind,
        "objective": config.objective.kind,
        "optimizer": config.optimizer,
        "generations": len(history),
        "curve": curve,
        "curve_first_window": window_mean(history[:window]),
        "curve_last_window": window_mean(history[-window:]),
        "env_steps": history[-1]["env_steps"],
        "wall_time_s": float(sum(r["wall_time_s"] for r in history)),
        "evaluation": evaluate_held_out(config, result),
    }
    write_json(run_dir / "summary.json", summary)
    return summary


def run_objective_meta_training(
    config: ObjectiveMetaTrainConfig,
    run_dir: Path,
    resume: bool = False,
    tracker: Any = None,
    overwrite: bool = False,
    plan: RunFolderPlan | None = None,
) -> dict[str, Any]:
    """Meta-train an objective with a progress bar
    (:func:`discovery.run_progress.run_with_progress`) and write its results; returns the
    run's summary (empty on the processes of a ``jax.distributed`` job other than
    process 0)."""
    def es_line(record: dict) -> str:
        return (
            f"fitness mean {number(record['fitness_mean'], '.3f')} "
            f"max {number(record['fitness_max'], '.3f')}, "
            f"{record.get('agents_diverged', 0)} agents diverged"
        )

    result, console = run_with_progress(
        config, run_dir,
        headline=f"{config.objective.kind} by {config.optimizer} on "
        f"{', '.join(config.levels.train)}: {config.generations} generations",
        line=metagrad_line if config.optimizer == "metagrad" else es_line,
        resume=resume, tracker=tracker, overwrite=overwrite, plan=plan,
    )
    if result is None:
        return {}
    console.print(f"held-out evaluation: {config.eval_seeds} fresh agents each with the learned "
                  f"objective, the initial objective and A2C on "
                  f"{', '.join(config.levels.held_out)}")
    tic = time.perf_counter()
    summary = write_objective_results(result, config)
    console.print(f"held-out evaluation done in {time.perf_counter() - tic:.0f} s")
    evaluation = summary["evaluation"]
    seeds = evaluation["seeds"]
    console.print(
        f"held-out layouts, {seeds} fresh seeds, {evaluation['lifetime']} updates "
        "(final reward per 1000 steps; final return over the seeds where an episode ended):"
    )
    for index, layout in enumerate(evaluation["layouts"]):
        cells = []
        for m, label in (("learned", "learned"), ("initial_objective", "initial objective"),
                         ("a2c", "A2C")):
            rate = evaluation[m]["reward_rate"]["mean"][index]
            returns = evaluation[m]["return"]
            cells.append(
                f"{label} {number(None if rate is None else 1000 * rate, '.1f')} "
                f"(return {number(returns['mean'][index], '.2f')}, "
                f"{returns['seeds_covered'][index]}/{seeds} seeds)"
            )
        console.print(f"  {layout}: " + ", ".join(cells))
    console.print(
        f"wrote {run_dir}/: config.yaml metrics.jsonl checkpoints/ objective_params.msgpack "
        "meta_training.png summary.json"
    )
    return summary
