"""`distill prune`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def prune_cmd(
    checkpoint: Annotated[str, typer.Argument(help="GemNet-OC checkpoint (project or fairchem) or teacher name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output project checkpoint.")],
    blocks: Annotated[str, typer.Option(help="Blocks to keep: a count b' (first b') or a list like 0,2.")] = "2",
    structures: Annotated[
        Path | None, typer.Option(help="Structures for the importance report (extxyz); none: skip the report.")
    ] = None,
) -> None:
    """Keep some interaction blocks of a GemNet-OC teacher as the student's initialisation; report block importance."""
    from calculators.batch import AtomsBatch
    from calculators.gemnet import save_checkpoint
    from calculators.loading import load_model
    from calculators.tags import tags_for
    from distill.prune import block_importance, importance_report, prune_blocks
    from screening.structures import read_structures

    model = load_model(checkpoint)
    if structures is not None:
        atoms = read_structures(structures)[:16]
        batch = AtomsBatch.from_atoms(atoms, dtype=next(model.parameters()).dtype, tags=[tags_for(a) for a in atoms])
        typer.echo(importance_report(block_importance(model, batch)))
    keep = int(blocks) if "," not in blocks else [int(b) for b in blocks.split(",")]
    small = prune_blocks(model, keep)
    save_checkpoint(small, out, {"parent": str(checkpoint), "kept_blocks": blocks})
    typer.echo(f"{model.num_parameters():,d} -> {small.num_parameters():,d} parameters; wrote {out}")
