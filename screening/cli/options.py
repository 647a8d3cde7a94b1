"""Typer option aliases shared by the `screen` subcommands (janus-core style), the checks they share, and the
error exit."""

from __future__ import annotations

import math
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


# Largest biaxial strain (%) a command accepts: the CatalysisHub sets span −8…+8 % (AlonsoStrain2023) and the
# default student was trained on the same range; beyond ±20 % a slab is no longer a strained metal surface
# (at −99 % its atoms sit a few hundredths of an Å apart).
MAX_STRAIN_PERCENT = 20.0


def parse_strains(text: str, option: str = "--strains") -> list[float]:
    """Comma-separated biaxial strains in % (e.g. ``"-2,0,2"``) as floats; `ValueError` in one line naming
    `option` when one is not a number, not finite, or beyond ±`MAX_STRAIN_PERCENT` %, or when none is given."""
    from calculators.parsing import split_list

    values: list[float] = []
    for item in split_list(text):
        try:
            v = float(item)
        except ValueError:
            raise ValueError(f"{option}: {item!r} is not a number (strains in %, e.g. -2,0,2)") from None
        if not math.isfinite(v):
            raise ValueError(f"{option}: {text!r} holds a value that is not a finite number")
        if abs(v) > MAX_STRAIN_PERCENT:
            raise ValueError(
                f"{option}: {v:g} % is outside ±{MAX_STRAIN_PERCENT:g} % (biaxial strain in %; the CatalysisHub "
                "sets use −8…+8 %)"
            )
        values.append(v)
    if not values:
        raise ValueError(f"{option}: no strain given (strains in %, e.g. -2,0,2)")
    return values
