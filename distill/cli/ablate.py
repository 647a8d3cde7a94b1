"""`distill ablate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def ablate_cmd(
    cache: Annotated[Path, typer.Argument(help="Training label cache.")],
    test_cache: Annotated[Path, typer.Option("--test-cache", help="Held-out label cache.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report directory.")] = Path("reports/ablation"),
    work: Annotated[Path, typer.Option(help="Directory of the training runs.")] = Path("runs/ablation"),
    config: Annotated[Path | None, typer.Option("--config", help="Base recipe (JSON/YAML).")] = None,
    variants: Annotated[str, typer.Option(help="Comma-separated variants (default: all).")] = "",
    adsorption: Annotated[int, typer.Option(help="Held-out adsorption systems for the Spearman column.")] = 40,
    teacher: Annotated[str, typer.Option(help="Teacher for the reference adsorption energies.")] = "sevennet-0",
    note: Annotated[str, typer.Option(help="Text placed above the Markdown table.")] = "",
) -> None:
    """Train one student per loss combination (same budget and seed) and write reports/ablation/ablation.{csv,md}."""
    from calculators.parsing import read_config_file, split_list
    from distill.ablation import VARIANTS, run_variant, write_table
    from distill.data import heldout_adsorption_systems
    from distill.evaluate import teacher_adsorption_energies
    from distill.labels import LabelCache
    from distill.train import TrainConfig

    base = TrainConfig.from_dict(read_config_file(config))
    names = split_list(variants) or list(VARIANTS)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise typer.BadParameter(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    labels = LabelCache(cache)
    train_records, test_records = labels.records(), LabelCache(test_cache).records()
    out.mkdir(parents=True, exist_ok=True)
    systems, reference = [], None
    if adsorption:
        systems = heldout_adsorption_systems(adsorption)
        ref_path = out / "teacher_adsorption.json"
        if ref_path.is_file() and json.loads(ref_path.read_text())["n"] == adsorption:
            reference = json.loads(ref_path.read_text())["energies"]
        else:
            reference = teacher_adsorption_energies(teacher, systems)
            ref_path.write_text(json.dumps({"n": adsorption, "teacher": teacher, "energies": reference}))
    meta = {"teacher": labels.manifest["teacher"], "label_settings": labels.manifest["settings"]}
    for name in names:
        row = run_variant(
            name, base, train_records, test_records, out, work,
            adsorption_systems=systems, teacher_ads=reference, metadata=meta,
        )  # fmt: skip
        typer.echo(json.dumps(row))
    write_table(out, note)
    typer.echo(f"wrote {out / 'ablation.csv'} and {out / 'ablation.md'}")
