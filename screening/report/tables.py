"""Tables of a screening run as rows (lists of dicts), written as CSV and Markdown: per-reaction results,
per-adsorbate metrics (like FORK's Table 2), speed (like its Table 6), skipped reactions, funnel summary."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from calculators.stats import spearman as _spearman
from screening.metrics import CATBENCH_CLASSES, catbench_summary, mae


def fmt(v: Any, digits: int = 3) -> str:
    """A table cell: None and non-finite floats as "—", floats to `digits` decimals, lists joined by "; "."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return "—" if not math.isfinite(v) else f"{v:.{digits}f}"
    if isinstance(v, list):
        return "; ".join(map(str, v))
    return str(v)


def reaction_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per reaction (eV)."""
    has_s = "student" in results["models"]
    notes = (results["dataset"].get("structures_info") or {}).get("reaction_notes") or {}
    out = []
    for r in results["reactions"]:
        row = {
            "id": r["id"],
            "equation": r["equation"],
            "adsorbate": r["adsorbate"],
            "surface": r["surface"],
            "facet": r["facet"],
            "site": r["site"],
            "reference_eV": r["reference"],
            "teacher_eV": r["teacher"],
            "teacher_error_eV": r["teacher_error"],
        }
        if has_s:
            row.update(student_eV=r["student"], student_error_eV=r["student_error"])
        if r.get("caveat"):
            row["caveat"] = r["caveat"]
        if notes.get(r["id"]):
            row["rebuild_note"] = notes[r["id"]]
        if r.get("excluded"):
            row["excluded"] = r["excluded"]
        if "teacher_anomalies" in r:
            row["teacher_anomalies"] = r["teacher_anomalies"]
            if has_s:
                row["student_anomalies"] = r.get("student_anomalies", [])
        out.append(row)
    return out


def adsorbate_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-adsorbate and overall metrics."""
    has_s = "student" in results["models"]
    out = []
    metrics = results["metrics"]
    for group in [k for k in metrics if k != "all"] + ["all"]:
        m = metrics[group]
        row = {
            "adsorbate": group,
            "n": m["n"],
            "MAE_teacher_eV": m["mae_teacher"],
            "spearman_teacher": m["spearman_teacher"],
        }
        if has_s:
            row.update(
                MAE_student_eV=m["mae_student"],
                dMAE_eV=m["delta_mae"],
                spearman_student=m["spearman_student"],
                spearman_student_vs_teacher=m["spearman_student_teacher"],
                student_closer_share=m["student_closer_share"],
            )
        out.append(row)
    return out


def speed_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Timing per model and the speedup (teacher ms per structure / student ms per structure)."""
    out = []
    timing = results["timing"]
    for role in ("teacher", "student"):
        if role not in timing:
            continue
        t = timing[role]
        out.append(
            {
                "model": results["models"][role]["label"],
                "parameters": results["models"][role].get("parameters", "—"),
                "structures": t["structures"],
                "batches": t["batches"],
                "ms_per_structure": t["ms_per_structure"],
                "ms_per_batch": t["ms_per_batch"],
                "ms_per_atom": t["ms_per_atom"],
                "speedup_vs_teacher": 1.0 if role == "teacher" else timing.get("speedup"),
            }
        )
        if t.get("workers") is not None:  # executor used and throughput over the whole evaluation (wall clock)
            out[-1]["workers"] = f"{t['workers']} ({t.get('executor', '?')})"
            out[-1]["structures_per_s"] = t.get("structures_per_s")
        if "speedup_per_model_call" in timing:
            out[-1]["model_calls_per_structure"] = t.get("model_calls_per_structure")
            out[-1]["speedup_per_model_call"] = 1.0 if role == "teacher" else timing["speedup_per_model_call"]
    return out


def skipped_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Skipped or invalid reactions with reasons."""
    return [{"id": s["id"], "reason": s["reason"]} for s in results["dataset"]["skipped"]]


def anomaly_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Counts of relaxation anomaly classes per model (relax mode only)."""
    out = []
    for role, counts in results.get("anomalies", {}).items():
        for cls, n in counts.items():
            out.append({"model": results["models"][role]["label"], "class": cls, "reactions": n})
    return out


def catbench_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Relax mode: per model and adsorbate (and all), reactions per CatBench class with MAE_total and MAE_normal
    (reproduction failure is not assessed: one deterministic relaxation per model)."""
    out = []
    rows = results["reactions"]
    groups = sorted({str(r.get("adsorbate", "")) for r in rows}) + ["all"]
    for role in results.get("anomalies", {}):
        for g in groups:
            sub = rows if g == "all" else [r for r in rows if str(r.get("adsorbate", "")) == g]
            s = catbench_summary(sub, role)
            row = {"model": results["models"][role]["label"], "adsorbate": g, "n": s["n"]}
            row.update({c: s[c] for c in CATBENCH_CLASSES})
            row.update(MAE_total_eV=s["mae_total"], MAE_normal_eV=s["mae_normal"])
            out.append(row)
    return out


