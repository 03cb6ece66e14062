"""The ``discover`` command line: train, meta-train, demo, evaluate, sweep, export, zoo,
interpret, envs.

Each command turns flags into a validated config (``discovery.config``), calls a plain
function, and writes its results under ``<runs-dir>/<name>/``. Bad input exits with
status 2 and one line naming the field (or flag), the value and what is allowed, before
any compute: configs, env names, run names, the output folder and a lower bound of the
run's memory are all checked first. Every folder a command writes is then held by that
process alone (an OS lock, :func:`discovery.files.lock_folder`, taken before the folder's
contents are checked): a second command into it at the same time exits 2, naming it.

One module (~820 lines): every subcommand's arguments and dispatch; each command's
work lives in its own module.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from discovery.config import ConfigError, config_component, load_config, save_config

DEFAULT_RUNS_DIR = "runs"

#: The training horizons ``discover evaluate --horizons`` accepts, as multiples of the
#: meta-training one: the temporally-aware paper spans 0.25x..4x; far beyond either end
#: a run is a mistake (1e9 overflows the step counter, 1e-9 is not one update).
MIN_HORIZON, MAX_HORIZON = 0.01, 100.0

#: A run name is one folder under --runs-dir: no separators, no "..", not absolute.
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_RUN_NAME_RULE = (
    "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 200 "
    "characters (one folder under --runs-dir)"
)


def _check_run_name(name: str, field: str) -> None:
    """A run name must be one plain folder name: ``../x``, ``a/b`` and ``/abs`` are refused."""
    if not _RUN_NAME.fullmatch(name):
        raise ConfigError(f"{field}: run name {name!r} is not allowed; allowed: {_RUN_NAME_RULE}",
                          field=field)


def _run_dir(runs_dir: str, name: str, name_field: str) -> Path:
    """``<runs_dir>/<name>``, checked before anything runs: the name is one folder, and the
    folder exists as a writable directory or can be created (nothing is written here)."""
    _check_run_name(name, name_field)
    root = Path(runs_dir).expanduser()
    run_dir = root / name
    if os.path.lexists(run_dir) and not run_dir.is_dir():
        raise ConfigError(f"{name_field}: {run_dir} exists and is not a folder; allowed: a new "
                          "or existing run folder", field=name_field)
    existing = next(p for p in (run_dir, root, *root.absolute().parents) if os.path.lexists(p))
    if not existing.is_dir():
        raise ConfigError(
            f"--runs-dir: {runs_dir!r} cannot hold run folders: {existing} is a file, not a "
            "folder; allowed: an existing or creatable folder", field="runs_dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--runs-dir: {runs_dir!r} is not writable ({existing}: permission denied); "
            "allowed: a folder you can write to", field="runs_dir")
    return run_dir


# --------------------------------------------------------------------------- flags


def _load_with_flags(cls: Any, config_path: str | None, overrides: list[str],
                     flags: dict[str, str]) -> Any:
    """``load_config`` where some overrides come from flags (``{override: "--flag value"}``):
    an error about one names the flag as its source."""
    try:
        return load_config(cls, config_path, overrides, allow_empty=False)
    except ConfigError as error:
        message = str(error)
        for override, flag in flags.items():
            message = message.replace(f"override {override!r}", flag)
        if message == str(error):
            raise
        raise ConfigError(message, field=error.field, source=error.source) from None


def _add_common(parser: argparse.ArgumentParser, overrides: bool = True) -> None:
    parser.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, help="where run folders go")
    parser.add_argument(
        "--name", default=None,
        help="run name (one folder under --runs-dir: letters, digits, '.', '_', '-')",
    )
    if overrides:
        _add_overrides(parser)


def _add_overrides(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--wandb-project", default=None,
                        help="W&B project (default $WANDB_PROJECT, else discovery)")
    parser.add_argument("--wandb-group", default=None, help="W&B group, e.g. a sweep's name")
    parser.add_argument("--wandb-tags", default="", metavar="TAGS",
                        help="W&B tags, comma-separated")


def _add_overwrite_run(parser: argparse.ArgumentParser, resumable: bool = True) -> None:
    parser.add_argument(
        "--overwrite", action="store_true",
        help="delete what the run folder holds and start over"
        + (" (instead of --resume)" if resumable else ""),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discover", description="Discover reinforcement-learning algorithms in JAX."
    )
    parser.add_argument("--version", action="version", version=f"discover {_version()}")
    parser.add_argument(
        "--cpu-devices", default=None, metavar="N",
        help="split the CPU into N JAX devices: populations and seeds are split over them "
             "(default: $DISCOVERY_CPU_DEVICES, else 'auto': one per usable core)")
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
        "meta-train", help="discover a drift, an objective or an advantage transformation "
        "(ES or meta-gradients)"
    )
    meta.add_argument(
        "config", nargs="?", default=None,
        help="YAML config: a drift run, or another component's (top-level `component:` "
        "objective or advantage)",
    )
    meta.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    _add_overwrite_run(meta)
    _add_common(meta)
    _add_tracking(meta)

    demo = sub.add_parser("demo", help="the small default meta-training run (CPU, minutes)")
    _add_overwrite_run(demo, resumable=False)
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
        help="training horizons as multiples of each env's base length (the meta-training "
        "one, or --budget), e.g. 0.5,1,2",
    )
    evaluate.add_argument(
        "--budget", action="append", default=[], metavar="ENV=N",
        help="an env's own base training length: env steps per agent (drifts) or agent "
        "updates (objectives), e.g. --budget Acrobot-v1=2e5 (repeatable)",
    )
    evaluate.add_argument(
        "--eval-episodes", type=int, default=1, metavar="N",
        help="evaluation of each final policy: N whole episodes per PPO env (drifts), N "
        "rollouts per env (objectives); default 1",
    )
    evaluate.add_argument(
        "--baseline-cache", default=None, metavar="DIR",
        help="reuse baseline runs from DIR (default: ~/.cache/discovery/baselines)",
    )
    evaluate.add_argument("--no-baseline-cache", action="store_true",
                          help="train the baselines afresh and cache nothing")
    _add_common(evaluate)

    sweep = sub.add_parser("sweep", help="run a grid/random sweep of configs and seeds")
    sweep.add_argument("sweep", help="YAML sweep file (see configs/sweep_ppo_cartpole.yaml)")
    sweep.add_argument("--allow-many-cells", action="store_true",
                       help="run a sweep of more cells than the usual cap (1000): each cell is "
                       "a training run")
    _add_common(sweep)
    _add_tracking(sweep)

    export = sub.add_parser("export", help="export a finished run's component to the zoo")
    export.add_argument("run_dir", help="a finished meta-training run folder")
    export.add_argument("--name", required=True, help="zoo entry name, e.g. my-lpo")
    export.add_argument("--zoo-dir", default=None, help="zoo folder (default: the user zoo)")
    export.add_argument(
        "--params", default=None,
        help="params file in the run (default: validated_params.msgpack when the run selected "
        "on validation envs, else the component's own, e.g. a drift's ES mean; drifts also "
        "mean_params.msgpack or best_params.msgpack)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing entry")
    export.add_argument("--shadow", action="store_true",
                        help="allow the name of an entry the package ships (yours then hides it)")

    sub.add_parser("zoo", help="list zoo entries")

    interpret = sub.add_parser(
        "interpret", help="plot a learned drift and fit a closed-form approximation"
    )
    interpret.add_argument("ref", help="a drift run folder, a zoo entry folder, or zoo:NAME")
    _add_common(interpret, overrides=False)  # nothing it computes has a config to override

    config = sub.add_parser("config", help="show a resolved config with every field's help")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser(
        "show", help="print a config (or a component's defaults) resolved, each field "
        "commented with what it does and its allowed range")
    show.add_argument("config", nargs="?", default=None,
                      help="YAML config (default: the demo's drift meta-training defaults)")
    show.add_argument("--for", dest="config_for", default="meta-train",
                      choices=("meta-train", "train"),
                      help="the command the config is for (default meta-train)")
    show.add_argument("--component", default=None,
                      help="meta-train without a config file: whose defaults (drift, "
                      "objective, advantage)")
    _add_overrides(show)

    sub.add_parser("envs", help="list environment names")

    reproduce = sub.add_parser(
        "reproduce", help="reproduce a seed paper's claim in resumable pieces (RESULTS.md)"
    )
    reproduce.add_argument("claim", nargs="?", default=None, help="a claim (see --list)")
    reproduce.add_argument("--scale", default="cpu", help="toy | cpu (default) | paper")
    reproduce.add_argument("--piece", action="append", default=[],
                           help="run only this piece (repeatable; see the claim's report)")
    reproduce.add_argument("--results", default="results", help="results folder root")
    reproduce.add_argument("--list", action="store_true", help="list the claims")
    reproduce.add_argument("--report", action="store_true",
                           help="rewrite every claim's report and RESULTS.md from the "
                           "results folders")
    reproduce.add_argument("--page", default="RESULTS.md", help="the page --report writes")
    _add_tracking(reproduce)
    return parser


def _train(args: argparse.Namespace) -> int:
    from discovery.train import TrainConfig

    overrides = list(args.overrides)
    flags: dict[str, str] = {}
    for flag, field_name in (("env", "env"), ("drift", "drift"), ("seeds", "seeds"),
                             ("seed", "seed"), ("total_steps", "ppo.total_timesteps")):
        value = getattr(args, flag)
        if value is not None:
            if flag == "total_steps" and not math.isfinite(value):
                raise ConfigError(
                    f"--total-steps: got {value}; allowed: a whole number of env steps per "
                    "seed (ppo.total_timesteps), from num_envs x num_steps to 1e10",
                    field="ppo.total_timesteps",
                )
            text = repr(value) if flag == "total_steps" else str(value)
            override = f"{field_name}={text}"
            overrides.append(override)
            flags[override] = f"--{flag.replace('_', '-')} {value}"
    config = _load_with_flags(TrainConfig, args.config, overrides, flags)
    from discovery import preflight

    preflight.check_env(config.env, f"--env {args.env}" if args.env else "env")
    if args.name:
        name, name_field = args.name, "--name"
    elif config.name:
        name, name_field = config.name, "name"
    else:
        name, name_field = config.run_name().replace("/", "-"), "name"
    run_dir = _run_dir(args.runs_dir, name, name_field)
    preflight.ppo_memory(config.seeds, config.ppo, [config.env], f"seeds {config.seeds}",
                "seeds, ppo.num_envs or ppo.num_steps")
    from discovery.files import lock_folder

    with lock_folder(run_dir, "run folder", "pick another --name"):
        return _train_run(args, config, run_dir)


def _train_run(args: argparse.Namespace, config: Any, run_dir: Path) -> int:
    """``discover train``'s training and files, once its run folder is held."""
    from discovery.plots import plot_learning_curve
    from discovery.train import train_seeds, update_records, write_train_metrics

    save_config(config, run_dir / "config.yaml")

    from rich.console import Console

    console = Console()
    ppo = config.ppo
    console.print(
        f"[bold]train[/] {config.env} drift={config.drift} seeds={config.seeds} "
        f"steps/seed={ppo.num_updates * ppo.steps_per_update:,} -> {run_dir}"
    )
    import time

    import numpy as np

    from discovery.files import write_json
    from discovery.progress import progress

    tic = time.perf_counter()
    # The tracker hears of every update as its chunk finishes, not only at the end.
    with _tracker(args, run_dir, config) as tracker, \
            progress("updates", ppo.num_updates, console=console) as report:
        done = [0]

        def on_update(update: int) -> None:
            if update + 1 > done[0]:
                done[0] = update + 1
                report(done[0], ppo.num_updates, "")

        def on_chunk(first: int, metrics: dict) -> None:
            for record in update_records(metrics, first, ppo.steps_per_update):
                tracker.log(record["update"], record)

        result = train_seeds(config, on_update=on_update, on_chunk=on_chunk)
    elapsed = time.perf_counter() - tic
    write_train_metrics(result, run_dir / "metrics.jsonl")
    plot_learning_curve(
        result.env_steps,
        result.metrics["latest_return"],
        run_dir / "learning_curve.png",
        title=f"{config.env}, drift={config.drift}",
    )
    finals = result.final_returns()
    finite = np.isfinite(finals)
    total_steps = config.seeds * ppo.num_updates * ppo.steps_per_update
    summary = {
        "env": config.env,
        "drift": config.drift,
        "final_return_per_seed": finals,
        "final_return_mean": float(finals[finite].mean()) if finite.any() else None,
        "seeds": int(finite.sum()),
        "diverged_seeds": int((~finite).sum()),
        "wall_time_s": elapsed,
        "env_steps_per_s": total_steps / elapsed,
    }
    write_json(run_dir / "summary.json", summary)
    mean = "n/a" if summary["final_return_mean"] is None else f"{summary['final_return_mean']:.1f}"
    diverged = f", {summary['diverged_seeds']} diverged" if summary["diverged_seeds"] else ""
    console.print(
        f"final return {mean} over {summary['seeds']} seeds{diverged} (per seed: "
        + ", ".join(f"{x:.1f}" for x in finals)
        + f"); {elapsed:.1f} s, {summary['env_steps_per_s']:,.0f} env steps/s (compile included)"
    )
    console.print(f"wrote {run_dir}/config.yaml, metrics.jsonl, learning_curve.png, summary.json")
    return 0


