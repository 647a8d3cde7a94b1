"""`distill presets`."""

from __future__ import annotations

import typer


def presets() -> None:
    """List the GemNet-OC presets with their parameter counts and graph settings."""
    from calculators.gemnet import PRESETS, count_parameters, preset

    typer.echo(f"{'preset':34s} {'parameters':>12s}  blocks  atom/edge  cutoff  max_nb  quad  forces")
    for name in PRESETS:
        cfg = preset(name)
        n, _ = count_parameters(cfg)
        forces = "direct" if cfg.direct_forces else "-dE/dx"
        typer.echo(
            f"{name:34s} {n:>12,d}  {cfg.num_blocks:6d}  {cfg.emb_size_atom:4d}/{cfg.emb_size_edge:<4d}  "
            f"{cfg.cutoff:5.1f}  {cfg.max_neighbors:6d}  {str(cfg.quad_interaction):5s} {forces}"
        )
