"""A lent GPU's checks in one command, bounded by one deadline (``--budget``), in stages
ordered so that the rows still missing come first, each stage its own process with its
own sub-deadline:

1. ``groove``: the GROOVE rows of the GPU suite (``gpu_suite.py --parts lpg``: an LPG
   meta-gradient step at 512 agents, and the paper run's projection);
2. ``lpo``: the LPO rows (``gpu_suite.py --parts lpo``: the task's PPO-clip baselines, a
   generation at population 64 on four MinAtar games, the paper run's projection). At
   stop 28 both were left empty: the suite ran last, in the 206 s the claim pieces
   left, after its PPO rows, and building the LPO task compiles and trains PPO-clip
   baselines on each game before the first generation even compiles;
3. ``ppo-vs-plain``: our PPO beside a plain single-file PPO at 1, 16 and 256 vmapped
   seeds (``ppo_vs_plain.py``);
4. ``minatar-probe``: each MinAtar game's PPO at the paper claim's settings, timed apart
   (``minatar_probe.py``): why an Asterix piece took over 4.4 min on the H200;
5. ``claims``: the paper-scale pieces of each claim in ``--claims`` (default
   ``dpo-vs-ppo-minatar``, complete since stop 28) that have no record under ``results/``
   yet, all side by side (each a process with a share of the GPU's memory);
6. ``ppo``: the suite's PPO rows (filled on the H200 at stop 28), in whatever time is left.

Each stage has an allotment of seconds (``--stages name:seconds,...``); the allotments
lie end to end on one timeline, so a stage that ends early hands its time to the next
and one that overruns is stopped at its own sub-deadline, never taking a later stage's
time. A stage without an allotment runs until the session's deadline.

Everything lands in ``--out``: each stage's output (``STAGE.txt``), ``summary.md`` (every
stage's status and its markdown rows, each row opening with the card's name, e.g.
``NVIDIA H200``), ``session.json`` (the same, as data), ``session.log``, and the new
piece records of each claim (``CLAIM-SCALE-pieces.json``; ``--import-records FILE``
here writes them where ``discover reproduce`` keeps them). The exit status is 0 only if
every stage finished and printed its rows; 3 names a stage that was stopped, skipped,
failed or printed none. Where no GPU is present the session says so and runs only with
``--toy`` (CPU figures at toy sizes, marked ``(no GPU)`` on every row). Runs from a
source checkout that is not installed: the device image has JAX, flax, optax and chex,
and gymnax and evosax travel as wheels (BENCHMARKS.md, "The GPU suite").

    python benchmarks/gpu_session.py --out OUT --budget 540               # on the GPU
    python benchmarks/gpu_session.py --out /tmp/gpu --budget 300 --toy    # anywhere
    python benchmarks/gpu_session.py --import-records OUT/dpo-vs-ppo-minatar-paper-pieces.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ppo_vs_commit import shadow_tree

ROOT = Path(__file__).resolve().parent.parent
#: The claims whose paper-scale pieces a session runs unless ``--claims`` says otherwise.
DEFAULT_CLAIMS = ("dpo-vs-ppo-minatar",)
#: Seconds kept back at the end for merging the records and writing the summary.
MARGIN_S = 10
#: A stage (or claim piece) with less time than this left is skipped, not started.
MIN_STAGE_S = 5
#: What a session exits with when some stage did not finish with its rows.
INCOMPLETE_EXIT = 3

#: Prints the card (``card: PLATFORM KIND``) and the versions that matter.
DEVICE_PROBE = """
import importlib.metadata as m, jax
device = jax.devices()[0]
print(f"card: {device.platform} {device.device_kind}")
print(jax.devices())
for name in ('jax', 'jaxlib', 'flax', 'optax', 'chex', 'gymnax', 'evosax', 'numpy'):
    try:
        print(name, m.version(name))
    except m.PackageNotFoundError:
        print(name, 'not installed')
