"""`distill train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def train_cmd(
    cache: Annotated[Path, typer.Argument(help="Label cache directory (`distill label`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (resumes from its state.pt).")],
    config: Annotated[Path | None, typer.Option("--config", help="Recipe file (JSON or YAML).")] = None,
    val_cache: Annotated[Path | None, typer.Option(help="Separate validation cache (else a split).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Override max_steps.")] = None,
    device: Annotated[str | None, typer.Option(help="Override device (cpu | cuda).")] = None,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Start over even if out/state.pt exists.")] = False,
) -> None:
    """Train a student on cached teacher labels; the recipe is recorded in the output checkpoint."""
    from calculators.parsing import read_config_file
    from distill.labels import LabelCache
    from distill.train import TrainConfig, train

    values = read_config_file(config)
    if max_steps is not None:
        values["max_steps"] = max_steps
    if device is not None:
        values["device"] = device
    cfg = TrainConfig.from_dict(values)
    labels = LabelCache(cache)
    val = LabelCache(val_cache).records() if val_cache else None
    meta = {"teacher": labels.manifest["teacher"], "label_settings": labels.manifest["settings"]}
    try:
        result = train(cfg, labels.records(), out, val_records=val, metadata=meta, resume=not no_resume)
    except KeyboardInterrupt:
        typer.echo(f"interrupted: rerun the same command to resume from {out / 'state.pt'}", err=True)
        raise typer.Exit(130) from None
    typer.echo(json.dumps(result, indent=2))
