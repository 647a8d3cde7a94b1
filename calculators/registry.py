"""Model registry (`calculators/registry.json`: name → url, filename, sha256, architecture, notes) and
explicit checkpoint download into a cache. Nothing here runs on import or in a constructor.

CLI: ``python -m calculators.registry list`` and
``python -m calculators.registry download NAME [--cache-dir DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from calculators.files import atomic_open
from calculators.hashing import sha256_file

REGISTRY_PATH = Path(__file__).resolve().parent / "registry.json"


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
    """Path of the cached checkpoint of `name`, or None if it is not in the cache (never downloads)."""
    _, entry = registry_entry(name, registry)
    if not entry.get("filename"):
        return None
    path = Path(cache_dir or default_cache_dir()) / entry["filename"]
    return path if path.is_file() else None


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
        if expected and sha256_file(dest) != expected:
            raise ValueError(f"cached {dest} does not match the registered sha256; delete it or use force=True")
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


def main(argv: list[str] | None = None) -> None:
    """Command line: list the registry or download one checkpoint."""
    parser = argparse.ArgumentParser(prog="python -m calculators.registry")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    dl = sub.add_parser("download")
    dl.add_argument("name")
    dl.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    if args.cmd == "list":
        for key, entry in load_registry().items():
            print(f"{key:24s} {entry['architecture']:10s} {entry.get('url') or '(ships offline)'}")
    else:
        print(download_checkpoint(args.name, args.cache_dir))


if __name__ == "__main__":
    main()
