"""Model registry (`calculators/registry.json`: name → architecture, url, filename, sha256, notes) and
explicit checkpoint download into a cache. Nothing here runs on import or in a constructor.

Integrity: when an entry has a sha256, every use of its file checks it (download, cache hit, loading); an
entry without one (nothing published to pin) is used unchecked; `python -m calculators.cli download` prints
the file's digest so that it can be pinned.

CLI: ``python -m calculators.cli list`` and ``python -m calculators.cli download NAME [--cache-dir DIR]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from calculators.files import atomic_open
from calculators.hashing import sha256_file

PACKAGE_DIR = Path(__file__).resolve().parent
REGISTRY_PATH = PACKAGE_DIR / "registry.json"


class CheckpointUnavailable(FileNotFoundError):
    """A registered checkpoint is neither cached nor downloadable right now."""


def load_registry(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The registry as a dict name → entry (aliases resolved by `registry_entry`)."""
    with open(path or REGISTRY_PATH) as fh:
        return json.load(fh)


def registry_entry(name: str, registry: dict[str, dict[str, Any]] | None = None) -> tuple[str, dict[str, Any]]:
    """(canonical name, entry) for `name` or one of its aliases; KeyError listing the known names."""
    reg = registry if registry is not None else load_registry()
    if name in reg:
        return name, reg[name]
    for key, entry in reg.items():
        if name in entry.get("aliases", []):
            return key, entry
    raise KeyError(f"unknown model name {name!r}; registered: {sorted(reg)}")


def default_cache_dir() -> Path:
    """$CATDISTILL_CACHE or ~/.cache/catdistill/checkpoints."""
    env = os.environ.get("CATDISTILL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "catdistill" / "checkpoints"


def cached_checkpoint(
    name: str, cache_dir: str | Path | None = None, registry: dict[str, dict[str, Any]] | None = None
) -> Path | None:
    """Path of the cached checkpoint of `name`, or None if it is not in the cache (never downloads). A cached file
    that does not match the registered sha256 is an error (`ValueError`), never used."""
    key, entry = registry_entry(name, registry)
    if not entry.get("filename"):
        return None
    path = Path(cache_dir or default_cache_dir()) / entry["filename"]
    if not path.is_file():
        return None
    verify_sha256(key, entry, path)
    return path


def verify_sha256(key: str, entry: dict[str, Any], path: Path) -> None:
    """`ValueError` if the registry pins a sha256 for `key` and the file at `path` has another one."""
    expected = entry.get("sha256")
    if expected and sha256_file(path) != expected:
        raise ValueError(
            f"{path} does not match the sha256 registered for {key} ({expected}); delete it and download again "
            "(download_checkpoint(..., force=True))"
        )


def download_checkpoint(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    registry: dict[str, dict[str, Any]] | None = None,
    force: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download the checkpoint registered as `name` into `cache_dir` (atomic write) and return its path.

    A cached file is returned without any network access (its sha256 is checked when the registry knows it).
    Raises `CheckpointUnavailable` with the URL and target path when offline or the download fails.
    """
    key, entry = registry_entry(name, registry)
    url, filename = entry.get("url"), entry.get("filename")
    if not url or not filename:
        raise ValueError(f"{key} has no downloadable checkpoint ({entry.get('notes', '')})")
    cache = Path(cache_dir or default_cache_dir())
    dest = cache / filename
    expected = entry.get("sha256")
    if dest.is_file() and not force:
        verify_sha256(key, entry, dest)
        return dest
    try:
        with atomic_open(dest, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            digest = hashlib.sha256()
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
            if expected and digest.hexdigest() != expected:
                raise ValueError(f"download of {key} from {url} does not match the registered sha256")
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise CheckpointUnavailable(
            f"could not download {key} from {url} ({err}); are you offline? Download it on a connected "
            f"machine and place it at {dest}"
        ) from err
    return dest
