"""`distill evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Student checkpoint.")],
    cache: Annotated[Path, typer.Option("--cache", "-c", help="Held-out label cache.")],
    adsorption: Annotated[int, typer.Option(help="Held-out adsorption systems for the Spearman check (0: skip).")] = 0,
    teacher: Annotated[str, typer.Option(help="Teacher for reference adsorption energies.")] = "sevennet-0",
) -> None:
    """Energy/force MAE against cached labels and adsorption-energy Spearman against the teacher on held-out systems."""
    from calculators.loading import load_model
    from distill.evaluate import evaluate_records, heldout_spearman
    from distill.labels import LabelCache

    model = load_model(checkpoint)
    result = evaluate_records(model, LabelCache(cache).records())
    if adsorption:
        result["adsorption_spearman"] = heldout_spearman(model, teacher, adsorption)
    typer.echo(json.dumps(result, indent=2))
