"""The `distill` app: model presets, structures, teacher labels, training, pruning, evaluation, ablation and
checkpoint inspection. One module per subcommand; each imports torch and the library inside the command, so
`distill --help` stays fast."""

from __future__ import annotations

import typer

from calculators.cli.common import CommandGroup, DebugOpt, set_debug
from distill.cli.ablate import ablate_cmd
from distill.cli.evaluate import evaluate_cmd
from distill.cli.generate import generate
from distill.cli.info import info
from distill.cli.label import label
from distill.cli.make_student import make_student_cmd
from distill.cli.presets import presets
from distill.cli.prune import prune_cmd
from distill.cli.train import train_cmd

app = typer.Typer(
    name="distill",
    help="Distil a large GemNet-OC teacher into a compact, fast student.",
    no_args_is_help=True,
    add_completion=False,
    cls=CommandGroup,
)


@app.callback()
def _main(ctx: typer.Context, debug: bool = DebugOpt) -> None:
    """Distil a large GemNet-OC teacher into a compact, fast student.

    Errors print one line; --debug shows full tracebacks."""
    set_debug(ctx, debug)


app.command("presets")(presets)
app.command("generate")(generate)
app.command("label")(label)
app.command("train")(train_cmd)
app.command("prune")(prune_cmd)
app.command("evaluate")(evaluate_cmd)
app.command("ablate")(ablate_cmd)
app.command("info")(info)
app.command("make-student")(make_student_cmd)
