"""``screen run``: screen reactions with teacher and student and write results.json plus a report."""

from __future__ import annotations

import contextlib
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import SchedulerOpt, WorkersOpt, choice, error_text, executor_flags, output_dir
from screening.cli.options import (
    BatchAtomsOpt,
    CacheDirOpt,
    DataFileOpt,
    DatasetOpt,
    FmaxOpt,
    GasOpt,
    LimitOpt,
    MaxStepsOpt,
    ModeOpt,
    OutOpt,
    StudentOpt,
    SvgOpt,
    TeacherOpt,
    ThreadsOpt,
    fail,
)


def run(
    dataset: DatasetOpt = None,
    data_file: DataFileOpt = None,
    cache_dir: CacheDirOpt = None,
    teacher: TeacherOpt = "sevennet-0",
    student: StudentOpt = "auto",
    mode: ModeOpt = "single-point",
    limit: LimitOpt = None,
    out: OutOpt = None,
    gas_energies: GasOpt = "teacher",
    batch_atoms: BatchAtomsOpt = 256,
    fmax: FmaxOpt = 0.05,
    max_steps: MaxStepsOpt = 300,
    threads: ThreadsOpt = 1,
    svg: SvgOpt = False,
    structures: Annotated[
        str,
        typer.Option(
            "--structures",
            help="auto (the DFT structures when the cache/file holds any, else rebuild) | cathub | rebuild (from "
            "metadata: prototype, cell, facet, strain, named site, on each model's own lattice constants).",
            callback=choice(("auto", "cathub", "rebuild")),
        ),
    ] = "auto",
    lattice: Annotated[
        str,
        typer.Option(
            "--lattice",
            help="Rebuild: model (each model's relaxed lattice constants) | default (builder).",
            callback=choice(("model", "default")),
        ),
    ] = "model",
    lattice_cache: Annotated[
        Path | None,
        typer.Option(
            "--lattice-cache",
            help="Rebuild: lattice-constant cache (default data/cache/lattice).",
            callback=output_dir,
        ),
    ] = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Screen reactions with teacher and student; write results.json and a report (figures, tables, index.html).
    Re-running into the same --out resumes from the cached per-system energies."""
    import torch

    from calculators.distributed import dask_executor
    from calculators.files import LockedError
    from screening.evaluators import resolve_models
    from screening.reactions import ScreenSetError, from_dataset, load_reaction_dataset, load_screen_set
    from screening.rebuild import choose_structures, rebuild_screen_set, run_rebuilt_and_report
    from screening.report.tables import fmt
    from screening.results import check_run_kind, run_lock
    from screening.runner import RunConfig, run_and_report

    executor_flags(workers, scheduler)
    torch.set_num_threads(threads)
    used = None
    with contextlib.ExitStack() as held:
        try:
            cfg = RunConfig(mode=mode, gas_energies=gas_energies, batch_atoms=batch_atoms, fmax=fmax,
                            max_steps=max_steps, threads=threads)  # fmt: skip
            if dataset is None and data_file is None:
                if structures == "rebuild":
                    fail("--structures rebuild needs --dataset or --data-file (CatalysisHub metadata)")
                sset = load_screen_set(None, None, limit=limit)
                name = sset.name
            else:
                ds = load_reaction_dataset(dataset, data_file, cache_dir=cache_dir)
                used, why = choose_structures(ds, structures)
                typer.echo(f"structures: {used} ({why})")
                sset = from_dataset(ds).limit(limit) if used == "cathub" else None
                name = ds.name
            if sset is not None and not sset.reactions:
                example = sset.skipped[0][1] if sset.skipped else "-"
                fail(
                    f"no reactions to screen ({len(sset.skipped)} skipped, e.g. {example}); metadata without "
                    "structures? `--structures rebuild` rebuilds them from the metadata, or run `screen fetch` to "
                    "download the structures"
                )
            suffix = ("-rebuilt" if used == "rebuild" else "") + ("" if mode == "single-point" else "-relax")
            out = out or Path("reports") / (name + suffix)
            check_run_kind(out, "run")
            out.mkdir(parents=True, exist_ok=True)
            held.enter_context(run_lock(out))  # a second run into this folder stops here, before loading models
            t, s, reason = resolve_models(teacher, None if student == "auto" else student)
            if sset is None:
                sset = rebuild_screen_set(
                    ds, {"teacher": t, "student": s}, lattice=lattice, lattice_cache=lattice_cache, limit=limit
                )
                if not sset.reactions:
                    example = sset.skipped[0][1] if sset.skipped else "-"
                    fail(f"no reaction could be rebuilt ({len(sset.skipped)} skipped, e.g. {example})")
        except (FileNotFoundError, KeyError, ValueError, ScreenSetError, LockedError, OSError) as err:
            fail(error_text(err))
        typer.echo(
            f"screening {len(sset.reactions)} reactions ({len(sset.atoms)} distinct systems) from {sset.source}; "
            f"teacher {t.label}; student {s.label if s else 'none (' + str(reason) + ')'}"
        )
        if used == "rebuild":
            typer.echo(f"not rebuilt: {len(sset.skipped)} ({sset.structures_info.get('skip_reasons')})")
        cmd = "screen " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("screen") else None
        if used == "rebuild" and cfg.mode == "relax":
            typer.echo("relax mode: each clean slab is relaxed once per model and its adsorbates are placed on it")
        runner = run_rebuilt_and_report if used == "rebuild" else run_and_report
        try:
            ex = held.enter_context(dask_executor(workers, scheduler))
            if ex is not None:
                typer.echo(f"executor: {ex.kind}, {ex.workers} worker(s)")
            res = runner(sset, t, s, out, config=cfg, student_absent_reason=reason, command=cmd,
                         formats=("png", "svg") if svg else ("png",))  # fmt: skip
        except OSError as err:  # ConnectionError (scheduler unreachable) included
            fail(str(err))
    m = res["metrics"]["all"]
    typer.echo(f"reference: {res['reference']}")
    typer.echo(f"MAE teacher {fmt(m['mae_teacher'])} eV" + (f", student {fmt(m['mae_student'])} eV" if s else "")
               + f" over {m['n']} reactions")  # fmt: skip
    if res["dataset"].get("reactions_excluded"):
        typer.echo(f"{res['dataset']['reactions_excluded']} reaction(s) excluded from the metrics (see skipped.csv)")
    if s and res["timing"].get("speedup"):
        typer.echo(f"speedup {res['timing']['speedup']:.2f}x")
    typer.echo(f"model calls: teacher {t.calls}" + (f", student {s.calls}" if s else ""))
    typer.echo(f"report: {out / 'index.html'}")