def agreement_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Student vs teacher, per adsorbate and all: MAE between their ΔE (eV) and Spearman ρ (empty without a
    student)."""
    if "student" not in results["models"]:
        return []
    rows = results["reactions"]
    out = []
    for g in sorted({str(r.get("adsorbate", "")) for r in rows}) + ["all"]:
        sub = rows if g == "all" else [r for r in rows if str(r.get("adsorbate", "")) == g]
        s, t = [r.get("student") for r in sub], [r.get("teacher") for r in sub]
        out.append(
            {"adsorbate": g, "n": len(sub), "MAE_student_vs_teacher_eV": mae(s, t), "spearman_student_vs_teacher":
             _spearman(s, t)}
        )  # fmt: skip
    return out


def rebuild_tables(results: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], str]]:
    """(title, rows, file name) of the rebuild tables — cells, lattice constants, site-name mapping — when the
    structures were rebuilt from metadata, else []."""
    info = results["dataset"].get("structures_info") or {}
    if info.get("kind") != "rebuild":
        return []
    pre = info.get("slab_prerelax") or {}
    pre_rows = [row for v in pre.values() if isinstance(v, dict) for row in v.get("rows", [])]
    extra = []
    if pre_rows:
        title = (
            f"Clean slabs relaxed once per model before the adsorbates are placed on them (fmax {pre.get('fmax')} "
            f"eV/Å, ≤ {pre.get('max_steps')} steps; not in the speed table)"
        )
        extra.append((title, pre_rows, "rebuild_slab_relaxation"))
    return extra + [
        ("Rebuilt surface cells", info.get("cells", []), "rebuild_cells"),
        (f"Lattice constants ({info.get('lattice_method')})", info.get("lattices", []), "rebuild_lattices"),
        ("CatalysisHub site names on the built slabs", info.get("sites", []), "rebuild_sites"),
        (
            "Not rebuilt, by reason",
            [{"reason": k, "reactions": v} for k, v in (info.get("skip_reasons") or {}).items()],
            "rebuild_skip_reasons",
        ),
    ]


def funnel_rows(funnel: dict[str, Any]) -> list[dict[str, Any]]:
    """Funnel summary as metric/value rows."""
    sel = funnel["selection"]
    rows = [
        ("candidates", funnel["candidates"]),
        ("selection", ", ".join(f"{k}={v}" for k, v in sel.items())),
        ("score", funnel["score"]),
        ("re-evaluated by teacher", funnel["re_evaluated"]),
        (
            "teacher structures (funnel / all)",
            f"{funnel['teacher_structures_funnel']} / {funnel['teacher_structures_all']}",
        ),
        ("structures saved (fraction of the teacher's structures)", funnel["structures_saved_share"]),
        (
            "compute saved (fraction of the teacher on every candidate; measured ms/structure)",
            funnel.get("compute_saved_share"),
        ),
        ("ranking", funnel.get("ranking", "pooled over adsorbates (older run)")),
        (f"recall of teacher top-{funnel['top_k']} (pooled over adsorbates)", funnel.get("recall_at_k")),
        (f"student-only recall of teacher top-{funnel['top_k']}", funnel.get("student_only_recall_at_k")),
    ]
    rows += [
        (f"recall of teacher top-{funnel['top_k']}, {a}*", v)
        for a, v in sorted((funnel.get("recall_at_k_by_adsorbate") or {}).items())
    ]
    if funnel.get("excluded"):
        rows.append(
            ("excluded (failed or non-finite ΔE)", "; ".join(f"{e['id']}: {e['reason']}" for e in funnel["excluded"]))
        )
    if funnel.get("skipped"):
        rows.append(
            ("skipped (unphysical structures)", "; ".join(f"{e['id']}: {e['reason']}" for e in funnel["skipped"]))
        )
    return [{"metric": k, "value": v} for k, v in rows]


def ranking_rows(funnel: dict[str, Any]) -> list[dict[str, Any]]:
    """The funnel's final ranking per adsorbate, with units in the column names (ΔE of each model, eV)."""
    names = {"teacher": "teacher_dE_eV", "student": "student_dE_eV"}
    return [{names.get(k, k): v for k, v in r.items()} for r in funnel["final_ranking"]]


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """CSV with the union of keys as header (lists joined by '; ')."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: "; ".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()})


def markdown(rows: Sequence[dict[str, Any]], digits: int = 3) -> str:
    """GitHub Markdown table."""
    if not rows:
        return "_(none)_\n"
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(k), digits).replace("|", "\\|") for k in keys) + " |")
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[dict[str, Any]], out_dir: Path, name: str) -> list[str]:
    """`name`.csv and `name`.md; returns the file names."""
    write_csv(rows, out_dir / f"{name}.csv")
    (out_dir / f"{name}.md").write_text(markdown(rows))
    return [f"{name}.csv", f"{name}.md"]
