"""The Colab notebooks in ``notebooks/``: stored clean, and they run end to end.

Each notebook is executed as a copy in a temporary folder (so its ``runs/`` land there)
by nbclient, with the ``python3`` kernel, which jupyter_client starts with this
interpreter (the venv's); any cell error fails the test. As papermill does, a cell that
sets smaller values is injected after the ``parameters`` cell: every code path runs, at
sizes that keep the suite short (the notebooks' own CPU values run for minutes each).
The notebooks run one after another in one kernel, as a Colab user runs them in one
runtime: each starts from an empty namespace (``%reset -f``) in its own folder, so a
notebook that forgets an import or a name still fails, while the interpreter, its
imports and its compiled programs stay warm (this saves a kernel start, the package's
import and the eager-op compiles per notebook).
The structure checks are fast:
a markdown title, the Colab install + accelerator-detection cell (its install source the
visible ``INSTALL_FROM`` parameter, pinned to the package's version; its Colab branch
runs in tests/test_install.py), a cell tagged ``parameters`` with GPU values in comments
(and ``RUNS_DIR`` where a notebook writes runs), and no stored outputs.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
# The notebooks that write runs, and the parameter naming where (Drive, in Colab).
RUNS_PARAMETER = {"02_discover_a_drift": "RUNS_DIR", "03_learned_objectives": "RUNS_DIR",
                  "04_curricula": "RUNS_DIR", "05_evaluate_and_zoo": "RUNS_DIR",
                  "06_reproduce_a_claim": "RESULTS_DIR"}


def _package_version() -> str:
    """``[project] version`` of pyproject.toml (the first top-level ``version =``)."""
    text = (NOTEBOOK_DIR.parent / "pyproject.toml").read_text()
    return re.search(r'^version = "([^"]+)"', text, re.MULTILINE).group(1)

# Per notebook, the values injected after its parameters cell (names it must define).
TEST_PARAMETERS = {
    "01_quickstart": {
        "SEEDS": 2, "CARTPOLE_STEPS": 2048, "MINATAR_STEPS": 1024,
        "MINATAR_NUM_ENVS": 4, "MINATAR_NUM_STEPS": 32,
    },
    "02_discover_a_drift": {
        "GENERATIONS": 2, "POPULATION": 2, "SEEDS": 1, "EVAL_STEPS": 4096, "EVAL_SEEDS": 2,
    },
    "03_learned_objectives": {
        "GRID_SIZE": 5, "NUM_ENVS": 4, "HIDDEN": 8, "EVAL_SEEDS": 2, "EVAL_LIFETIME": 10,
        "LPG_GENERATIONS": 4, "LPG_AGENTS": 2, "LPG_LIFETIME": 4,
        "ES_GENERATIONS": 2, "ES_POPULATION": 2, "ES_AGENTS": 2, "ES_LIFETIME_MAX": 12,
    },
    "04_curricula": {
        # Lifetimes of 3 updates, so that levels finish, are scored and fill the buffer.
        "GENERATIONS": 8, "BUFFER_SIZE": 8, "GRID_SIZE": 5, "NUM_ENVS": 4, "HIDDEN": 8,
        "AGENTS": 4, "LIFETIME": 3, "EVAL_SEEDS": 2, "EVAL_LIFETIME": 10,
    },
    "05_evaluate_and_zoo": {"EVAL_SEEDS": 2, "HORIZONS": (0.25,)},
    "06_reproduce_a_claim": {"CLAIM": "dpo-vs-ppo-minatar", "SCALE": "toy", "PIECES": ()},
}


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _client(notebook, folder: Path, timeout: int = 300):
    return nbclient.NotebookClient(
        notebook, timeout=timeout, kernel_name=KERNEL, resources={"metadata": {"path": str(folder)}}
    )


@pytest.fixture(scope="module")
def warm_kernel(tmp_path_factory: pytest.TempPathFactory):
    """One running kernel for every notebook of this module (see the module docstring)."""
    starter = _client(nbformat.v4.new_notebook(), tmp_path_factory.mktemp("kernel"))
    starter.execute(cleanup_kc=False)
    yield starter.km
    starter._cleanup_kernel()


def _start_afresh(notebook, folder: Path, zoo: Path) -> None:
    """Prepend a cell that empties the namespace and moves into ``folder`` (where the
    notebook's ``runs/`` land) with the user's zoo kept out, so that ``zoo:NAME``
    resolves to the entries shipped with the package."""
    source = "\n".join([
        "%reset -f",
        "import os",
        f"os.chdir({str(folder)!r})",
        f"os.environ['DISCOVERY_ZOO'] = {str(zoo)!r}",
        "del os",
    ])
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-fresh-start"]
    notebook.cells.insert(0, cell)


def _inject_test_parameters(notebook, values: dict) -> None:
    """Insert a cell setting ``values`` after the ``parameters`` cell, which must define
    every one of them (so a renamed parameter fails here, not silently)."""
    index, cell = next((i, c) for i, c in enumerate(notebook.cells)
                       if "parameters" in c.metadata.get("tags", []))
    for name in values:
        assert re.search(rf"^{name}\s*=", cell.source, re.MULTILINE), (
            f"the parameters cell does not define {name}")
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    injected = nbformat.v4.new_code_cell(source)
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(index + 1, injected)


def test_notebooks_are_there():
    names = [path.name for path in NOTEBOOKS]
    assert sorted(TEST_PARAMETERS) == [path.stem for path in NOTEBOOKS]
    assert names[:6] == [
        "01_quickstart.ipynb",
        "02_discover_a_drift.ipynb",
        "03_learned_objectives.ipynb",
        "04_curricula.ipynb",
        "05_evaluate_and_zoo.ipynb",
        "06_reproduce_a_claim.ipynb",
    ], names


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_structure(path: Path):
    notebook = _read(path)
    nbformat.validate(notebook)

    title = notebook.cells[0]
    assert title.cell_type == "markdown" and title.source.startswith("# "), (
        f"{path.name}: the first cell must be a markdown title ('# ...')"
    )

    code = _code_cells(notebook)
    setup = code[0].source
    # The install source, visible on the cell's first assignment, and the version pin.
    assignments = re.findall(r"^(\w+) = ", setup, re.MULTILINE)
    assert assignments[:2] == ["INSTALL_FROM", "VERSION"], (path.name, assignments[:2])
    assert f'VERSION = "{_package_version()}"' in setup, f"{path.name}: pin pyproject's version"
    for needle in ('"google.colab" in sys.modules', "pip", "install",
                   'importlib.metadata.version("rl-discovery")',
                   "jax.default_backend()", "jax.devices()"):
        assert needle in setup, f"{path.name}: the first code cell lacks {needle!r}"
    # No notebook uses brax: its extra (and mujoco) stays out of the Colab install.
    assert "brax" not in setup, f"{path.name}: the install pulls in brax"
    # Plain Python (no `!pip` shell escapes), so that it runs, and does nothing, outside Colab.
    compile(setup, f"{path.name}: setup cell", "exec")

    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected 1"
    assert tagged[0] is code[1], f"{path.name}: the parameters cell must follow the setup cell"
    assert "# GPU:" in tagged[0].source, f"{path.name}: give the GPU values in comments"
    if path.stem in RUNS_PARAMETER:  # where its runs go (Drive, in Colab)
        name = RUNS_PARAMETER[path.stem]
        assert re.search(rf"^{name} = .*/content/drive", tagged[0].source, re.MULTILINE), (
            f"{path.name}: the parameters cell must set {name}, with a Drive path in its comment")
        assert "drive.mount" in "".join(cell.source for cell in code[2:]), path.name

    for index, cell in enumerate(code):
        assert cell.outputs == [] and cell.execution_count is None, (
            f"{path.name}: code cell {index} has stored outputs; clear them before committing"
        )


@pytest.mark.timeout(120)
def test_kernel_is_this_python(tmp_path: Path):
    """The notebooks must run in this environment's interpreter, not another Python."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import sys\nprint(sys.executable)")]
    _client(notebook, tmp_path, timeout=60).execute()
    printed = notebook.cells[0].outputs[0]["text"].strip()
    assert os.path.realpath(printed) == os.path.realpath(sys.executable)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, warm_kernel):
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    notebook = _read(copy)
    _inject_test_parameters(notebook, TEST_PARAMETERS[path.stem])
    _start_afresh(notebook, tmp_path, tmp_path / "zoo")
    try:
        nbclient.NotebookClient(notebook, timeout=300, kernel_name=KERNEL,
                                km=warm_kernel).execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}", pytrace=False)
    finally:
        nbformat.write(notebook, copy)  # executed copy, outputs included, for debugging
    errors = [o for cell in _code_cells(notebook) for o in cell.outputs
              if o.output_type == "error"]
    assert not errors, f"{path.name}: cells raised {[e['ename'] for e in errors]}"
