"""`list` and `download`: the model registry (`calculators/registry.json`) and explicit checkpoint downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def list_models() -> None:
    """Registered models: name, architecture, where the weights come from."""
    from calculators.registry import load_registry

    for key, entry in load_registry().items():
        where = entry.get("url") or (f"ships in the package ({entry['shipped']})" if entry.get("shipped") else "")
        typer.echo(f"{key:24s} {entry['architecture']:10s} {where or '(ships offline)'}")


def download(
    name: Annotated[str, typer.Argument(help="Registry name or alias, e.g. gemnet-oc-oc20-oc22.")],
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Cache folder (default $CATDISTILL_CACHE or ~/.cache).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if cached.")] = False,
) -> None:
    """Download a registered checkpoint into the cache (needs network); prints its path and sha256."""
    from calculators.hashing import sha256_file
    from calculators.registry import CheckpointUnavailable, download_checkpoint, registry_entry

    try:
        key, entry = registry_entry(name)
        path = download_checkpoint(key, cache_dir, force=force)
    except (KeyError, ValueError, CheckpointUnavailable) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(str(path))
    if entry.get("sha256"):
        typer.echo(f"sha256 {entry['sha256']} (verified)")
    else:
        typer.echo(f"sha256 {sha256_file(path)} (not pinned: check it, then add it to calculators/registry.json)")
