"""Atomic file writes: a reader (or a killed writer) sees the old file or the new one, never a partial one.

Every writer in the project goes through `atomic_open` (temporary file beside the target, then `os.replace`); the
result gets the permissions of any newly created file (0666 minus the umask), not the 0600 of the temporary file.
Also here: reading JSON that names the file when it is broken (`read_json`, `CorruptFileError`), moving a broken
cache file aside (`quarantine`) and a lock that keeps two processes out of one output folder (`exclusive_lock`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

QUARANTINE_DIR = "quarantine"
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read by setting it and restoring it at once, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _chmod_like_new_file(path: str | os.PathLike) -> None:
    os.chmod(path, 0o666 & ~current_umask())


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, fsync: bool = False) -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path`; it replaces `path` when the block ends without an error and is
    removed otherwise. Parent folders are created. `fsync` flushes to disk before the rename. The file ends up
    with the mode of a newly created file (0666 & ~umask), like `open(path, "w")` would give."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        _chmod_like_new_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside `path` for writers that need a file name (ase.io.write): it replaces `path` when
    the block ends without an error (mode 0666 & ~umask) and is removed otherwise. `suffix` keeps the extension
    a writer may read the format from."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _chmod_like_new_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, fsync: bool = False, **dump_kwargs: Any) -> Path:
    """`json.dump(obj, **dump_kwargs)` to `path` atomically; returns the path."""
    with atomic_open(path, "w", fsync=fsync) as handle:
        json.dump(obj, handle, **dump_kwargs)
    return Path(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` to `path` atomically (loadable with `torch.load(weights_only=True)` for plain data)."""
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)
    return Path(path)


class CorruptFileError(ValueError):
    """A file that cannot be used (truncated, not JSON, wrong content); `path` names it, `reason` says why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def refused_pickle_detail(err: BaseException) -> str | None:
    """The line of a weights-only `torch.load` error that names a Python object it refused to rebuild (a pickled
    GLOBAL or class: only code could rebuild it), or None when `err` is some other failure (a file that is not
    torch's, cut short, ...; torch wraps every unpickling error in the same weights_only advice)."""
    msg = str(err)
    if not ("GLOBAL" in msg or "unsupported global" in msg.lower() or "unsupported class" in msg.lower()):
        return None
    return next((ln.strip().rstrip(".") for ln in msg.splitlines() if "GLOBAL" in ln or "nsupported" in ln), "")


def first_reason(err: BaseException) -> str:
    """The first sentence of `err`'s message, without torch's weights_only advice ("no data" when empty)."""
    lines = [
        ln.strip()
        for ln in str(err).splitlines()
        if ln.strip() and "weights_only" not in ln and "Weights only" not in ln
    ]
    return lines[0].split(". ")[0].rstrip(".") if lines else "no data"


def torch_load_problem(path: str | os.PathLike, err: BaseException) -> str:
    """One line saying why `torch.load(path, weights_only=True)` failed with `err`: a file that would need code
    to unpickle (refused unread: files from elsewhere are never unpickled), an empty or cut-short file, or not a
    torch file at all. torch's own text for the first case is a paragraph that suggests weights_only=False."""
    path = Path(path)
    msg = str(err)
    detail = refused_pickle_detail(err)
    if detail is not None:
        detail = f" ({detail})" if detail else ""
        return (
            f"{path} holds pickled Python objects{detail}; it is refused unread, since only code could rebuild "
            "them (this project's files are plain dicts of tensors and numbers)"
        )
    if path.is_file() and path.stat().st_size == 0:
        return f"{path} is empty"
    if isinstance(err, PermissionError):
        return f"{path} cannot be read (permission denied)"
    first = first_reason(err)
    if isinstance(err, (EOFError, RuntimeError)) and ("zip" in msg.lower() or "central directory" in msg or not msg):
        return f"{path} is cut short or damaged ({type(err).__name__}: {first})"
    return f"{path} is not a torch file ({type(err).__name__}: {first})"


def read_json(path: str | os.PathLike) -> Any:
    """The JSON content of `path`; `CorruptFileError` naming the file (and the position) when it is not valid
    JSON, e.g. truncated by a full disk or edited by hand. `FileNotFoundError` when it is missing."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except UnicodeDecodeError as err:
        raise CorruptFileError(path, f"not a text file ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise CorruptFileError(path, f"not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None


class CacheRecoveredWarning(UserWarning):
    """A broken cache file was moved to quarantine and its content is recomputed or fetched again (the message
    names both files)."""


def quarantine(path: str | os.PathLike) -> Path:
    """Move a broken file into `quarantine/` beside it (`<name>.<UTC time>.corrupt`, never matched by the globs
    that list cache files) and return where it went; nothing is deleted."""
    path = Path(path)
    folder = path.parent / QUARANTINE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    dest = folder / f"{path.name}.{stamp}.corrupt"
    shutil.move(str(path), dest)
    return dest


class LockedError(RuntimeError):
    """Another process holds the lock of an output folder."""


_HELD: dict[str, tuple[Any, int]] = {}
_HELD_LOCK = threading.Lock()


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str = "another process") -> Iterator[Path]:
    """Hold an exclusive lock on the file `path` (created if needed) for the block; `LockedError` at once when
    another process holds it (`what` says who, in the message). The lock is released when the block ends or the
    process dies (flock), so a killed run never leaves a stale lock. Re-entrant within one process."""
    import fcntl

    path = Path(path)
    key = str(path.resolve())
    with _HELD_LOCK:
        if key in _HELD:
            handle, count = _HELD[key]
            _HELD[key] = (handle, count + 1)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")  # noqa: SIM115 - kept open while the lock is held
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                raise LockedError(
                    f"{what} is already writing into {path.parent} ({holder or 'lock ' + str(path)}); wait for it to "
                    "finish or use another output folder"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            _HELD[key] = (handle, 1)
    try:
        yield path
    finally:
        with _HELD_LOCK:
            handle, count = _HELD[key]
            if count > 1:
                _HELD[key] = (handle, count - 1)
            else:
                del _HELD[key]
                handle.close()  # releases the flock
