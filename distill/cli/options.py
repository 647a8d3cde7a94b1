"""Typer option aliases shared by the `distill` subcommands (janus-core style), and the error exit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from calculators.cli.common import device, existing_file, output_dir

TeacherOpt = Annotated[
    str, typer.Option("--teacher", help="Teacher: registry name (sevennet-0) or GemNet-OC checkpoint.")
]
LabelCacheOpt = Annotated[Path, typer.Option("--cache", "-c", help="Label cache directory.", callback=output_dir)]
ReadCacheOpt = Annotated[Path, typer.Option("--cache", "-c", help="Label cache directory (`distill label`).")]
RecipeOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Training recipe (JSON or YAML TrainConfig).", callback=existing_file),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed (structure k depends only on seed and k).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu | cuda", callback=device)]
ThreadsOpt = Annotated[int, typer.Option("--threads", min=0, help="torch CPU threads (0: torch default).")]
AdsorptionOpt = Annotated[
    int, typer.Option("--adsorption", min=0, help="Held-out adsorption systems for the Spearman check (0: skip).")
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: message` to stderr and exit with `code` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
