"""The GPU benchmark suite (``make bench-gpu``) runs at toy size, so it keeps working
between the sessions that have a GPU: every row is printed with a finite figure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_suite.py"


@pytest.mark.timeout(600)
def test_the_gpu_suite_runs_at_toy_size_and_fills_every_row():
    out = subprocess.run([sys.executable, str(SCRIPT), "--toy"], capture_output=True,
                         text=True, timeout=540)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ")][1:]
    names = " ".join(row.split("|")[1] for row in rows)
    for expected in ("1 seeds vmapped", "2 seeds vmapped", "LPO generation, population 2",
                     "projected: LPO paper run (800 generations", "LPG meta-gradient step",
                     "projected: GROOVE run (5000 meta-steps)"):
        assert expected in names, (expected, out.stdout)
    for row in rows:
        figure = row.split("|")[3]
        assert "nan" not in figure.lower() and re.search(r"\d", figure), row
    assert "reproduce: python benchmarks/gpu_suite.py --toy" in out.stdout


@pytest.mark.timeout(120)
def test_an_unknown_part_is_refused_by_name():
    out = subprocess.run([sys.executable, str(SCRIPT), "--toy", "--parts", "ppo,lpx"],
                         capture_output=True, text=True, timeout=100)
    assert out.returncode == 2
    assert "--parts: lpx is not one of ppo, lpo, lpg" in out.stderr
