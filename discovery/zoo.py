"""A zoo of discovered components: a versioned, pickle-free format to share and reuse them.

An entry is a folder ``<zoo_dir>/<name>/`` holding ``params.msgpack`` (flax msgpack of
the params' state dict, NumPy leaves) and ``manifest.json``: the format and its
version, the kind (a key of the component registry: ``"drift"``, ``"objective"``,
``"advantage"``), how to rebuild the component (its registry recipe: a drift's
``make_drift`` name and keyword arguments, an :class:`ObjectiveConfig` as a dict, an
advantage transformation's kind and width), the
SHA-256 and leaf shapes of the params, the behaviour hash, and where they came from (run,
seed, generations, meta-optimiser, full config, the run's ``summary.json``, export time,
git commit). Both files are written atomically, the manifest last, so a folder with a
manifest is complete.

The behaviour hash (``behaviour_sha256``, :func:`behaviour_sha256`) covers everything that
decides what the component computes, together: the kind, the component recipe and the
params bytes. Loading recomputes it, so an edited recipe (``component.clip_eps`` changed
in ``manifest.json``) is refused like edited params are; provenance and descriptions are
not covered, as they do not change behaviour.

    path = export_run("runs/lpo-cartpole-demo", "my-lpo")   # -> ~/.discovery/zoo/my-lpo
    entry = load("zoo:my-lpo")         # or a path to an entry folder, or to a run folder
    drift = entry.drift()              # drift(entry.params, ratio, advantage, progress)

``zoo:NAME`` is looked up in :func:`zoo_dirs`: the user's zoos (``$DISCOVERY_ZOO``, else
``~/.discovery/zoo``) first, then the entries shipped with the package.

One module (~760 lines): writing, reading, verifying and exporting entries all follow
the manifest's one versioned schema.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import yaml
from flax import serialization

from discovery import __version__
from discovery.components import COMPONENTS, VALIDATED_PARAMS_FILE, RecipeError
from discovery.config import (
    ConfigError,
    config_component,
    load_config,
    read_config_text,
    to_dict,
)
from discovery.files import dumps, loads_strict, to_json, write_bytes_atomic

if TYPE_CHECKING:
    from discovery.drift import Drift
    from discovery.objective import Objective

__all__ = [
    "SHIPPED_ZOO",
    "ZOO_FORMAT_VERSION",
    "EntryExistsError",
    "ZooEntry",
    "ZooError",
    "behaviour_sha256",
    "export_params",
    "export_run",
    "list_entries",
    "load",
    "zoo_dirs",
]

FORMAT = "discovery-zoo"
#: 2: ``behaviour_sha256`` (kind, component recipe and params hashed together) is
#: required. 1 had only ``params_sha256``, so an edited recipe loaded unnoticed.
ZOO_FORMAT_VERSION = 2
KINDS = tuple(COMPONENTS)  # the component kinds a run or an entry can hold
MANIFEST_FILE = "manifest.json"
PARAMS_FILE = "params.msgpack"
ZOO_PREFIX = "zoo:"
ZOO_ENV = "DISCOVERY_ZOO"
SHIPPED_ZOO = Path(__file__).resolve().parent / "zoo_entries"

#: The params file a run folder exports by default, per kind (the registry's), unless the
#: run selected params on validation envs (:func:`run_params_file`).
RUN_PARAMS_FILES = {kind: entry.params_file for kind, entry in COMPONENTS.items()}

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_NAME_RULE = "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
_MAX_PROBLEMS = 10


class ZooError(ValueError):
    """A zoo entry that is missing, malformed, corrupted, too new or unlike its component.

    The message names the file, the field, the value and what is allowed; ``path`` and
    ``field`` carry the first two for callers (the CLI) that want them separately.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, field: str | None = None):
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.field = field


class EntryExistsError(ZooError):
    """Export into an entry that exists, without ``overwrite``; ``name`` is the entry's."""

    def __init__(self, message: str, *, path: Path, name: str):
        super().__init__(message, path=path, field="name")
        self.name = name


