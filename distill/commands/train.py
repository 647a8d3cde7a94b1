"""`distill train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


def read_config(path: Path | None) -> dict[str, Any]:
    """A training recipe from JSON or YAML (keys of `distill.train.TrainConfig`, "losses" a dict of LossConfig)."""
    if path is None:
        return {}
    text = Path(path).read_text()
    if Path(path).suffix in (".yml", ".yaml"):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


def train_cmd(
    cache: Annotated[list[Path], typer.Argument(help="Label cache directories (`distill label`), one teacher.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (resumes from its state.pt).")],
    config: Annotated[Path | None, typer.Option("--config", help="Recipe file (JSON or YAML).")] = None,
    val_cache: Annotated[Path | None, typer.Option(help="Separate validation cache (else a split).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Override max_steps.")] = None,
    device: Annotated[str | None, typer.Option(help="Override device (cpu | cuda).")] = None,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Start over even if out/state.pt exists.")] = False,
) -> None:
    """Train a student on cached teacher labels; the recipe is recorded in the output checkpoint."""
    from distill.labels import LabelCache
    from distill.train import TrainConfig, train

    values = read_config(config)
    if max_steps is not None:
        values["max_steps"] = max_steps
    if device is not None:
        values["device"] = device
    cfg = TrainConfig.from_dict(values)
    caches = [LabelCache(c) for c in cache]
    teachers = [c.manifest["teacher"] for c in caches]
    if any(t != teachers[0] for t in teachers):
        typer.echo(f"error: the label caches {[str(c) for c in cache]} were made by different teachers", err=True)
        raise typer.Exit(2)
    records = [r for c in caches for r in c.records()]
    val = LabelCache(val_cache).records() if val_cache else None
    meta = {
        "teacher": teachers[0],
        "label_settings": caches[0].manifest["settings"],
        "label_caches": [{"path": str(c.path), "structures": c.manifest["num_structures"]} for c in caches],
    }
    try:
        result = train(cfg, records, out, val_records=val, metadata=meta, resume=not no_resume)
    except KeyboardInterrupt:
        typer.echo(f"interrupted: rerun the same command to resume from {out / 'state.pt'}", err=True)
        raise typer.Exit(130) from None
    typer.echo(json.dumps(result, indent=2))
