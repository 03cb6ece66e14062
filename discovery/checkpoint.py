"""Atomic save and exact resume of the outer loop's state (any pytree), without pickle.

A checkpoint is one msgpack file ``ckpt_{step:08d}.msgpack`` holding a JSON header (format
version, step, framework version, user metadata, which leaves are typed PRNG keys, SHA-256
of the payload) and the payload: ``flax.serialization.msgpack_serialize`` of the tree's
state dict, with typed keys stored as their raw key data. Files are written to a temporary
name, fsynced and renamed, so a crash never leaves a truncated file under a final name.

    save_checkpoint("runs/lpo/ckpt", generation, state, metadata={"config": to_dict(cfg)})
    state, info = load_checkpoint(latest_checkpoint("runs/lpo/ckpt"), target=init_state)
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import re
from pathlib import Path
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from discovery.files import write_bytes_atomic

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "list_checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

T = TypeVar("T")

FORMAT = "discovery-checkpoint"
FORMAT_VERSION = 1
FRAMEWORK_VERSION = "0.1.0"

_NAME = re.compile(r"^ckpt_(\d{8,})\.msgpack$")
_TMP_PREFIX = ".ckpt_"
_TMP_SUFFIX = ".tmp"
_MAX_PROBLEMS = 10


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, from another format, or unlike the target."""


def save_checkpoint(
    directory: str | Path,
    step: int,
    tree: Any,
    metadata: dict[str, Any] | None = None,
    keep: int | None = 3,
) -> Path:
    """Atomically write ``tree`` as ``directory/ckpt_{step:08d}.msgpack``; return its path.

    ``metadata`` must be JSON-serialisable. Afterwards only the ``keep`` checkpoints with
    the highest steps are kept (``None`` keeps all; the one just written is never removed),
    and temporary files left by an earlier crash are deleted. Assumes one writer per
    directory.
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be >= 1 or None, got {keep!r}")
    step = int(step)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _remove_temp_files(directory)

    state, keys = _encode_keys(serialization.to_state_dict(tree))
    payload = serialization.msgpack_serialize(state)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "framework_version": FRAMEWORK_VERSION,
        "step": step,
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "keys": keys,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "metadata": metadata if metadata is not None else {},
    }
    try:
        header_json = json.dumps(header, default=_json_default)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint metadata must be JSON-serialisable: {e}") from e
    data = serialization.msgpack_serialize({"header": header_json, "payload": payload})

    final = directory / f"ckpt_{step:08d}.msgpack"
    write_bytes_atomic(final, data, tmp_prefix=f"{_TMP_PREFIX}{step:08d}.", tmp_suffix=_TMP_SUFFIX)

    if keep is not None:
        for old in list_checkpoints(directory)[:-keep]:
            if old != final:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
    return final


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoints in ``directory`` sorted by step, oldest first (temp files ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in directory.iterdir()
        if (m := _NAME.match(p.name)) and p.is_file()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``directory``; None if there is none."""
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1] if checkpoints else None


def load_checkpoint(path: str | Path, target: T) -> tuple[T, dict[str, Any]]:
    """Restore a checkpoint into the structure of ``target``; return ``(tree, info)``.

    ``path`` is a checkpoint file or a directory (its latest checkpoint is used). ``target``
    gives the pytree structure, dtypes and shapes (arrays, typed keys or
    ``jax.ShapeDtypeStruct`` leaves); leaves come back bit-exact, as ``jax.Array`` where the
    target has a JAX array or shape struct, NumPy where it has NumPy. ``info`` holds
    ``step``, ``metadata`` (the user's), ``format_version``, ``framework_version``,
    ``saved_at`` and ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"no checkpoints (ckpt_<step>.msgpack) in directory {path}")
        path = latest

    header, state = _read(path)
    state = _decode_keys(state, header.get("keys", []), path)
    problems: list[str] = []
    matched = _match(serialization.to_state_dict(target), state, "", problems)
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        if len(problems) > _MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - _MAX_PROBLEMS} more")
        raise CheckpointError(
            f"checkpoint {path} does not match the target structure:\n  " + "\n  ".join(shown)
        )
    try:
        tree = serialization.from_state_dict(target, matched)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} does not match the target structure: {e}") from e
    info = {
        "step": header["step"],
        "metadata": header.get("metadata", {}),
        "format_version": header["format_version"],
        "framework_version": header.get("framework_version"),
        "saved_at": header.get("saved_at"),
        "path": path,
    }
    return tree, info


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The user metadata of a checkpoint file, after verifying the whole file (format,
    header and payload checksum); raises :class:`CheckpointError` otherwise."""
    header, _ = _read(Path(path))
    return header.get("metadata", {})


# --------------------------------------------------------------------------- internals


def _read(path: Path) -> tuple[dict[str, Any], Any]:
    """Parse and verify a checkpoint file: (header, state dict with raw key data)."""
    try:
        outer = serialization.msgpack_restore(path.read_bytes())
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    except Exception as e:  # msgpack raises several types on truncated or garbled input.
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated: {e}") from e
    if not (
        isinstance(outer, dict)
        and isinstance(outer.get("header"), str)
        and isinstance(outer.get("payload"), bytes)
    ):
        raise CheckpointError(f"{path} is not a discovery checkpoint (unexpected layout)")
    try:
        header = json.loads(outer["header"])
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path} has a corrupted header: {e}") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a discovery checkpoint (format field)")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this version of discovery "
            f"({FRAMEWORK_VERSION}) reads format version {FORMAT_VERSION}"
        )
    payload = outer["payload"]
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupted: payload checksum mismatch")
    try:
        state = serialization.msgpack_restore(payload)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} has a corrupted payload: {e}") from e
    return header, state


