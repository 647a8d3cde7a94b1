"""Screening metrics: MAE (eV), Spearman ρ (`calculators.stats.spearman`), share of reactions where the student is
closer to the reference than the teacher, and per-group summaries."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from calculators.stats import finite_pairs, spearman


def mae(pred: Sequence[float | None], ref: Sequence[float | None]) -> float:
    """Mean absolute error (eV) over pairs where both are finite; NaN when none."""
    p, r = finite_pairs(pred, ref)
    return float(np.mean(np.abs(p - r))) if p.size else math.nan


def closer_share(
    student: Sequence[float | None], teacher: Sequence[float | None], ref: Sequence[float | None]
) -> float:
    """Share of reactions with |student − ref| < |teacher − ref| (strictly closer; ties count as not closer)."""
    s, t, r = finite_pairs(student, teacher, ref)
    return float(np.mean(np.abs(s - r) < np.abs(t - r))) if s.size else math.nan


def summarize(
    ref: Sequence[float | None], teacher: Sequence[float | None], student: Sequence[float | None] | None
) -> dict[str, Any]:
    """Metrics of one group: n, MAE of teacher and student vs the reference, ΔMAE (student − teacher),
    Spearman vs the reference and student vs teacher, closer share. Student entries are None without one.

    Every metric uses the same reactions, those where the reference, the teacher and (with one) the student are
    all finite, and `n` counts exactly those: a NaN never leaves one model's MAE while `n` still counts it
    (`screening.runner` lists such reactions as skipped, with the reason)."""
    columns = [ref, teacher] if student is None else [ref, teacher, student]
    common = finite_pairs(*columns)
    ref, teacher = common[0], common[1]
    student = common[2] if student is not None else None
    out: dict[str, Any] = {
        "n": int(ref.size),
        "mae_teacher": mae(teacher, ref),
        "spearman_teacher": spearman(teacher, ref),
        "mae_student": None,
        "delta_mae": None,
        "spearman_student": None,
        "spearman_student_teacher": None,
        "student_closer_share": None,
    }
    if student is not None:
        out["mae_student"] = mae(student, ref)
        out["delta_mae"] = out["mae_student"] - out["mae_teacher"]
        out["spearman_student"] = spearman(student, ref)
        out["spearman_student_teacher"] = spearman(student, teacher)
        out["student_closer_share"] = closer_share(student, teacher, ref)
    return out


def grouped(rows: Sequence[Mapping[str, Any]], key: str, has_student: bool) -> dict[str, dict[str, Any]]:
    """`summarize` over all rows ("all") and per value of `key` (e.g. adsorbate). Rows hold reference,
    teacher, student (eV)."""

    def summ(rs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return summarize(
            [r["reference"] for r in rs],
            [r["teacher"] for r in rs],
            [r.get("student") for r in rs] if has_student else None,
        )

    out = {"all": summ(rows)}
    for value in sorted({str(r.get(key, "")) for r in rows}):
        out[value] = summ([r for r in rows if str(r.get(key, "")) == value])
    return out


# ----------------------------------------------------------------------------- CatBench anomaly classes
# CatBench (Moon et al.) gives each relaxed reaction one class, in this priority: reproduction failure (seeds
# disagree; one deterministic run here, so never assigned), unphysical relaxation (not converged, slab atoms moved),
# adsorbate migration (moved or desorbed), energy anomaly (|ΔE − ref| too large), normal.
CATBENCH_CLASSES = ("normal", "unphysical_relaxation", "adsorbate_migration", "energy_anomaly")
_CLASS_OF_FLAG = (
    ("not converged", "unphysical_relaxation"),
    ("clean slab", "unphysical_relaxation"),
    ("slab moved", "unphysical_relaxation"),
    ("adsorbate desorbed", "adsorbate_migration"),
    ("adsorbate migrated", "adsorbate_migration"),
    ("|ΔE", "energy_anomaly"),
)
_PRIORITY = {"unphysical_relaxation": 0, "adsorbate_migration": 1, "energy_anomaly": 2}


def catbench_class(anomalies: Sequence[str] | None) -> str:
    """CatBench class of a reaction from the runner's anomaly flags (any other flag counts as an unphysical
    relaxation)."""
    classes = []
    for flag in anomalies or []:
        cls = next((c for prefix, c in _CLASS_OF_FLAG if flag.startswith(prefix)), "unphysical_relaxation")
        classes.append(cls)
    return min(classes, key=_PRIORITY.__getitem__) if classes else "normal"


def catbench_summary(rows: Sequence[Mapping[str, Any]], role: str) -> dict[str, Any]:
    """For one model ("teacher"/"student") over relax-mode rows: reactions per CatBench class, MAE vs the
    reference over all reactions and over the normal ones (CatBench's MAE_total and MAE_normal)."""
    classes = [catbench_class(r.get(f"{role}_anomalies")) for r in rows]
    out: dict[str, Any] = {"n": len(rows)}
    out.update({c: classes.count(c) for c in CATBENCH_CLASSES})
    out["mae_total"] = mae([r.get(role) for r in rows], [r["reference"] for r in rows])
    normal = [r for r, c in zip(rows, classes, strict=True) if c == "normal"]
    out["mae_normal"] = mae([r.get(role) for r in normal], [r["reference"] for r in normal])
    return out
