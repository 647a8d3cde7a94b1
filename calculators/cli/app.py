"""The `python -m calculators.cli` app: one subcommand per module of this package."""

from __future__ import annotations

import typer

from calculators.cli.models import download, list_models

app = typer.Typer(
    name="python -m calculators.cli",
    help="The model registry: list the registered models, download a checkpoint.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("list")(list_models)
app.command("download")(download)
