"""`discover reproduce NAME`: one published claim end to end, in resumable pieces, and
RESULTS.md generated from the results folders.

A claim is split into pieces of at most about 30 minutes on a 2-core CPU (a game, a
seed group, a meta-seed). Each piece writes its raw record, strict JSON, atomically, to
``results/<claim>/<scale>/pieces/<piece>.json``; a rerun skips the pieces whose record
is there, so a claim completes over several sittings and nothing is lost when one ends.
After the pieces, the claim's report (a markdown table with the claim's intervals, a
plot, and a one-sentence verdict) is written beside them as ``report.md``,
``report.json`` and ``<claim>.png``, from the records and the logs of the runs they
name. ``discover reproduce --report`` rewrites RESULTS.md from every results folder
(byte for byte the same for the same records). A piece that meta-trains keeps its run
folder (config, metrics, checkpoints, discovered params) in
``results/<claim>/<scale>/runs/<run>/`` and, rerun after a kill, resumes it from its
last checkpoint. Scales: ``toy`` (seconds, what CI runs), ``cpu`` (the default: the
largest a 2-core CPU allows in a few hours) and ``paper`` (the published settings,
for a GPU). Each piece is locked while it runs, so several processes can share a
claim's pieces without mixing them.

One module (~600 lines): the piece runner and its locks, the records' reader and the
report writer share the claim registry and the records' format; the claims themselves
live in their own modules (``claims_*.py``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from discovery.config import ConfigError, read_json_object
from discovery.files import (
    FolderInUseError,
    FolderLock,
    folder_problem,
    loads_strict,
    lock_folder,
    write_json,
    write_text_atomic,
)
from discovery.progress import Report, no_report
from discovery.progress import progress as progress_display

SCALES = ("toy", "cpu", "paper")


#: How a running piece reports: ``progress(done, total, line)``, e.g. the generations of a
#: meta-training run or the updates of a training run, with a short status line (the
#: report of :mod:`discovery.progress`); ``no_progress`` when nothing shows it.
Progress = Report
no_progress = no_report


@dataclass(frozen=True)
class Piece:
    """One resumable unit of a claim: ``run(folder, progress) -> record``
    (strict-JSON-able), given the claim's results folder (where earlier pieces' records
    are) and where to report its progress."""

    name: str
    run: Callable[[Path, Progress], dict[str, Any]]


@dataclass(frozen=True)
class Report:
    """A claim's result at one scale: the markdown section for RESULTS.md, the plot it
    shows (written by ``plot``), the machine-readable summary, and the verdict."""

    markdown: str
    summary: dict[str, Any]
    verdict: str
    plot: Callable[[Path], None] | None = None


#: name -> module defining ``TITLE``, ``pieces(scale)`` and ``report(records, scale)``.
CLAIMS = {
    "dpo-vs-ppo-brax": "discovery.claims_dpo_brax",
    "dpo-vs-ppo-minatar": "discovery.claims_dpo_minatar",
    "temporal-awareness": "discovery.claims_temporal_awareness",
    "metagrad-variance-lpg": "discovery.claims_metagrad_variance",
    "groove-plr-vs-dr": "discovery.claims_groove",
    "drift-transfer": "discovery.claims_drift_transfer",
}


def claim_module(name: str) -> Any:
    """The module that defines claim ``name`` (a clear error for an unknown name)."""
    if name not in CLAIMS:
        raise ConfigError(f"claim: got {name!r}; allowed: {', '.join(CLAIMS)}", field="claim")
    return importlib.import_module(CLAIMS[name])


def list_claims() -> dict[str, str]:
    """Every claim's name and title (``discover reproduce --list``)."""
    return {name: claim_module(name).TITLE for name in CLAIMS}


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ConfigError(f"scale: got {scale!r}; allowed: {', '.join(SCALES)}", field="scale")


def claim_pieces(name: str, scale: str = "cpu",
                 results: Path = Path("results")) -> dict[str, bool]:
    """Claim ``name``'s pieces at ``scale``, in the order they run, each with whether
    its record is already under ``results`` (so a rerun skips it)."""
    _check_scale(scale)
    folder = claim_dir(results, name, scale)
    return {piece.name: piece_path(folder, piece.name).exists()
            for piece in claim_module(name).pieces(scale)}


