"""``screen funnel``: hierarchical screening. With ``--reaction``, surfaces are screened on their limiting potential
(or binding descriptor) in stages (student, then teacher, then DFT where the set has it); without, reactions are
ranked by raw ΔE within each adsorbate, and the teacher re-ranks the student's best ones."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from calculators.cli.common import SchedulerOpt, WorkersOpt, error_text, executor_flags, existing_file, finite
from screening.cli.options import (
    MAX_STRAIN_PERCENT,
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
    SeedOpt,
    StudentOpt,
    SvgOpt,
    TeacherOpt,
    ThreadsOpt,
    fail,
    parse_strains,
)

if TYPE_CHECKING:
    from screening.reactions import ScreenSet

# Options that only one kind of funnel reads: given elsewhere they would be silently ignored, so they are refused.
ONLY_WITH_GENERATE = ("elements", "prototypes", "strains", "adsorbates")
NOT_WITH_GENERATE = ("dataset", "data_file", "cache_dir", "limit")
ONLY_WITH_REACTION = ("stages", "reaction_table", "sites", "strains", "adsorbates", "force_scaling")
NOT_WITH_REACTION = ("fraction", "target", "window")


def option_conflicts(ctx: typer.Context, *, reaction: bool, generate: bool) -> str | None:
    """One line naming the options given on the command line that this kind of funnel would ignore (None when
    there are none): data-source options with --generate, generator options without it, stage options without
    --reaction and raw-ΔE selection options with it."""
    flags = {p.name: (p.opts[0] if p.opts else p.name) for p in ctx.command.params}
    sources = {n: ctx.get_parameter_source(n) for n in ctx.params}  # click's ParameterSource (typer vendors click)
    given = {n for n, src in sources.items() if src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")}

    def named(names: tuple[str, ...]) -> str | None:
        hit = [flags[n] for n in names if n in given]
        return ", ".join(hit) if hit else None

    if generate and (hit := named(NOT_WITH_GENERATE)):
        return f"--generate screens generated candidates, not a dataset: drop {hit}"
    if reaction and (hit := named(NOT_WITH_REACTION)):
        return f"{hit}: raw-ΔE selection, not used with --reaction (its stages select: --stages)"
    if not reaction and (hit := named(ONLY_WITH_REACTION)):
        return f"{hit}: only used with --reaction (the reaction-aware funnel)"
    if not generate and (hit := named(ONLY_WITH_GENERATE)):
        return f"{hit}: only used with --generate (generated candidates)"
    return None


def screen_set_with_structures(
    dataset: str | None, data_file: Path | None, cache_dir: Path | None, limit: int | None
) -> ScreenSet:
    """What a funnel screens without --generate: the built-in set, or a dataset's reactions with structures.
    `ScreenSetError` in one line when the dataset has no reactions or only metadata (no structures): the funnel
    screens structures, and only `screen run --structures rebuild` rebuilds them from metadata."""
    from screening.reactions import ScreenSetError, from_dataset, load_reaction_dataset, load_screen_set
    from screening.rebuild import choose_structures

    if dataset is None and data_file is None:
        return load_screen_set(None, None, limit=limit)
    ds = load_reaction_dataset(dataset, data_file, cache_dir=cache_dir)
    if choose_structures(ds, "auto")[0] == "rebuild":
        where = f"--data-file {data_file}" if data_file is not None else f"--dataset {dataset}"
        pub = dataset or next((r.pub_id for r in ds.reactions if r.pub_id), None)
        fetch = f"`screen fetch --dataset {pub}` downloads the structures, " if pub else ""
        raise ScreenSetError(
            f"{ds.name} has no structures (metadata only, {len(ds.reactions) + len(ds.invalid)} reactions): the "
            f"funnel screens structures; `screen run {where} --structures rebuild` screens it from its metadata, "
            f"{fetch}or use --generate N"
        )
    return from_dataset(ds).limit(limit)


def funnel(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    data_file: DataFileOpt = None,
    cache_dir: CacheDirOpt = None,
    reaction: Annotated[
        str | None,
        typer.Option(
            "--reaction",
            help="orr | oer | her | co2rr | nrr (or a reaction of --reaction-table): screen surfaces on the limiting "
            "potential (or binding descriptor) instead of raw ΔE.",
        ),
    ] = None,
    stages: Annotated[
        str | None,
        typer.Option(
            "--stages",
            help="With --reaction: ROLE:THRESHOLD,... in order, ROLE student | teacher | dft (the set's DFT). "
            "Default: the reaction's (orr: student:0.0,teacher:0.5, on U_L in V).",
        ),
    ] = None,
    reaction_table: Annotated[
        Path | None,
        typer.Option(
            "--reaction-table", help="JSON/YAML table merged over the shipped reactions.json.", callback=existing_file
        ),
    ] = None,
    generate: Annotated[
        int | None,
        typer.Option(
            "--generate",
            min=1,
            help="Screen N generated candidates (ChemicalSpace) instead; with --reaction, N distinct surfaces.",
        ),
    ] = None,
    elements: Annotated[str, typer.Option("--elements", help="Elements for --generate.")] = "Pt,Pd,Cu,Ni,Au,Ag",
    prototypes: Annotated[str, typer.Option("--prototypes", help="Prototypes for --generate.")] = "fcc,L12,B2",
    strains: Annotated[
        str,
        typer.Option(
            "--strains",
            help=f"With --reaction --generate: biaxial strains (%, within ±{MAX_STRAIN_PERCENT:g}) to draw from.",
        ),
    ] = "-2,0,2",
    sites: Annotated[
        int,
        typer.Option(
            "--sites",
            min=1,
            help="With --reaction: sites per adsorbate of generated surfaces and of a binding reaction's reference "
            "surface (each model uses its best).",
        ),
    ] = 2,
    adsorbates: Annotated[
        str | None,
        typer.Option(
            "--adsorbates",
            help="With --reaction --generate: adsorbates to compute (default: the reaction's required ones; add "
            "OOH to compute it instead of using the scaling).",
        ),
    ] = None,
    force_scaling: Annotated[
        bool, typer.Option("--force-scaling", help="Use the table's scaling (OOH from OH) even where computed.")
    ] = False,
    seed: SeedOpt = 0,
    teacher: TeacherOpt = "sevennet-0",
    student: StudentOpt = "auto",
    mode: ModeOpt = "single-point",
    fmax: FmaxOpt = 0.05,
    max_steps: MaxStepsOpt = 300,
    fraction: Annotated[
        float,
        typer.Option(
            "--fraction",
            help="Raw ΔE: share of each adsorbate re-evaluated by the teacher.",
            callback=finite(low=0, high=1, low_open=True),
        ),
    ] = 0.2,
    target: Annotated[
        float | None,
        typer.Option("--target", help="Raw ΔE: target, eV (score |ΔE − target|).", callback=finite(optional=True)),
    ] = None,
    window: Annotated[
        float | None,
        typer.Option(
            "--window",
            help="Raw ΔE: re-evaluate |ΔE_student − target| ≤ window eV.",
            callback=finite(low=0, optional=True),
        ),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="k for the recall of the teacher's top-k.")] = 5,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Teacher on all candidates for recall.")] = True,
    limit: LimitOpt = None,
    out: OutOpt = None,
    gas_energies: GasOpt = "teacher",
    batch_atoms: BatchAtomsOpt = 256,
    threads: ThreadsOpt = 1,
    svg: SvgOpt = False,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Hierarchical screening: the student screens every candidate, the teacher the ones that pass.

    With --reaction: per surface, each model's most stable computed site per adsorbate → CHE free energies →
    limiting potential U_L and overpotential (or |ΔG − target|) → --stages thresholds; reports the funnel, volcano,
    student-vs-teacher confusion matrix, recall of the teacher's shortlist and the compute saved. Without: raw ΔE
    ranked within each adsorbate (never across adsorbates); the teacher re-ranks the best --fraction (or --window)."""
    import torch

    from calculators.distributed import dask_executor
    from calculators.files import LockedError
    from calculators.parsing import split_list
    from screening.evaluators import resolve_models
    from screening.reactions import ScreenSetError, generated_set
    from screening.results import check_run_kind, run_lock
    from screening.runner import RunConfig

    conflict = option_conflicts(ctx, reaction=reaction is not None, generate=generate is not None)
    if conflict:
        fail(conflict)
    if window is not None and target is None:
        fail("--window needs --target")
    executor_flags(workers, scheduler)
    torch.set_num_threads(threads)
    formats = ("png", "svg") if svg else ("png",)
    cmd = "screen " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("screen") else None
    try:
        cfg = RunConfig(mode=mode, gas_energies=gas_energies, batch_atoms=batch_atoms, fmax=fmax, max_steps=max_steps,
                        threads=threads)  # fmt: skip
        if reaction is not None:
            from screening.descriptors import load_table, parse_stages, stricter_stages
            from screening.descriptors.surfaces import candidates_from_set, generate_candidates
            from screening.reaction_funnel import reaction_funnel_and_report

            strain_list = parse_strains(strains)
            table = load_table(reaction_table)
            rx = table.reaction(reaction)
            stage_list = parse_stages(stages or rx.stages)
            for why in stricter_stages(stage_list, rx.better):
                typer.echo(f"note: {why}")
            if generate is not None:
                cset = generate_candidates(
                    rx, table, split_list(elements), generate, seed=seed, sites=sites,
                    adsorbates=split_list(adsorbates) or None, prototypes=split_list(prototypes), strains=strain_list,
                )  # fmt: skip
                for _id, why in (x for x in cset.skipped if x[0] == "generate"):
                    typer.echo(f"note: {why}")
            else:
                cset = candidates_from_set(
                    screen_set_with_structures(dataset, data_file, cache_dir, limit), rx, table, sites=sites
                )
            need = list(rx.required)
            optional = [a for a in rx.adsorbates if a not in need]
            extra = f" ({', '.join(a + '*' for a in optional)} optional)" if optional else ""
            if not cset.surfaces:
                fail(
                    f"no surfaces to screen for {rx.name}: {cset.name} has no adsorption reactions of "
                    f"{', '.join(a + '*' for a in rx.adsorbates)}; {rx.name} needs {', '.join(a + '*' for a in need)}"
                    + extra
                )
            if not any(set(need) <= s.adsorbates for s in cset.surfaces):
                fail(
                    f"no surface of {cset.name} has all of {', '.join(a + '*' for a in need)} that {rx.name} needs"
                    f"{extra} ({len(cset.surfaces)} surfaces have some)"
                )
            out = out or Path("reports") / f"funnel-{rx.name}-{cset.name}"
            check_run_kind(out, "reaction")
            out.mkdir(parents=True, exist_ok=True)
            with run_lock(out):  # a second run into this folder stops here, before loading models
                t, s, _ = resolve_models(teacher, None if student == "auto" else student, need_student=True)
                typer.echo(
                    f"{rx.name}: {len(cset.surfaces)} surfaces ({sum(len(x.candidates) for x in cset.surfaces)} "
                    f"adsorbate–site candidates), stages {', '.join(f'{x.role}:{x.threshold:g}' for x in stage_list)}"
                    f", mode {mode}"
                )
                with dask_executor(workers, scheduler):
                    res = reaction_funnel_and_report(
                        cset, rx, table, t, s, out, stages=stage_list, verify=verify, top_k=top_k,
                        force_scaling=force_scaling, config=cfg, command=cmd, formats=formats,
                    )  # fmt: skip
            for st in res["stages"]:
                typer.echo(f"  {st['stage']} ({st['rule']}): {st['entered']} in, {st['passed']} pass")
            cmp = res.get("comparison", {})
            if cmp.get("recall_teacher_shortlist") is not None:
                typer.echo(
                    f"recall of the teacher's shortlist by the student stage: {cmp['recall_teacher_shortlist']:.2f}"
                )
            if res["compute"].get("compute_saved_share") is not None:
                typer.echo(f"compute saved: {res['compute']['compute_saved_share']:.0%}")
            if res.get("excluded"):
                typer.echo(
                    f"{len(res['excluded'])} candidate(s) excluded (failed or non-finite energies, see "
                    "reaction_skipped.csv)"
                )
            typer.echo(f"shortlist: {len(res['shortlist'])} surfaces")
            typer.echo(f"report: {out / 'index.html'}")
            return
        from screening.funnel import funnel_and_report

        if generate is not None:
            sset = generated_set(split_list(elements), generate, seed=seed, prototypes=split_list(prototypes))
            for _id, why in (x for x in sset.skipped if x[0] == "generate"):
                typer.echo(f"note: {why}")
        else:
            sset = screen_set_with_structures(dataset, data_file, cache_dir, limit)
        if not sset.reactions:
            example = sset.skipped[0][1] if sset.skipped else "-"
            fail(f"no candidates to screen in {sset.name} ({len(sset.skipped)} skipped, e.g. {example})")
        out = out or Path("reports") / f"funnel-{sset.name}"
        check_run_kind(out, "funnel")
        out.mkdir(parents=True, exist_ok=True)
        with run_lock(out):  # a second run into this folder stops here, before loading models
            t, s, _ = resolve_models(teacher, None if student == "auto" else student, need_student=True)
            with dask_executor(workers, scheduler):
                res = funnel_and_report(sset, t, s, out, fraction=fraction, target=target, window=window,
                                        top_k=top_k, verify=verify, config=cfg)  # fmt: skip
    except (FileNotFoundError, KeyError, ValueError, ScreenSetError, LockedError, OSError) as err:
        fail(error_text(err))
    typer.echo(
        f"{res['candidates']} candidates, teacher re-evaluated {res['re_evaluated']} "
        f"({res['teacher_structures_funnel']}/{res['teacher_structures_all']} structures), ranked per adsorbate"
    )
    if "recall_at_k" in res:
        typer.echo(f"recall of teacher top-{top_k} (per adsorbate, pooled): {res['recall_at_k']:.2f}")
    if res.get("excluded"):
        typer.echo(f"{len(res['excluded'])} candidate(s) excluded (failed or non-finite energies, see funnel.csv)")
    if res.get("compute_saved_share") is not None:
        typer.echo(f"compute saved: {res['compute_saved_share']:.0%}")
    typer.echo(f"report: {out / 'index.html'}")