@dataclass(frozen=True, eq=False)
class ZooEntry:
    """A loaded, verified zoo entry (or a run folder read as one).

    Attributes:
      name: the entry's folder name (what ``zoo:NAME`` looks up), or the run folder's name.
      kind: the component kind (a key of ``discovery.components.COMPONENTS``).
      manifest: the manifest as a dict (for a run folder, the one an export would write).
      params: the params pytree (nested dicts of NumPy arrays), bit-exact as exported.
      path: the entry (or run) folder.
    """

    name: str
    kind: str
    manifest: dict
    params: Any
    path: Path

    def drift(self) -> Drift:
        """The rebuilt drift; apply it as ``drift(entry.params, ratio, advantage, progress)``."""
        self._require("drift", "objective")
        return _build_component("drift", self.manifest["component"], self._source)

    def component(self) -> Any:
        """The rebuilt component of whatever kind the entry holds (the registry's
        ``rebuild``): a ``Drift`` for drifts and learned advantage transformations, an
        ``Objective`` for objectives."""
        return _build_component(self.kind, self.manifest["component"], self._source)

    def objective(self) -> Objective:
        """The rebuilt learned objective; apply it as ``objective(entry.params, inputs)``."""
        self._require("objective", "drift")
        return _build_component("objective", self.manifest["component"], self._source)

    @property
    def _source(self) -> Path:
        return self.path / MANIFEST_FILE if (self.path / MANIFEST_FILE).is_file() else self.path

    def _require(self, kind: str, other: str) -> None:
        if self.kind != kind:
            raise ZooError(
                f"zoo entry {self.name!r} ({self.path}) has kind {self.kind!r}, not {kind!r}; "
                f"use .{other}() to rebuild it",
                path=self.path,
                field="kind",
            )


# --------------------------------------------------------------------------- lookup


def zoo_dirs() -> list[Path]:
    """Where ``zoo:NAME`` is looked up, in order: ``$DISCOVERY_ZOO`` (``os.pathsep``-separated
    folders) or else ``~/.discovery/zoo``, then the entries shipped with the package."""
    configured = os.environ.get(ZOO_ENV, "")
    user = [Path(p).expanduser() for p in configured.split(os.pathsep) if p.strip()]
    if not user:
        user = [Path.home() / ".discovery" / "zoo"]
    return [*user, SHIPPED_ZOO]


def _entries_in(zoo_dir: Path) -> list[Path]:
    """Entry folders (those with a manifest) in one zoo folder, sorted by name (none when
    the folder is missing or cannot be listed)."""
    try:
        if not zoo_dir.is_dir():
            return []
        return sorted(p for p in zoo_dir.iterdir() if (p / MANIFEST_FILE).is_file())
    except OSError:
        return []


def list_entries() -> list[dict[str, Any]]:
    """Every entry in :func:`zoo_dirs`, in lookup order: ``name``, ``kind``, ``path``,
    ``description`` and ``shadowed`` (an earlier zoo has an entry of the same name).

    Reads only the manifests (no checksum), so a damaged entry (bad JSON, a newer
    ``format_version``, a missing field) is listed with ``kind`` None, ``unreadable``
    set to the reason and the reason as its description, rather than hiding the others.
    """
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for zoo_dir in zoo_dirs():
        for path in _entries_in(zoo_dir):
            unreadable = None
            try:
                manifest = _read_manifest(path / MANIFEST_FILE)
                kind, description = manifest["kind"], _describe(manifest)
            except ZooError as e:
                unreadable = str(e)
            except (KeyError, TypeError, AttributeError, ValueError) as e:  # odd provenance
                unreadable = f"{path / MANIFEST_FILE}: malformed manifest: {e!r}"
            if unreadable is not None:
                kind, description = None, f"unreadable: {unreadable}"
            rows.append({"name": path.name, "kind": kind, "path": path,
                         "description": description, "shadowed": path.name in seen,
                         "unreadable": unreadable})
            seen.add(path.name)
    return rows


