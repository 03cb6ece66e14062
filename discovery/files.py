"""Files every run writes: strict JSON and atomic writes, in one place.

Strict JSON (RFC 8259) has no NaN or infinity, so every non-finite float is written as
``null``; a parser that follows the standard then reads every file we write. Writes go
to a temp file in the same folder, are fsynced and renamed over the target, so a kill
never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def to_json(value: Any) -> Any:
    """``value`` as plain JSON types: arrays to lists, non-finite floats to ``None``.

    Mapping keys become strings; anything JSON cannot hold (a path, a dtype) becomes
    its ``str``.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):  # e.g. typed PRNG keys.
            return str(value)
        if array.dtype.kind in "biuf":
            return to_json(array.tolist())
    return str(value)


def dumps(value: Any, indent: int | None = None) -> str:
    """Strict JSON text of ``value`` (non-finite floats as ``null``)."""
    return json.dumps(to_json(value), indent=indent, allow_nan=False)


def loads_strict(text: str) -> Any:
    """Parse ``text`` as strict JSON: ``NaN`` / ``Infinity`` raise ``ValueError`` (the
    reader's side of :func:`dumps`, and how a standard parser sees our files)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"non-strict JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def write_bytes_atomic(
    path: str | Path, data: bytes, *, tmp_prefix: str | None = None, tmp_suffix: str = ".tmp"
) -> Path:
    """Write ``data`` to ``path`` atomically: a uniquely named temp file in the same folder
    (``tmp_prefix``/``tmp_suffix`` name it, so a caller can recognise its leftovers),
    fsynced, renamed over ``path``, and the folder fsynced so the rename survives a crash.
    The temp file is removed if anything fails; ``path`` is never half-written."""
    path = Path(path)
    prefix = tmp_prefix if tmp_prefix is not None else f".{path.name}."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=tmp_suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; ours are ordinary shared files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)
    return path


def fsync_directory(directory: str | Path) -> None:
    """Make a rename in ``directory`` durable; not supported on every platform, hence best
    effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: str | Path, value: Any) -> Path:
    """Write ``value`` as indented strict JSON, atomically."""
    return write_text_atomic(path, dumps(value, indent=2) + "\n")
