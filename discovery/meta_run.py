"""`discover meta-train`: run the outer loop with a progress bar and write the results.

A run folder holds ``config.yaml``, ``metrics.jsonl`` (one line per generation),
``checkpoints/``, the ES mean's and the best member's drift params
(``mean_params.msgpack``, ``best_params.msgpack``; flax msgpack, no pickle),
``summary.json``, ``fitness.png`` and ``drift.png`` (the learned drift beside PPO's and
DPO's over ``(r, A)``, as in Lu et al., 2022).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from discovery.config import save_config
from discovery.drift import make_dpo_drift, make_ppo_drift
from discovery.plots import plot_drifts, plot_fitness
from discovery.tasks import make_evaluator, ppo_params_for
from meta.loop import MetaTrainConfig, MetaTrainResult, meta_train


def save_params(params: Any, path: Path) -> Path:
    """Write a params pytree as flax msgpack, atomically (temp file, then rename)."""
    data = serialization.msgpack_serialize(
        jax.tree.map(np.asarray, serialization.to_state_dict(params))
    )
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_params(path: Path, target: Any) -> Any:
    """Read params written by :func:`save_params` into the structure of ``target``."""
    state = serialization.msgpack_restore(Path(path).read_bytes())
    return serialization.from_state_dict(target, state)


def write_results(result: MetaTrainResult, config: MetaTrainConfig) -> dict[str, Any]:
    """Params, plots and ``summary.json`` for a finished run."""
    run_dir = result.run_dir
    mean_params = result.mean_params
    save_params(mean_params, run_dir / "mean_params.msgpack")
    save_params(result.state.best_params, run_dir / "best_params.msgpack")
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    plot_fitness(history, run_dir / "fitness.png", title=f"{config.name}: ES fitness")

    learned = result.task.drift
    ppo, dpo = make_ppo_drift(), make_dpo_drift()
    ppo_params, dpo_params = ppo.init(jax.random.key(0)), dpo.init(jax.random.key(0))
    apply = jax.jit(lambda p, r, a, t: learned.apply(p, r, a, t))
    plot_drifts(
        {
            "PPO-clip": lambda r, a, t: ppo(ppo_params, jnp.asarray(r), jnp.asarray(a), t),
            "DPO": lambda r, a, t: dpo(dpo_params, jnp.asarray(r), jnp.asarray(a), t),
            f"learned ({learned.name}, ES mean)": lambda r, a, t: apply(
                mean_params, jnp.asarray(r, jnp.float32), jnp.asarray(a, jnp.float32),
                jnp.float32(t)
            ),
        },
        run_dir / "drift.png",
        progress=0.5,
    )
    eval_key = jax.random.key(config.seed + 1)
    eval_seeds = 16
    evaluate = make_evaluator(config.task, learned, eval_seeds)
    learned_returns = evaluate(mean_params, eval_key)
    ppo_returns = evaluate(ppo_params_for(learned, eval_key), eval_key)
    first, last = history[0], history[-1]
    window = max(1, len(history) // 5)
    summary = {
        "name": config.name,
        "generations": len(history),
        "envs": list(config.task.envs),
        "ppo_returns": result.task.ppo_returns.tolist(),
        "random_returns": result.task.random_returns.tolist(),
        "fitness_mean_first": first["fitness_mean"],
        "fitness_mean_last": last["fitness_mean"],
        "fitness_mean_first_window": float(np.mean([r["fitness_mean"] for r in history[:window]])),
        "fitness_mean_last_window": float(np.mean([r["fitness_mean"] for r in history[-window:]])),
        "best_fitness": last["best_fitness"],
        "env_steps": last["env_steps"],
        "wall_time_s": float(sum(r["wall_time_s"] for r in history)),
        "evaluation": {
            "seeds": eval_seeds,
            "learned_mean_return": learned_returns.mean(axis=-1).tolist(),
            "learned_sem": (learned_returns.std(axis=-1) / np.sqrt(eval_seeds)).tolist(),
            "ppo_mean_return": ppo_returns.mean(axis=-1).tolist(),
            "ppo_sem": (ppo_returns.std(axis=-1) / np.sqrt(eval_seeds)).tolist(),
        },
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def generation_progress(console: Any) -> Any:
    """A rich progress bar over generations with a free-text status line (``line``)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("generation {task.completed}/{task.total}"),
        BarColumn(),
        TextColumn("{task.fields[line]}"),
        TimeElapsedColumn(),
        console=console,
    )


def run_meta_training(
    config: MetaTrainConfig, run_dir: Path, resume: bool = False, tracker: Any = None
) -> dict:
    """Meta-train with a rich progress bar; returns the run's summary. ``tracker``
    (:mod:`discovery.tracking`) also receives every generation's record."""
    from rich.console import Console

    console = Console()
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    console.print(
        f"[bold]meta-train[/] {config.task.drift} on {', '.join(config.task.envs)}: "
        f"{config.generations} generations x population {config.es.population_size} "
        f"({config.es.strategy}) -> {run_dir}"
    )
    progress = generation_progress(console)
    with progress:
        bar = progress.add_task("meta", total=config.generations, line="starting")

        def on_generation(record: dict) -> None:
            line = (
                f"fitness mean {record['fitness_mean']:.3f} max {record['fitness_max']:.3f} "
                f"best {record['best_fitness']:.3f} sigma {record['sigma']:.4f}"
            )
            progress.update(bar, completed=record["generation"] + 1, line=line)
            if tracker is not None and jax.process_index() == 0:
                tracker.log(record["generation"], record)

        result = meta_train(config, run_dir, resume=resume, on_generation=on_generation)
    summary = write_results(result, config)
    console.print(
        f"fitness (population mean, PPO-clip = 1): first {summary['fitness_mean_first']:.3f}"
        f" -> last {summary['fitness_mean_last']:.3f}; best member {summary['best_fitness']:.3f}"
    )
    evaluation = summary["evaluation"]
    for name, learned, ppo in zip(config.task.envs, evaluation["learned_mean_return"],
                                  evaluation["ppo_mean_return"]):
        console.print(
            f"{name}: fresh agents ({evaluation['seeds']} new seeds) return {learned:.1f} with "
            f"the learned drift vs {ppo:.1f} with PPO-clip"
        )
    console.print(
        f"wrote {run_dir}/: config.yaml metrics.jsonl checkpoints/ mean_params.msgpack "
        "best_params.msgpack fitness.png drift.png summary.json"
    )
    return summary
