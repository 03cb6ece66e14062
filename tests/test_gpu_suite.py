"""The GPU benchmark suite (``make bench-gpu``) runs at toy size, so it keeps working
between the sessions that have a GPU: its PPO rows are printed with finite figures, each
naming the card, and a CPU's rows say they are no GPU's. (The LPO and GROOVE parts run
through ``gpu_session.py``'s stages in tests/test_gpu_session.py, at toy size too.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_suite.py"


@pytest.mark.timeout(300)
def test_the_ppo_part_runs_at_toy_size_and_names_the_card_on_every_row():
    out = subprocess.run([sys.executable, str(SCRIPT), "--toy", "--parts", "ppo"],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "NO GPU present" in out.stdout
    rows = [line.split("|")[1:-1] for line in out.stdout.splitlines()
            if line.startswith("| ")][1:]
    assert [name.strip() for _, name, _, _ in rows] == [
        "PPO CartPole-v1 (2 envs x 16), 1 seeds vmapped",
        "PPO CartPole-v1 (2 envs x 16), 2 seeds vmapped"], out.stdout
    for card, _, compile_s, figure in rows:
        assert card.strip().endswith("(no GPU)")
        assert float(compile_s) > 0
        assert "nan" not in figure.lower() and re.search(r"\d", figure)
    assert "reproduce: python benchmarks/gpu_suite.py --toy --parts ppo" in out.stdout


@pytest.mark.timeout(120)
def test_an_unknown_part_is_refused_by_name():
    out = subprocess.run([sys.executable, str(SCRIPT), "--toy", "--parts", "ppo,lpx"],
                         capture_output=True, text=True, timeout=100)
    assert out.returncode == 2
    assert "--parts: lpx is not one of ppo, lpo, lpg" in out.stderr
