"""The ``discover`` command line: train, meta-train, demo, evaluate, sweep, export, zoo,
interpret, envs.

Each command turns flags into a validated config (``discovery.config``), calls a plain
function, and writes its results under ``<runs-dir>/<name>/``. Bad input exits with
status 2 and a message naming the field, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)
from discovery.checkpoint import CheckpointError
from discovery.config import ConfigError, config_component, load_config, save_config

DEFAULT_RUNS_DIR = "runs"


def _check_env(name: str, field: str) -> None:
    """Fail fast, naming the config field, on an environment name ``envs.make`` rejects."""
    try:
        envs.make(name)
    except ValueError as error:
        raise ConfigError(f"{field}: {error}", field=field) from None


def _check_level_source(name: str, field: str) -> None:
    """An env name, or ``<env>/random`` for physics drawn from its level space."""
    base, _, suffix = name.rpartition("/")
    if suffix == "random" and not name.startswith("gridworld/"):
        from envs.levels import LevelError, make_level_space

        try:
            make_level_space(base)
        except LevelError as error:
            raise ConfigError(f"{field}: {error}", field=field) from None
        return
    _check_env(name, field)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, help="where run folders go")
    parser.add_argument("--name", default=None, help="run name (folder under --runs-dir)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="dotted config override, e.g. --set ppo.lr=3e-4 (repeatable)",
    )


def _add_tracking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--track", default="", metavar="BACKENDS",
        help="also log metrics to: tensorboard, wandb (comma-separated; JSONL is always written)",
    )
    parser.add_argument(
        "--wandb-mode", default=None, help="wandb mode (default offline: no network needed)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discover", description="Discover reinforcement-learning algorithms in JAX."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train PPO with a drift on one env, seeds vmapped")
    train.add_argument("config", nargs="?", default=None, help="optional YAML TrainConfig")
    train.add_argument("--env", default=None, help="environment name (see `discover envs`)")
    train.add_argument("--drift", default=None, help="ppo | dpo | lpo | ta_lpo")
    train.add_argument("--seeds", type=int, default=None, help="seeds trained in one call")
    train.add_argument("--seed", type=int, default=None, help="base seed")
    train.add_argument("--total-steps", type=float, default=None, help="env steps per seed")
    _add_common(train)
    _add_tracking(train)

    meta = sub.add_parser(
        "meta-train", help="discover a drift (ES) or an objective (meta-gradients or ES)"
    )
    meta.add_argument(
        "config", nargs="?", default=None,
        help="YAML config: a drift run, or an objective run (top-level `component: objective`)",
    )
    meta.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    _add_common(meta)
    _add_tracking(meta)

    demo = sub.add_parser("demo", help="the small default meta-training run (CPU, minutes)")
    _add_common(demo)
    _add_tracking(demo)

    evaluate = sub.add_parser(
        "evaluate", help="train fresh agents with a discovered component beside the baselines"
    )
    evaluate.add_argument("ref", help="a run folder, a zoo entry folder, or zoo:NAME")
    evaluate.add_argument(
        "--envs", default="", help="comma-separated envs (objectives: gridworld layouts)"
    )
    evaluate.add_argument("--seeds", type=int, default=8, help="fresh agents per method and env")
    evaluate.add_argument(
        "--horizons", default="1",
        help="training horizons as multiples of the meta-training one, e.g. 0.5,1,2",
    )
    _add_common(evaluate)

    sweep = sub.add_parser("sweep", help="run a grid/random sweep of configs and seeds")
    sweep.add_argument("sweep", help="YAML sweep file (see configs/sweep_ppo_cartpole.yaml)")
    _add_common(sweep)

    export = sub.add_parser("export", help="export a finished run's component to the zoo")
    export.add_argument("run_dir", help="a finished meta-training run folder")
    export.add_argument("--name", required=True, help="zoo entry name, e.g. my-lpo")
    export.add_argument("--zoo-dir", default=None, help="zoo folder (default: the user zoo)")
    export.add_argument(
        "--params", default=None, help="params file in the run (drifts: mean or best)"
    )
    export.add_argument("--overwrite", action="store_true", help="replace an existing entry")

    sub.add_parser("zoo", help="list zoo entries")

    interpret = sub.add_parser(
        "interpret", help="plot a learned drift and fit a closed-form approximation"
    )
    interpret.add_argument("ref", help="a drift run folder, a zoo entry folder, or zoo:NAME")
    _add_common(interpret)

    sub.add_parser("envs", help="list environment names")
    return parser


def _train(args: argparse.Namespace) -> int:
    from discovery.plots import plot_learning_curve
    from discovery.train import TrainConfig, train_seeds, write_train_metrics

    overrides = list(args.overrides)
    for flag, field_name in (("env", "env"), ("drift", "drift"), ("seeds", "seeds"),
                             ("seed", "seed"), ("total_steps", "ppo.total_timesteps")):
        value = getattr(args, flag)
        if value is not None:
            if flag == "total_steps":
                value = int(value)
            overrides.append(f"{field_name}={value}")
    config = load_config(TrainConfig, args.config, overrides)
    _check_env(config.env, "env")
    name = args.name or config.run_name()
    run_dir = Path(args.runs_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")

    from rich.console import Console

    console = Console()
    ppo = config.ppo
    console.print(
        f"[bold]train[/] {config.env} drift={config.drift} seeds={config.seeds} "
        f"steps/seed={ppo.num_updates * ppo.steps_per_update:,} -> {run_dir}"
    )
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("updates"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    )
    tic = time.perf_counter()
    with progress:
        bar = progress.add_task("train", total=ppo.num_updates)

        def on_update(update: int) -> None:
            if update + 1 > progress.tasks[0].completed:
                progress.update(bar, completed=update + 1)

        result = train_seeds(config, on_update=on_update)
    elapsed = time.perf_counter() - tic
    write_train_metrics(result, run_dir / "metrics.jsonl")
    with _tracker(args, run_dir, config) as tracker:
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            record = json.loads(line)
            tracker.log(record["update"], record)
    plot_learning_curve(
        result.env_steps,
        result.metrics["episode_return"],
        run_dir / "learning_curve.png",
        title=f"{config.env}, drift={config.drift}",
    )
    finals = result.final_returns()
    total_steps = config.seeds * ppo.num_updates * ppo.steps_per_update
    summary = {
        "env": config.env,
        "drift": config.drift,
        "final_return_per_seed": [float(x) for x in finals],
        "final_return_mean": float(finals.mean()),
        "wall_time_s": elapsed,
        "env_steps_per_s": total_steps / elapsed,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(
        f"final return {finals.mean():.1f} (per seed: "
        + ", ".join(f"{x:.1f}" for x in finals)
        + f"); {elapsed:.1f} s, {summary['env_steps_per_s']:,.0f} env steps/s (compile included)"
    )
    console.print(f"wrote {run_dir}/config.yaml, metrics.jsonl, learning_curve.png, summary.json")
    return 0


def _meta_train(args: argparse.Namespace, config_path: str | None) -> int:
    resume = getattr(args, "resume", False)
    if config_component(config_path, args.overrides) == "objective":
        from meta.objective_loop import ObjectiveMetaTrainConfig

        config = load_config(ObjectiveMetaTrainConfig, config_path, args.overrides)
        if args.name:
            config = replace(config, name=args.name)
        for index, name in enumerate(config.levels.train):
            _check_level_source(name, f"levels.train[{index}]")
        from discovery.objective_run import run_objective_meta_training

        run_dir = Path(args.runs_dir) / config.name
        with _tracker(args, run_dir, config) as tracker:
            run_objective_meta_training(config, run_dir, resume=resume, tracker=tracker)
        return 0

    from meta.loop import MetaTrainConfig

    config = load_config(MetaTrainConfig, config_path, args.overrides)
    if args.name:
        config = replace(config, name=args.name)
    for index, name in enumerate(config.task.envs):
        _check_env(name, f"task.envs[{index}]")
    from discovery.meta_run import run_meta_training

    run_dir = Path(args.runs_dir) / config.name
    with _tracker(args, run_dir, config) as tracker:
        run_meta_training(config, run_dir, resume=resume, tracker=tracker)
    return 0


def _tracker(args: argparse.Namespace, run_dir: Path, config: Any) -> Any:
    """The tracker ``--track`` asks for (a no-op without backends)."""
    from discovery.config import to_dict
    from discovery.tracking import make_tracker, parse_backends

    return make_tracker(
        parse_backends(args.track), run_dir, run_dir.name, config=to_dict(config),
        wandb_mode=args.wandb_mode,
    )


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _evaluate(args: argparse.Namespace) -> int:
    from discovery.config import from_dict
    from discovery.evaluate import EvaluateConfig, run_evaluate

    try:
        horizons = tuple(float(h) for h in _split(args.horizons))
    except ValueError:
        raise ConfigError(
            f"--horizons: got {args.horizons!r}; allowed: comma-separated positive numbers",
            field="horizons",
        ) from None
    config = from_dict(
        EvaluateConfig,
        {"envs": _split(args.envs), "seeds": args.seeds, "horizons": list(horizons)},
        source="command line",
    )
    name = args.name or "evaluate-" + Path(args.ref.removeprefix("zoo:")).name
    out_dir = Path(args.runs_dir) / name
    report = run_evaluate(args.ref, config, out_dir, args.overrides)
    print((out_dir / "results.md").read_text())
    print(f"wrote {out_dir}/: results.md results.json curves.png ({report['kind']})")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from discovery.sweep import load_sweep, run_sweep

    spec = load_sweep(args.sweep, extra_set=args.overrides)
    if args.name:
        spec = replace(spec, name=args.name)

    def on_group(cells: Sequence[Any]) -> None:
        print(f"running {len(cells)} cell(s) in one program: {cells[0].cell_id} ...")

    def on_cell(cell: Any, result: dict[str, Any]) -> None:
        print(f"  {cell.cell_id}: {spec.metric} {result['mean']:.4g}")

    result = run_sweep(spec, Path(args.runs_dir), on_cell=on_cell, on_group=on_group)
    print((result.sweep_dir / "summary.md").read_text())
    if result.skipped:
        print(f"({len(result.skipped)} finished cell(s) skipped)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from discovery.zoo import export_run

    path = export_run(
        args.run_dir, args.name, zoo_dir=args.zoo_dir, params_file=args.params,
        overwrite=args.overwrite,
    )
    print(f"exported {args.run_dir} -> {path} (load it as zoo:{args.name})")
    return 0


def _zoo(args: argparse.Namespace) -> int:
    from discovery.zoo import list_entries

    for entry in list_entries():
        print(f"{entry['name']:<28} {entry['kind']:<10} {entry.get('description', '')}")
    return 0


def _interpret(args: argparse.Namespace) -> int:
    from discovery.interpret import fit_learned_drift, is_temporally_aware, plot_drift_surface
    from discovery.zoo import load

    entry = load(args.ref)
    if entry.kind != "drift":
        raise ConfigError(
            f"ref: {args.ref!r} is a {entry.kind}; allowed: a learned drift", field="ref"
        )
    import jax

    from discovery.drift import make_drift

    drift = entry.drift()
    name = args.name or "interpret-" + Path(args.ref.removeprefix("zoo:")).name
    out_dir = Path(args.runs_dir) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = {
        label: (make_drift(label), make_drift(label).init(jax.random.key(0)))
        for label in ("ppo", "dpo")
    }
    plot_drift_surface(drift, entry.params, out_dir / "drift_surface.png",
                       title=entry.name, reference=reference)
    # A temporally-aware drift gets one formula per point of training progress.
    aware = is_temporally_aware(drift, entry.params)
    fits = {}
    for progress in (0.0, 0.5, 1.0) if aware else (None,):
        fit = fit_learned_drift(drift, entry.params, progress=progress)
        fits["all" if progress is None else f"progress={progress:g}"] = fit
        label = "" if progress is None else f" at progress {progress:g}"
        print(f"closed form{label}: {fit.formula()}")
        print(f"  fit error: rmse {fit.rmse:.4g}, max {fit.max_abs_error:.4g}, R^2 {fit.r2:.4f}")
    report = {key: fit.to_dict() for key, fit in fits.items()}
    (out_dir / "closed_form.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out_dir}/: drift_surface.png closed_form.json")
    return 0


def _list_envs() -> int:
    for name in envs.list_envs():
        print(name)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``discover`` console script."""
    args = build_parser().parse_args(argv)
    from discovery.tracking import TrackingError
    from discovery.zoo import ZooError
    from envs.levels import LevelError

    commands = {
        "train": _train,
        "meta-train": lambda a: _meta_train(a, a.config),
        "demo": lambda a: _meta_train(a, None),
        "evaluate": _evaluate,
        "sweep": _sweep,
        "export": _export,
        "zoo": _zoo,
        "interpret": _interpret,
        "envs": lambda a: _list_envs(),
    }
    try:
        if getattr(args, "track", ""):
            from discovery.tracking import parse_backends

            parse_backends(args.track)  # fail before any training starts
        return commands[args.command](args)
    except (ConfigError, CheckpointError, ZooError, TrackingError, LevelError) as error:
        print(f"discover {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