"""


@dataclass(frozen=True)
class Stage:
    """One stage: what it fills, the script it runs (``None``: the claim pieces), and
    the row names that must appear in its output on a GPU and at toy size (a stage that
    exits cleanly without them counts as not done)."""

    what: str
    command: tuple[str, ...] | None
    markers: tuple[str, ...]
    toy_markers: tuple[str, ...]


_MINATAR = ("Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar")
STAGES = {
    "groove": Stage("GROOVE: an LPG meta-gradient step and the paper run's projection",
                    ("benchmarks/gpu_suite.py", "--parts", "lpg"),
                    ("LPG meta-gradient step", "projected: GROOVE run"),
                    ("LPG meta-gradient step", "projected: GROOVE run")),
    "lpo": Stage("LPO: the task build, a generation and the paper run's projection",
                 ("benchmarks/gpu_suite.py", "--parts", "lpo"),
                 ("LPO task build", "LPO generation", "projected: LPO paper run"),
                 ("LPO task build", "LPO generation", "projected: LPO paper run")),
    "ppo-vs-plain": Stage("our PPO beside a plain single-file PPO",
                          ("benchmarks/ppo_vs_plain.py",),
                          (", 1 seeds vmapped", ", 16 seeds vmapped", ", 256 seeds vmapped"),
                          (", 1 seeds vmapped", ", 2 seeds vmapped")),
    "minatar-probe": Stage("each MinAtar game's PPO at the paper claim's settings",
                           ("benchmarks/minatar_probe.py",), _MINATAR, _MINATAR[:2]),
    "claims": Stage("the paper-scale claim pieces without a record", None, (), ()),
    "ppo": Stage("the GPU suite's PPO rows", ("benchmarks/gpu_suite.py", "--parts", "ppo"),
                 ("PPO CartPole-v1", "PPO Breakout-MinAtar"), ("PPO CartPole-v1",)),
}
#: The order and allotments (seconds) of a session: the missing rows first; the
#: allotments sum to 490 s, inside the default budget less the device probe, the claim
#: listing and the margin.
DEFAULT_STAGES = "groove:90,lpo:210,ppo-vs-plain:105,minatar-probe:85,claims,ppo"


def parse_stages(spec: str) -> list[tuple[str, float | None]]:
    """``"name[:seconds],..."`` -> ``[(name, allotment or None)]``; ``ValueError`` naming
    an unknown stage, a repeated one or a bad allotment."""
    stages = []
    for item in spec.split(","):
        name, _, seconds = item.strip().partition(":")
        if name not in STAGES:
            raise ValueError(f"{name!r} is not one of {', '.join(STAGES)}")
        if name in (known for known, _ in stages):
            raise ValueError(f"{name!r} is given twice")
        try:
            allotment = float(seconds) if seconds else None
        except ValueError:
            raise ValueError(f"{item!r}: the allotment must be seconds") from None
        if allotment is not None and allotment <= 0:
            raise ValueError(f"{item!r}: the allotment must be positive")
        stages.append((name, allotment))
    return stages


@dataclass
class Outcome:
    """How one child process ended: ``done`` (exit 0), ``failed`` (another exit),
    ``stopped`` (at its deadline) or ``skipped`` (too little time to start it)."""

    status: str
    seconds: float = 0.0
    output: str = ""


@dataclass
class StageResult:
    name: str
    allotment_s: float | None
    status: str = "not reached"
    seconds: float = 0.0
    rows: list[str] = field(default_factory=list)
    note: str = ""


class Session:
    """The deadline, the log and the child environment shared by every stage."""

    def __init__(self, out: Path, budget_s: float, python_path: Path) -> None:
        self.out, self.deadline = out, time.monotonic() + budget_s
        self.start = time.monotonic()
        self.log_file = (out / "session.log").open("a")
        self.lock = threading.Lock()
        path = os.pathsep.join(p for p in (str(python_path), str(ROOT / "benchmarks"),
                                           os.environ.get("PYTHONPATH", "")) if p)
        self.env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}

    def log(self, line: str) -> None:
        with self.lock:
            stamped = f"[{time.monotonic() - self.start:6.0f} s] {line}"
            print(stamped, flush=True)
            self.log_file.write(stamped + "\n")
            self.log_file.flush()

    def run(self, label: str, command: list[str], until: float, env: dict | None = None,
            capture: Path | None = None) -> Outcome:
        """Run ``command`` until the monotonic time ``until``; log its outcome and tail."""
        seconds = until - time.monotonic()
        if seconds < MIN_STAGE_S:
            self.log(f"{label}: skipped, {seconds:.0f} s left")
            return Outcome("skipped")
        tic = time.monotonic()
        try:
            done = subprocess.run(command, cwd=ROOT, env=env or self.env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=seconds)
            output = done.stdout
            status, said = ("done", "exit 0") if done.returncode == 0 else (
                "failed", f"exit {done.returncode}")
        except subprocess.TimeoutExpired as stopped:
            output = stopped.stdout or ""
            output = output.decode() if isinstance(output, bytes) else output
            status, said = "stopped", f"stopped at its deadline ({seconds:.0f} s)"
        if capture is not None:
            capture.write_text(output)
        took = time.monotonic() - tic
        tail = "\n    ".join(output.strip().splitlines()[-6:])
        self.log(f"{label}: {said} after {took:.0f} s\n    {tail}")
        return Outcome(status, took, output)


def table_rows(output: str) -> list[str]:
    """The markdown table lines (``| ...``) of a stage's output, headers included."""
    return [line for line in output.splitlines() if line.startswith("|")]


