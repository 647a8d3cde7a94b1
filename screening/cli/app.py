"""The `screen` app: fetch datasets, build structures, run screenings, write reports. One module per subcommand;
each imports its heavy dependencies inside the command, so `screen --help` stays fast."""

from __future__ import annotations

from calculators.cli.common import make_app
from screening.cli.build import build
from screening.cli.fetch import fetch
from screening.cli.funnel import funnel
from screening.cli.report import report
from screening.cli.run import run

app = make_app(
    "screen",
    "Screen catalysts with distilled GemNet-OC students and their teachers.",
    {
        "fetch": fetch,
        "build": build,
        "run": run,
        "funnel": funnel,
        "report": report,
    },
)