def _meta_train(args: argparse.Namespace, config_path: str | None) -> int:
    from discovery.components import COMPONENTS

    resume = getattr(args, "resume", False)
    overwrite = getattr(args, "overwrite", False)
    name_field = "--name" if args.name else "name"
    component = COMPONENTS[config_component(config_path, args.overrides)]
    config = load_config(component.config_class, config_path, args.overrides, allow_empty=False)
    if args.name:
        config = replace(config, name=args.name)
    component.check_meta_train(config)
    _check_unroll(config)
    run_dir = _run_dir(args.runs_dir, config.name, name_field)
    from discovery.run_folder import lock_run_folder

    # Held from before the folder is checked until the run's last write: a second run
    # into this folder, even one started at the same moment, is refused, not mixed in.
    with lock_run_folder(run_dir, "pick another --name"):
        plan = _prepare_run_folder(run_dir, config, resume, overwrite)
        with _tracker(args, run_dir, config) as tracker:
            component.run(config, run_dir, tracker=tracker, plan=plan)
    return 0


def _check_unroll(config: Any) -> None:
    """Meta-gradients differentiate through ``metagrad.unroll`` agent updates: the unroll
    must fit in an agent's life (``metagrad.lifetime_max`` updates), and the rollouts the
    backward pass keeps (``unroll`` per agent, one chunk of ``num_agents /
    num_minibatches`` agents at a time) must fit in memory, a lower bound checked like
    the rollout buffers (:func:`discovery.preflight.check_memory`)."""
    if getattr(config, "optimizer", None) != "metagrad":
        return
    from discovery import preflight

    mg = config.metagrad
    if mg.unroll > mg.lifetime_max:
        raise ConfigError(
            f"metagrad.unroll: got {mg.unroll}; allowed: at most metagrad.lifetime_max "
            f"({mg.lifetime_max}), the updates an agent lives", field="metagrad.unroll")
    if hasattr(config, "task"):  # PPO agents (drifts, advantage transformations)
        transitions = config.task.ppo.num_envs * config.task.ppo.num_steps
        obs = preflight.obs_size(config.task.envs[0])
    else:  # LPG agents: their gridworld observations are small; count one float
        transitions = config.agent.num_envs * config.agent.rollout_len
        obs = 1
    agents = mg.num_agents // mg.num_minibatches
    needed = mg.unroll * agents * transitions * (2 * obs + 8) * 4
    preflight.check_memory(
        needed, f"the rollouts a meta-gradient keeps (metagrad.unroll {mg.unroll} x "
        f"{agents} agents a chunk x {transitions} transitions x (2 x observation + 8) float32)",
        "metagrad.unroll or metagrad.num_agents, or raise metagrad.num_minibatches")


