"""`distill train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import device as check_device
from calculators.cli.common import output_dir
from distill.cli.options import RecipeOpt, fail


def train_cmd(
    cache: Annotated[list[Path], typer.Argument(help="Label cache directories (`distill label`), one teacher.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output directory (resumes from its state.pt).", callback=output_dir)
    ],
    config: RecipeOpt = None,
    val_cache: Annotated[
        Path | None, typer.Option("--val-cache", help="Separate validation cache (else a split).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Override max_steps.")] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="Override device (cpu | cuda).", callback=check_device)
    ] = None,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Start over even if out/state.pt exists.")] = False,
) -> None:
    """Train a student on cached teacher labels; the recipe is recorded in the output checkpoint.

    Data-parallel on several processes or GPUs: `torchrun --nproc_per_node N -m distill.cli train ...`."""
    from calculators.parsing import read_config_file
    from distill.labels import LabelCache, describe_teacher, same_teacher
    from distill.pairs import records_with_pairs
    from distill.train import TrainConfig, train

    overrides = {k: v for k, v in (("max_steps", max_steps), ("device", device)) if v is not None}
    try:
        cfg = TrainConfig.from_dict(read_config_file(config) | overrides)
        caches = [LabelCache(c) for c in cache] + ([LabelCache(val_cache)] if val_cache else [])
        provenance = [c.provenance for c in caches]
        for c, p in zip(caches[1:], provenance[1:], strict=True):
            if not same_teacher(p["teacher"], provenance[0]["teacher"]):
                fail(
                    f"{c.path} was labelled by {describe_teacher(p['teacher'])}, {caches[0].path} by "
                    f"{describe_teacher(provenance[0]['teacher'])}: a student learns from one teacher"
                )
        if val_cache:
            caches = caches[:-1]
        # every chunk verified, incomplete caches refused; adsorbate-removal pairs attached where labelled
        records = [r for c in caches for r in records_with_pairs(c.path)]
        val = LabelCache(val_cache).records() if val_cache else None
        meta = {
            **provenance[0],
            "label_caches": [{"path": str(c.path), "structures": c.manifest["num_structures"]} for c in caches],
        }
        result = train(cfg, records, out, val_records=val, metadata=meta, resume=not no_resume)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail(f"interrupted: rerun the same command to resume from {out / 'state.pt'}", 130)
    typer.echo(json.dumps(result, indent=2))
