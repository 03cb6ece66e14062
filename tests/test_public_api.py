"""The public API (``from discovery import ...``): every exported name resolves to the
object where it is defined, each belongs to one role, and the notebooks in
``notebooks/`` import nothing else from Discovery. Fast: imports modules, compiles nothing.
"""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

import discovery

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
PUBLIC = set(discovery.__all__)


def test_every_export_resolves():
    unresolved = []
    for name in discovery.__all__:
        try:
            getattr(discovery, name)
        except (AttributeError, ImportError) as error:
            unresolved.append(f"{name}: {error!r}")
    assert not unresolved, "discovery.__all__ names that do not resolve:\n" + "\n".join(
        unresolved
    )


def test_exports_point_where_objects_are_defined():
    """An export names the defining module, not a module that merely imports it."""
    misplaced = []
    for name, (module_name, attribute) in discovery._EXPORTS.items():
        value = getattr(importlib.import_module(module_name), attribute)
        defined_in = getattr(value, "__module__", module_name)
        if defined_in != module_name:
            misplaced.append(f"{name}: exported from {module_name}, defined in {defined_in}")
    assert not misplaced, "\n".join(misplaced)


def test_each_export_has_one_role():
    seen: dict[str, str] = {}
    for role, exports in discovery._ROLES.items():
        for name in exports:
            assert name not in seen, f"{name} is in roles {seen[name]!r} and {role!r}"
            seen[name] = role
    assert set(seen) == set(discovery._EXPORTS)


def _code_cells(path: Path) -> list[tuple[int, str]]:
    """``(index among all cells, source)`` of each code cell."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(index, "".join(cell["source"])) for index, cell in enumerate(cells)
            if cell["cell_type"] == "code"]


def _parse(source: str, where: str) -> ast.Module:
    # IPython magics and shell escapes are not Python; they import nothing.
    lines = ["#" + line if line.lstrip().startswith(("%", "!")) else line
             for line in source.splitlines()]
    return ast.parse("\n".join(lines), filename=where)


def _private_uses(tree: ast.Module) -> list[str]:
    """Imports (and ``discovery.X`` attributes) reaching past ``discovery.__all__``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {alias.name}" for alias in node.names
                      if alias.name.startswith("discovery.")]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = ", ".join(alias.name for alias in node.names)
            if node.module.startswith("discovery."):
                found.append(f"from {node.module} import {names}")
            elif node.module == "discovery":
                found += [f"from discovery import {alias.name} (not in discovery.__all__)"
                          for alias in node.names if alias.name not in PUBLIC]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "discovery" and node.attr not in PUBLIC):
            found.append(f"discovery.{node.attr} (not in discovery.__all__)")
    return found


def test_the_check_catches_private_imports():
    source = ("import discovery\nimport discovery.stats\nfrom discovery.evaluate import x\n"
              "from discovery import envs, make_drift\ndiscovery.interpret\ndiscovery.meta_train")
    assert _private_uses(_parse(source, "example")) == [
        "import discovery.stats",
        "from discovery.evaluate import x",
        "from discovery import envs (not in discovery.__all__)",
        "discovery.interpret (not in discovery.__all__)",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_import_only_the_public_api(path: Path):
    problems = []
    for index, source in _code_cells(path):
        where = f"{path.name}, cell {index}"
        problems += [f"{where}: {use}" for use in _private_uses(_parse(source, where))]
    assert not problems, (
        "notebooks must import Discovery as `from discovery import NAME`, NAME in "
        "discovery.__all__ (export it there by role):\n" + "\n".join(problems)
    )
