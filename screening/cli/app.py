"""The `screen` app: fetch datasets, build structures, run screenings, write reports. One module per subcommand;
each imports its heavy dependencies inside the command, so `screen --help` stays fast."""

from __future__ import annotations

import typer

from calculators.cli.common import CommandGroup, DebugOpt, set_debug
from screening.cli.build import build
from screening.cli.fetch import fetch
from screening.cli.funnel import funnel
from screening.cli.report import report
from screening.cli.run import run

app = typer.Typer(
    name="screen",
    help="Screen catalysts with distilled GemNet-OC students and their teachers.",
    no_args_is_help=True,
    add_completion=False,
    cls=CommandGroup,
)


@app.callback()
def _main(ctx: typer.Context, debug: bool = DebugOpt) -> None:
    """Screen catalysts with distilled GemNet-OC students and their teachers.

    Errors print one line; --debug shows full tracebacks."""
    set_debug(ctx, debug)


app.command("fetch")(fetch)
app.command("build")(build)
app.command("run")(run)
app.command("funnel")(funnel)
app.command("report")(report)
