"""Ablation of the distillation losses: the same student, budget and seed, one loss combination per variant.

Each variant trains in `work_dir/<slug>/` (resumable) and its held-out metrics land in
`out_dir/results/<slug>.json`; `write_table` assembles `ablation.csv` and `ablation.md` from all results present,
so variants may run in separate processes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from calculators.loading import load_model
from calculators.stats import spearman
from distill.data import heldout_adsorption_systems
from distill.evaluate import adsorption_energies, evaluate_records, teacher_adsorption_energies
from distill.labels import LabelCache
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


def run_ablation(
    base: TrainConfig,
    train_cache: str | Path,
    test_cache: str | Path,
    out_dir: str | Path,
    work_dir: str | Path,
    *,
    variants: Sequence[str] = (),
    adsorption: int = 40,
    teacher: str = "sevennet-0",
    note: str = "",
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run `variants` (default: all of VARIANTS) on the label caches and write the tables; returns the rows.

    With `adsorption` > 0 the teacher's adsorption energies of that many held-out systems are the Spearman
    reference, computed once and kept in `out_dir/teacher_adsorption.json`. `on_row(row)` follows progress.
    """
    names = list(variants) or list(VARIANTS)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    labels = LabelCache(train_cache)
    train_records, test_records = labels.records(), LabelCache(test_cache).records()
    out = Path(out_dir)
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
    for name in names:
        row = run_variant(
            name, base, train_records, test_records, out, work_dir,
            adsorption_systems=systems, teacher_ads=reference, metadata=labels.provenance,
        )  # fmt: skip
        if on_row is not None:
            on_row(row)
    return write_table(out, note)
