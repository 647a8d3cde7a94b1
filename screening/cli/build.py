"""`screen build`: sample structures from a chemical space and write them with their metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import finite, output_file
from screening.cli.options import MAX_STRAIN_PERCENT, SeedOpt, fail, parse_strains


def build(
    elements: Annotated[str, typer.Option("--elements", help="Comma-separated metals, e.g. Pt,Cu,Au.")],
    adsorbates: Annotated[
        str, typer.Option("--adsorbates", help="Comma-separated adsorbates (H,O,OH,N,C,CH,CO,...).")
    ] = "H,O,OH",
    prototypes: Annotated[
        str | None,
        typer.Option(
            "--prototypes",
            help="Comma-separated prototypes (fcc,bcc,hcp,L12,B2,L10,D019,A2B_hcp); default all that fit.",
        ),
    ] = None,
    facets: Annotated[
        str | None, typer.Option("--facets", help="Comma-separated facets kept where valid, e.g. 111,0001.")
    ] = None,
    strains: Annotated[
        str,
        typer.Option(
            "--strains", help=f"Comma-separated biaxial strains in % (finite, within ±{MAX_STRAIN_PERCENT:g} %)."
        ),
    ] = "-2,-1,0,1,2",
    n: Annotated[int, typer.Option("-n", "--n", min=1, help="Number of structures.")] = 50,
    seed: SeedOpt = 0,
    layers: Annotated[int, typer.Option("--layers", min=1, help="Atomic layers per slab.")] = 3,
    vacuum: Annotated[
        float, typer.Option("--vacuum", help="Vacuum on each side of the slab, Å.", callback=finite(low=0))
    ] = 6.0,
    rattle: Annotated[
        float, typer.Option("--rattle", help="Gaussian rattle of free atoms, Å.", callback=finite(low=0))
    ] = 0.0,
    perturb_strain: Annotated[
        float,
        typer.Option(
            "--perturb-strain",
            help="Random in-plane strain perturbation, ± %.",
            callback=finite(low=0, high=MAX_STRAIN_PERCENT),
        ),
    ] = 0.0,
    clean_fraction: Annotated[
        float, typer.Option("--clean-fraction", help="Share of clean slabs.", callback=finite(low=0, high=1))
    ] = 0.0,
    gas: Annotated[
        bool, typer.Option("--gas/--no-gas", help="Also write the gas references (H2, H2O, ...) the adsorbates need.")
    ] = False,
    out: Annotated[Path, typer.Option("--out", help="Output file: .extxyz or .db.", callback=output_file)] = Path(
        "structures.extxyz"
    ),
) -> None:
    """Write N reproducible random slabs/adslabs (composition, prototype, facet, strain, site, adsorbate)."""
    from calculators.parsing import split_list
    from screening.structures import ChemicalSpace, StructureBuildError, write_structures

    try:
        strain_list = parse_strains(strains)
    except ValueError as err:
        fail(str(err))
    try:
        space = ChemicalSpace(
            elements=split_list(elements),
            adsorbates=split_list(adsorbates),
            facets=split_list(facets) or None,
            strains=strain_list,
            layers=layers,
            vacuum=vacuum,
            rattle=rattle,
            perturb_strain=perturb_strain,
            clean_fraction=clean_fraction,
            **({"prototypes": split_list(prototypes)} if prototypes else {}),
        )
        structures = space.sample(n, seed) + (space.gas_references() if gas else [])
        path = write_structures(out, structures)
    except (StructureBuildError, ValueError) as err:
        fail(str(err))
    typer.echo(f"wrote {len(structures)} structures to {path}")
