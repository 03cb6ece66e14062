"""The lent-GPU session script (``benchmarks/gpu_session.py``) runs an uninstalled
checkout: its link package imports like the installed one, and it picks exactly the
paper-scale pieces that have no committed record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_session  # noqa: E402


def linked_session(tmp_path: Path) -> gpu_session.Session:
    return gpu_session.Session(tmp_path, 60, gpu_session.shadow_tree(ROOT, tmp_path / "src"))


@pytest.mark.timeout(120)
def test_the_link_package_imports_like_the_installed_one(tmp_path):
    session = linked_session(tmp_path)
    code = "import discovery.envs.registry as r, discovery.claims_groove as c; " \
           "print(r.__file__); print(c.__file__)"
    out = subprocess.run([sys.executable, "-P", "-c", code], cwd=ROOT, env=session.env,
                         text=True, capture_output=True, timeout=100)
    assert out.returncode == 0, out.stderr[-2000:]
    registry, claim = (Path(line).resolve() for line in out.stdout.split())
    assert registry == ROOT / "envs" / "registry.py"
    assert claim == ROOT / "discovery" / "claims_groove.py"


@pytest.mark.timeout(120)
def test_only_the_pieces_without_a_record_are_run(tmp_path):
    session = linked_session(tmp_path)
    folder = ROOT / "results" / gpu_session.CLAIM / "paper" / "pieces"
    recorded = {path.stem.replace("__", "/") for path in folder.glob("*.json")}
    missing = gpu_session.missing_pieces(session, "paper")
    games = ("Asterix", "Breakout", "Freeway", "SpaceInvaders")
    everything = {f"{game}-MinAtar/{drift}" for game in games for drift in ("ppo", "dpo")}
    assert set(missing) == everything - recorded and not set(missing) & recorded
