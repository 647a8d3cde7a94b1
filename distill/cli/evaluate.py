"""`distill evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from distill.cli.options import AdsorptionOpt, ReadCacheOpt, TeacherOpt, fail


def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Student checkpoint.")],
    cache: ReadCacheOpt,
    adsorption: AdsorptionOpt = 0,
    teacher: TeacherOpt = "sevennet-0",
) -> None:
    """Energy/force MAE against cached labels and adsorption-energy Spearman against the teacher on held-out systems."""
    from distill.evaluate import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(checkpoint, cache, adsorption=adsorption, teacher=teacher)
    except (FileNotFoundError, KeyError, ValueError) as err:
        fail(str(err))
    typer.echo(json.dumps(result, indent=2))
