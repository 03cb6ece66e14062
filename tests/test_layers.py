"""Import direction: a lower layer never imports a higher one.

Layers, lowest first: the foundation (strict JSON and atomic files, typed configs,
statistics, checkpoints), ``discovery.envs``, ``discovery.agents``, ``discovery.meta``,
then the rest of ``discovery`` (components, tasks, runs, evaluation, CLI). Every import
of every module is read from its source (``ast``), including imports inside functions.

The component registry (``discovery.components``) names its modules as strings and
imports nothing, so it sits in the foundation, where the config loader reads it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"discovery.envs": "envs", "discovery.agents": "agents", "discovery.meta": "meta",
           "discovery": "discovery"}
FOUNDATION = ("discovery.files", "discovery.config", "discovery.stats", "discovery.checkpoint",
              "discovery.components", "discovery.process_setup", "discovery.devices")
ALLOWED = {
    "foundation": FOUNDATION,
    "discovery.envs": (*FOUNDATION, "discovery.envs"),
    "discovery.agents": (*FOUNDATION, "discovery.envs", "discovery.agents"),
    "discovery.meta": (*FOUNDATION, "discovery.envs", "discovery.agents", "discovery.meta"),
}
# Upward imports still to remove (none: the outer loop takes tasks through functions).
KNOWN_UPWARD: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


_MODULES = _modules()


def _layer(module: str) -> str:
    if module.startswith(FOUNDATION):
        return "foundation"
    for layer in ("discovery.envs", "discovery.agents", "discovery.meta"):
        if module == layer or module.startswith(layer + "."):
            return layer
    return "discovery"


def _imports(path: Path) -> set[str]:
    """The ``discovery`` modules (or packages) ``path`` imports, as dotted names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from discovery import envs` imports the subpackage discovery.envs.
            names.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in _MODULES)
    return {name for name in names if name == "discovery" or name.startswith("discovery.")}



def _is_allowed(module: str, imported: str) -> bool:
    layer = _layer(module)
    if layer == "discovery" or imported == "discovery":
        return True  # the top layer may import anything; `discovery` alone is lazy
    return any(imported == allowed or imported.startswith(allowed + ".")
               for allowed in ALLOWED[layer])


def test_every_folder_is_read():
    for package in ("discovery.envs", "discovery.agents", "discovery.meta"):
        assert package in _MODULES
    assert len(_MODULES) > 40


@pytest.mark.parametrize("module", sorted(_MODULES))
def test_no_module_imports_a_higher_layer(module):
    upward = {imported for imported in _imports(_MODULES[module])
              if not _is_allowed(module, imported)}
    known = {imported for importer, imported in KNOWN_UPWARD if importer == module}
    assert upward == known, (
        f"{module} ({_layer(module)} layer) imports {sorted(upward - known)} from a higher "
        f"layer" if upward - known else
        f"{module} no longer imports {sorted(known - upward)}: strike it from KNOWN_UPWARD")
