"""`distill pairs`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import error_text
from distill.cli.options import DeviceOpt, TeacherOpt, ThreadsOpt, fail


def pairs_cmd(
    cache: Annotated[list[Path], typer.Argument(help="Label cache directories (`distill label`).")],
    teacher: TeacherOpt = "sevennet-0",
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, help="Structures per cache chunk.")] = 16,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = 0,
) -> None:
    """Label each adslab's stripped slab (same geometry, adsorbate removed) into `<cache>-pairs/`, for the pair
    loss (`losses.pair` in the recipe); `distill train` attaches them. Resumes like `distill label`."""
    import torch

    from calculators.files import LockedError
    from calculators.loading import load_model
    from distill.labels import CacheMismatchError, IncompleteCacheError
    from distill.pairs import label_pairs

    if threads:
        torch.set_num_threads(threads)
    try:
        model = load_model(teacher, device=device)
        for c in cache:
            out = label_pairs(c, model, teacher_name=teacher, chunk_size=chunk_size, progress=True)
            typer.echo(f"pair labels of {c} in {out}")
    except (CacheMismatchError, IncompleteCacheError, FileNotFoundError, KeyError, ValueError, LockedError,
            OSError) as err:  # fmt: skip
        fail(error_text(err))
    except KeyboardInterrupt:
        fail("interrupted: finished chunks are cached; rerun the same command to resume", 130)
