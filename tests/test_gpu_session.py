"""The lent-GPU session script (``benchmarks/gpu_session.py``) runs an uninstalled
checkout: its link package imports like the installed one, and it picks exactly the
paper-scale pieces that have no committed record."""

from __future__ import annotations

import json
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


def test_imported_records_land_where_reproduce_reads_them_and_never_overwrite(tmp_path):
    from discovery import reproduce

    records = {"Asterix-MinAtar/ppo": {"final_returns": [12.5], "wall_time_s": 300.0}}
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"claim": gpu_session.CLAIM, "scale": "paper",
                                  "records": records}))
    results = tmp_path / "results"
    [path] = gpu_session.import_records(bundle, results)
    folder = reproduce.claim_dir(results, gpu_session.CLAIM, "paper")
    assert reproduce.read_records(folder) == records
    with pytest.raises(SystemExit, match="already have records"):
        gpu_session.import_records(bundle, results)
    assert json.loads(path.read_text()) == records["Asterix-MinAtar/ppo"]
