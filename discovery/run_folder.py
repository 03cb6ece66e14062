"""A run folder belongs to one config: refuse to mix runs, check resumes, fall back past
corrupted checkpoints, and write nothing until the checks pass.

Every checkpoint records the config that made it (``metadata["config"]``). A fresh run
refuses a folder that already holds a run (unless asked to overwrite it, which clears
it); a resume compares the newest readable checkpoint's config with the one given and
refuses any difference except ``generations`` (extending or shortening a run), which is
allowed and recorded in ``resumes.jsonl``.

The check and the run that follows are one process's: :func:`lock_run_folder` takes the
folder's exclusive OS lock (:func:`discovery.files.lock_folder`) before the check and the
command holds it until its last write, so two runs started at the same moment into one
folder cannot both pass the check; the second is refused, naming the folder.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from discovery.checkpoint import CheckpointError, list_checkpoints, read_checkpoint_metadata
from discovery.files import LOCK_FILE, FolderLock, dumps, lock_folder

#: Config fields a resume may change: they decide how long the run goes on, not what
#: any generation computes.
RESUMABLE_CHANGES = ("generations",)


@dataclass(frozen=True)
class RunFolderPlan:
    """What to do in a run folder, decided before anything is written.

    Attributes:
      checkpoint: the checkpoint to resume from (``None``: start at generation 0).
      generation: the generation that checkpoint was saved after.
      notes: what the user should be told (checkpoints skipped, generations changed).
      resumed_generations: ``(before, after)`` when a resume changes ``generations``.
    """

    checkpoint: Path | None
    generation: int = 0
    notes: tuple[str, ...] = ()
    resumed_generations: tuple[int, int] | None = None


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """SHA-256 of the config's canonical JSON, without the fields a resume may change."""
    kept = {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def holds_a_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` has checkpoints or a metrics log of an earlier run."""
    return bool(list_checkpoints(run_dir / "checkpoints")) or (run_dir / "metrics.jsonl").exists()


def prepare_run_folder(
    run_dir: str | Path, config: Mapping[str, Any], *, resume: bool, overwrite: bool = False,
    defaults: Mapping[str, Any] | None = None,
) -> RunFolderPlan:
    """Check ``run_dir`` against ``config`` (a plain dict, ``discovery.config.to_dict``).
    A field the checkpoint's config lacks (it was made before the field existed) counts
    as its value in ``defaults`` (the config class's defaults, as a plain dict): what
    the older version did.

    Raises :class:`CheckpointError` for a fresh run into a folder that holds a run
    (without ``overwrite``), for a resume whose config differs from the checkpoint's in
    anything but ``generations`` (the differing fields listed), and when every
    checkpoint is unreadable. With ``overwrite`` (and no ``resume``) the folder's
    contents are deleted; nothing else is written here.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise CheckpointError("--resume and --overwrite contradict each other: pick one")
    if not resume:
        if holds_a_run(run_dir):
            if not overwrite:
                raise CheckpointError(
                    f"{run_dir} holds a run already ({_describe(run_dir)}): pass --resume to "
                    "continue it, --overwrite to delete it and start over, or --name to "
                    "start this run in another folder"
                )
            for child in run_dir.iterdir():
                if child.name == LOCK_FILE:  # this process's lock on the folder
                    continue
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        return RunFolderPlan(checkpoint=None)

    skipped: list[str] = []
    for path in reversed(list_checkpoints(run_dir / "checkpoints")):
        try:
            metadata = read_checkpoint_metadata(path)
        except CheckpointError as error:
            skipped.append(f"skipped {path.name}: {error}")
            continue
        recorded = metadata.get("config")
        if recorded is None:
            recorded = _config_yaml(run_dir)
        changed = _differences(_with_defaults(recorded, defaults or {}), config)
        refused = [line for field, line in changed if field not in RESUMABLE_CHANGES]
        if refused:
            raise CheckpointError(
                f"cannot resume {run_dir} with a different config; {path.name} was made "
                "with another value of:\n  " + "\n  ".join(refused)
                + "\n(only generations may change on resume; start a new run with --name "
                "or --overwrite)"
            )
        notes = list(skipped)
        if skipped:
            notes.append(f"resuming from {path.name}, the newest readable checkpoint")
        generations = None
        if changed:
            generations = (int(recorded["generations"]), int(config["generations"]))
            notes.append(f"generations changed on resume: {generations[0]} -> {generations[1]}")
        generation = int(metadata.get("generation", 0))
        return RunFolderPlan(path, generation, tuple(notes), generations)
    if skipped:
        raise CheckpointError(
            f"cannot resume {run_dir}: no checkpoint is readable:\n  " + "\n  ".join(skipped)
        )
    return RunFolderPlan(checkpoint=None, notes=("no checkpoint yet: starting at generation 0",))


def start_run(
    run_dir: Path,
    config: Any,
    *,
    resume: bool,
    overwrite: bool,
    plan: RunFolderPlan | None,
    report: Callable[[str], None],
) -> RunFolderPlan:
    """Check the folder (unless ``plan`` is that check's result already), tell ``report``
    what the user should know, then write ``config.yaml`` and any resume record."""
    from discovery.config import save_config, to_dict

    if plan is None:
        plan = prepare_run_folder(run_dir, to_dict(config), resume=resume, overwrite=overwrite,
                                  defaults=to_dict(type(config)()))
    for note in plan.notes:
        report(note)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    record_resume(run_dir, plan)
    return plan


def is_primary_process() -> bool:
    """Whether this process writes run folders: always, except in a ``jax.distributed``
    job, where process 0 alone does (read from the job's state, so JAX's backend is not
    started here)."""
    try:
        from jax._src import distributed

        state = distributed.global_state
        return state.client is None or not state.process_id
    except (ImportError, AttributeError):  # private API moved: ask the backend
        return jax.process_index() == 0


def lock_run_folder(run_dir: Path, instead: str = "pick another --name") -> FolderLock:
    """The run folder's exclusive lock (see the module docstring), to be held until the
    run's last write: a :class:`discovery.files.FolderLock`, or a no-op context on the
    processes of a ``jax.distributed`` job other than process 0 (they share process 0's
    run and leave its folder to it). Raises :class:`discovery.files.FolderInUseError`
    when another process holds the folder."""
    if not is_primary_process():
        return FolderLock(Path(run_dir), None, [])
    return lock_folder(run_dir, "run folder", instead)


def record_resume(run_dir: Path, plan: RunFolderPlan) -> None:
    """Append a line to ``resumes.jsonl`` when a resume changed ``generations``."""
    if plan.resumed_generations is None:
        return
    before, after = plan.resumed_generations
    record = {
        "at_generation": plan.generation,
        "generations_before": before,
        "generations_after": after,
        "checkpoint": plan.checkpoint.name if plan.checkpoint else None,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    with (run_dir / "resumes.jsonl").open("a") as f:
        f.write(dumps(record) + "\n")


def writes_results(report: Callable[[str], None]) -> bool:
    """Whether this process writes the run's results: in a ``jax.distributed`` job every
    process scores its share of the population and process 0 alone writes the run;
    the others ``report`` that they are done."""
    if jax.process_index() == 0:
        return True
    report(f"process {jax.process_index()} of {jax.process_count()}: done; "
           "process 0 writes the results")
    return False


def _describe(run_dir: Path) -> str:
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    if checkpoints:
        return f"{len(checkpoints)} checkpoints, the newest {checkpoints[-1].name}"
    return "a metrics.jsonl"


def _config_yaml(run_dir: Path) -> dict[str, Any]:
    """The config.yaml of a run whose checkpoints predate recorded configs."""
    import yaml

    path = run_dir / "config.yaml"
    if not path.exists():
        raise CheckpointError(
            f"cannot resume {run_dir}: its checkpoints record no config and there is no "
            "config.yaml to check the resume against"
        )
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _with_defaults(recorded: Any, defaults: Mapping[str, Any]) -> Any:
    """``recorded`` with every field it lacks taken from ``defaults`` (nested)."""
    if not isinstance(recorded, Mapping):
        return recorded
    merged = dict(recorded)
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, Mapping):
            merged[key] = _with_defaults(merged[key], value)
    return merged


def _differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``(top-level field, "path: old -> new")`` for every leaf that differs."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            out += _differences(old.get(key), new.get(key), path)
        return out
    if _normalise(old) == _normalise(new):
        return []
    return [(prefix.split(".")[0], f"{prefix}: {old!r} -> {new!r}")]


def _normalise(value: Any) -> Any:
    """Tuples and lists compare equal, as YAML and JSON do not keep them apart."""
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value
