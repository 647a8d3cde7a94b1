"""Atomic file writes: a reader (or a killed writer) sees the old file or the new one, never a partial one.

Every writer in the project goes through `atomic_open` (temporary file beside the target, then `os.replace`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, fsync: bool = False) -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path`; it replaces `path` when the block ends without an error and is
    removed otherwise. Parent folders are created. `fsync` flushes to disk before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
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
