"""`distill info`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from distill.cli.options import fail


def info(
    checkpoint: Annotated[Path, typer.Argument(help="GemNet-OC checkpoint (project or fairchem).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Show what a checkpoint holds: architecture, parameters, recipe, teacher fingerprint, metrics."""
    from calculators.gemnet import CheckpointError
    from distill.checkpoint_info import checkpoint_info

    try:
        summary = checkpoint_info(checkpoint)
    except (FileNotFoundError, CheckpointError) as err:
        fail(str(err))
    typer.echo(json.dumps(summary.to_dict(), indent=2) if as_json else summary.to_text())
