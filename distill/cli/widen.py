"""`distill widen`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import output_file
from distill.cli.options import fail


def widen_cmd(
    checkpoint: Annotated[str, typer.Argument(help="GemNet-OC student checkpoint (project file) or registry name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output project checkpoint.", callback=output_file)],
    atom: Annotated[int | None, typer.Option("--atom", help="New atom embedding width (≥ the current one).")] = None,
    edge: Annotated[int | None, typer.Option("--edge", help="New edge embedding width (≥ the current one).")] = None,
    blocks: Annotated[
        int | None,
        typer.Option("--blocks", help="New number of interaction blocks (≥ the current one; copies of the last)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the new channels' initialisation.")] = 0,
) -> None:
    """Grow a student's atom/edge channels and/or interaction blocks without changing its energies or forces
    (fine-tune it afterwards with `distill train --config` whose `student` is the output)."""
    from distill.widen import widen_checkpoint

    if atom is None and edge is None and blocks is None:
        fail("nothing to widen: give --atom, --edge and/or --blocks")
    try:
        old, new = widen_checkpoint(
            checkpoint, out, emb_size_atom=atom, emb_size_edge=edge, num_blocks=blocks, seed=seed
        )
    except (FileNotFoundError, KeyError, ValueError) as err:
        fail(str(err))
    c0, c1 = old.config, new.config
    typer.echo(
        f"atom {c0.emb_size_atom} -> {c1.emb_size_atom}, edge {c0.emb_size_edge} -> {c1.emb_size_edge}, "
        f"blocks {c0.num_blocks} -> {c1.num_blocks}: "
        f"{old.num_parameters():,d} -> {new.num_parameters():,d} parameters; wrote {out}"
    )
