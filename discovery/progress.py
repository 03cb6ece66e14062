"""Progress for every long command: a rich bar in a terminal or a notebook, and plain,
timestamped lines anywhere else (a log under nohup or SLURM), where a live bar prints
only its last frame, cut to 80 columns.

Every long step reports through one callable, ``report(done, total, line)``: ``done``
units of ``total`` finished, and a short free-text status. Plain lines come at the first
report, then at most every ``interval_s`` seconds (``DISCOVERY_PROGRESS_INTERVAL_S``,
default 30), at the last unit, and after it whenever the status changes (a step's next
phase, e.g. "evaluating held out"), each flushed at once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

Report = Callable[[int, "int | None", str], None]
INTERVAL_ENV = "DISCOVERY_PROGRESS_INTERVAL_S"
DEFAULT_INTERVAL_S = 30.0


def no_report(done: int, total: int | None = None, line: str = "") -> None:
    """A report that shows nothing (for quiet calls and tests)."""


def interval_from_env() -> float:
    """Seconds between plain progress lines, from ``DISCOVERY_PROGRESS_INTERVAL_S``."""
    text = os.environ.get(INTERVAL_ENV)
    if text is None:
        return DEFAULT_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"{INTERVAL_ENV}={text!r}: allowed: seconds, a number >= 0")
    return value


def elapsed_text(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``: elapsed time for a log line."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class PlainLines:
    """Progress as plain lines on ``stream``, at most one per ``interval_s`` (the first and
    the last always)."""

    def __init__(self, label: str, total: int | None, stream: TextIO, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.interval_s, self.clock = interval_s, clock
        self.start = clock()
        self.last_printed: float | None = None
        self.finished_line: str | None = None

    def __call__(self, done: int, total: int | None = None, line: str = "") -> None:
        if total is not None:
            self.total = total
        now = self.clock()
        last = self.total is not None and done >= self.total
        due = self.last_printed is None or now - self.last_printed >= self.interval_s
        # Once every unit is done, only a new status is news (a step's next phase).
        if self.finished_line is not None and (not last or line == self.finished_line):
            return
        if not (due or last):
            return
        if last:
            self.finished_line = line
        self.last_printed = now
        count = f"{done}/{self.total}" if self.total is not None else f"{done}"
        percent = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        status = f" {line}" if line else ""
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {self.label}: {count}{percent}{status}, "
              f"{elapsed_text(now - self.start)} elapsed", file=self.stream, flush=True)


def live_display(console: Any) -> bool:
    """Whether ``console`` can redraw a bar in place (a terminal or a notebook)."""
    return bool(console.is_terminal or getattr(console, "is_jupyter", False))


@contextlib.contextmanager
def progress(label: str, total: int | None = None, console: Any = None,
             interval_s: float | None = None, stream: TextIO | None = None) -> Iterator[Report]:
    """Yield ``report(done, total=None, line="")`` for a step of ``total`` units (the total
    may also come with the first report): a rich bar where ``console`` (default: a new
    rich console) draws live, else plain lines on ``stream`` (default stdout)."""
    if console is None:
        from rich.console import Console

        console = Console()
    if not live_display(console):
        interval = interval_from_env() if interval_s is None else interval_s
        yield PlainLines(label, total, stream or sys.stdout, interval)
        return
    from rich import progress as rich

    with rich.Progress(rich.TextColumn(label), rich.BarColumn(), rich.MofNCompleteColumn(),
                       rich.TextColumn("{task.fields[line]}"), rich.TimeElapsedColumn(),
                       console=console) as bar:
        task = bar.add_task(label, total=total, line="starting")

        def report(done: int, total: int | None = None, line: str = "") -> None:
            fields: dict[str, Any] = {"completed": done, "line": line}
            if total is not None:
                fields["total"] = total
            bar.update(task, **fields)

        yield report
