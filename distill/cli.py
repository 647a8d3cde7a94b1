"""`distill` console command: model presets, teacher labels, training, pruning, evaluation.

Heavy imports (torch) happen inside each command so `distill --help` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="distill",
    help="Distil a large GemNet-OC teacher into a compact, fast student.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    """Distil a large GemNet-OC teacher into a compact, fast student."""
