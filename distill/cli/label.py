"""`distill label`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import SchedulerOpt, WorkersOpt, choice, error_text, executor_flags, existing_file
from distill.cli.options import DeviceOpt, LabelCacheOpt, TeacherOpt, ThreadsOpt, fail


def label(
    structures: Annotated[
        Path, typer.Argument(help="Structure file (extxyz/db) from `distill generate`.", callback=existing_file)
    ],
    cache: LabelCacheOpt,
    teacher: TeacherOpt = "sevennet-0",
    hessian_rows: Annotated[int, typer.Option("--hessian-rows", min=0, help="Sampled Hessian rows per structure.")] = 1,
    hessian_method: Annotated[
        str,
        typer.Option("--hessian-method", help="auto | autograd | fd", callback=choice(("auto", "autograd", "fd"))),
    ] = "fd",
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, help="Structures per cache chunk.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the Hessian row sampling.")] = 0,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = 0,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Label structures with the teacher into a resumable on-disk cache (energies, forces, embeddings, Hessian rows)."""
    import torch

    from calculators.distributed import dask_executor
    from calculators.files import LockedError
    from calculators.loading import load_model
    from distill.labels import CacheMismatchError, LabellingError, LabelSettings, label_structures
    from screening.structures import read_structures

    executor_flags(workers, scheduler)
    if threads:
        torch.set_num_threads(threads)
    settings = LabelSettings(hessian_rows=hessian_rows, hessian_method=hessian_method, chunk_size=chunk_size, seed=seed)
    try:
        atoms = read_structures(structures)
    except Exception as err:  # noqa: BLE001 - any parser error: name the file, one line
        fail(f"{structures}: cannot be read as structures ({type(err).__name__}: {err})")
    if not atoms:
        fail(f"{structures} holds no structures")
    try:
        model = load_model(teacher, device=device)
        with dask_executor(workers, scheduler) as ex:
            if ex is not None:
                typer.echo(f"executor: {ex.kind}, {ex.workers} worker(s)")
            result = label_structures(
                atoms, model, cache, settings, teacher_name=teacher, progress=True, device=device
            )  # fmt: skip
    except (CacheMismatchError, FileNotFoundError, KeyError, ValueError, LockedError, LabellingError, OSError) as err:
        fail(error_text(err))
    except KeyboardInterrupt:
        fail("interrupted: finished chunks are cached; rerun the same command to resume", 130)
    for k, reason, moved in result.repaired:
        typer.echo(f"chunk {k} failed verification ({reason}); moved to {moved} and labelled again")
    typer.echo(f"{len(result.done_chunks())} chunks of labels for {len(atoms)} structures in {cache}")
