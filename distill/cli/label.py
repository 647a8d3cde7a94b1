"""`distill label`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distill.cli.options import DeviceOpt, LabelCacheOpt, TeacherOpt, ThreadsOpt, fail


def label(
    structures: Annotated[Path, typer.Argument(help="Structure file (extxyz/db) from `distill generate`.")],
    cache: LabelCacheOpt,
    teacher: TeacherOpt = "sevennet-0",
    hessian_rows: Annotated[int, typer.Option("--hessian-rows", help="Sampled Hessian rows per structure.")] = 1,
    hessian_method: Annotated[str, typer.Option("--hessian-method", help="auto | autograd | fd")] = "fd",
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Structures per cache chunk.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the Hessian row sampling.")] = 0,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = 0,
) -> None:
    """Label structures with the teacher into a resumable on-disk cache (energies, forces, embeddings, Hessian rows)."""
    import torch

    from calculators.loading import load_model
    from distill.labels import CacheMismatchError, LabelSettings, label_structures
    from screening.structures import read_structures

    if threads:
        torch.set_num_threads(threads)
    settings = LabelSettings(hessian_rows=hessian_rows, hessian_method=hessian_method, chunk_size=chunk_size, seed=seed)
    try:
        atoms = read_structures(structures)
        result = label_structures(
            atoms, load_model(teacher, device=device), cache, settings, teacher_name=teacher, progress=True
        )
    except (CacheMismatchError, FileNotFoundError, KeyError) as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted: finished chunks are cached; rerun the same command to resume", 130)
    typer.echo(f"{len(result.done_chunks())} chunks of labels for {len(atoms)} structures in {cache}")
