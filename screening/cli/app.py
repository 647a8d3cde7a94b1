"""`screen` console command: fetch datasets, build structures, run screenings, write reports.

Each subcommand lives in its own module and imports heavy dependencies (torch, ase) inside the command body,
so `screen --help` stays fast.
"""

from __future__ import annotations

import typer

from screening.cli.build import build
from screening.cli.fetch import fetch
from screening.cli.run import funnel, report, run

app = typer.Typer(
    name="screen",
    help="Screen catalysts with distilled GemNet-OC students and their teachers.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    """Screen catalysts with distilled GemNet-OC students and their teachers."""


app.command("fetch")(fetch)
app.command("build")(build)
app.command("run")(run)
app.command("funnel")(funnel)
app.command("report")(report)
