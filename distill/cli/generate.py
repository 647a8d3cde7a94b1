"""`distill generate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import finite, output_file
from distill.cli.options import SeedOpt, fail


def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.extxyz or .db).", callback=output_file)],
    n: Annotated[int, typer.Option("-n", min=1, help="Number of structures.")] = 400,
    seed: SeedOpt = 0,
    elements: Annotated[str, typer.Option("--elements", help="Comma-separated metals.")] = "Pt,Pd,Cu,Ni,Au,Ag,Rh,Co",
    adsorbates: Annotated[str, typer.Option("--adsorbates", help="Comma-separated adsorbates.")] = "H,O,OH,N,C,CH,CO",
    prototypes: Annotated[
        str, typer.Option("--prototypes", help="Comma-separated bulk prototypes.")
    ] = "fcc,bcc,hcp,L12,B2,L10",
    rattle: Annotated[
        float, typer.Option("--rattle", help="Gaussian rattle of free atoms, Å.", callback=finite(low=0))
    ] = 0.05,
    layers: Annotated[int, typer.Option("--layers", min=1, help="Slab layers.")] = 3,
) -> None:
    """Sample slabs/adslabs (pure metals on 2x2 cells, binaries on 1x1) and gas references into a structure file."""
    from calculators.parsing import split_list
    from distill.data import generate_structures
    from screening.structures import write_structures

    try:
        structures = generate_structures(
            n, seed, elements=split_list(elements), adsorbates=split_list(adsorbates),
            prototypes=split_list(prototypes), rattle=rattle, layers=layers,
        )  # fmt: skip
    except ValueError as err:
        fail(str(err))
    if not structures:
        fail("no structures were generated (check --elements, --adsorbates and --prototypes); nothing written")
    write_structures(out, structures)
    sizes = [len(a) for a in structures]
    typer.echo(f"wrote {len(structures)} structures ({min(sizes)}-{max(sizes)} atoms) to {out}")
