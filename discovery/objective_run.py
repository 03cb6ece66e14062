"""`discover meta-train` for learned objectives: run, evaluate on held-out layouts, report.

A run folder holds ``config.yaml``, ``metrics.jsonl``, ``checkpoints/``,
``objective_params.msgpack`` (flax msgpack, no pickle), ``meta_training.png`` and
``summary.json``, whose evaluation compares, on each held-out layout and with fresh
seeds, agents trained by the discovered objective, by a randomly initialised objective
(what meta-training started from), and by the hand-designed A2C baseline.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs as env_registry
from agents.a2c import make_a2c
from agents.lpg_agent import lifetime_final_return, lifetime_final_reward_rate
from discovery.config import save_config
from discovery.lpg_task import make_objective_evaluator
from discovery.meta_run import generation_progress, load_params, save_params
from discovery.objective import make_objective
from discovery.plots import plot_metric_history
from envs.registry import GRIDWORLD_PREFIX
from meta.objective_loop import (
    ObjectiveMetaTrainConfig,
    ObjectiveMetaTrainResult,
    a2c_like,
    meta_train_objective,
)


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


def evaluate_held_out(
    config: ObjectiveMetaTrainConfig, result: ObjectiveMetaTrainResult
) -> dict[str, Any]:
    """Held-out final return and reward rate of the discovered objective, of its random
    initialisation, and of A2C, on the same seeds."""
    layouts = tuple(config.levels.held_out)
    key = jax.random.key(config.seed + 1)
    evaluate = make_objective_evaluator(
        result.objective, config.agent, layouts, config.eval_seeds, config.eval_lifetime
    )
    initial = result.objective.init(jax.random.split(jax.random.key(config.seed), 3)[0])
    results = {
        "learned": evaluate(result.params, key),
        "initial_objective": evaluate(initial, key),
        "a2c": a2c_baseline(config, layouts, key),
    }
    report: dict[str, Any] = {"layouts": list(layouts), "seeds": config.eval_seeds,
                              "lifetime": config.eval_lifetime}
    for method, metrics in results.items():
        report[method] = {
            **_mean_sem(metrics["return"]),
            "per_seed": metrics["return"].tolist(),
            "reward_rate": {
                **_mean_sem(metrics["reward_rate"]),
                "per_seed": metrics["reward_rate"].tolist(),
            },
        }
    return report


def _mean_sem(values: np.ndarray) -> dict[str, list[float]]:
    """Mean and standard error over seeds (last axis), NaN seeds (no episode) skipped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        count = np.sum(np.isfinite(values), axis=-1)
        mean = np.nanmean(values, axis=-1)
        sem = np.nanstd(values, axis=-1) / np.sqrt(np.maximum(count, 1))
    return {"mean": mean.tolist(), "sem": sem.tolist()}


def load_finished_run(
    config: ObjectiveMetaTrainConfig, run_dir: Path
) -> ObjectiveMetaTrainResult:
    """A finished run's objective params and log, as ``meta_train_objective`` returns
    them (without the loop state), e.g. to evaluate it again."""
    objective = make_objective(config.objective)
    params = load_params(run_dir / "objective_params.msgpack", objective.init(jax.random.key(0)))
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    history = [json.loads(line) for line in lines]
    return ObjectiveMetaTrainResult(run_dir, None, objective, history, lambda state: params)


def write_objective_results(
    result: ObjectiveMetaTrainResult, config: ObjectiveMetaTrainConfig
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
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    summary = {
        "name": config.name,
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
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_objective_meta_training(
    config: ObjectiveMetaTrainConfig, run_dir: Path, resume: bool = False, tracker: Any = None
) -> dict[str, Any]:
    """Meta-train an objective with a progress bar; returns the run's summary. ``tracker``
    (:mod:`discovery.tracking`) also receives every generation's record."""
    from rich.console import Console

    console = Console()
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    console.print(
        f"[bold]meta-train[/] {config.objective.kind} by {config.optimizer} on "
        f"{', '.join(config.levels.train)}: {config.generations} generations -> {run_dir}"
    )
    progress = generation_progress(console)
    with progress:
        bar = progress.add_task("meta", total=config.generations, line="starting")

        def on_generation(record: dict) -> None:
            if config.optimizer == "metagrad":
                line = (
                    f"agents' return {record['episode_return']:.2f} "
                    f"grad norm {record['grad_norm']:.3g}"
                )
            else:
                line = f"fitness mean {record['fitness_mean']:.3f} max {record['fitness_max']:.3f}"
            progress.update(bar, completed=record["generation"] + 1, line=line)
            if tracker is not None and jax.process_index() == 0:
                tracker.log(record["generation"], record)

        result = meta_train_objective(config, run_dir, resume=resume, on_generation=on_generation)
    summary = write_objective_results(result, config)
    evaluation = summary["evaluation"]
    console.print(
        f"held-out layouts, {evaluation['seeds']} fresh seeds, "
        f"{evaluation['lifetime']} updates (final return, and reward rate):"
    )
    for index, layout in enumerate(evaluation["layouts"]):
        cells = [
            f"{label} {evaluation[m]['mean'][index]:.2f} "
            f"({1000 * evaluation[m]['reward_rate']['mean'][index]:.1f} per 1000 steps)"
            for m, label in (("learned", "learned"), ("initial_objective", "initial objective"),
                             ("a2c", "A2C"))
        ]
        console.print(f"  {layout}: " + ", ".join(cells))
    console.print(
        f"wrote {run_dir}/: config.yaml metrics.jsonl checkpoints/ objective_params.msgpack "
        "meta_training.png summary.json"
    )
    return summary
