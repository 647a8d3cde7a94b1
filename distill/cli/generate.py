"""`distill generate` and `distill label`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.extxyz or .db).")],
    n: Annotated[int, typer.Option("-n", help="Number of structures.")] = 400,
    seed: Annotated[int, typer.Option(help="Sampling seed (structure k depends only on seed and k).")] = 0,
    elements: Annotated[str, typer.Option(help="Comma-separated metals.")] = "Pt,Pd,Cu,Ni,Au,Ag,Rh,Co",
    adsorbates: Annotated[str, typer.Option(help="Comma-separated adsorbates.")] = "H,O,OH,N,C,CH,CO",
    prototypes: Annotated[str, typer.Option(help="Comma-separated bulk prototypes.")] = "fcc,bcc,hcp,L12,B2,L10",
    rattle: Annotated[float, typer.Option(help="Gaussian rattle of free atoms, Å.")] = 0.05,
    layers: Annotated[int, typer.Option(help="Slab layers.")] = 3,
) -> None:
    """Sample slabs/adslabs (pure metals on 2x2 cells, binaries on 1x1) and gas references into a structure file."""
    from calculators.parsing import split_list
    from distill.data import generate_structures
    from screening.structures import write_structures

    structures = generate_structures(
        n, seed, elements=split_list(elements), adsorbates=split_list(adsorbates), prototypes=split_list(prototypes),
        rattle=rattle, layers=layers,
    )  # fmt: skip
    write_structures(out, structures)
    sizes = [len(a) for a in structures]
    typer.echo(f"wrote {len(structures)} structures ({min(sizes)}-{max(sizes)} atoms) to {out}")


def label(
    structures: Annotated[Path, typer.Argument(help="Structure file (extxyz/db) from `distill generate`.")],
    cache: Annotated[Path, typer.Option("--cache", "-c", help="Label cache directory (resumes if present).")],
    teacher: Annotated[str, typer.Option(help="Teacher registry name or GemNet-OC checkpoint.")] = "sevennet-0",
    hessian_rows: Annotated[int, typer.Option(help="Sampled Hessian rows per structure (0: none).")] = 1,
    hessian_method: Annotated[str, typer.Option(help="auto | autograd | fd")] = "fd",
    chunk_size: Annotated[int, typer.Option(help="Structures per cache chunk.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the Hessian row sampling.")] = 0,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    threads: Annotated[int, typer.Option(help="torch CPU threads (0: torch default).")] = 0,
) -> None:
    """Label structures with the teacher into a resumable on-disk cache (energies, forces, embeddings, Hessian rows)."""
    import torch

    from calculators.loading import load_model
    from distill.labels import CacheMismatchError, LabelSettings, label_structures
    from screening.structures import read_structures

    if threads:
        torch.set_num_threads(threads)
    atoms = read_structures(structures)
    model = load_model(teacher, device=device)
    settings = LabelSettings(hessian_rows=hessian_rows, hessian_method=hessian_method, chunk_size=chunk_size, seed=seed)
    try:
        result = label_structures(atoms, model, cache, settings, teacher_name=teacher, progress=True)
    except CacheMismatchError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: finished chunks are cached; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"{len(result.done_chunks())} chunks of labels for {len(atoms)} structures in {cache}")
