"""Typer option aliases shared by the `screen` subcommands (janus-core style), and the error exit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset", "-d", help="alonso | saini | li | <pubId>. Omitted: the built-in offline set (teacher reference)."
    ),
]
DataFileOpt = Annotated[
    Path | None, typer.Option("--data-file", help="Local dataset file (raw API JSON, CatBench, CSV).")
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="CatalysisHub cache root (default data/cache/cathub, $CATHUB_CACHE_DIR)."),
]
TeacherOpt = Annotated[str, typer.Option("--teacher", help="Teacher: registry name (sevennet-0) or checkpoint .pt.")]
StudentOpt = Annotated[
    str,
    typer.Option(
        "--student",
        help="auto (shipped default student; teacher-only if none), none, random (untrained preset, plumbing "
        "check), or a checkpoint .pt.",
    ),
]
ModeOpt = Annotated[str, typer.Option("--mode", help="single-point | relax")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Screen only the first N reactions.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Run/report directory (default reports/<name>).")]
GasOpt = Annotated[str, typer.Option("--gas-energies", help="teacher (both models use the teacher's) | self")]
BatchAtomsOpt = Annotated[int, typer.Option("--batch-atoms", help="Atoms per batch.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="torch threads (timings are per this setting).")]
SvgOpt = Annotated[bool, typer.Option("--svg", help="Also write SVG figures.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (structure k depends only on seed and k).")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: message` to stderr and exit with `code` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