def claim_dir(results: Path, name: str, scale: str) -> Path:
    """Where claim ``name``'s records, runs and report at ``scale`` live."""
    return Path(results) / name / scale


def piece_path(folder: Path, piece: str) -> Path:
    """Where piece ``piece``'s record of a claim's results folder lives."""
    return Path(folder) / "pieces" / f"{piece.replace('/', '__')}.json"


def read_records(folder: Path) -> dict[str, dict[str, Any]]:
    """The finished pieces' records of a results folder, by piece name (sorted), read as
    strict JSON objects; ``ConfigError`` naming the file for one that is not (truncated,
    a bare ``NaN``, not an object)."""
    pieces = folder / "pieces"
    if not pieces.is_dir():
        return {}
    return {path.stem.replace("__", "/"): _read_record(path)
            for path in sorted(pieces.glob("*.json"))}


def _read_record(path: Path) -> dict[str, Any]:
    """One piece's record; see :func:`read_records`."""
    return read_json_object(path, "record", "a piece record `discover reproduce` wrote "
                            "(delete this one to rerun its piece)")


#: The signal a run's agents learn by, per log line: the ES population's mean fitness, or
#: the meta-gradient agents' mean reward per step.
TRAINING_SIGNALS = ("fitness_mean", "reward_per_step")


def training_curve(run_dir: Path, spans: int = 10) -> dict[str, Any] | None:
    """A meta-training run's learning signal (see :data:`TRAINING_SIGNALS`) averaged
    over ``spans`` equal spans of its generations, from its ``metrics.jsonl``; ``None``
    when the run folder has no log. Shows whether a run improved, then fell back (a
    collapse late in meta-training leaves the discovered params worse than mid-run)."""
    log = Path(run_dir) / "metrics.jsonl"
    if not log.is_file():
        return None
    try:
        rows = [loads_strict(line) for line in log.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"{log}: unreadable ({error}); allowed: the metrics.jsonl a run "
                          "wrote", field="metrics", source=str(log)) from None
    signal = next((key for key in TRAINING_SIGNALS if rows and key in rows[0]), None)
    if signal is None:
        return None
    values = np.array([np.nan if r[signal] is None else r[signal] for r in rows], float)
    means = [float(np.nanmean(part)) if np.isfinite(part).any() else None
             for part in np.array_split(values, min(spans, len(values)))]
    # Every call's generations, also those before a kill and resume.
    logged = sum(r.get("wall_time_s") or 0.0 for r in rows)
    return {"signal": signal, "generations": len(values), "span_means": means,
            "logged_wall_time_s": round(logged, 1)}


def claim_records(folder: Path) -> dict[str, dict[str, Any]]:
    """:func:`read_records` with each meta-training record's ``training_curve`` (from its
    run folder's log, committed beside the records) under ``meta_training``."""
    records = read_records(folder)
    for record in records.values():
        if "run" in record and "meta_training" in record:
            curve = training_curve(Path(folder) / record["run"])
            if curve is not None:
                record["meta_training"]["training_curve"] = curve
    return records


#: A run collapsed when its last tenth's learning signal is below this share of its best.
COLLAPSE_SHARE = 0.5


def _span_means(curve: dict[str, Any]) -> np.ndarray:
    return np.array([np.nan if m is None else m for m in curve["span_means"]], np.float64)


def collapsed(record: dict[str, Any]) -> bool:
    """Whether a meta-training piece collapsed late: its learning signal over the last
    tenth of its generations below :data:`COLLAPSE_SHARE` of its best tenth (positive
    signals only). False without a logged curve (it cannot be told)."""
    curve = record.get("meta_training", {}).get("training_curve")
    if not curve or all(m is None for m in curve["span_means"]):
        return False
    means = _span_means(curve)
    best, last = np.nanmax(means), means[-1]
    return bool(best > 0 and last < COLLAPSE_SHARE * best)