def probe_device(session: Session) -> tuple[str, str]:
    """``(platform, card)`` of the first JAX device, from a child process (this one must
    not start JAX: it would take the GPU's memory from the stages); ``("unknown", "")``
    if the child could not say."""
    outcome = session.run("device", [sys.executable, "-P", "-c", DEVICE_PROBE],
                          session.deadline - MARGIN_S, capture=session.out / "device.txt")
    for line in outcome.output.splitlines():
        if line.startswith("card: "):
            platform, _, kind = line[len("card: "):].partition(" ")
            return platform, kind
    return "unknown", ""


def missing_pieces(session: Session, claims: tuple[str, ...], scale: str,
                   results: Path = ROOT / "results") -> dict[str, list[str]]:
    """Each claim's pieces at ``scale`` with no record under ``results`` (the checkout's
    ``results/``); ``ValueError`` naming a claim ``discover reproduce`` does not know."""
    code = ("import json; from pathlib import Path; from discovery import reproduce; "
            f"claims = {list(claims)!r}; "
            "unknown = [c for c in claims if c not in reproduce.CLAIMS]; "
            "print(json.dumps({'unknown': unknown, 'allowed': list(reproduce.CLAIMS)} if "
            "unknown else {c: [name for name, done in reproduce.claim_pieces("
            f"c, {scale!r}, Path({str(results)!r})).items() if not done] "
            "for c in claims}))")
    listing = subprocess.run([sys.executable, "-P", "-c", code], cwd=ROOT, env=session.env,
                             text=True, capture_output=True, check=True)
    found = json.loads(listing.stdout.strip().splitlines()[-1])
    if "unknown" in found:
        raise ValueError(f"{', '.join(found['unknown'])}: not a claim; allowed: "
                         f"{', '.join(found['allowed'])}")
    return found


