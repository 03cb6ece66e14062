"""Files every run writes: strict JSON, atomic writes and folder locks, in one place.

Strict JSON (RFC 8259) has no NaN or infinity, so every non-finite float is written as
``null``; a parser that follows the standard then reads every file we write. Writes go
to a temp file in the same folder, are fsynced and renamed over the target, so a kill
never leaves a half-written file behind.

A folder a command writes (a run folder, a claim's results folder, a sweep folder) is
held by one process at a time: :func:`lock_folder` takes an exclusive OS lock
(``fcntl.flock``) on a lock file inside it before the command checks what the folder
holds, so two commands started at the same moment cannot both pass the check and mix
their files. The OS drops the lock when the process ends, however it ends (``kill -9``
included); the lock file's existence means nothing by itself.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: folders are then not locked
    fcntl = None  # type: ignore[assignment]

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


# ------------------------------------------------------------------------ output folders


def folder_problem(folder: str | Path) -> str | None:
    """Why ``folder`` cannot receive output, or ``None`` when it can: it must be a folder
    or be creatable, i.e. its nearest existing ancestor is a folder this process may
    write into. Nothing is created; a command calls this before any compute, so a bad
    output location costs nothing."""
    folder = Path(folder).expanduser()
    if os.path.lexists(folder) and not folder.is_dir():
        return f"{folder} is a file, not a folder" if folder.is_file() else (
            f"{folder} is not a folder")
    existing = next(p for p in (folder, *folder.absolute().parents) if os.path.lexists(p))
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable (permission denied)"
    return None


# ------------------------------------------------------------------------ folder locks

#: The lock file :func:`lock_folder` keeps inside a folder while it holds it (removed on
#: release; one left by a killed process is simply locked again).
LOCK_FILE = ".discover.lock"


class FolderInUseError(RuntimeError):
    """Another process holds the folder's lock; ``path`` is the folder, ``holder`` the
    holder's process id when it could be read."""

    def __init__(self, message: str, *, path: Path, holder: int | None):
        super().__init__(message)
        self.path = path
        self.holder = holder


class FolderLock:
    """An exclusive lock on a folder, held by this process until :meth:`release` (or its
    end). Use it as a context manager; :func:`lock_folder` makes one."""

    def __init__(self, folder: Path, fd: int | None, created: list[Path]):
        self.folder = folder
        self._fd = fd
        self._created = created

    @property
    def held(self) -> bool:
        """Whether this process still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock: the lock file is removed first (a process that opened it meanwhile
        sees it is no longer the folder's lock file and opens the new one), then closed,
        which unlocks it; folders :func:`lock_folder` created and nothing filled are
        removed again."""
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.folder / LOCK_FILE)
            os.close(self._fd)
            self._fd = None
        for folder in self._created:  # deepest first
            try:
                os.rmdir(folder)
            except OSError:
                break
        self._created = []

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_folder(folder: str | Path, what: str = "folder", instead: str = "another folder"
                ) -> FolderLock:
    """Take the exclusive lock on ``folder`` (created if missing), without waiting.

    Raises :class:`FolderInUseError` when another process holds it, in one line naming
    the folder, ``what`` it is ("run folder", "results folder") and, as what is
    allowed, waiting or ``instead``. Take it before checking what the folder holds and
    hold it until the command's last write: the check and the writes are then one
    process's. Where the filesystem has no locks (some network mounts, Windows) this
    warns and returns an unlocked :class:`FolderLock`.
    """
    folder = Path(folder).expanduser()
    created = _make_folders(folder)
    path = folder / LOCK_FILE
    if fcntl is None:
        return FolderLock(folder, None, created)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _holder(fd)
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                warnings.warn(f"{folder}: cannot lock this {what} ({error.strerror}); two "
                              "commands writing it at once would mix their files",
                              RuntimeWarning, stacklevel=2)
                return FolderLock(folder, None, created)
            FolderLock(folder, None, created).release()
            pid = f" (pid {holder})" if holder else ""
            raise FolderInUseError(
                f"{folder}: another process{pid} holds this {what}; allowed: wait until it "
                f"ends, or {instead}", path=folder, holder=holder) from None
        # The holder before us may have removed the file between our open and our lock:
        # then we hold a lock on a file nobody else will open; open the folder's own.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return FolderLock(folder, fd, created)


def _holder(fd: int) -> int | None:
    """The process id a lock file records (``None`` if it is not written yet)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those this call created,
    deepest first (a folder another process created at the same moment is not ours)."""
    missing = []
    for path in (folder, *folder.absolute().parents):
        if os.path.lexists(path):
            break
        missing.append(path)
    created = []
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        created.append(path)
    return created[::-1]
