"""The installed import names: the wheel puts everything under `discovery` (`discovery.envs`,
`discovery.agents`, `discovery.meta`), so it installs beside a distribution that owns a
top-level `agents` (as openai-agents does) and both import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("pyproject.toml", "README.md", "discovery", "envs", "agents", "meta")
OTHER_PYPROJECT = """[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "other-agents"
version = "1.0"

[tool.setuptools]
packages = ["agents"]
"""
CHECK = """
import discovery, discovery.agents.ppo, discovery.envs, discovery.meta.loop
import agents
site = {site!r}
assert agents.OWNER == "other-agents", agents.__file__
for module in (discovery, discovery.agents.ppo, discovery.envs, discovery.meta.loop):
    assert module.__file__.startswith(site), module.__file__
print("both import")
"""


def _pip(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.timeout(300)
def test_the_wheel_installs_beside_a_top_level_agents_package(tmp_path):
    # Built from a copy, so that setuptools' build/ folder lands there, not in the checkout.
    source, wheels, site = tmp_path / "source", tmp_path / "wheels", tmp_path / "site"
    source.mkdir()
    for name in PROJECT_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source),
         cwd=tmp_path)
    (wheel,) = wheels.glob("rl_discovery-*.whl")
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert not top_level & {"envs", "agents", "meta"}, sorted(top_level)

    other = tmp_path / "other"
    (other / "agents").mkdir(parents=True)
    (other / "agents" / "__init__.py").write_text('OWNER = "other-agents"\n')
    (other / "pyproject.toml").write_text(OTHER_PYPROJECT)
    for target in (str(wheel), str(other)):
        _pip("install", "--no-deps", "--no-build-isolation", "-q", "--target", str(site),
             target, cwd=tmp_path)

    # The scratch folder first on the path, run outside the repository.
    env = dict(os.environ, PYTHONPATH=str(site))
    done = subprocess.run([sys.executable, "-c", CHECK.format(site=str(site))], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "both import" in done.stdout, done.stderr[-3000:]
