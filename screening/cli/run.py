"""``screen run``, ``screen funnel`` and ``screen report``: screening with teacher and student, hierarchical
screening, and report regeneration. Heavy imports happen inside the command bodies."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset", "-d", help="alonso | saini | li | <pubId>. Omitted: the built-in offline set (teacher reference)."
    ),
]
DataFileOpt = Annotated[
    Path | None, typer.Option("--data-file", help="Local dataset file (raw API JSON, CatBench, CSV).")
]
CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", help="CatalysisHub cache root.")]
TeacherOpt = Annotated[str, typer.Option("--teacher", help="Teacher: registry name (sevennet-0) or checkpoint .pt.")]
StudentOpt = Annotated[
    str,
    typer.Option(
        "--student",
        help="auto (shipped default student; teacher-only if none), none, random (untrained preset, plumbing "
        "check), or a checkpoint .pt.",
    ),
]
ModeOpt = Annotated[str, typer.Option("--mode", help="single-point | relax")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Screen only the first N reactions.")]
GasOpt = Annotated[str, typer.Option("--gas-energies", help="teacher (both models use the teacher's) | self")]
BatchOpt = Annotated[int, typer.Option("--batch-atoms", help="Atoms per batch.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="torch threads (timings are per this setting).")]
FormatsOpt = Annotated[bool, typer.Option("--svg", help="Also write SVG figures.")]


def _fail(msg: str, code: int = 2) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _load_set(dataset: str | None, data_file: Path | None, cache_dir: Path | None, limit: int | None) -> Any:
    from screening.cathub.sources import load_dataset
    from screening.reactions import builtin_set, from_dataset

    if dataset is None and data_file is None:
        return builtin_set(limit=limit)
    try:
        ds = load_dataset(dataset or data_file.stem, cache_dir=cache_dir, data_file=data_file)  # type: ignore[union-attr]
    except FileNotFoundError as err:
        _fail(str(err))
    except Exception as err:  # OfflineError and file format errors: message, no traceback
        name = type(err).__name__
        if name == "OfflineError":
            _fail(
                f"{err}\nTo get the data: `screen fetch --dataset {dataset}` with CATHUB_API_KEY set (resumable), "
                "or pass --data-file FILE. Without a dataset, `screen run` screens the built-in offline set."
            )
        _fail(f"could not load dataset: {name}: {err}")
    return from_dataset(ds).limit(limit)


def _models(teacher: str, student: str, need_student: bool = False) -> tuple[Any, Any, str | None]:
    from screening.evaluators import resolve_student, resolve_teacher

    try:
        t = resolve_teacher(teacher)
        s, reason = resolve_student(None if student == "auto" else student)
    except (FileNotFoundError, KeyError, ValueError) as err:
        _fail(str(err))
    if need_student and s is None:
        _fail(f"the funnel needs a student: {reason}")
    return t, s, reason


def _check(mode: str, gas: str) -> None:
    if mode not in ("single-point", "relax"):
        _fail(f"--mode must be single-point or relax, got {mode!r}")
    if gas not in ("teacher", "self"):
        _fail(f"--gas-energies must be teacher or self, got {gas!r}")


def run(
    dataset: DatasetOpt = None,
    data_file: DataFileOpt = None,
    cache_dir: CacheOpt = None,
    teacher: TeacherOpt = "sevennet-0",
    student: StudentOpt = "auto",
    mode: ModeOpt = "single-point",
    limit: LimitOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run/report directory (default reports/<name>).")] = None,
    gas_energies: GasOpt = "teacher",
    batch_atoms: BatchOpt = 256,
    fmax: Annotated[float, typer.Option("--fmax", help="Relax mode: force threshold, eV/Å.")] = 0.05,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Relax mode: max force calls.")] = 300,
    threads: ThreadsOpt = 1,
    svg: FormatsOpt = False,
) -> None:
    """Screen reactions with teacher and student; write results.json and a report (figures, tables, index.html).
    Re-running into the same --out resumes from the cached per-system energies."""
    import torch

    from screening.report import write_report
    from screening.runner import RunConfig, run_screening

    _check(mode, gas_energies)
    torch.set_num_threads(threads)
    sset = _load_set(dataset, data_file, cache_dir, limit)
    if not sset.reactions:
        example = sset.skipped[0][1] if sset.skipped else "-"
        _fail(
            f"no reactions to screen ({len(sset.skipped)} skipped, e.g. {example}); "
            "metadata without structures? run `screen fetch` to download the structures"
        )
    t, s, reason = _models(teacher, student)
    out = out or Path("reports") / (sset.name + ("" if mode == "single-point" else "-relax"))
    typer.echo(
        f"screening {len(sset.reactions)} reactions ({len(sset.atoms)} distinct systems) from {sset.source}; "
        f"teacher {t.label}; student {s.label if s else 'none (' + str(reason) + ')'}"
    )
    cfg = RunConfig(mode=mode, gas_energies=gas_energies, batch_atoms=batch_atoms, fmax=fmax, max_steps=max_steps,
                    threads=threads)  # fmt: skip
    cmd = "screen " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("screen") else None
    res = run_screening(sset, t, s, out, config=cfg, student_absent_reason=reason, command=cmd)
    write_report(out, formats=("png", "svg") if svg else ("png",))
    m = res["metrics"]["all"]
    typer.echo(f"reference: {res['reference']}")
    typer.echo(f"MAE teacher {m['mae_teacher']:.3f} eV" + (f", student {m['mae_student']:.3f} eV" if s else ""))
    if s and res["timing"].get("speedup"):
        typer.echo(f"speedup {res['timing']['speedup']:.2f}x")
    typer.echo(f"model calls: teacher {t.calls}" + (f", student {s.calls}" if s else ""))
    typer.echo(f"report: {out / 'index.html'}")


def funnel(
    dataset: DatasetOpt = None,
    data_file: DataFileOpt = None,
    cache_dir: CacheOpt = None,
    generate: Annotated[
        int | None, typer.Option("--generate", help="Screen N generated candidates (ChemicalSpace) instead.")
    ] = None,
    elements: Annotated[str, typer.Option("--elements", help="Elements for --generate.")] = "Pt,Pd,Cu,Ni,Au,Ag",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    teacher: TeacherOpt = "sevennet-0",
    student: StudentOpt = "auto",
    fraction: Annotated[float, typer.Option("--fraction", help="Share re-evaluated by the teacher.")] = 0.2,
    target: Annotated[float | None, typer.Option("--target", help="Target ΔE, eV (score |ΔE − target|).")] = None,
    window: Annotated[
        float | None, typer.Option("--window", help="Re-evaluate |ΔE_student − target| ≤ window eV.")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="k for the recall of the teacher's top-k.")] = 5,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Teacher on all candidates for recall.")] = True,
    limit: LimitOpt = None,
    out: Annotated[Path | None, typer.Option("--out")] = None,
    gas_energies: GasOpt = "teacher",
    batch_atoms: BatchOpt = 256,
    threads: ThreadsOpt = 1,
) -> None:
    """Hierarchical screening: the student scores all candidates, the teacher re-ranks the best fraction (or
    those within --window of --target); reports recall of the teacher's top-k and the compute saved."""
    import torch

    from calculators.parsing import split_list
    from screening.funnel import run_funnel
    from screening.reactions import generated_set
    from screening.report import write_report
    from screening.runner import RunConfig, run_screening

    _check("single-point", gas_energies)
    torch.set_num_threads(threads)
    if generate is not None:
        sset = generated_set(split_list(elements), generate, seed=seed)
    else:
        sset = _load_set(dataset, data_file, cache_dir, limit)
    if not sset.reactions:
        _fail("no candidates")
    t, s, reason = _models(teacher, student, need_student=True)
    out = out or Path("reports") / f"funnel-{sset.name}"
    cfg = RunConfig(gas_energies=gas_energies, batch_atoms=batch_atoms, threads=threads)
    try:
        res = run_funnel(sset, t, s, out, fraction=None if window is not None else fraction, target=target,
                         window=window, top_k=top_k, verify=verify, config=cfg)  # fmt: skip
    except ValueError as err:
        _fail(str(err))
    if verify:  # every energy is cached now: the full comparison costs no model call
        run_screening(sset, t, s, out, config=cfg, student_absent_reason=reason)
    write_report(out)
    typer.echo(
        f"{res['candidates']} candidates, teacher re-evaluated {res['re_evaluated']} "
        f"({res['teacher_structures_funnel']}/{res['teacher_structures_all']} structures)"
    )
    if "recall_at_k" in res:
        typer.echo(f"recall of teacher top-{top_k}: {res['recall_at_k']:.2f}")
    if res.get("compute_saved_share") is not None:
        typer.echo(f"compute saved: {res['compute_saved_share']:.0%}")
    typer.echo(f"report: {out / 'index.html'}")


def report(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by `screen run` or `screen funnel`.")],
    svg: FormatsOpt = False,
    dpi: Annotated[int, typer.Option("--dpi")] = 100,
) -> None:
    """Regenerate figures and tables of a run from its saved results (no model is loaded)."""
    from screening.report import write_report

    try:
        files = write_report(run_dir, formats=("png", "svg") if svg else ("png",), dpi=dpi)
    except FileNotFoundError as err:
        _fail(str(err))
    typer.echo(f"wrote {len(files)} files to {run_dir}")
