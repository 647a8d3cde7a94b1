"""The `python -m calculators.cli` app: one subcommand per module of this package."""

from __future__ import annotations

from calculators.cli.common import make_app
from calculators.cli.models import download, list_models

app = make_app(
    "python -m calculators.cli",
    "The model registry: list the registered models, download a checkpoint.",
    {
        "list": list_models,
        "download": download,
    },
)
