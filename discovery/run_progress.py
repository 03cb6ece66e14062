"""`discover meta-train`'s console run, shared by every component: the run folder is
checked, progress follows the generations (a bar in a terminal, plain lines in a log;
:mod:`discovery.progress`) and a tracker gets every record, and the finished result is
handed back for the component's results writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from discovery.pipeline import MetaTrainResult, meta_train
from discovery.progress import progress
from discovery.run_folder import RunFolderPlan, start_run, writes_results


def number(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``"n/a"`` when it is missing or not finite."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return format(value, spec)


def metagrad_line(record: dict[str, Any]) -> str:
    """The progress line of a meta-gradient generation (any component)."""
    return (
        f"agents' return {number(record['episode_return'], '.2f')} "
        f"grad norm {number(record['grad_norm'], '.3g')}"
    )


def generation_line(record: dict[str, Any]) -> str:
    """A progress line for any component's generation: the ES population's fitness, or
    the meta-gradient line."""
    if "fitness_mean" in record:
        return f"fitness {number(record['fitness_mean'], '.3g')}"
    return metagrad_line(record)


def run_with_progress(
    config: Any,
    run_dir: Path,
    headline: str,
    line: Callable[[dict[str, Any]], str],
    resume: bool = False,
    tracker: Any = None,
    overwrite: bool = False,
    plan: RunFolderPlan | None = None,
) -> tuple[MetaTrainResult | None, Any]:
    """Check the run folder (nothing is written before that passes), print ``headline``,
    meta-train with progress showing ``line(record)``, and return ``(result,
    console)``; ``result`` is ``None`` on the processes of a ``jax.distributed`` job
    other than process 0, which write no results."""
    from rich.console import Console

    console = Console()
    plan = start_run(run_dir, config, resume=resume, overwrite=overwrite, plan=plan,
                     report=lambda note: console.print(f"[yellow]resume:[/] {note}"))
    console.print(f"[bold]meta-train[/] {headline} -> {run_dir}")
    with progress("generation", config.generations, console=console) as report:

        def on_generation(record: dict) -> None:
            report(record["generation"] + 1, config.generations, line(record))
            if tracker is not None and jax.process_index() == 0:
                tracker.log(record["generation"], record)

        result = meta_train(config, run_dir, resume=resume, on_generation=on_generation,
                            checkpoint=plan.checkpoint)
    if not writes_results(console.print):
        return None, console
    return result, console
