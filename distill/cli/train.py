"""`distill train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from distill.cli.options import RecipeOpt, fail


def train_cmd(
    cache: Annotated[Path, typer.Argument(help="Label cache directory (`distill label`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (resumes from its state.pt).")],
    config: RecipeOpt = None,
    val_cache: Annotated[
        Path | None, typer.Option("--val-cache", help="Separate validation cache (else a split).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Override max_steps.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="Override device (cpu | cuda).")] = None,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Start over even if out/state.pt exists.")] = False,
) -> None:
    """Train a student on cached teacher labels; the recipe is recorded in the output checkpoint."""
    from calculators.parsing import read_config_file
    from distill.labels import LabelCache
    from distill.train import TrainConfig, train

    overrides = {k: v for k, v in (("max_steps", max_steps), ("device", device)) if v is not None}
    try:
        cfg = TrainConfig.from_dict(read_config_file(config) | overrides)
        labels = LabelCache(cache)
        val = LabelCache(val_cache).records() if val_cache else None
        result = train(cfg, labels.records(), out, val_records=val, metadata=labels.provenance, resume=not no_resume)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail(f"interrupted: rerun the same command to resume from {out / 'state.pt'}", 130)
    typer.echo(json.dumps(result, indent=2))
