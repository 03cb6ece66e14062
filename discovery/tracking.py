"""Experiment tracking: one ``log(step, record)`` call fanned out to JSONL, TensorBoard, W&B.

The outer loops always write their own ``metrics.jsonl``; a tracker is the optional
second channel a user asks for (``--track tensorboard,wandb``)::

    with make_tracker(("jsonl", "tensorboard"), run_dir, "lpo-minatar", config) as tracker:
        for record in records:
            tracker.log(record["generation"], record)

Backends:

- ``"jsonl"``: appends ``{"step": step, **record}`` to ``run_dir/tracking.jsonl``, one
  strict JSON object per line (NaN and +-inf become ``null``; arrays become lists).
- ``"tensorboard"``: a ``tensorboardX.SummaryWriter`` at ``run_dir/tensorboard``. Every
  finite numeric scalar is a scalar; every numeric list or array (e.g. per-seed returns)
  is a histogram of its finite entries; strings and other values are skipped. Nested
  mappings become ``/``-joined tags (``{"extra": {"regret": 1}}`` -> ``extra/regret``).
  The config is logged once, as JSON text under the tag ``config``.
- ``"wandb"``: ``wandb.init(project=..., group=..., tags=..., name=run_name,
  dir=run_dir, config=..., id=..., resume="allow")`` in offline mode unless
  ``wandb_mode`` or ``$WANDB_MODE`` says otherwise, so nothing needs the network
  (``wandb sync`` uploads an offline run later). The project defaults to ``discovery``
  (or ``$WANDB_PROJECT``). The run's id is kept in ``run_dir/wandb-run-id``, so a run
  resumed after a kill continues the same W&B run instead of starting a second one.
  Finite numeric scalars (flattened as above) are logged with ``step=step``; ``close``
  calls ``finish``.

tensorboardX and wandb come with the ``tracking`` extra and are imported only when their
backend is made, so importing this module never needs them. Trackers do not know about
processes: on multi-host runs, make one on process 0 only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TextIO, TypeVar, runtime_checkable

import numpy as np

from discovery.files import to_json, write_text_atomic

TRACKERS = ("jsonl", "tensorboard", "wandb")

_T = TypeVar("_T", bound="_ClosingContext")

_INSTALL_HINT = 'pip install "rl-discovery[tracking]" (or pip install {package})'


class TrackingError(ValueError):
    """An unknown tracking backend, or a backend whose optional dependency is missing."""


@runtime_checkable
class Tracker(Protocol):
    """Where logged records go: ``log`` once per step, ``close`` once at the end."""

    def log(self, step: int, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class _ClosingContext:
    """``with tracker: ...`` closes the tracker on exit, also on an exception."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def parse_backends(text: str | Sequence[str]) -> tuple[str, ...]:
    """Backend names from ``"tensorboard,wandb"`` or a sequence of names, validated.

    Names are stripped and lower-cased; empty entries and duplicates are dropped, order
    is kept. An unknown name raises ``TrackingError`` naming it and the known ones.
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    names: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise TrackingError(f"tracker names must be strings, got {part!r}")
        name = part.strip().lower()
        if not name:
            continue
        if name not in TRACKERS:
            raise TrackingError(
                f"unknown tracker {part.strip()!r}; choose from {', '.join(TRACKERS)}"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def make_tracker(
    backends: str | Sequence[str],
    run_dir: str | Path,
    run_name: str,
    config: Mapping[str, Any] | None = None,
    wandb_mode: str | None = None,
    wandb_project: str | None = None,
    wandb_group: str | None = None,
    wandb_tags: Sequence[str] = (),
) -> FanOutTracker:
    """A tracker that sends every ``log`` to each requested backend, in order.

    ``backends`` is validated with ``parse_backends`` (duplicates ignored); an empty
    list gives a tracker that does nothing. ``config`` is the run's configuration
    (logged once by TensorBoard and W&B). ``wandb_mode`` overrides ``$WANDB_MODE``;
    the default is ``"offline"``. ``wandb_project``, ``wandb_group`` and ``wandb_tags``
    place the W&B run (project default ``$WANDB_PROJECT``, else ``discovery``). If a
    backend cannot be made (e.g. its package is missing), the ones already made are
    closed and ``TrackingError`` is raised.
    """
    run_dir = Path(run_dir)
    trackers: list[Tracker] = []
    try:
        for name in parse_backends(backends):
            if name == "jsonl":
                trackers.append(JsonlTracker(run_dir / "tracking.jsonl"))
            elif name == "tensorboard":
                trackers.append(TensorBoardTracker(run_dir / "tensorboard", config))
            else:
                trackers.append(WandbTracker(run_dir, run_name, config, wandb_mode,
                                             wandb_project, wandb_group, wandb_tags))
    except BaseException:
        FanOutTracker(trackers).close()
        raise
    return FanOutTracker(trackers)


class FanOutTracker(_ClosingContext):
    """Sends each record to every tracker it holds; ``close`` closes them all."""

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = tuple(trackers)
        self._closed = False

    def log(self, step: int, record: Mapping[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log(step, record)

    def close(self) -> None:
        """Close every tracker, even if one fails; the first failure is re-raised."""
        if self._closed:
            return
        self._closed = True
        error: BaseException | None = None
        for tracker in self.trackers:
            try:
                tracker.close()
            except BaseException as e:  # Close the rest, then re-raise.
                error = error or e
        if error is not None:
            raise error


class JsonlTracker(_ClosingContext):
    """Appends ``{"step": step, **record}`` to ``path`` as strict JSON, one line per log."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = self.path.open("a")

    def log(self, step: int, record: Mapping[str, Any]) -> None:
        if self._file is None:
            raise ValueError(f"log() on a closed tracker ({self.path})")
        line = json.dumps(to_json({"step": step, **record}), allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()  # A killed run keeps every line it logged.

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorBoardTracker(_ClosingContext):
    """tensorboardX event files in ``logdir``: scalars, histograms for arrays, config text."""

    def __init__(self, logdir: str | Path, config: Mapping[str, Any] | None = None) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise TrackingError(
                "the tensorboard tracker needs tensorboardX: "
                + _INSTALL_HINT.format(package="tensorboardX")
            ) from e
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._writer: Any = SummaryWriter(logdir=str(self.logdir))
        if config:
            # Four-space indent: TensorBoard renders text as markdown, this keeps it verbatim.
            text = json.dumps(to_json(config), indent=2, sort_keys=True)
            self._writer.add_text("config", "    " + text.replace("\n", "\n    "), 0)

    def log(self, step: int, record: Mapping[str, Any]) -> None:
        for tag, value in _numeric_fields(record):
            if isinstance(value, float):
                self._writer.add_scalar(tag, value, step)
            else:
                self._writer.add_histogram(tag, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


#: Where a run folder keeps its W&B run id, and what an id may look like.
WANDB_ID_FILE = "wandb-run-id"
_WANDB_ID = re.compile(r"[a-z0-9]{1,64}")


def wandb_run_id(run_dir: Path) -> str:
    """The W&B run id of ``run_dir``: the one it kept, else a new one, kept (atomically)
    before the run starts so that a kill at any point resumes the same W&B run."""
    path = run_dir / WANDB_ID_FILE
    if path.exists():
        text = path.read_text().strip()
        if not _WANDB_ID.fullmatch(text):
            raise TrackingError(f"{path}: got {text[:80]!r}; allowed: the W&B run id this "
                                "folder's run logged to (1-64 lower-case letters and digits)"
                                "; delete the file to start a new W&B run")
        return text
    run_id = secrets.token_hex(8)
    write_text_atomic(path, run_id + "\n")
    return run_id


class WandbTracker(_ClosingContext):
    """A Weights & Biases run, offline by default, resumed across a run's restarts:
    finite numeric scalars at ``step``."""

    def __init__(
        self,
        run_dir: str | Path,
        run_name: str,
        config: Mapping[str, Any] | None = None,
        mode: str | None = None,
        project: str | None = None,
        group: str | None = None,
        tags: Sequence[str] = (),
    ) -> None:
        try:
            import wandb
        except ImportError as e:
            raise TrackingError(
                "the wandb tracker needs wandb: " + _INSTALL_HINT.format(package="wandb")
            ) from e
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.mode = mode or os.environ.get("WANDB_MODE") or "offline"
        self.run_id = wandb_run_id(run_dir)
        self._run: Any = wandb.init(
            project=project or os.environ.get("WANDB_PROJECT") or "discovery",
            group=group,
            tags=list(tags) or None,
            name=run_name,
            dir=str(run_dir),
            config=to_json(dict(config)) if config is not None else None,
            mode=self.mode,
            id=self.run_id,
            resume="allow",
        )

    def log(self, step: int, record: Mapping[str, Any]) -> None:
        scalars = {tag: v for tag, v in _numeric_fields(record) if isinstance(v, float)}
        if scalars:
            self._run.log(scalars, step=step)

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


def _numeric_fields(
    record: Mapping[str, Any], prefix: str = ""
) -> Iterator[tuple[str, float | np.ndarray]]:
    """``(tag, value)`` for every numeric field: a finite ``float`` scalar, or a 1-D
    array of the finite entries of a numeric list/array (``None`` counts as missing).

    Nested mappings are walked with ``/``-joined tags; strings, empty or all-missing
    arrays and non-numeric values are skipped.
    """
    for key, value in record.items():
        tag = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _numeric_fields(value, tag + "/")
            continue
        if value is None or isinstance(value, (str, bytes)):
            continue
        try:
            array = np.asarray(value)
            if array.dtype == object:  # Lists holding None for missing entries.
                array = array.astype(np.float64)
        except (TypeError, ValueError):  # Ragged lists, objects, typed PRNG keys.
            continue
        if array.dtype.kind not in "biuf":
            continue
        array = array.astype(np.float64)
        if array.ndim == 0:
            if np.isfinite(array):
                yield tag, float(array)
            continue
        finite = array[np.isfinite(array)]
        if finite.size:
            yield tag, finite
