"""Typer option aliases shared by the `screen` subcommands (janus-core style), and the error exit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from calculators.cli.common import finite, non_empty, output_dir

DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        "-d",
        help="alonso | saini | li | <pubId>. Omitted: the built-in offline set (teacher reference).",
        callback=non_empty,
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
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Screen only the first N reactions.")]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Run/report directory (default reports/<name>).", callback=output_dir),
]
GasOpt = Annotated[str, typer.Option("--gas-energies", help="teacher (both models use the teacher's) | self")]
BatchAtomsOpt = Annotated[int, typer.Option("--batch-atoms", min=1, help="Atoms per batch.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", min=1, help="torch threads (timings are per this setting).")]
FmaxOpt = Annotated[
    float,
    typer.Option("--fmax", help="Relax mode: force threshold, eV/Å.", callback=finite(low=0, low_open=True)),
]
MaxStepsOpt = Annotated[int, typer.Option("--max-steps", min=1, help="Relax mode: max force calls.")]
SvgOpt = Annotated[bool, typer.Option("--svg", help="Also write SVG figures.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (structure k depends only on seed and k).")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: message` to stderr and exit with `code` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
