"""Ablation of the distillation losses: the same student, budget and seed, one loss combination per variant.

Each variant trains in `work_dir/<slug>/` (resumable) and its held-out metrics land in
`out_dir/results/<slug>.json`; `write_table` assembles `ablation.csv` and `ablation.md` from all results present,
so variants may run in separate processes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from calculators.loading import load_model
from calculators.stats import spearman
from distill.evaluate import adsorption_energies, evaluate_records
from distill.train import TrainConfig, train

VARIANTS: dict[str, dict[str, Any]] = {
    "task-only": {},
    "+n2n": {"n2n": 1.0},
    "+FORK": {"fork": 10.0},
    "+FORK+n2n": {"fork": 10.0, "n2n": 1.0},
    "+Hessian": {"hessian": 0.05},
    "+atomic+Hessian": {"atomic": 0.1, "hessian": 0.05},
}


def slug(name: str) -> str:
    return name.replace("+", "plus_").replace("-", "_")


def run_variant(
    name: str,
    base: TrainConfig,
    train_records: Sequence[dict],
    test_records: Sequence[dict],
    out_dir: str | Path,
    work_dir: str | Path,
    *,
    adsorption_systems: Sequence[Any] = (),
    teacher_ads: Sequence[float] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one variant; returns (and writes) its row."""
    losses = replace(base.losses, **VARIANTS[name])
    cfg = replace(base, losses=losses)
    summary = train(cfg, train_records, Path(work_dir) / slug(name), metadata=metadata)
    model = load_model(summary["student"])
    test = evaluate_records(model, test_records)
    row: dict[str, Any] = {
        "variant": name,
        "energy_mae_meV_per_atom": 1000 * test["energy_mae_per_atom"],
        "force_mae_meV_per_A": 1000 * test["force_mae"],
        "adsorption_spearman": float("nan"),
        "steps": summary["steps"],
        "train_seconds": round(summary["seconds"], 1),
        "val_energy_mae_meV_per_atom": 1000 * summary["validation"].get("energy_mae_per_atom", float("nan")),
        "val_force_mae_meV_per_A": 1000 * summary["validation"].get("force_mae", float("nan")),
        "losses": json.dumps(VARIANTS[name]),
        "checkpoint": summary["student"],
    }
    if adsorption_systems and teacher_ads is not None:
        row["adsorption_spearman"] = spearman(adsorption_energies(model, adsorption_systems), teacher_ads)
    res = Path(out_dir) / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / f"{slug(name)}.json").write_text(json.dumps(row, indent=2))
    return row


def write_table(out_dir: str | Path, note: str = "") -> list[dict[str, Any]]:
    """Collect `results/*.json` into `ablation.csv` and `ablation.md` (variants in the order of VARIANTS)."""
    out = Path(out_dir)
    rows = [json.loads(p.read_text()) for p in (out / "results").glob("*.json")]
    order = list(VARIANTS)
    rows.sort(key=lambda r: order.index(r["variant"]) if r["variant"] in order else len(order))
    if not rows:
        return rows
    cols = ["variant", "energy_mae_meV_per_atom", "force_mae_meV_per_A", "adsorption_spearman", "steps",
            "train_seconds", "val_energy_mae_meV_per_atom", "val_force_mae_meV_per_A", "losses"]  # fmt: skip
    with (out / "ablation.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = [
        "# Distillation ablation",
        "",
        note,
        "",
        "| variant | energy MAE (meV/atom) | force MAE (meV/Å) | E_ads Spearman | steps | train s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['energy_mae_meV_per_atom']:.1f} | {r['force_mae_meV_per_A']:.1f} | "
            f"{r['adsorption_spearman']:.3f} | {r['steps']} | {r['train_seconds']:.0f} |"
        )
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    return rows
