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


@app.command("presets")
def presets() -> None:
    """List the GemNet-OC presets with their parameter counts and graph settings."""
    from distill.gemnet import PRESETS, count_parameters, preset

    typer.echo(f"{'preset':34s} {'parameters':>12s}  blocks  atom/edge  cutoff  max_nb  quad  forces")
    for name in PRESETS:
        cfg = preset(name)
        n, _ = count_parameters(cfg)
        forces = "direct" if cfg.direct_forces else "-dE/dx"
        typer.echo(
            f"{name:34s} {n:>12,d}  {cfg.num_blocks:6d}  {cfg.emb_size_atom:4d}/{cfg.emb_size_edge:<4d}  "
            f"{cfg.cutoff:5.1f}  {cfg.max_neighbors:6d}  {str(cfg.quad_interaction):5s} {forces}"
        )


def _register() -> None:
    from distill.commands.ablate import ablate_cmd
    from distill.commands.data import generate, label
    from distill.commands.evaluate import evaluate_cmd
    from distill.commands.make_student import make_student_cmd
    from distill.commands.prune import prune_cmd
    from distill.commands.train import train_cmd

    app.command("generate")(generate)
    app.command("label")(label)
    app.command("train")(train_cmd)
    app.command("prune")(prune_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("ablate")(ablate_cmd)
    app.command("make-student")(make_student_cmd)


_register()


if __name__ == "__main__":
    app()
