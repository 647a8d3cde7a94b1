"""`screen build`: sample structures from a chemical space and write them with their metadata."""

from __future__ import annotations

from pathlib import Path

import typer


def build(
    elements: str = typer.Option(..., help="Comma-separated metals, e.g. Pt,Cu,Au."),
    adsorbates: str = typer.Option("H,O,OH", help="Comma-separated adsorbates (H,O,OH,N,C,CH,CO,...)."),
    prototypes: str | None = typer.Option(
        None, help="Comma-separated prototypes (fcc,bcc,hcp,L12,B2,L10,D019,A2B_hcp); default all that fit."
    ),
    facets: str | None = typer.Option(None, help="Comma-separated facets kept where valid, e.g. 111,0001."),
    strains: str = typer.Option("-2,-1,0,1,2", help="Comma-separated biaxial strains in %."),
    n: int = typer.Option(50, "-n", "--n", help="Number of structures."),
    seed: int = typer.Option(0, help="Random seed (structure k depends only on seed and k)."),
    layers: int = typer.Option(3, help="Atomic layers per slab."),
    vacuum: float = typer.Option(6.0, help="Vacuum on each side of the slab, Å."),
    rattle: float = typer.Option(0.0, help="Gaussian rattle of free atoms, Å."),
    perturb_strain: float = typer.Option(0.0, help="Random in-plane strain perturbation, ± %."),
    clean_fraction: float = typer.Option(0.0, help="Share of clean slabs."),
    gas: bool = typer.Option(False, help="Also write the gas references (H2, H2O, ...) the adsorbates need."),
    out: str = typer.Option("structures.extxyz", help="Output file: .extxyz or .db."),
) -> None:
    """Write N reproducible random slabs/adslabs (composition, prototype, facet, strain, site, adsorbate)."""
    from calculators.parsing import split_list
    from screening.structures.adsorbates import gas_coefficients, gas_molecule
    from screening.structures.errors import StructureBuildError
    from screening.structures.io import write_structures
    from screening.structures.sampling import ChemicalSpace

    try:
        kwargs = {}
        if prototypes:
            kwargs["prototypes"] = split_list(prototypes)
        space = ChemicalSpace(
            elements=split_list(elements),
            adsorbates=split_list(adsorbates),
            facets=split_list(facets) or None,
            strains=[float(s) for s in split_list(strains)],
            layers=layers,
            vacuum=vacuum,
            rattle=rattle,
            perturb_strain=perturb_strain,
            clean_fraction=clean_fraction,
            **kwargs,
        )
        structures = space.sample(n, seed)
        if gas:
            names = sorted({g for a in space.adsorbates for g in gas_coefficients(a)})
            structures += [gas_molecule(g) for g in names]
        path = write_structures(Path(out), structures)
    except (StructureBuildError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err
    typer.echo(f"wrote {len(structures)} structures to {path}")
