"""`distill ablate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import output_dir
from distill.cli.options import AdsorptionOpt, RecipeOpt, TeacherOpt, fail


def ablate_cmd(
    cache: Annotated[Path, typer.Argument(help="Training label cache.")],
    test_cache: Annotated[Path, typer.Option("--test-cache", help="Held-out label cache.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report directory.", callback=output_dir)] = Path(
        "reports/ablation"
    ),
    work: Annotated[Path, typer.Option("--work", help="Directory of the training runs.", callback=output_dir)] = Path(
        "runs/ablation"
    ),
    config: RecipeOpt = None,
    variants: Annotated[str, typer.Option("--variants", help="Comma-separated variants (default: all).")] = "",
    adsorption: AdsorptionOpt = 40,
    teacher: TeacherOpt = "sevennet-0",
    note: Annotated[str, typer.Option("--note", help="Text placed above the Markdown table.")] = "",
) -> None:
    """Train one student per loss combination (same budget and seed) and write reports/ablation/ablation.{csv,md}."""
    from calculators.parsing import read_config_file, split_list
    from distill.ablation import run_ablation
    from distill.train import TrainConfig

    try:
        base = TrainConfig.from_dict(read_config_file(config))
        run_ablation(
            base, cache, test_cache, out, work, variants=split_list(variants), adsorption=adsorption,
            teacher=teacher, note=note, on_row=lambda row: typer.echo(json.dumps(row)),
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    typer.echo(f"wrote {out / 'ablation.csv'} and {out / 'ablation.md'}")
