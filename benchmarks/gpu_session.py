"""A lent GPU's checks in one command, bounded by one deadline: the paper-scale pieces of
``dpo-vs-ppo-minatar`` (Lu et al., 2022: 10 seeds x 1e7 steps per game and drift) that
have no record under ``results/`` yet, all side by side on the one GPU (each a process
with a share of its memory), then the GPU suite (``gpu_suite.py``) in the time left.
Whatever finished before the deadline lands in ``--out``: the new piece records in one
JSON file (``discover reproduce`` records, by piece name; ``--import-records FILE`` here
writes them where ``discover reproduce`` keeps them), the suite's table and a log. Runs from a
source checkout that is not installed: the device image has JAX, flax, optax and chex,
and gymnax and evosax travel as wheels (BENCHMARKS.md, "The GPU suite").

    python benchmarks/gpu_session.py --out OUT --budget 520          # on the GPU
    python benchmarks/gpu_session.py --out /tmp/gpu --budget 240 --toy   # anywhere
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
from pathlib import Path

from ppo_vs_commit import shadow_tree

ROOT = Path(__file__).resolve().parent.parent
CLAIM = "dpo-vs-ppo-minatar"
#: Seconds kept back at the end for merging the records and writing the log.
MARGIN_S = 10
VERSIONS = ("import importlib.metadata as m, jax; print(jax.devices(), *(f'{name} "
            "{m.version(name)}' for name in ('jax', 'jaxlib', 'flax', 'optax', 'chex', "
            "'gymnax', 'evosax', 'numpy')))")


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
            capture: Path | None = None) -> None:
        """Run ``command`` until the monotonic time ``until``; log its outcome and tail."""
        seconds = until - time.monotonic()
        if seconds < 5:
            self.log(f"{label}: skipped, {seconds:.0f} s left")
            return
        tic = time.monotonic()
        try:
            done = subprocess.run(command, cwd=ROOT, env=env or self.env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=seconds)
            output, outcome = done.stdout, f"exit {done.returncode}"
        except subprocess.TimeoutExpired as stopped:
            output = stopped.stdout or ""
            output = output.decode() if isinstance(output, bytes) else output
            outcome = f"stopped at the deadline ({seconds:.0f} s)"
        if capture is not None:
            capture.write_text(output)
        tail = "\n    ".join(output.strip().splitlines()[-6:])
        self.log(f"{label}: {outcome} after {time.monotonic() - tic:.0f} s\n    {tail}")


def missing_pieces(session: Session, scale: str) -> list[str]:
    """The claim's pieces at ``scale`` with no record under the checkout's ``results/``."""
    code = ("from pathlib import Path; from discovery import reproduce; print('\\n'.join("
            f"name for name, done in reproduce.claim_pieces({CLAIM!r}, {scale!r}, "
            f"Path({str(ROOT / 'results')!r})).items() if not done))")
    listing = subprocess.run([sys.executable, "-P", "-c", code], cwd=ROOT, env=session.env,
                             text=True, capture_output=True, check=True)
    return listing.stdout.split()


def run_claim(session: Session, scale: str, until: float, work: Path) -> None:
    """Every piece at once, each a process with its own results folder and a share of
    the GPU's memory."""
    pieces = missing_pieces(session, scale)
    session.log(f"{CLAIM} [{scale}]: {len(pieces)} pieces to run: {', '.join(pieces)}")
    if not pieces:
        return
    env = {**session.env, "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.8 / len(pieces):.2f}"}

    def run_piece(piece: str) -> None:
        results = work / piece.replace("/", "__")
        code = ("from pathlib import Path; from discovery import reproduce; "
                f"reproduce.reproduce({CLAIM!r}, {scale!r}, Path({str(results)!r}), "
                f"({piece!r},))")
        session.run(f"{CLAIM} [{scale}] {piece}", [sys.executable, "-P", "-c", code], until, env)

    threads = [threading.Thread(target=run_piece, args=(piece,)) for piece in pieces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # This process does not import discovery (it is not installed), so the piece names
    # are read back from the file names as reproduce.piece_path writes them.
    records = {}
    for path in sorted(work.glob(f"*/{CLAIM}/{scale}/pieces/*.json")):
        record = json.loads(path.read_text())
        records[path.stem.replace("__", "/")] = record
        session.log(f"record {path.stem}: {record['wall_time_s']} s on {record['machine']}")
    bundle = {"claim": CLAIM, "scale": scale, "records": records}
    (session.out / f"{CLAIM}-{scale}-pieces.json").write_text(json.dumps(bundle, indent=1))


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
                        help="the results root --import-records writes to")
    parser.add_argument("--budget", type=float, default=520, help="seconds in all")
    parser.add_argument("--claim-share", type=float, default=0.6,
                        help="the fraction of the budget the claim's pieces may use")
    parser.add_argument("--suite-parts", default="ppo,lpo,lpg",
                        help="the GPU suite's rows to measure (gpu_suite.py --parts)")
    parser.add_argument("--toy", action="store_true", help="toy sizes, for a CPU")
    args = parser.parse_args()
    if args.import_records is not None:
        for path in import_records(args.import_records, args.results):
            print(f"wrote {path}")
        print("then: discover reproduce --report")
        return
    if args.out is None:
        parser.error("--out: give the folder the results land in")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-session-") as tmp:
        # Children run with -P, so the checkout's own discovery/ (without envs/, agents/,
        # meta/ inside) does not shadow the linked package.
        session = Session(args.out, args.budget, shadow_tree(ROOT, Path(tmp) / "src"))
        session.run("versions", [sys.executable, "-P", "-c", VERSIONS], session.deadline)
        claim_until = session.start + args.claim_share * args.budget
        run_claim(session, "toy" if args.toy else "paper", claim_until, Path(tmp) / "claim")
        suite = [sys.executable, "benchmarks/gpu_suite.py", "--parts", args.suite_parts,
                 *(["--toy"] if args.toy else [])]
        session.run("gpu suite", suite, session.deadline - MARGIN_S,
                    capture=args.out / "gpu_suite.txt")
        session.log(f"session done, {session.deadline - time.monotonic():.0f} s of the "
                    "budget left")


if __name__ == "__main__":
    main()