def meta_training_lines(
    records: dict[str, dict[str, Any]], what: str, scale: float = 1.0
) -> list[str]:
    """A report's table of how each run fared while it meta-trained: its learning signal
    (``what`` it is, times ``scale``) over the first, best and last tenth of its
    generations, by run label. The params evaluated are the last ones, so a run that
    learned and then collapsed, or never improved on where it started, shows here."""
    curves = {label: record.get("meta_training", {}).get("training_curve")
              for label, record in records.items()}
    curves = {label: curve for label, curve in curves.items()
              if curve and any(m is not None for m in curve["span_means"])}
    if not curves:
        return []
    rows, fell = [], 0
    for label, curve in curves.items():
        means = scale * _span_means(curve)
        first, best, last = means[0], np.nanmax(means), means[-1]
        fell += collapsed(records[label])
        ratio = f"{last / best:.2f}" if best > 0 and np.isfinite(last) else "n/a"
        cells = [f"{x:.3g}" if np.isfinite(x) else "n/a" for x in (first, best, last)]
        rows.append(f"| {label} | {' | '.join(cells)} | {ratio} |")
    lines = [f"**Meta-training**: {what}, mean over each tenth of the generations.\n",
             "| run | first tenth | best tenth | last tenth | last / best |",
             "|---|---|---|---|---|", *rows, ""]
    if fell:
        lines.append(f"{fell} of {len(curves)} runs ended below half their best tenth: "
                     "meta-training collapsed late, and the held-out scores are those of the "
                     "collapsed params.\n")
    return lines


def es_fitness_text(task: Any) -> str:
    """What an ES drift run's logged mean fitness is, for :func:`meta_training_lines`
    (``task`` a ``DriftTaskConfig``: its ``normalise`` says the fitness's scale)."""
    scale = {"ppo_random": "random play 0, PPO-clip 1 on each env",
             "ppo": "PPO-clip 1 on each env", "fixed": "each env's return over a fixed "
             "normaliser", "none": "raw final return"}[task.normalise]
    return f"the ES population's mean fitness on its training envs ({scale})"


