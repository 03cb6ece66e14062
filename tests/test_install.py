"""The wheel, built from the checkout offline (no build isolation), installed two ways:

- its import names: everything under `discovery` (`discovery.envs`, `discovery.agents`,
  `discovery.meta`), so it installs beside a distribution that owns a top-level `agents`
  (as openai-agents does) and both import;
- the notebooks' Colab install: a notebook's first cell, run through its Colab branch (a
  stand-in ``google.colab``), installs the wheel from a folder into a fresh virtual
  environment and imports it from there, as it does in Colab from a Drive folder.

Both are marked ``install``: one wheel build (~10 s) serves the module."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_quickstart.ipynb"
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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built offline from a copy of the checkout (so that
    setuptools' build/ folder lands there, not in the checkout), alone in its folder."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    source.mkdir()
    for name in PROJECT_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source),
         cwd=tmp_path)
    (built,) = wheels.glob("rl_discovery-*.whl")
    return built


@pytest.mark.install
@pytest.mark.timeout(300)
def test_the_wheel_installs_beside_a_top_level_agents_package(wheel, tmp_path):
    site = tmp_path / "site"
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


# Colab as the cell and JAX see it: ``google.colab`` imported, with the submodules they
# import from it (JAX's debugger imports ``output`` when it finds Colab; the cell's
# ``drive`` serves a source under /content/drive, which this test does not use).
COLAB_STAND_IN = """import sys, types
colab = sys.modules["google.colab"] = types.ModuleType("google.colab")
for name in ("drive", "output"):
    setattr(colab, name, types.ModuleType(f"google.colab.{name}"))
    sys.modules[f"google.colab.{name}"] = getattr(colab, name)
"""
AFTER_INSTALL = """import importlib.metadata, json, discovery
print(json.dumps({"file": discovery.__file__,
                  "version": importlib.metadata.version("rl-discovery")}))
"""


def _fresh_venv(path: Path) -> Path:
    """A virtual environment at ``path`` whose Python sees this one's packages (jax, pip
    and the rest: nothing is downloaded) but not the project itself, as Colab's Python
    has its own packages and not Discovery. This venv's site-packages go on its path
    through a .pth file, mirrored without the editable install of the project (its
    metadata would satisfy the notebook's requirement, and its finder would import the
    checkout). Returns the new venv's Python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=60)
    python = path / "bin" / "python"
    mirror = path / "system-packages"
    mirror.mkdir()
    own = re.compile(r"^(rl_discovery|__editable__|discovery)|\.pth$")
    sites = {Path(p) for p in (sysconfig.get_path("purelib"), sysconfig.get_path("platlib"))}
    for site in sites:
        for entry in site.iterdir():
            if not own.search(entry.name) and not (mirror / entry.name).exists():
                (mirror / entry.name).symlink_to(entry)
    new_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    (Path(new_site) / "system-packages.pth").write_text(f"{mirror}\n")
    return python


def _setup_cell(install_from: Path, version: str | None = None) -> str:
    """The notebook's first code cell, with ``INSTALL_FROM`` (and ``VERSION``) set as a
    user sets them: the assignment lines replaced."""
    notebook = json.loads(NOTEBOOK.read_text())
    cell = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    source = "".join(cell["source"])
    source, count = re.subn(r"^INSTALL_FROM = .*$", f"INSTALL_FROM = {str(install_from)!r}",
                            source, flags=re.MULTILINE)
    assert count == 1, "the setup cell must assign INSTALL_FROM once"
    if version is not None:
        source = re.sub(r"^VERSION = .*$", f"VERSION = {version!r}", source, flags=re.MULTILINE)
    return source


@pytest.mark.install
@pytest.mark.timeout(300)
def test_a_notebook_installs_the_wheel_through_its_colab_branch(wheel, tmp_path):
    """01's first cell, in Colab, with ``INSTALL_FROM`` a folder holding the wheel (as the
    Drive folder of notebooks/README.md): pip installs it into the fresh venv (offline:
    ``--no-index --no-deps`` through pip's environment variables, the dependencies being
    there already), the cell checks the version and imports Discovery and JAX."""
    folder = tmp_path / "drive"
    folder.mkdir()
    shutil.copy2(wheel, folder / wheel.name)
    python = _fresh_venv(tmp_path / "venv")
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env.update(PIP_NO_INDEX="1", PIP_NO_DEPS="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONNOUSERSITE="1")

    def run(source: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), "-c", source], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=240)

    # Pinned: a folder without a wheel of VERSION is refused before anything installs.
    refused = run(COLAB_STAND_IN + _setup_cell(folder, version="9.9.9"))
    assert refused.returncode != 0 and "no rl_discovery-9.9.9-*.whl" in refused.stderr, (
        refused.stderr[-2000:])

    done = run(COLAB_STAND_IN + _setup_cell(folder))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "backend: cpu" in done.stdout, done.stdout
    installed = run(AFTER_INSTALL)
    assert installed.returncode == 0, installed.stderr[-3000:]
    found = json.loads(installed.stdout.strip().splitlines()[-1])
    pinned = re.search(r'^VERSION = "([^"]+)"', _setup_cell(folder), re.MULTILINE).group(1)
    assert found["version"] == pinned, found
    assert Path(found["file"]).is_relative_to(tmp_path / "venv" / "lib"), found
