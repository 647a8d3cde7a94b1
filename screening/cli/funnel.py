"""``screen funnel``: the student scores every candidate, the teacher re-ranks the best ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import finite
from screening.cli.options import (
    BatchAtomsOpt,
    CacheDirOpt,
    DataFileOpt,
    DatasetOpt,
    GasOpt,
    LimitOpt,
    OutOpt,
    SeedOpt,
    StudentOpt,
    TeacherOpt,
    ThreadsOpt,
    fail,
)


def funnel(
    dataset: DatasetOpt = None,
    data_file: DataFileOpt = None,
    cache_dir: CacheDirOpt = None,
    generate: Annotated[
        int | None, typer.Option("--generate", min=1, help="Screen N generated candidates (ChemicalSpace) instead.")
    ] = None,
    elements: Annotated[str, typer.Option("--elements", help="Elements for --generate.")] = "Pt,Pd,Cu,Ni,Au,Ag",
    seed: SeedOpt = 0,
    teacher: TeacherOpt = "sevennet-0",
    student: StudentOpt = "auto",
    fraction: Annotated[
        float,
        typer.Option(
            "--fraction", help="Share re-evaluated by the teacher.", callback=finite(low=0, high=1, low_open=True)
        ),
    ] = 0.2,
    target: Annotated[
        float | None,
        typer.Option("--target", help="Target ΔE, eV (score |ΔE − target|).", callback=finite(optional=True)),
    ] = None,
    window: Annotated[
        float | None,
        typer.Option(
            "--window", help="Re-evaluate |ΔE_student − target| ≤ window eV.", callback=finite(low=0, optional=True)
        ),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="k for the recall of the teacher's top-k.")] = 5,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Teacher on all candidates for recall.")] = True,
    limit: LimitOpt = None,
    out: OutOpt = None,
    gas_energies: GasOpt = "teacher",
    batch_atoms: BatchAtomsOpt = 256,
    threads: ThreadsOpt = 1,
) -> None:
    """Hierarchical screening: the student scores all candidates, the teacher re-ranks the best fraction (or
    those within --window of --target); reports recall of the teacher's top-k and the compute saved."""
    import torch

    from calculators.files import LockedError
    from calculators.parsing import split_list
    from screening.evaluators import resolve_models
    from screening.funnel import funnel_and_report
    from screening.reactions import ScreenSetError, generated_set, load_screen_set
    from screening.results import run_lock
    from screening.runner import RunConfig

    if window is not None and target is None:
        fail("--window needs --target")
    torch.set_num_threads(threads)
    try:
        cfg = RunConfig(gas_energies=gas_energies, batch_atoms=batch_atoms, threads=threads)
        if generate is not None:
            sset = generated_set(split_list(elements), generate, seed=seed)
        else:
            sset = load_screen_set(dataset, data_file, cache_dir=cache_dir, limit=limit)
        if not sset.reactions:
            fail("no candidates")
        out = out or Path("reports") / f"funnel-{sset.name}"
        out.mkdir(parents=True, exist_ok=True)
        with run_lock(out):  # a second run into this folder stops here, before loading models
            t, s, _ = resolve_models(teacher, None if student == "auto" else student, need_student=True)
            res = funnel_and_report(sset, t, s, out, fraction=fraction, target=target, window=window, top_k=top_k,
                                    verify=verify, config=cfg)  # fmt: skip
    except (FileNotFoundError, KeyError, ValueError, ScreenSetError, LockedError, OSError) as err:
        fail(str(err).strip("'\""))
    typer.echo(
        f"{res['candidates']} candidates, teacher re-evaluated {res['re_evaluated']} "
        f"({res['teacher_structures_funnel']}/{res['teacher_structures_all']} structures)"
    )
    if "recall_at_k" in res:
        typer.echo(f"recall of teacher top-{top_k}: {res['recall_at_k']:.2f}")
    if res.get("excluded"):
        typer.echo(f"{len(res['excluded'])} candidate(s) excluded (failed or non-finite energies, see funnel.csv)")
    if res.get("compute_saved_share") is not None:
        typer.echo(f"compute saved: {res['compute_saved_share']:.0%}")
    typer.echo(f"report: {out / 'index.html'}")