def _prepare_run_folder(run_dir: Path, config: Any, resume: bool, overwrite: bool) -> Any:
    """Check the run folder (and, with --overwrite, clear it) before a tracker writes to it."""
    from discovery.config import to_dict
    from discovery.run_folder import prepare_run_folder

    return prepare_run_folder(run_dir, to_dict(config), resume=resume, overwrite=overwrite,
                              defaults=to_dict(type(config)()))


def _tracker(args: argparse.Namespace, run_dir: Path, config: Any) -> Any:
    """The tracker ``--track`` asks for (a no-op without backends)."""
    from discovery.config import to_dict
    from discovery.tracking import make_tracker, parse_backends

    tags = split_list(args.wandb_tags, "--wandb-tags", "comma-separated tags")
    return make_tracker(
        parse_backends(args.track), run_dir, run_dir.name,
        config=to_dict(config) if config is not None else None,
        wandb_mode=args.wandb_mode, wandb_project=args.wandb_project,
        wandb_group=args.wandb_group, wandb_tags=tags,
    )


class _TrackerOnFirstLog:
    """A ``--track`` tracker made at its first ``log``: in a folder that a command locks
    when it starts computing (a sweep's, a claim's), so the tracker's files are written
    only while this process holds it. A no-op until then, and after ``close``."""

    def __init__(self, args: argparse.Namespace, folder: Callable[[], Path]) -> None:
        self.args, self.folder, self.tracker = args, folder, None

    def log(self, step: int, record: dict[str, Any]) -> None:
        if not self.args.track:
            return
        if self.tracker is None:
            self.tracker = _tracker(self.args, self.folder(), None)
        self.tracker.log(step, record)

    def __enter__(self) -> _TrackerOnFirstLog:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.tracker is not None:
            self.tracker.close()