def _describe(manifest: Mapping[str, Any]) -> str:
    """One line about an entry: what it is, which run it came from, how long it trained."""
    component = manifest.get("component", {})
    what = component.get("drift") or component.get("kind")  # a drift's name, an objective's kind
    provenance = manifest.get("provenance") or {}
    parts = [f"{what} {manifest['kind']}"]
    if provenance.get("run_name"):
        parts.append(f"from run {provenance['run_name']}")
    if provenance.get("generations") is not None:
        optimizer = provenance.get("meta_optimizer")
        parts.append(f"{provenance['generations']} generations"
                     + (f" of {optimizer}" if optimizer else ""))
    if provenance.get("exported_at"):
        parts.append(f"exported {provenance['exported_at']}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- loading


def load(ref: str | Path) -> ZooEntry:
    """Load and verify a component: ``"zoo:NAME"``, an entry folder, or a run folder.

    An entry's manifest must have ``format == "discovery-zoo"``, a ``format_version`` this
    framework reads and a known kind; ``params.msgpack`` must match its recorded SHA-256,
    and its leaves the recorded shapes and the rebuilt component's ``init`` structure. A
    run folder (``config.yaml`` plus its params file, :func:`run_params_file`: the
    best-validated params when it wrote them) loads as an unexported entry.
    """
    if isinstance(ref, str) and ref.startswith(ZOO_PREFIX):
        return _load_entry(_find(ref[len(ZOO_PREFIX):]))
    path = Path(ref).expanduser()
    if (path / MANIFEST_FILE).is_file():
        return _load_entry(path)
    if (path / "config.yaml").is_file():
        kind, component, state, data, provenance = _read_run(path)
        manifest = _manifest(path.name, kind, component, state, data, provenance)
        return ZooEntry(path.name, kind, manifest, state, path)
    if not path.exists():
        raise ZooError(f"{path}: no such zoo entry or run folder (for a zoo entry by name, "
                       f"write 'zoo:NAME')", path=path)
    raise ZooError(
        f"{path}: not a zoo entry (no {MANIFEST_FILE}) and not a run folder (no config.yaml)",
        path=path,
    )


def _find(name: str) -> Path:
    """The first entry folder called ``name`` in :func:`zoo_dirs`."""
    _check_name(name)  # Also keeps "zoo:../elsewhere" inside the zoos.
    dirs = zoo_dirs()
    for zoo_dir in dirs:
        if (zoo_dir / name / MANIFEST_FILE).is_file():
            return zoo_dir / name
    available = sorted({p.name for d in dirs for p in _entries_in(d)})
    raise ZooError(
        f"{ZOO_PREFIX}{name}: no zoo entry named {name!r}; available: "
        f"{', '.join(available) or '(none)'} (searched {', '.join(str(d) for d in dirs)})",
        field="name",
    )


def _load_entry(path: Path) -> ZooEntry:
    """Read and verify the entry folder ``path``."""
    manifest_path = path / MANIFEST_FILE
    manifest = _read_manifest(manifest_path)
    params_path = path / PARAMS_FILE
    try:
        data = params_path.read_bytes()
    except OSError as e:
        raise ZooError(f"{params_path}: cannot read the entry's params: {e}",
                       path=params_path) from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest["params_sha256"]:
        raise ZooError(
            f"{params_path}: sha256 {digest} does not match {manifest_path} field "
            f"'params_sha256' ({manifest['params_sha256']}); the file is corrupted or was "
            "changed after export",
            path=params_path,
            field="params_sha256",
        )
    behaviour = behaviour_sha256(manifest["kind"], manifest["component"], data)
    if behaviour != manifest["behaviour_sha256"]:
        raise ZooError(
            f"{manifest_path}: field 'behaviour_sha256' ({manifest['behaviour_sha256']}) does "
            f"not match the entry's kind, component and params (sha256 {behaviour}): the "
            "manifest's 'kind' or 'component' was changed after export, so this is not the "
            "component that was exported. Restore the manifest, or re-export the run with "
            "`discover export RUN_DIR --name NAME --overwrite`",
            path=manifest_path,
            field="behaviour_sha256",
        )
    state = _restore(data, params_path)
    recorded = manifest["params_shapes"]
    actual = _leaf_shapes(state)
    if actual != recorded:
        raise ZooError(
            f"{params_path}: leaf shapes {actual} differ from {manifest_path} field "
            f"'params_shapes' {recorded}",
            path=params_path,
            field="params_shapes",
        )
    component = _build_component(manifest["kind"], manifest["component"], manifest_path)
    _check_structure(component, state, params_path)
    return ZooEntry(path.name, manifest["kind"], manifest, state, path)


def _read_manifest(path: Path) -> dict[str, Any]:
    """Parse a manifest and check the fields every later step relies on."""
    try:
        manifest = loads_strict(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ZooError(f"{path}: cannot read the manifest: {e}", path=path) from e
    except ValueError as e:  # bare NaN / Infinity included: we never write them
        raise ZooError(f"{path}: not valid JSON: {e}", path=path) from e
    if not isinstance(manifest, dict):
        raise ZooError(f"{path}: expected a JSON object, got {type(manifest).__name__}",
                       path=path)
    if manifest.get("format") != FORMAT:
        raise ZooError(
            f"{path}: field 'format' is {manifest.get('format')!r}; expected {FORMAT!r} "
            "(this is not a discovery zoo manifest)",
            path=path,
            field="format",
        )
    version = manifest.get("format_version")
    if type(version) is int and 1 <= version < ZOO_FORMAT_VERSION:
        raise ZooError(
            f"{path}: field 'format_version' is {version}, an older zoo format without the "
            "behaviour hash that guards the component recipe; this framework (discovery "
            f"{__version__}) reads format_version {ZOO_FORMAT_VERSION}. Re-export the run "
            "with `discover export RUN_DIR --name NAME --overwrite`",
            path=path,
            field="format_version",
        )
    if type(version) is int and version > ZOO_FORMAT_VERSION:
        raise ZooError(
            f"{path}: field 'format_version' is {version}, written by a newer discovery; this "
            f"framework (discovery {__version__}) reads format_version {ZOO_FORMAT_VERSION}. "
            "Upgrade discovery to load this entry.",
            path=path,
            field="format_version",
        )
    if type(version) is not int or version != ZOO_FORMAT_VERSION:
        raise ZooError(
            f"{path}: field 'format_version' is {version!r}; expected {ZOO_FORMAT_VERSION}",
            path=path,
            field="format_version",
        )
    if manifest.get("kind") not in KINDS:
        raise ZooError(
            f"{path}: field 'kind' is {manifest.get('kind')!r}; allowed: "
            f"{', '.join(map(repr, KINDS))}",
            path=path,
            field="kind",
        )
    required = (("component", dict), ("params_sha256", str), ("behaviour_sha256", str),
                ("params_shapes", dict))
    for field, kind in required:
        if not isinstance(manifest.get(field), kind):
            raise ZooError(
                f"{path}: field {field!r} is {manifest.get(field)!r}; expected a JSON "
                f"{'object' if kind is dict else 'string'}",
                path=path,
                field=field,
            )
    return manifest


def _restore(data: bytes, path: Path) -> dict[str, Any]:
    """msgpack bytes -> the params' state dict with writable NumPy leaves."""
    try:
        state = serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises several types on garbled input.
        raise ZooError(f"{path}: not readable as flax msgpack params: {e}", path=path) from e
    if not isinstance(state, dict):
        raise ZooError(f"{path}: expected a params tree (a mapping), got {type(state).__name__}",
                       path=path)
    return jax.tree.map(np.array, state)


# --------------------------------------------------------------------------- components


def _build_component(kind: str, component: Mapping[str, Any], source: str | Path) -> Any:
    """Rebuild a component from its recipe (the registry's ``rebuild``)."""
    path = source if isinstance(source, Path) else None
    if not isinstance(component, Mapping):
        raise ZooError(f"{source}: field 'component' is {component!r}; expected a mapping",
                       path=path, field="component")
    try:
        return COMPONENTS[kind].rebuild(component)
    except RecipeError as e:
        raise ZooError(f"{source}: {e}", path=path, field=e.field) from e


def behaviour_sha256(kind: str, component: Mapping[str, Any], params: bytes) -> str:
    """SHA-256 of what decides a component's behaviour, together: its kind, its recipe
    (canonical JSON: sorted keys, no spaces, strict) and its params file's bytes."""
    recipe = json.dumps(
        {"format": FORMAT, "kind": kind, "component": to_json(component)},
        sort_keys=True, separators=(",", ":"), allow_nan=False,
    )
    digest = hashlib.sha256(recipe.encode("utf-8"))
    digest.update(b"\n")
    digest.update(params)
    return digest.hexdigest()


def _check_structure(component: Any, state: Mapping[str, Any], path: Path) -> None:
    """Params must have exactly the leaves, shapes and dtypes of ``component.init``."""
    target = serialization.to_state_dict(jax.eval_shape(component.init, jax.random.key(0)))
    problems: list[str] = []
    _compare(target, state, "", problems)
    if problems:
        shown = problems[:_MAX_PROBLEMS] + (
            [f"... and {len(problems) - _MAX_PROBLEMS} more"]
            if len(problems) > _MAX_PROBLEMS else []
        )
        raise ZooError(
            f"{path}: params do not fit the component's structure (expected its init "
            "structure):\n  " + "\n  ".join(shown),
            path=path, field="params_shapes",
        )


def _compare(ref: Any, got: Any, path: str, problems: list[str]) -> None:
    where = path or "<root>"
    if isinstance(ref, Mapping):
        if not isinstance(got, Mapping):
            problems.append(f"{where}: expected a subtree, got {_show(got)}")
            return
        join = lambda k: f"{path}/{k}" if path else str(k)
        for k in sorted(ref.keys() - got.keys(), key=str):
            problems.append(f"{join(k)}: expected by the component, missing from the params")
        for k in sorted(got.keys() - ref.keys(), key=str):
            problems.append(f"{join(k)}: in the params, not in the component")
        for k in sorted(ref.keys() & got.keys(), key=str):
            _compare(ref[k], got[k], join(k), problems)
    elif not (hasattr(got, "shape") and hasattr(got, "dtype")) or (
        tuple(got.shape) != tuple(ref.shape) or got.dtype != ref.dtype
    ):
        problems.append(f"{where}: expected {_show(ref)}, got {_show(got)}")


def _show(x: Any) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"{np.dtype(x.dtype).name}{list(x.shape)}"
    return type(x).__name__


def _check_finite(state: Mapping[str, Any], path: Path) -> None:
    """Refuse params with NaN or infinite values (a diverged run's): they compute nothing."""
    bad = [
        f"{'/'.join(str(getattr(k, 'key', k)) for k in where)}"
        for where, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
        if np.issubdtype(np.asarray(leaf).dtype, np.floating)
        and not np.all(np.isfinite(np.asarray(leaf)))
    ]
    if bad:
        raise ZooError(
            f"{path}: params have NaN or infinite values in {', '.join(bad[:_MAX_PROBLEMS])}; "
            "allowed: finite params (the run diverged: check its config, e.g. es.sigma_init)",
            path=path, field="params",
        )


def _leaf_shapes(state: Mapping[str, Any], prefix: str = "") -> dict[str, list[int]]:
    """``{"a/b": shape}`` for every leaf of a state dict (the manifest's readable check)."""
    shapes: dict[str, list[int]] = {}
    for key, value in state.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            shapes.update(_leaf_shapes(value, path))
        else:
            shapes[path] = list(np.shape(value))
    return shapes


# --------------------------------------------------------------------------- run folders


#: The fields of ``discover train``'s config (:class:`discovery.train.TrainConfig`), which
#: a train run's ``config.yaml`` holds; used to recognise such a folder without importing it.
_TRAIN_FIELDS = frozenset({"name", "env", "drift", "seeds", "seed", "ppo"})


def run_component_kind(config_path: Path) -> str:
    """``drift`` or ``objective``: the config's top-level ``component`` (default drift),
    by the rule ``discover meta-train`` applies (:func:`discovery.config.config_component`).

    A ``discover train`` run's folder is refused with a message saying what it is."""
    try:
        data = yaml.safe_load(read_config_text(config_path))
    except ConfigError as e:
        raise ZooError(str(e), path=config_path) from None
    except yaml.YAMLError as e:
        raise ZooError(f"{config_path}: cannot read the run's config: {e}",
                       path=config_path) from e
    if isinstance(data, Mapping) and data.keys() <= _TRAIN_FIELDS and (
        "env" in data or "ppo" in data
    ):
        run_dir = config_path.parent
        what = f"PPO with the fixed drift {data.get('drift', 'ppo')!r}"
        if data.get("env"):
            what += f" on {data['env']}"
        raise ZooError(
            f"{run_dir} is a `discover train` run ({what}): it holds no discovered component "
            "to evaluate, export or interpret. Give a meta-training run folder (made by "
            "`discover meta-train`), a zoo entry folder or zoo:NAME (see `discover zoo`); "
            "this run's results are in its summary.json and metrics.jsonl",
            path=run_dir, field="run_dir",
        )
    try:
        return config_component(config_path)
    except ConfigError as e:
        raise ZooError(f"{config_path}: {e}", path=config_path, field="component") from None


def run_params_file(run_dir: Path, kind: str) -> str:
    """The params file a run folder exports and loads by default: the best-validated
    params (``validated_params.msgpack``) when the run selected on validation envs and
    wrote them, else the kind's own (``RUN_PARAMS_FILES``: a drift's ES mean)."""
    if (Path(run_dir) / VALIDATED_PARAMS_FILE).is_file():
        return VALIDATED_PARAMS_FILE
    return RUN_PARAMS_FILES[kind]


def _read_run(
    run_dir: Path, params_file: str | None = None
) -> tuple[str, dict[str, Any], dict[str, Any], bytes, dict[str, Any]]:
    """A finished run folder -> ``(kind, component, params state dict, params bytes,
    provenance)``."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ZooError(f"{config_path}: not found; expected a finished meta-training run "
                       "folder (config.yaml and its params)", path=config_path)
    kind = run_component_kind(config_path)
    try:
        config = load_config(COMPONENTS[kind].config_class, config_path)
    except ConfigError as e:
        raise ZooError(f"{config_path}: {e}", path=config_path, field=e.field) from e

    params_file = params_file or run_params_file(run_dir, kind)
    params_path = run_dir / params_file
    if not params_path.is_file():
        present = sorted(p.name for p in run_dir.glob("*.msgpack"))
        raise ZooError(
            f"{params_path}: not found; this {kind} run has params files "
            f"{', '.join(present) or '(none)'}. Is the run finished?",
            path=params_path, field="params_file",
        )
    component, optimizer = COMPONENTS[kind].recipe_of(config)
    data = params_path.read_bytes()
    state = _restore(data, params_path)
    _check_structure(_build_component(kind, component, config_path), state, params_path)

    summary = None
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        try:
            summary = loads_strict(summary_path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ZooError(f"{summary_path}: not valid JSON: {e}",
                           path=summary_path) from e
    generations = summary.get("generations") if isinstance(summary, dict) else None
    provenance = {
        "run_name": config.name,
        "seed": config.seed,
        "generations": generations if generations is not None else config.generations,
        "meta_optimizer": optimizer,
        "params_file": params_file,
        "config": to_dict(config),
        "summary": summary,
        "source_run": str(run_dir.resolve()),
    }
    return kind, component, state, data, provenance


# --------------------------------------------------------------------------- writing


def export_run(
    run_dir: str | Path,
    name: str,
    zoo_dir: str | Path | None = None,
    params_file: str | None = None,
    overwrite: bool = False,
    shadow: bool = False,
) -> Path:
    """Export a finished meta-training run folder as the zoo entry ``name``; return its folder.

    ``config.yaml`` says whether the run discovered a drift or an objective. By default
    (:func:`run_params_file`) a run that selected on validation envs exports its
    best-validated params (``validated_params.msgpack``); otherwise a drift run exports
    the ES mean (``mean_params.msgpack``) and an objective run
    ``objective_params.msgpack``. ``params_file`` picks another file of the run (e.g.
    ``"mean_params.msgpack"``, or ``"best_params.msgpack"`` for ES's best member; the
    choice is recorded as the provenance's ``params_file``). ``zoo_dir`` defaults to the
    first of :func:`zoo_dirs` (the user's zoo).

    A user's zoo is looked up before the shipped entries, so an entry named like a
    shipped one hides it from ``zoo:NAME``; that is refused unless ``shadow``.
    """
    _check_name(name)
    _check_shadow(name, zoo_dir, shadow)
    kind, component, state, _, provenance = _read_run(Path(run_dir), params_file)
    return export_params(kind, component, state, name, zoo_dir, provenance, overwrite)


def export_params(
    kind: str,
    component: dict[str, Any],
    params: Any,
    name: str,
    zoo_dir: str | Path | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``params`` of the component ``component`` (a drift recipe ``{"drift": name,
    **make_drift kwargs}`` or an ``ObjectiveConfig`` dict) as the entry ``<zoo_dir>/<name>``.

    The params must fit the rebuilt component's ``init`` structure, and ``provenance``
    must be JSON-serialisable (``exported_at`` and ``git_commit`` are added). Files are
    written atomically, params first and the manifest last; an existing entry is replaced
    only with ``overwrite``.
    """
    if kind not in KINDS:
        raise ZooError(f"export: kind is {kind!r}; allowed: {', '.join(map(repr, KINDS))}",
                       field="kind")
    _check_name(name)
    entry = Path(zoo_dir if zoo_dir is not None else zoo_dirs()[0]).expanduser() / name
    manifest_path = entry / MANIFEST_FILE
    if manifest_path.exists() and not overwrite:
        raise EntryExistsError(f"{entry}: a zoo entry named {name!r} exists already; pass "
                               "overwrite=True to replace it", path=entry, name=name)

    if dataclasses.is_dataclass(component) and not isinstance(component, type):
        component = to_dict(component)  # An ObjectiveConfig given as itself.
    built = _build_component(kind, component, f"export of {name!r}")
    state = jax.tree.map(np.asarray, serialization.to_state_dict(params))
    _check_structure(built, state, entry / PARAMS_FILE)
    _check_finite(state, entry / PARAMS_FILE)
    data = serialization.msgpack_serialize(state)
    provenance = {
        **(provenance or {}),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    provenance.setdefault("git_commit", _git_commit())
    manifest = _manifest(name, kind, component, state, data, provenance)
    try:  # Strict JSON: a non-finite number in the provenance is written as null.
        text = dumps(json.loads(json.dumps(manifest, default=_json_default)), indent=2) + "\n"
    except (TypeError, ValueError) as e:
        raise ZooError(f"{manifest_path}: the manifest must be JSON-serialisable: {e}",
                       path=manifest_path, field="provenance") from e

    entry.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        manifest_path.unlink()  # Until the new manifest lands, this is no entry at all.
    write_bytes_atomic(entry / PARAMS_FILE, data)
    write_bytes_atomic(manifest_path, text.encode("utf-8"))
    return entry


def _manifest(
    name: str, kind: str, component: dict[str, Any], state: Mapping[str, Any], data: bytes,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": ZOO_FORMAT_VERSION,
        "name": name,
        "kind": kind,
        "component": component,
        "framework_version": __version__,
        "params_sha256": hashlib.sha256(data).hexdigest(),
        "behaviour_sha256": behaviour_sha256(kind, component, data),
        "params_shapes": _leaf_shapes(state),
        "provenance": provenance,
    }


def shipped_entry(name: str) -> Path | None:
    """The entry folder the package ships under ``name``, if any."""
    path = SHIPPED_ZOO / name
    return path if (path / MANIFEST_FILE).is_file() else None


def _check_shadow(name: str, zoo_dir: str | Path | None, shadow: bool) -> None:
    """Refuse (unless ``shadow``) an export that would hide the shipped entry ``name``."""
    shipped = shipped_entry(name)
    if shadow or shipped is None:
        return
    target = Path(zoo_dir if zoo_dir is not None else zoo_dirs()[0]).expanduser()
    if target.resolve() == SHIPPED_ZOO:
        return
    raise ZooError(
        f"name: {name!r} is an entry the package ships ({shipped}); an entry of that name in "
        f"{target} would hide it from zoo:{name}; allowed: another name, or shadowing it on "
        "purpose (discover export --shadow; export_run(..., shadow=True))",
        path=target / name, field="name",
    )


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ZooError(f"entry name {name!r} is not allowed; a name uses {_NAME_RULE}",
                       field="name")




def _git_commit() -> str | None:
    """HEAD of the git checkout this package runs from; None when installed or no git."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=root, capture_output=True,
            text=True, timeout=10, check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    # Only our own checkout counts, not a repository that happens to contain site-packages.
    if len(out) != 2 or Path(out[0]).resolve() != root:
        return None
    return out[1]


def _json_default(x: Any) -> Any:
    """Let provenance hold NumPy / JAX numbers and arrays."""
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        return np.asarray(x).tolist()
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    raise TypeError(f"Object of type {type(x).__name__} is not JSON serializable")