def run_claims(session: Session, pieces: dict[str, list[str]], scale: str, until: float,
               work: Path, card: str) -> StageResult:
    """Every missing piece of every claim at once, each a process with its own results
    folder and a share of the GPU's memory; one row per piece (or per complete claim)."""
    result, tic = StageResult("claims", None), time.monotonic()
    todo = [(claim, piece) for claim, names in pieces.items() for piece in names]
    for claim, names in pieces.items():
        session.log(f"{claim} [{scale}]: {len(names)} pieces to run: {', '.join(names)}")
    env = {**session.env,
           "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.8 / max(1, len(todo)):.2f}"}
    outcomes: dict[tuple[str, str], Outcome] = {}

    def run_piece(claim: str, piece: str) -> None:
        results = work / claim / piece.replace("/", "__")
        code = ("from pathlib import Path; from discovery import reproduce; "
                f"reproduce.reproduce({claim!r}, {scale!r}, Path({str(results)!r}), "
                f"({piece!r},))")
        outcomes[claim, piece] = session.run(f"{claim} [{scale}] {piece}",
                                             [sys.executable, "-P", "-c", code], until, env)

    threads = [threading.Thread(target=run_piece, args=task) for task in todo]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.rows = ["| card | claim piece | wall s (its record) | outcome |", "|---|---|---|---|"]
    for claim in pieces:
        if not pieces[claim]:
            result.rows.append(f"| {card} | {claim} [{scale}] | | every piece already "
                               "recorded under results/ |")
        # This process does not import discovery (it is not installed), so the piece
        # names are read back from the file names as reproduce.piece_path writes them.
        records = {}
        for path in sorted(work.glob(f"{claim}/*/{claim}/{scale}/pieces/*.json")):
            record = json.loads(path.read_text())
            records[path.stem.replace("__", "/")] = record
        for piece in pieces[claim]:
            record = records.get(piece)
            wall = f"{record['wall_time_s']:.0f}" if record else ""
            outcome = outcomes[claim, piece].status
            result.rows.append(f"| {card} | {claim} [{scale}] {piece} | {wall} | "
                               f"{outcome}{'' if record else ', no record'} |")
        if records:
            bundle = {"claim": claim, "scale": scale, "records": records}
            (session.out / f"{claim}-{scale}-pieces.json").write_text(
                json.dumps(bundle, indent=1))
    failed = [f"{claim} {piece}: {outcomes[claim, piece].status}" for claim, piece in todo
              if outcomes[claim, piece].status != "done"]
    result.status = "done" if not failed else "incomplete"
    result.note = "; ".join(failed)
    result.seconds = time.monotonic() - tic
    return result


def run_stage(session: Session, name: str, allotment: float | None, until: float, toy: bool,
              env: dict) -> StageResult:
    """Run a script stage until ``until`` and check that its rows are there."""
    stage = STAGES[name]
    outcome = session.run(name, [sys.executable, *stage.command, *(["--toy"] if toy else [])],
                          until, env, capture=session.out / f"{name}.txt")
    result = StageResult(name, allotment, outcome.status, outcome.seconds,
                         table_rows(outcome.output))
    missing = [marker for marker in (stage.toy_markers if toy else stage.markers)
               if not any(marker in row for row in result.rows)]
    if outcome.status == "done" and missing:
        result.status = "no rows"
    if missing:
        result.note = f"rows missing: {', '.join(missing)}"
    return result


def write_summary(out: Path, results: list[StageResult], header: list[str]) -> None:
    """``summary.md`` (each stage's status and rows) and ``session.json``."""
    lines = [*header, "", "| stage | status | seconds | allotment s | note |",
             "|---|---|---|---|---|"]
    lines += [f"| {r.name} | {r.status} | {r.seconds:.0f} | "
              f"{'' if r.allotment_s is None else f'{r.allotment_s:.0f}'} | {r.note} |"
              for r in results]
    for r in results:
        lines += ["", f"## {r.name}: {STAGES[r.name].what} ({r.status})", "", *r.rows]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "session.json").write_text(json.dumps(
        {"header": header, "stages": [vars(r) for r in results]}, indent=1))