def build_config(cls: type, *layers: dict[str, Any], source: str) -> Any:
    """``cls``'s defaults with each of ``layers`` merged on top, nested dicts field by
    field (so ``{"task": {"ppo": {"lr": 1e-3}}}`` changes only that field), checked
    like a config file (``source`` names where the values came from)."""
    from discovery.config import from_dict, to_dict

    def merge(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
        return {**base, **{key: merge(base.get(key) or {}, value)
                           if isinstance(value, dict) else value
                           for key, value in layer.items()}}

    data = to_dict(cls())
    for layer in layers:
        data = merge(data, layer)
    return from_dict(cls, data, source=source)


def meta_train_and_evaluate(
    config: Any, folder: Path, evaluation: Any, overrides: tuple[str, ...] = (),
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """A piece that discovers something: meta-train ``config`` into
    ``<folder>/runs/<config.name>`` (resuming from its checkpoints after a kill), save the
    discovered params where :func:`discovery.zoo.load` reads a run folder, then train
    fresh agents with it and its baselines on the held-out envs of ``evaluation`` (an
    :class:`discovery.evaluate.EvaluateConfig`), their inner agents' config changed by
    ``overrides`` (``discover evaluate``'s ``key=value``, e.g. ``"ppo.gamma=0.97"``).
    Returns the record's common part: the run, its meta-training figures, and per
    horizon, env and method the final scores per seed with the normalisers. ``progress``
    follows the generations, then the held-out evaluation."""
    from discovery import zoo
    from discovery.components import COMPONENTS
    from discovery.config import to_dict
    from discovery.meta_run import save_params
    from discovery.pipeline import meta_train
    from discovery.run_folder import start_run
    from discovery.run_progress import generation_line

    run_dir = folder / "runs" / config.name
    start_run(run_dir, config, resume=True, overwrite=False, plan=None, report=print)
    total = config.generations
    result = meta_train(config, run_dir, resume=True, on_generation=lambda record: progress(
        record["generation"] + 1, total, generation_line(record)))
    component = COMPONENTS[config.component]
    save_params(result.params, run_dir / component.params_file)
    # Every generation's log, also those of the calls before a kill (result.history has
    # only this call's).
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    curve = "fitness_mean" if "fitness_mean" in history[0] else "episode_return"
    failures = {"num_nonfinite": "nonfinite_members", "nonfinite_chunks": "nonfinite_chunks"}
    meta = {"config": to_dict(config), "generations": len(history),
            f"{curve}_first": history[0][curve], f"{curve}_last": history[-1][curve],
            **{name: int(sum(r[key] for r in history))
               for key, name in failures.items() if key in history[0]}}
    curriculum = {key: value for key, value in history[-1].items()
                  if key.startswith("curriculum_")}
    if curriculum:  # the curriculum's state after the last generation (PLR's buffer)
        meta["curriculum_last"] = curriculum
    progress(total, total, "evaluating held out")
    held = component.held_out(zoo.load(run_dir), evaluation, overrides)
    return {
        "run": run_dir.relative_to(folder).as_posix(),
        "meta_training": meta,
        "training_length": held.training_length,
        "eval_seeds": evaluation.seeds,
        "envs": held.env_names,
        "final": {f"{h:g}": {env: {method: [float(x) for x in run.final]
                                   for method, run in runs.items()}
                             for env, runs in per_env.items()}
                  for h, per_env in held.results.items()},
        "normalisers": {f"{h:g}": {env: [float(x) for x in pair] for env, pair in per_env.items()}
                        for h, per_env in held.normalisers.items()},
    }


def normalised_scores(record: dict[str, Any], method: str) -> np.ndarray:
    """``[horizons, envs, seeds]`` normalised final scores of ``method`` in a record of
    :func:`meta_train_and_evaluate` (NaN where a seed diverged or has no normaliser)."""
    def array(values: list[Any]) -> np.ndarray:
        return np.array([np.nan if x is None else x for x in values], float)

    return np.array([
        [(array(runs[method]) - offset) / scale
         for env, runs in per_env.items()
         for offset, scale in [array(record["normalisers"][h][env])]]
        for h, per_env in record["final"].items()
    ])


def reproduce(name: str, scale: str = "cpu", results: Path = Path("results"),
              only: tuple[str, ...] = (), log: Callable[[str], None] = print,
              progress: bool = False,
              on_record: Callable[[int, str, dict[str, Any]], None] | None = None) -> Report:
    """Run the pieces of claim ``name`` at ``scale`` that have no record yet (``only``:
    just those pieces), each with a progress bar if ``progress``, then write its report
    from every record there. ``on_record(index, piece, record)`` hears of each record as
    it is written (a tracker's step is the piece's index in the claim).

    Before any piece computes, the results folder is checked (a folder, or creatable,
    and writable). Each piece is locked while it runs (:func:`piece_lock`), so several
    processes can share a claim's pieces: one skips a piece another is running, and a
    piece asked for by name (``only``) that another process holds raises
    :class:`discovery.files.FolderInUseError` rather than mixing its records and runs
    with the other's. The report is written under the claim folder's own lock.
    """
    _check_scale(scale)
    module = claim_module(name)
    folder = claim_dir(results, name, scale)
    pieces = module.pieces(scale)
    known = [piece.name for piece in pieces]
    for piece_name in only:
        if piece_name not in known:
            raise ConfigError(f"piece: got {piece_name!r}; allowed: {', '.join(known)}",
                              field="piece")
    problem = folder_problem(folder)
    if problem is not None:
        raise ConfigError(f"results: {str(results)!r} cannot hold the claim's results: "
                          f"{problem}; allowed: a folder you can write to", field="results")
    for index, piece in enumerate(pieces):
        if only and piece.name not in only:
            continue
        try:
            lock = piece_lock(folder, piece.name)
        except FolderInUseError:
            if only:
                raise
            log(f"{name} [{scale}]: {piece.name} is running in another process; skipped")
            continue
        with lock:
            record = _run_piece(name, scale, folder, piece, log, progress)
        if record is not None and on_record is not None:
            on_record(index, piece.name, record)
    with _report_lock(folder):
        return write_report(name, scale, results)


#: How long a process waits for another to finish writing the same claim's report.
REPORT_WAIT_S = 120.0


def _report_lock(folder: Path) -> FolderLock:
    """The claim folder's lock for writing its report, waited for (up to
    ``REPORT_WAIT_S``) while another process writes the report: seconds, not a run."""
    deadline = time.monotonic() + REPORT_WAIT_S
    while True:
        try:
            return lock_folder(folder, "results folder", "wait for its report to be written")
        except FolderInUseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def piece_lock(folder: Path, piece: str) -> FolderLock:
    """The lock a process holds while it runs ``piece`` of a claim's results ``folder``:
    on ``<folder>/running/<piece>/`` (removed again when released)."""
    slug = piece.replace("/", "__")
    return lock_folder(Path(folder) / "running" / slug, f"piece {piece!r}",
                       "run another piece (--piece) or give another results folder "
                       "(--results)")


def _run_piece(name: str, scale: str, folder: Path, piece: Piece,
               log: Callable[[str], None], progress: bool) -> dict[str, Any] | None:
    """Run ``piece`` and write its record, unless it has one; this process holds its
    :func:`piece_lock`. Returns the new record (``None`` when it had one)."""
    path = piece_path(folder, piece.name)
    if path.exists():
        return None
    log(f"{name} [{scale}]: running {piece.name}")
    tic = time.perf_counter()
    with _progress_bar(piece.name, show=progress) as report_progress:
        record = piece.run(folder, report_progress)
    record["wall_time_s"] = round(time.perf_counter() - tic, 1)
    record["machine"] = machine()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    log(f"{name} [{scale}]: {piece.name} done in {record['wall_time_s']:.0f} s")
    return record


@contextlib.contextmanager
def _progress_bar(label: str, show: bool) -> Iterator[Progress]:
    """Progress for one piece (:mod:`discovery.progress`: a bar in a terminal, plain lines
    in a log; its total set by the piece's first report), or :func:`no_progress` when not
    ``show``."""
    if not show:
        yield no_progress
        return
    with progress_display(label) as report:
        yield report


def counted(n: int, noun: str) -> str:
    """``"1 meta-seed"``, ``"3 meta-seeds"``: for labels and sentences."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def pending_verdict(claim: str, scale: str, done: int, expected: int) -> str:
    """The verdict of a claim whose pieces have not all run, with the command that runs
    the rest."""
    option = "" if scale == "cpu" else f" --scale {scale}"
    return (f"pending: {done} of {expected} pieces have run "
            f"(`discover reproduce {claim}{option}` runs the rest).")


def machine() -> str:
    """What a piece ran on, for its record: its wall time depends on it."""
    import os

    import jax

    device = jax.devices()[0]
    return (f"{jax.device_count()} x {device.platform} {device.device_kind}, "
            f"{os.cpu_count()} CPU cores, jax {jax.__version__}")


def compute_line(records: dict[str, dict[str, Any]]) -> str:
    """One line on what the finished pieces cost: wall times and the machines they ran on.
    A piece resumed after a kill timed only its last call; its run's log times every
    generation of every call, so the longer of the two counts."""
    if not records:
        return "**Compute**: no piece has run yet.\n"
    logged = [(record.get("meta_training") or {}).get("training_curve", {}).get(
        "logged_wall_time_s", 0.0) for record in records.values()]
    seconds = [max(record["wall_time_s"], log) for record, log in zip(records.values(), logged)]
    resumed = sum(log > record["wall_time_s"] for record, log in zip(records.values(), logged))
    # Minutes, unless every piece took under one (a toy run): then seconds.
    per_unit, unit = (60, "min") if max(seconds) >= 60 else (1, "s")
    times = [value / per_unit for value in seconds]
    machines = sorted({record.get("machine", "a machine the record does not name") for record in
                       records.values()})
    note = (f"; {counted(resumed, 'piece')} resumed after a kill, timed by the run's log "
            "over every call" if resumed else "")
    return (f"**Compute**: {len(times)} pieces, {sum(times):.0f} {unit} of wall time summed "
            f"over the pieces ({min(times):.0f}-{max(times):.0f} {unit} a piece{note}), on "
            f"{'; '.join(machines)}.\n")


def claim_report(name: str, scale: str, records: dict[str, dict[str, Any]],
                 folder: Path | None = None) -> Report:
    """Claim ``name``'s report at ``scale`` from its pieces' ``records``, with what the
    pieces cost. A record the report cannot read (a field missing or of the wrong type)
    is a ``ConfigError`` naming it (its file, given the results ``folder``)."""
    module = claim_module(name)
    expected = [piece.name for piece in module.pieces(scale)]
    try:
        report = module.report(records, scale, expected)
        return replace(report, markdown=f"{report.markdown}\n{compute_line(records)}")
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        if isinstance(error, ConfigError):
            raise
        culprit = _unreadable_record(module, records, scale, expected)
        record = culprit and (piece_path(folder, culprit) if folder else repr(culprit))
        where = f"record {record} lacks" if culprit else "its records lack"
        problem = " ".join(f"{type(error).__name__}: {error}".split())  # one line
        raise ConfigError(
            f"{name} [{scale}]: {where} what the claim's report reads ({problem}); allowed: "
            "records `discover reproduce` wrote (delete a damaged one to rerun its piece)",
            field="record") from None


def _unreadable_record(module: Any, records: dict[str, dict[str, Any]], scale: str,
                       expected: list[str]) -> str | None:
    """The one record without which the claim's report (and compute line) can be made,
    if there is one: the record to name when a report fails."""
    for piece in records:
        rest = {name: record for name, record in records.items() if name != piece}
        try:
            module.report(rest, scale, expected)
            compute_line(rest)
        except Exception:  # noqa: BLE001 - any failure means this piece is not the one
            continue
        return piece
    return None


def write_report(name: str, scale: str, results: Path = Path("results")) -> Report:
    """The claim's report from the records in its results folder, written beside them."""
    folder = claim_dir(results, name, scale)
    records = claim_records(folder)
    report = claim_report(name, scale, records, folder)
    _write_report_files(folder, name, records, report)
    return report


def _write_report_files(folder: Path, name: str, records: dict[str, dict[str, Any]],
                        report: Report) -> None:
    """A claim's ``report.md``, ``report.json`` and plot, beside its records."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "report.md", report.markdown)
    write_json(folder / "report.json", {**report.summary, "verdict": report.verdict})
    if report.plot is not None and records:
        report.plot(folder / f"{name}.png")


def write_reports(results: Path = Path("results"), page: Path = Path("RESULTS.md")) -> Path:
    """``discover reproduce --report``: every claim's report files (``report.md``,
    ``report.json``, the plot) rewritten where its pieces are, then RESULTS.md. Every
    record is read and every report made before the first file is written, so a damaged
    record stops it (a ``ConfigError`` naming the record) with nothing rewritten."""
    made = {}
    for name in CLAIMS:
        for scale in SCALES:
            folder = claim_dir(results, name, scale)
            if (folder / "pieces").is_dir():
                records = claim_records(folder)
                made[folder, name] = (records, claim_report(name, scale, records, folder))
    for (folder, name), (records, report) in made.items():
        _write_report_files(folder, name, records, report)
    return write_results_page(results, page)


def write_results_page(results: Path = Path("results"), page: Path = Path("RESULTS.md")) -> Path:
    """RESULTS.md from every claim's results folders: a table of the verdicts, then each
    claim's report sections (in the order of :data:`CLAIMS`, larger scales first; every
    claim's cpu section, pending where no piece has run); the same records give the same
    bytes."""
    sections, verdicts = [], []
    for name in CLAIMS:
        for scale in ("paper", "cpu"):
            folder = claim_dir(results, name, scale)
            # A claim's cpu section is always there (pending until its pieces run).
            if (folder / "pieces").is_dir() or scale == "cpu":
                report = claim_report(name, scale, claim_records(folder), folder)
                sections.append(report.markdown)
                verdicts.append(_verdict_row(name, scale, report))
                plot = folder / f"{name}.png"
                if plot.exists():
                    sections.append(f"![{name} [{scale}]]({plot.as_posix()})\n")
    head = [
        "# Results: the seed papers' claims, reproduced with Discovery\n",
        "Generated by `discover reproduce --report` from the folders under `results/`; "
        "each claim runs with `discover reproduce NAME [--scale toy|cpu|paper]`. Every "
        "verdict comes from one vocabulary (`discovery/verdicts.py`): *holds*, "
        "*contradicted*, *not supported* (an effect of the declared size is excluded), "
        "*inconclusive* (with the units a t-test would need) or *untestable at this scale* "
        "(a precondition failed, named). It is inferred over the independent units (a "
        "meta-seed for a meta-training claim, a seed otherwise) with Welch's or the paired "
        "95% t interval and, up to ten units per arm, an exact permutation test. Each "
        "section gives the paper's claim and where it is made, what we test, the "
        "deviations, the preconditions, a table with the units counted, the plot and the "
        "whole verdict.\n",
        "| claim | scale | pieces run | verdict |\n|---|---|---|---|\n" + "".join(verdicts),
    ]
    return write_text_atomic(page, "\n".join(head + sections))


def _verdict_row(name: str, scale: str, report: Report) -> str:
    """One line of RESULTS.md's verdict table: the verdict up to its colon."""
    done, expected = (len(report.summary[key]) for key in ("pieces_done", "pieces_expected"))
    return f"| `{name}` | {scale} | {done} of {expected} | {report.verdict.split(':')[0]} |\n"
