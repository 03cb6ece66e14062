"""`discover meta-train` for drifts, and for any component that acts on PPO through its
drift (a learned advantage transformation): run the outer loop with a progress bar and
write the results.

A run folder holds ``config.yaml``, ``metrics.jsonl`` (one line per generation),
``checkpoints/``, the discovered drift params (``mean_params.msgpack``: the ES mean or
the meta-gradient iterate; ES also writes its best member, ``best_params.msgpack``, and
a run with ``validation.envs`` its best-validated params, ``validated_params.msgpack``;
flax msgpack, no pickle), ``summary.json`` (with the validation selection: generation,
score and curve), ``fitness.png`` (ES fitness, or the
meta-gradient agents' episode returns) and a plot of what was learned (``drift.png``: the
learned drift beside PPO's and DPO's over ``(r, A)``, as in Lu et al., 2022).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from discovery.components import VALIDATED_PARAMS_FILE
from discovery.drift import make_dpo_drift, make_ppo_drift
from discovery.drift_training import MetaTrainConfig
from discovery.files import write_bytes_atomic, write_json
from discovery.pipeline import MetaTrainResult
from discovery.plots import plot_drifts, plot_fitness, plot_metric_history
from discovery.run_folder import RunFolderPlan
from discovery.run_progress import metagrad_line, number, run_with_progress
from discovery.stats import summarise_over_seeds
from discovery.tasks import make_evaluator, ppo_params_for


def save_params(params: Any, path: Path) -> Path:
    """Write a params pytree as flax msgpack, atomically (temp file, then rename)."""
    data = serialization.msgpack_serialize(
        jax.tree.map(np.asarray, serialization.to_state_dict(params))
    )
    return write_bytes_atomic(path, data)


def load_params(path: Path, target: Any) -> Any:
    """Read params written by :func:`save_params` into the structure of ``target``."""
    state = serialization.msgpack_restore(Path(path).read_bytes())
    return serialization.from_state_dict(target, state)


def plot_learned_drift(result: MetaTrainResult, config: MetaTrainConfig) -> str:
    """``drift.png``: the discovered drift beside PPO-clip's and DPO's; returns its name."""
    learned, params = result.component, result.mean_params
    source = "ES mean" if config.optimizer == "es" else "meta-gradients"
    ppo, dpo = make_ppo_drift(), make_dpo_drift()
    ppo_params, dpo_params = ppo.init(jax.random.key(0)), dpo.init(jax.random.key(0))
    apply = jax.jit(lambda p, r, a, t: learned.apply(p, r, a, t))
    plot_drifts(
        {
            "PPO-clip": lambda r, a, t: ppo(ppo_params, jnp.asarray(r), jnp.asarray(a), t),
            "DPO": lambda r, a, t: dpo(dpo_params, jnp.asarray(r), jnp.asarray(a), t),
            f"learned ({learned.name}, {source})": lambda r, a, t: apply(
                params, jnp.asarray(r, jnp.float32), jnp.asarray(a, jnp.float32),
                jnp.float32(t)
            ),
        },
        result.run_dir / "drift.png",
        progress=0.5,
    )
    return "drift.png"


#: Fresh agents per env and method in a finished run's held-out evaluation.
EVAL_SEEDS = 16


def write_results(
    result: MetaTrainResult,
    config: MetaTrainConfig,
    plot_learned: Callable[[MetaTrainResult, Any], str] = plot_learned_drift,
) -> dict[str, Any]:
    """Params, plots (``plot_learned`` draws the discovered component) and
    ``summary.json`` for a finished run of any component that acts through PPO's drift."""
    run_dir = result.run_dir
    mean_params = result.mean_params
    es = config.optimizer == "es"
    save_params(mean_params, run_dir / "mean_params.msgpack")
    if es:
        save_params(result.state.optimizer.best_params, run_dir / "best_params.msgpack")
    if result.validated_params is not None:
        save_params(result.validated_params, run_dir / VALIDATED_PARAMS_FILE)
    else:  # nothing selected: no stale file from an earlier run may stand in for it
        (run_dir / VALIDATED_PARAMS_FILE).unlink(missing_ok=True)
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    curve = "fitness_mean" if es else "episode_return"
    if es:
        plot_fitness(history, run_dir / "fitness.png", title=f"{config.name}: ES fitness")
    else:
        plot_metric_history(history, curve, run_dir / "fitness.png",
                            title=f"{config.name}: {config.learned_name} by meta-gradients")
    plot_file = plot_learned(result, config)
    learned = result.task.drift
    eval_key = jax.random.key(config.seed + 1)
    evaluate = make_evaluator(config.task, learned, EVAL_SEEDS)
    learned_returns = evaluate(mean_params, eval_key)
    ppo_returns = evaluate(ppo_params_for(learned, eval_key), eval_key)
    learned, ppo = summarise_over_seeds(learned_returns), summarise_over_seeds(ppo_returns)
    first, last = history[0], history[-1]
    window = max(1, len(history) // 5)
    summary = {
        "name": config.name,
        "component": config.component,
        "learned": config.learned_name,
        "optimizer": config.optimizer,
        "generations": len(history),
        "envs": list(config.task.envs),
        "ppo_returns": result.task.ppo_returns.tolist(),
        "random_returns": result.task.random_returns.tolist(),
        f"{curve}_first": first[curve],
        f"{curve}_last": last[curve],
        f"{curve}_first_window": _finite_mean(r[curve] for r in history[:window]),
        f"{curve}_last_window": _finite_mean(r[curve] for r in history[-window:]),
        "score": config.task.score,
        "env_steps": last["env_steps"],
        "wall_time_s": float(sum(r["wall_time_s"] for r in history)),
        "evaluation": {
            "seeds": EVAL_SEEDS,
            # Means over the seeds that did not diverge, with how many those are.
            "learned_mean_return": learned["mean"],
            "learned_sem": learned["sem"],
            "learned_seeds": learned["seeds_covered"],
            "learned_diverged_seeds": [EVAL_SEEDS - n for n in learned["seeds_covered"]],
            "ppo_mean_return": ppo["mean"],
            "ppo_sem": ppo["sem"],
            "ppo_seeds": ppo["seeds_covered"],
            "ppo_diverged_seeds": [EVAL_SEEDS - n for n in ppo["seeds_covered"]],
        },
    }
    if es:
        summary["nonfinite_members"] = int(sum(r["num_nonfinite"] for r in history))
        summary["best_fitness"] = last["best_fitness"]
    else:
        summary["nonfinite_chunks"] = int(sum(r["nonfinite_chunks"] for r in history))
    if config.validation.enabled:
        summary["validation"] = validation_summary(result, config, history)
    summary["plot"] = plot_file
    write_json(run_dir / "summary.json", summary)
    return summary


def validation_summary(
    result: MetaTrainResult, config: MetaTrainConfig, history: list[dict[str, Any]]
) -> dict[str, Any]:
    """``summary.json``'s report of the selection on validation envs: the envs and their
    baselines, the curve (``generation``, ``score``, per-env ``env_scores``; a
    non-finite score is ``null`` and counted in ``nonfinite``), and the selected
    generation with its score and params file (all ``None`` when no score was finite)."""
    selection = result.validation
    selected = int(selection.generation) if selection is not None else -1
    curve = [
        {"generation": r["generation"], "score": r["validation_score"],
         "env_scores": r.get("validation_env_scores")}
        for r in history if "validation_score" in r
    ]
    baselines = result.built.metadata.get("validation_baselines", {})
    return {
        "envs": list(config.validation.envs),
        "every": config.validation.every,
        "seeds": config.validation.seeds,
        "normalise": config.validation.normalise,
        "ppo_returns": baselines.get("ppo_returns"),
        "random_returns": baselines.get("random_returns"),
        "selected_generation": selected if selected >= 0 else None,
        "selected_score": float(selection.score) if selected >= 0 else None,
        "params_file": VALIDATED_PARAMS_FILE if selected >= 0 else None,
        "selected_by": "the best finite validation score of the "
        + ("ES search mean" if config.optimizer == "es" else "meta-gradient iterate"),
        "nonfinite": sum(1 for point in curve if point["score"] is None),
        "curve": curve,
    }


def validation_line(validation: dict[str, Any]) -> str:
    """One line on the selection in ``summary["validation"]``."""
    envs = ", ".join(validation["envs"])
    points = len(validation["curve"])
    if validation["selected_generation"] is None:
        return (f"validation on {envs}: no finite score in {points} validations; nothing "
                "selected (validated_params.msgpack not written)")
    nonfinite = validation["nonfinite"]
    return (
        f"validation on {envs}: selected generation {validation['selected_generation']} "
        f"(score {validation['selected_score']:.3f}, best of {points} validations"
        + (f", {nonfinite} non-finite" if nonfinite else "") + ")"
    )


def _finite_mean(values: Any) -> float | None:
    """Mean of the finite values (``None`` entries are missing), or ``None`` if none is."""
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _format_return(mean: float | None, seeds: int, diverged: int) -> str:
    """``"271.5 (16 seeds)"``, with the diverged seeds counted when there are any."""
    text = "n/a" if mean is None else f"{mean:.1f}"
    text += f" ({seeds} seeds" + (f", {diverged} diverged)" if diverged else ")")
    return text


def run_meta_training(
    config: MetaTrainConfig,
    run_dir: Path,
    resume: bool = False,
    tracker: Any = None,
    overwrite: bool = False,
    plan: RunFolderPlan | None = None,
    write: Callable[[MetaTrainResult, Any], dict[str, Any]] = write_results,
) -> dict:
    """Meta-train a drift (or any component acting through PPO's drift) with a progress
    bar (:func:`discovery.run_progress.run_with_progress`) and write its results with
    ``write``; returns the run's summary (empty on the processes of a ``jax.distributed``
    job other than process 0)."""
    es = config.optimizer == "es"
    scale = (
        f"population {config.es.population_size} ({config.es.strategy})" if es else
        f"meta-gradients through {config.metagrad.unroll} PPO updates of "
        f"{config.metagrad.num_agents} agents"
    )

    def es_line(record: dict) -> str:
        line = (
            f"fitness mean {number(record['fitness_mean'], '.3f')} "
            f"max {number(record['fitness_max'], '.3f')} "
            f"best {number(record['best_fitness'], '.3f')} sigma {record['sigma']:.4f}"
        )
        if "validation_score" in record:
            line += f" validation {number(record['validation_score'], '.3f')}"
        return line

    result, console = run_with_progress(
        config, run_dir,
        headline=f"{config.learned_name} on {', '.join(config.task.envs)}: "
        f"{config.generations} generations x {scale}",
        line=es_line if es else metagrad_line,
        resume=resume, tracker=tracker, overwrite=overwrite, plan=plan,
    )
    if result is None:
        return {}
    console.print(f"held-out evaluation: {EVAL_SEEDS} fresh agents each with the learned "
                  f"{config.learned_name} and with PPO-clip on {', '.join(config.task.envs)}")
    tic = time.perf_counter()
    summary = write(result, config)
    console.print(f"held-out evaluation done in {time.perf_counter() - tic:.0f} s")
    if es:
        console.print(
            f"fitness (population mean, {config.task.normalise} normalised): first "
            f"{number(summary['fitness_mean_first'], '.3f')} -> last "
            f"{number(summary['fitness_mean_last'], '.3f')}; best member "
            f"{number(summary['best_fitness'], '.3f')}; "
            f"{summary['nonfinite_members']} non-finite members in all generations"
        )
    else:
        console.print(
            "meta-gradient agents' episode return: first "
            f"{number(summary['episode_return_first'], '.3f')} -> last "
            f"{number(summary['episode_return_last'], '.3f')}; "
            f"{summary['nonfinite_chunks']} non-finite gradient chunks in all generations"
        )
    evaluation = summary["evaluation"]
    for index, name in enumerate(config.task.envs):
        learned, ppo = (
            _format_return(
                evaluation[f"{method}_mean_return"][index],
                evaluation[f"{method}_seeds"][index],
                evaluation[f"{method}_diverged_seeds"][index],
            )
            for method in ("learned", "ppo")
        )
        console.print(
            f"{name}: fresh agents ({config.task.score} return) score {learned} with the "
            f"learned {config.learned_name} vs {ppo} with PPO-clip"
        )
    validation = summary.get("validation")
    if validation is not None:
        console.print(validation_line(validation))
    best = "best_params.msgpack " if es else ""
    if validation is not None and validation["params_file"]:
        best += f"{validation['params_file']} "
    console.print(
        f"wrote {run_dir}/: config.yaml metrics.jsonl checkpoints/ mean_params.msgpack "
        f"{best}fitness.png {summary['plot']} summary.json"
    )
    return summary