def import_records(bundle_path: Path, results: Path) -> list[Path]:
    """Write a session's piece records (``--out``'s ``*-pieces.json``) where ``discover
    reproduce`` keeps them under ``results``; a piece that already has a record there is
    refused, so nothing recorded is overwritten."""
    from discovery import reproduce
    from discovery.files import write_json

    bundle = json.loads(bundle_path.read_text())
    folder = reproduce.claim_dir(results, bundle["claim"], bundle["scale"])
    paths = {name: reproduce.piece_path(folder, name) for name in bundle["records"]}
    taken = [str(path) for path in paths.values() if path.exists()]
    if taken:
        raise SystemExit(f"--import-records: these pieces already have records: "
                         f"{', '.join(taken)}; move them away to replace them")
    for name, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, bundle["records"][name])
    return list(paths.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="where the results land")
    parser.add_argument("--import-records", type=Path, metavar="BUNDLE",
                        help="instead of running: write a session's *-pieces.json records "
                             "into --results")
    parser.add_argument("--results", type=Path, default=ROOT / "results",
                        help="the results root --import-records writes to, and whose "
                             "records the claims stage does not run again")
    parser.add_argument("--budget", type=float, default=520, help="seconds in all")
    parser.add_argument("--stages", default=DEFAULT_STAGES,
                        help="the stages in order, each with an optional allotment in "
                             f"seconds: name[:seconds],... from {', '.join(STAGES)} "
                             f"(default {DEFAULT_STAGES})")
    parser.add_argument("--claims", default=",".join(DEFAULT_CLAIMS),
                        help="the claims whose missing paper-scale pieces the claims stage "
                             "runs, comma-separated")
    parser.add_argument("--toy", action="store_true",
                        help="toy sizes, for a CPU (figures of tiny programs, not results)")
    args = parser.parse_args()
    if args.import_records is not None:
        for path in import_records(args.import_records, args.results):
            print(f"wrote {path}")
        print("then: discover reproduce --report")
        return
    if args.out is None:
        parser.error("--out: give the folder the results land in")
    try:
        stages = parse_stages(args.stages)
    except ValueError as error:
        parser.error(f"--stages: {error}")
    claims = tuple(claim for claim in args.claims.split(",") if claim)
    args.out.mkdir(parents=True, exist_ok=True)
    scale = "toy" if args.toy else "paper"
    with tempfile.TemporaryDirectory(prefix="gpu-session-") as tmp:
        # Children run with -P (or a script path), so the checkout's own discovery/
        # (without envs/, agents/, meta/ inside) does not shadow the linked package.
        session = Session(args.out, args.budget, shadow_tree(ROOT, Path(tmp) / "src"))
        session.log(f"stages: {args.stages}; budget {args.budget:.0f} s; "
                    f"{'toy sizes' if args.toy else 'paper sizes'}")
        platform, kind = probe_device(session)
        on_gpu = platform == "gpu"
        card = kind if on_gpu else f"{kind or platform} (no GPU)"
        header = [f"# GPU session: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
                  f"card: {card}; command: python benchmarks/gpu_session.py "
                  f"{' '.join(sys.argv[1:])}"]
        if not on_gpu:
            header.append(f"NO GPU present (JAX platform: {platform}): every figure here is "
                          "measured on a CPU at toy size, not on a GPU.")
            session.log(header[-1])
            if not args.toy:
                session.log("the paper sizes would not finish on a CPU: rerun with --toy")
                raise SystemExit(2)
        env = dict(session.env)
        if not args.toy:
            # Every stage compiles from scratch, so its compile figures are compiles, not
            # reads of a program an earlier stage left in the persistent cache.
            env["DISCOVERY_COMPILATION_CACHE"] = "off"
        pieces = {}
        if any(name == "claims" for name, _ in stages):
            try:
                pieces = missing_pieces(session, claims, scale, args.results)
            except ValueError as error:
                session.log(f"--claims: {error}")
                raise SystemExit(2) from None
        # The allotments lie end to end from here: stage i may run until the sum of the
        # allotments up to it, and no later than the deadline less the margin.
        origin, elapsed, results = time.monotonic(), 0.0, []
        last = session.deadline - MARGIN_S
        for name, allotment in stages:
            elapsed = elapsed + allotment if allotment is not None else float("inf")
            until = min(origin + elapsed, last)
            session.log(f"stage {name}: {STAGES[name].what}, until "
                        f"{until - session.start:.0f} s of the session")
            if name == "claims":
                result = run_claims(session, pieces, scale, until, Path(tmp) / "claim", card)
                result.allotment_s = allotment
            else:
                result = run_stage(session, name, allotment, until, args.toy, env)
            session.log(f"stage {name}: {result.status}"
                        f"{f' ({result.note})' if result.note else ''}")
            results.append(result)
        write_summary(args.out, results, header)
        left = [f"{r.name} ({r.status})" for r in results if r.status != "done"]
        session.log(f"session done, {session.deadline - time.monotonic():.0f} s of the "
                    f"budget left; {'every stage done' if not left else 'not done: '}"
                    f"{', '.join(left)}")
    if left:
        raise SystemExit(INCOMPLETE_EXIT)


if __name__ == "__main__":
    main()