def _is_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _encode_keys(state: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Replace typed PRNG key leaves by their uint32 key data; record paths and impls."""
    keys: list[dict[str, Any]] = []

    def walk(node: Any, path: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, (*path, str(k))) for k, v in node.items()}
        if _is_key(node):
            keys.append({"path": list(path), "impl": str(jax.random.key_impl(node))})
            return np.asarray(jax.random.key_data(node))
        return node

    return walk(state, ()), keys


def _decode_keys(state: Any, keys: list[dict[str, Any]], path: Path) -> Any:
    """Wrap the recorded key-data leaves back into typed PRNG keys."""
    for entry in keys:
        *parents, last = entry["path"] or [None]
        node = state
        try:
            for name in parents:
                node = node[name]
            if last is None:
                return jax.random.wrap_key_data(jnp.asarray(state), impl=entry["impl"])
            node[last] = jax.random.wrap_key_data(jnp.asarray(node[last]), impl=entry["impl"])
        except (KeyError, TypeError, ValueError) as e:
            where = "/".join(entry["path"])
            raise CheckpointError(
                f"checkpoint {path} is corrupted: cannot restore PRNG key at '{where}': {e}"
            ) from e
    return state


def _match(ref: Any, got: Any, path: str, problems: list[str]) -> Any:
    """Check the checkpoint's state dict ``got`` against the target's ``ref``, leaf by leaf."""
    where = path or "<root>"
    if isinstance(ref, dict):
        if not isinstance(got, dict):
            problems.append(f"{where}: target has a subtree, checkpoint has {_show(got)}")
            return got
        for k in sorted(ref.keys() - got.keys(), key=str):
            problems.append(f"{path}/{k}: in target but missing from checkpoint")
        for k in sorted(got.keys() - ref.keys(), key=str):
            problems.append(f"{path}/{k}: in checkpoint but not in target")
        return {k: _match(ref[k], got[k], f"{path}/{k}", problems) for k in ref if k in got}
    if isinstance(got, dict):
        problems.append(f"{where}: target has {_show(ref)}, checkpoint has a subtree")
        return got
    if hasattr(ref, "shape") and hasattr(ref, "dtype"):  # Arrays, keys, shape structs.
        if not (hasattr(got, "shape") and hasattr(got, "dtype")):
            problems.append(f"{where}: target has {_show(ref)}, checkpoint has {_show(got)}")
        elif tuple(got.shape) != tuple(ref.shape) or got.dtype != ref.dtype:
            problems.append(f"{where}: target has {_show(ref)}, checkpoint has {_show(got)}")
        elif isinstance(ref, (jax.Array, jax.ShapeDtypeStruct)):
            value = _weak(got, ref.dtype) if getattr(ref, "weak_type", False) else got
            # Same placement as the target, committed only where the target is: a
            # committed copy of an uncommitted array lowers to a program with explicit
            # shardings, a different compilation-cache key (a recompile on every resume).
            if not getattr(ref, "committed", False):
                return jnp.asarray(value)
            return jax.device_put(value, ref.sharding)
        elif isinstance(ref, np.ndarray):
            return np.array(got)  # Writable copy (msgpack buffers are read-only).
        return got
    if ref is None or isinstance(ref, (bool, int, float, complex, str, bytes)):
        if type(got) is not type(ref):
            problems.append(f"{where}: target has {_show(ref)}, checkpoint has {_show(got)}")
    return got


def _weak(x: Any, dtype: Any) -> Any:
    """``x`` as a weakly typed array, as the target had it (bit-exact), where JAX allows.

    Weak types change dtype promotion (weak int32 + int8 -> int8), so a counter that was
    ``jnp.asarray(0)`` must come back weak for the resumed run to compute the same thing.
    JAX has no public way to make an n-d array weak, hence the guarded private call; a 0-d
    array can also go through a Python scalar.
    """
    if _is_key(x):
        return x
    try:
        from jax._src.lax.lax import _convert_element_type
    except ImportError:
        _convert_element_type = None
    if _convert_element_type is not None:
        return _convert_element_type(np.asarray(x), dtype, weak_type=True)
    if x.shape == ():
        weak = jnp.asarray(np.asarray(x).item())
        if weak.dtype == dtype and np.asarray(weak).tobytes() == np.asarray(x).tobytes():
            return weak
    return x


def _show(x: Any) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"{x.dtype}{list(x.shape)}"
    return f"{type(x).__name__} {x!r}" if x is None or np.isscalar(x) else type(x).__name__


def _json_default(x: Any) -> Any:
    """Let metadata hold NumPy / JAX numbers and arrays (e.g. a fitness); nothing else."""
    if isinstance(x, (np.ndarray, np.generic, jax.Array)) and not _is_key(x):
        return np.asarray(x).tolist()
    raise TypeError(f"Object of type {type(x).__name__} is not JSON serializable")


def _remove_temp_files(directory: Path) -> None:
    for p in directory.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            p.unlink()