def split_list(text: str, flag: str, allowed: str) -> list[str]:
    """The items of a comma-separated flag value, stripped: ``""`` (or blanks) gives none;
    an empty item (``1,,2``, ``,,,``, a trailing comma) or one given twice is refused,
    naming ``flag``, the value and what is ``allowed``."""
    if not text.strip():
        return []
    items = [part.strip() for part in text.split(",")]
    for index, item in enumerate(items):
        if not item:
            raise ConfigError(f"{flag}: got {text!r}, whose item {index + 1} is empty; "
                              f"allowed: {allowed}", field=flag)
    for index, item in enumerate(items):
        if item in items[:index]:
            raise ConfigError(f"{flag}: got {text!r}, which gives {item!r} twice; allowed: "
                              f"{allowed}, each once", field=flag)
    return items


def parse_horizons(text: str) -> tuple[float, ...]:
    """``--horizons``: one or more distinct numbers from :data:`MIN_HORIZON` to
    :data:`MAX_HORIZON`, comma-separated; anything else is a one-line ``ConfigError``."""
    allowed = (f"comma-separated numbers from {MIN_HORIZON:g} to {MAX_HORIZON:g} (multiples "
               "of the meta-training horizon), e.g. 0.5,1,2")
    items = split_list(text, "--horizons", allowed)
    if not items:
        raise ConfigError(f"--horizons: got {text!r}; allowed: {allowed}", field="--horizons")
    horizons: list[float] = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and MIN_HORIZON <= value <= MAX_HORIZON):
            raise ConfigError(f"--horizons: got {item!r} in {text!r}; allowed: {allowed}",
                              field="--horizons")
        if value in horizons:
            raise ConfigError(f"--horizons: got {text!r}, which gives {value:g} twice; "
                              f"allowed: {allowed}, each once", field="--horizons")
        horizons.append(value)
    return tuple(horizons)


