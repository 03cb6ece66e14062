"""One process per output folder: two runs started at the same moment into one folder
never mix; the second exits 2 naming the folder, the first writes what it writes alone.
The lock is the OS's (``fcntl.flock``), so it goes with its process, ``kill -9``
included."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from discovery import reproduce
from discovery.cli import main
from discovery.files import LOCK_FILE, FolderInUseError, lock_folder
from discovery.run_folder import prepare_run_folder
from tests.resume import logged_records
from tests.toys import TINY_META_TRAIN_FLAGS

REPO = Path(__file__).resolve().parents[2]
CLAIM, PIECE, OTHER_PIECE = "dpo-vs-ppo-minatar", "Breakout-MinAtar/ppo", "Breakout-MinAtar/dpo"

# Each process imports the CLI, says it is ready, and waits for the same go signal: the
# two then start their command at the same moment, past their (slow) imports.
LAUNCHER = """
import os, sys, time
from discovery.cli import main
ready, go = sys.argv[1], sys.argv[2]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
sys.exit(main(sys.argv[3:]))
"""


def _at_the_same_moment(tmp_path: Path, commands: list[list[str]]) -> list[tuple[int, str]]:
    """Run ``discover`` commands as processes released together; ``(exit code, stderr)``."""
    go = tmp_path / "go"
    processes, ready = [], []
    for index, argv in enumerate(commands):
        ready.append(tmp_path / f"ready{index}")
        processes.append(subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(ready[-1]), str(go), *argv], cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 120
    while not all(path.exists() for path in ready):
        assert time.monotonic() < deadline, "a process did not start"
        assert all(p.poll() is None for p in processes), [p.stderr.read() for p in processes]
        time.sleep(0.05)
    go.touch()
    outcomes = []
    for process in processes:
        try:
            _, err = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            pytest.fail("a process hung")
        outcomes.append((process.returncode, err))
    return outcomes


def _winner_and_refusal(outcomes: list[tuple[int, str]], command: str, folder: Path,
                        what: str) -> int:
    """Which of two processes ran (exit 0); the other exited 2 with one line naming the
    folder and that another process holds it."""
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    winner = next(i for i, (code, _) in enumerate(outcomes) if code == 0)
    lines = outcomes[1 - winner][1].strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"discover {command}: error: {folder}: another process (pid ")
    assert f"holds this {what}; allowed: wait until it ends" in lines[0]
    return winner


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.mark.timeout(500)
def test_two_meta_train_runs_into_one_folder_at_once_never_mix(tmp_path):
    def meta_train(runs: Path, seed: list[str]) -> list[str]:
        return ["meta-train", "configs/lpo_cartpole.yaml", "--name", "dup",
                "--runs-dir", str(runs), *TINY_META_TRAIN_FLAGS, *seed]

    runs, seeds = tmp_path / "runs", [[], ["--set", "seed=7"]]
    outcomes = _at_the_same_moment(tmp_path, [meta_train(runs, seed) for seed in seeds])
    winner = _winner_and_refusal(outcomes, "meta-train", runs / "dup", "run folder")

    # The folder holds the winner's run, as if the other had never started.
    alone = tmp_path / "alone"
    assert main(meta_train(alone, seeds[winner])) == 0
    assert logged_records(runs / "dup") == logged_records(alone / "dup")
    assert len(logged_records(runs / "dup")) == 2
    assert (runs / "dup" / "config.yaml").read_text() == (alone / "dup" / "config.yaml").read_text()
    assert _files(runs / "dup") == _files(alone / "dup")
    assert LOCK_FILE not in _files(runs / "dup")


@pytest.mark.timeout(500)
def test_reproduce_processes_share_a_claims_pieces_but_never_one_piece(tmp_path):
    # Three processes at once into one results folder: two ask for the same piece, one
    # for the claim's other piece. The other piece runs beside the first; of the two
    # asking for one piece, one runs it and the other exits 2 naming that piece.
    results = tmp_path / "results"
    command = ["reproduce", CLAIM, "--scale", "toy", "--results", str(results), "--piece"]
    outcomes = _at_the_same_moment(tmp_path, [[*command, PIECE], [*command, PIECE],
                                              [*command, OTHER_PIECE]])
    assert outcomes[2][0] == 0, outcomes[2]
    held = results / CLAIM / "toy" / "running" / PIECE.replace("/", "__")
    _winner_and_refusal(outcomes[:2], "reproduce", held, f"piece {PIECE!r}")

    alone = tmp_path / "alone"
    reproduce.reproduce(CLAIM, "toy", alone, (PIECE, OTHER_PIECE), log=lambda line: None)

    def records(root: Path) -> dict:
        kept = reproduce.read_records(root / CLAIM / "toy")
        assert sorted(kept) == sorted([PIECE, OTHER_PIECE])
        return {name: {k: v for k, v in record.items() if k not in ("wall_time_s", "machine")}
                for name, record in kept.items()}

    assert records(results) == records(alone)
    assert _files(results) == _files(alone)


# --------------------------------------------------------------------------- the lock


def test_a_held_folder_is_refused_in_one_line_and_released_with_its_lock(tmp_path):
    folder = tmp_path / "new" / "run"
    with lock_folder(folder, "run folder", "pick another --name") as held:
        assert held.held and (folder / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(FolderInUseError) as refused:  # flock: one holder per open file
            lock_folder(folder, "run folder", "pick another --name")
        assert str(refused.value) == (
            f"{folder}: another process (pid {os.getpid()}) holds this run folder; allowed: "
            "wait until it ends, or pick another --name")
    assert not held.held
    # The lock file is gone, and so are the folders the lock made and nothing filled.
    assert not (tmp_path / "new").exists()
    with lock_folder(folder):
        (folder / "metrics.jsonl").write_text("")
    assert os.listdir(folder) == ["metrics.jsonl"]


def test_overwrite_clears_the_folder_but_keeps_the_lock(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    with lock_folder(folder):
        (folder / "metrics.jsonl").write_text("{}\n")
        (folder / "checkpoints").mkdir()
        prepare_run_folder(folder, {"generations": 1}, resume=False, overwrite=True)
        assert os.listdir(folder) == [LOCK_FILE]
        with pytest.raises(FolderInUseError):
            lock_folder(folder)
    assert os.listdir(folder) == []


# files.py on its own (no JAX import): a holder that is killed.
HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("files", sys.argv[1])
files = importlib.util.module_from_spec(spec)
spec.loader.exec_module(files)
files.lock_folder(sys.argv[2])
print("held", flush=True)
time.sleep(120)
"""


def test_the_lock_goes_with_a_process_killed_by_sigkill(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(REPO / "discovery/files.py"),
                               str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(FolderInUseError, match=f"another process \\(pid {holder.pid}\\)"):
            lock_folder(folder)
    finally:
        holder.kill()
        holder.wait()
    assert (folder / LOCK_FILE).exists()  # left behind by the kill: it means nothing alone
    with lock_folder(folder) as held:
        assert held.held
    assert not (folder / LOCK_FILE).exists()
