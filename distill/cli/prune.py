"""`distill prune`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import output_file
from distill.cli.options import fail


def prune_cmd(
    checkpoint: Annotated[str, typer.Argument(help="GemNet-OC checkpoint (project or fairchem) or teacher name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output project checkpoint.", callback=output_file)],
    blocks: Annotated[
        str, typer.Option("--blocks", help="Blocks to keep: a count b' (first b') or a list like 0,2.")
    ] = "2",
    structures: Annotated[
        Path | None,
        typer.Option("--structures", help="Structures for the importance report (extxyz); none: skip the report."),
    ] = None,
) -> None:
    """Keep some interaction blocks of a GemNet-OC teacher as the student's initialisation; report block importance."""
    from calculators.parsing import split_list
    from distill.prune import prune_checkpoint
    from screening.structures import read_structures

    keep = int(blocks) if "," not in blocks else [int(b) for b in split_list(blocks)]
    try:
        atoms = read_structures(structures) if structures is not None else []
        model, small, report = prune_checkpoint(checkpoint, out, keep, structures=atoms)
    except (FileNotFoundError, KeyError, ValueError) as err:
        fail(str(err))
    if report is not None:
        typer.echo(report)
    typer.echo(f"{model.num_parameters():,d} -> {small.num_parameters():,d} parameters; wrote {out}")