def _evaluate(args: argparse.Namespace) -> int:
    from discovery.baseline_cache import cache_from_flags
    from discovery.config import from_dict
    from discovery.evaluate import EvaluateConfig, parse_budgets, run_evaluate

    horizons = parse_horizons(args.horizons)
    envs = split_list(args.envs, "--envs", "comma-separated environment names (`discover "
                      "envs`), or none for the component's own")
    if not 1 <= args.eval_episodes <= 1000:
        raise ConfigError(f"--eval-episodes: got {args.eval_episodes}; allowed: a whole "
                          "number from 1 to 1000", field="--eval-episodes")
    config = from_dict(
        EvaluateConfig,
        {"envs": envs, "seeds": args.seeds, "horizons": list(horizons),
         "budgets": parse_budgets(args.budget), "eval_episodes": args.eval_episodes},
        source="command line",
    )
    name = args.name or "evaluate-" + Path(args.ref.removeprefix("zoo:")).name
    out_dir = _run_dir(args.runs_dir, name, "--name" if args.name else "--name (default)")
    cache = cache_from_flags(args.baseline_cache, args.no_baseline_cache)
    from discovery.zoo import load

    # Everything is checked before the first agent trains: the output folder (above), the
    # cache folder, the component, every env name and budget, and the memory of the
    # largest training program.
    entry = load(args.ref)
    _check_evaluation(entry, config, args.overrides)
    from discovery.files import lock_folder
    from discovery.progress import progress

    with lock_folder(out_dir, "evaluation folder", "pick another --name"), \
            progress("evaluate: trainings") as report_progress:
        report = run_evaluate(args.ref, config, out_dir, args.overrides, load=lambda ref: entry,
                              cache=cache, report=report_progress)
    print((out_dir / "results.md").read_text())
    print(f"wrote {out_dir}/: results.md results.json curves.png profiles.png "
          f"({report['kind']})")
    return 0


