"""The ``discover`` command line: train, meta-train, demo, envs.

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

import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)
from discovery.checkpoint import CheckpointError
from discovery.config import ConfigError, load_config, save_config

DEFAULT_RUNS_DIR = "runs"


def _check_env(name: str, field: str) -> None:
    """Fail fast, naming the config field, on an environment name ``envs.make`` rejects."""
    try:
        envs.make(name)
    except ValueError as error:
        raise ConfigError(f"{field}: {error}", field=field) from None


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

    meta = sub.add_parser(
        "meta-train", help="discover a drift (ES) or an objective (meta-gradients or ES)"
    )
    meta.add_argument(
        "config", nargs="?", default=None,
        help="YAML config: a drift run, or an objective run (top-level `component: objective`)",
    )
    meta.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    _add_common(meta)

    demo = sub.add_parser("demo", help="the small default meta-training run (CPU, minutes)")
    _add_common(demo)

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


COMPONENTS = ("drift", "objective")


def config_component(config_path: str | None, overrides: Sequence[str]) -> str:
    """Which meta-training a config describes: its top-level ``component`` (default drift)."""
    component = "drift"
    source = "default"
    if config_path is not None and Path(config_path).is_file():
        import yaml

        try:
            data = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
        except yaml.YAMLError:
            data = None  # load_config reports the YAML error with its position.
        if isinstance(data, dict) and "component" in data:
            component, source = data["component"], config_path
    for override in overrides:
        if override.partition("=")[0].strip() == "component":
            component, source = override.partition("=")[2].strip(), "--set"
    if component not in COMPONENTS:
        raise ConfigError(
            f"component: got {component!r} (from {source}); allowed: {', '.join(COMPONENTS)}",
            field="component",
            source=source,
        )
    return component


def _meta_train(args: argparse.Namespace, config_path: str | None) -> int:
    resume = getattr(args, "resume", False)
    if config_component(config_path, args.overrides) == "objective":
        from meta.objective_loop import ObjectiveMetaTrainConfig

        config = load_config(ObjectiveMetaTrainConfig, config_path, args.overrides)
        if args.name:
            config = replace(config, name=args.name)
        for index, name in enumerate(config.levels.train):
            _check_env(name, f"levels.train[{index}]")
        from discovery.objective_run import run_objective_meta_training

        run_objective_meta_training(config, Path(args.runs_dir) / config.name, resume=resume)
        return 0

    from meta.loop import MetaTrainConfig

    config = load_config(MetaTrainConfig, config_path, args.overrides)
    if args.name:
        config = replace(config, name=args.name)
    for index, name in enumerate(config.task.envs):
        _check_env(name, f"task.envs[{index}]")
    from discovery.meta_run import run_meta_training

    run_meta_training(config, Path(args.runs_dir) / config.name, resume=resume)
    return 0


def _list_envs() -> int:
    for name in envs.list_envs():
        print(name)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``discover`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "meta-train":
            return _meta_train(args, args.config)
        if args.command == "demo":
            return _meta_train(args, None)
        return _list_envs()
    except (ConfigError, CheckpointError) as error:
        print(f"discover {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
