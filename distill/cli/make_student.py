"""`distill make-student`: the whole default-student recipe in one resumable command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import output_dir
from distill.cli.options import TeacherOpt


def make_student_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Working/output folder (rerun to resume).", callback=output_dir)
    ],
    teacher: TeacherOpt = "sevennet-0",
    recipe: Annotated[
        Path | None, typer.Option(help="Training recipe (default: distill/recipes/screening.yaml).")
    ] = None,
    surfaces: Annotated[int, typer.Option(min=1, help="Sampled slabs/adslabs labelled as single points.")] = 8000,
    relaxations: Annotated[int, typer.Option(min=0, help="Teacher relaxations (snapshots every 4 steps).")] = 400,
    md_runs: Annotated[int, typer.Option(min=0, help="Short teacher MD runs (600 K).")] = 120,
    long_relaxations: Annotated[
        int, typer.Option(min=0, help="Further teacher relaxations of up to 150 steps (snapshots every 5).")
    ] = 240,
    rounds: Annotated[int, typer.Option(min=0, help="On-policy rounds (student relaxes, teacher labels).")] = 1,
    onpolicy: Annotated[int, typer.Option(min=1, help="Student relaxations per on-policy round.")] = 200,
    onpolicy_steps: Annotated[int, typer.Option(min=1, help="Fine-tuning steps per on-policy round.")] = 3000,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Override the recipe's round-0 steps.")] = None,
    nproc: Annotated[int, typer.Option(min=1, help="Training processes (torchrun DDP; gloo on CPU).")] = 1,
    pairs: Annotated[
        bool, typer.Option("--pairs/--no-pairs", help="Label adsorbate-free partners for the recipe's pair loss.")
    ] = True,
) -> None:
    """Generate the screening data, label it with the teacher, train, run on-policy rounds; writes OUT/student.pt."""
    from distill.pipeline import RECIPE, PipelineConfig, make_student

    cfg = PipelineConfig(
        teacher=teacher, recipe=str(recipe or RECIPE), n_surfaces=surfaces, n_relax=relaxations, n_md=md_runs,
        n_long_relax=long_relaxations, onpolicy_rounds=rounds, n_onpolicy=onpolicy, onpolicy_steps=onpolicy_steps,
        max_steps=max_steps, nproc=nproc, pairs=pairs,
    )  # fmt: skip
    path = make_student(out, cfg)
    typer.echo(f"student: {path}")