def _check_evaluation(entry: Any, config: Any, overrides: Sequence[str]) -> None:
    """The component's own pre-flight checks of ``discover evaluate`` (env names, memory)."""
    from discovery.components import COMPONENTS

    COMPONENTS[entry.kind].check_evaluation(entry, config, overrides)


def _sweep(args: argparse.Namespace) -> int:
    from discovery.files import folder_problem
    from discovery.sweep import MAX_CELLS, cell_count, expand_cells, load_sweep, run_sweep

    spec = load_sweep(args.sweep, extra_set=args.overrides,
                      max_cells=None if args.allow_many_cells else MAX_CELLS)
    if args.name:
        _check_run_name(args.name, "--name")
        spec = replace(spec, name=args.name)
    sweep_dir = Path(args.runs_dir).expanduser() / spec.name
    problem = folder_problem(sweep_dir)
    if problem is not None:
        raise ConfigError(f"--runs-dir: {args.runs_dir!r} cannot hold the sweep folder: "
                          f"{problem}; allowed: a folder you can write to", field="runs_dir")
    if spec.command == "meta-train":
        for cell in expand_cells(spec):
            _check_unroll(cell.config)
    count, product = cell_count(spec.grid, spec.random, spec.seeds)
    print(f"sweep {spec.name}: {count} cell(s) ({product}) -> {sweep_dir}")

    def on_group(cells: Sequence[Any]) -> None:
        print(f"running {len(cells)} cell(s) in one program: {cells[0].cell_id} ...")

    finished = [0]
    with _TrackerOnFirstLog(args, lambda: sweep_dir) as tracker:
        def on_cell(cell: Any, result: dict[str, Any]) -> None:
            print(f"  {cell.cell_id}: {spec.metric} {result['mean']:.4g}")
            tracker.log(finished[0], {"cell": cell.cell_id, **result})
            finished[0] += 1

        result = run_sweep(spec, Path(args.runs_dir), on_cell=on_cell, on_group=on_group)
    print((result.sweep_dir / "summary.md").read_text())
    if result.skipped:
        print(f"({len(result.skipped)} finished cell(s) skipped)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from discovery.files import folder_problem
    from discovery.zoo import EntryExistsError, ZooError, export_run, zoo_dirs

    zoo_dir = Path(args.zoo_dir).expanduser() if args.zoo_dir else zoo_dirs()[0]
    problem = folder_problem(zoo_dir)
    if problem is not None:
        flag = "--zoo-dir" if args.zoo_dir else "--zoo-dir (default: the user zoo)"
        raise ConfigError(f"{flag}: {str(zoo_dir)!r} cannot hold zoo entries: {problem}; "
                          "allowed: a folder you can write to", field="zoo_dir")
    try:
        path = export_run(
            args.run_dir, args.name, zoo_dir=args.zoo_dir, params_file=args.params,
            overwrite=args.overwrite, shadow=args.shadow,
        )
    except EntryExistsError as error:
        raise ZooError(
            f"{error.path}: a zoo entry named {error.name!r} exists already; allowed: another "
            "--name, or --overwrite to replace it", path=error.path, field="name",
        ) from None
    print(f"exported {args.run_dir} -> {path} (load it as zoo:{args.name})")
    return 0


def _zoo(args: argparse.Namespace) -> int:
    from discovery.zoo import list_entries

    for entry in list_entries():
        kind = entry["kind"] or "unreadable"
        description = entry.get("unreadable") or entry.get("description", "")
        print(f"{entry['name']:<28} {kind:<10} {description}")
    return 0


def _interpret(args: argparse.Namespace) -> int:
    from discovery.zoo import load

    entry = load(args.ref)
    if entry.kind != "drift":
        raise ConfigError(
            f"ref: {args.ref!r} holds a component of kind {entry.kind!r}; allowed: a learned "
            "drift", field="ref"
        )
    drift = entry.drift()
    name = args.name or "interpret-" + Path(args.ref.removeprefix("zoo:")).name
    out_dir = _run_dir(args.runs_dir, name, "--name" if args.name else "--name (default)")
    from discovery.files import lock_folder

    with lock_folder(out_dir, "interpret folder", "pick another --name"):
        _interpret_into(entry, drift, out_dir)
    return 0


def _interpret_into(entry: Any, drift: Any, out_dir: Path) -> None:
    """``discover interpret``'s plot and fits, once its folder is held."""
    import jax

    from discovery.drift import make_drift
    from discovery.interpret import fit_learned_drift, is_temporally_aware, plot_drift_surface

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


def _reproduce(args: argparse.Namespace) -> int:
    from discovery import reproduce

    if args.list:
        for name, title in reproduce.list_claims().items():
            print(f"{name}: {title}")
        return 0
    from discovery.files import folder_problem

    results = Path(args.results).expanduser()
    problem = folder_problem(results)
    if problem is not None:
        raise ConfigError(f"--results: {args.results!r} cannot hold results: {problem}; "
                          "allowed: a folder you can write to", field="results")
    if args.report:
        page = Path(args.page).expanduser()
        problem = f"{page} is a folder" if page.is_dir() else folder_problem(page.parent)
        if problem is not None:
            raise ConfigError(f"--page: {args.page!r} cannot be written: {problem}; allowed: a "
                              "file path in a folder you can write to, e.g. RESULTS.md",
                              field="page")
        print(f"wrote {reproduce.write_reports(results, page)} and every claim's report")
        return 0
    if args.claim is None:
        raise ConfigError(f"claim: give one of {', '.join(reproduce.CLAIMS)} (or --list)")
    with _TrackerOnFirstLog(
            args, lambda: reproduce.claim_dir(results, args.claim, args.scale)) as tracker:
        result = reproduce.reproduce(
            args.claim, args.scale, results, tuple(args.piece), progress=True,
            on_record=lambda index, piece, record: tracker.log(index, {"piece": piece,
                                                                       **record}))
    print(f"verdict: {result.verdict}")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    from discovery.config_show import show_config

    overrides = list(args.overrides)
    if args.component is not None:
        if args.config is not None or args.config_for != "meta-train":
            given = (f"with the config file {args.config!r}" if args.config is not None
                     else f"with --for {args.config_for}")
            raise ConfigError(f"--component: got {args.component!r} {given}; allowed: only "
                              "for meta-train without a config file (a config names its own "
                              "`component:`)", field="--component")
        from discovery.components import COMPONENTS

        if args.component not in COMPONENTS:
            raise ConfigError(f"--component: got {args.component!r}; allowed: "
                              f"{', '.join(COMPONENTS)}", field="--component")
        overrides.insert(0, f"component={args.component}")
    if args.config_for == "train":
        from discovery.train import TrainConfig

        cls = TrainConfig
    else:
        from discovery.components import COMPONENTS

        cls = COMPONENTS[config_component(args.config, overrides)].config_class
    config = load_config(cls, args.config, overrides, allow_empty=False)
    print(show_config(config), end="")
    return 0


def _list_envs() -> int:
    from discovery import envs

    for name in envs.list_envs():
        print(name)
    return 0


def _version() -> str:
    """The installed package's version, read without importing JAX."""
    from discovery import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``discover`` console script."""
    args = build_parser().parse_args(argv)
    if not sys.stdout.isatty() and hasattr(sys.stdout, "reconfigure"):
        # In a log (nohup, SLURM, a pipe) every line appears as it is printed.
        sys.stdout.reconfigure(line_buffering=True)
    if args.cpu_devices is not None:
        from discovery.process_setup import configure_cpu_devices, parse_cpu_devices

        try:
            configure_cpu_devices(parse_cpu_devices(args.cpu_devices, "--cpu-devices"))
        except (ValueError, RuntimeError) as error:
            print(f"discover: error: {error}", file=sys.stderr)
            return 2
    from discovery.checkpoint import CheckpointError
    from discovery.envs.levels import LevelError
    from discovery.files import FolderInUseError
    from discovery.tracking import TrackingError
    from discovery.zoo import ZooError

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
        "reproduce": _reproduce,
        "config": _config_show,
    }
    try:
        if getattr(args, "track", ""):
            from discovery.tracking import parse_backends

            parse_backends(args.track)  # fail before any training starts
            split_list(args.wandb_tags, "--wandb-tags", "comma-separated tags")
        return commands[args.command](args)
    except (ConfigError, CheckpointError, ZooError, TrackingError, LevelError,
            FolderInUseError) as error:
        print(f"discover {args.command}: error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        from discovery.meta.loop import MetaTrainingDiverged  # lazily: the CLI starts without JAX

        if not isinstance(error, MetaTrainingDiverged):
            raise
        print(f"discover {args.command}: stopped: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
