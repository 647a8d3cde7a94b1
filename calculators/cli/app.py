"""The `python -m calculators.cli` app: one subcommand per module of this package."""

from __future__ import annotations

import typer

from calculators.cli.common import CommandGroup, DebugOpt, set_debug
from calculators.cli.models import download, list_models

app = typer.Typer(
    name="python -m calculators.cli",
    help="The model registry: list the registered models, download a checkpoint.",
    no_args_is_help=True,
    add_completion=False,
    cls=CommandGroup,
)


@app.callback()
def _main(ctx: typer.Context, debug: bool = DebugOpt) -> None:
    """The model registry: list the registered models, download a checkpoint. --debug shows full tracebacks."""
    set_debug(ctx, debug)


app.command("list")(list_models)
app.command("download")(download)
