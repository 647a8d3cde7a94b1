"""Screening metrics: MAE (eV), Spearman ρ (average ranks for ties), share of reactions where the student is
closer to the reference than the teacher, and per-group summaries."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _clean(*cols: Sequence[float | None]) -> list[np.ndarray]:
    arr = [np.asarray([np.nan if v is None else v for v in c], dtype=float) for c in cols]
    ok = np.all([np.isfinite(a) for a in arr], axis=0) if arr and arr[0].size else np.zeros(0, dtype=bool)
    return [a[ok] for a in arr]


def mae(pred: Sequence[float | None], ref: Sequence[float | None]) -> float:
    """Mean absolute error (eV) over pairs where both are finite; NaN when none."""
    p, r = _clean(pred, ref)
    return float(np.mean(np.abs(p - r))) if p.size else math.nan


def rankdata(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties get the average of their ranks."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float | None], b: Sequence[float | None]) -> float:
    """Spearman ρ: Pearson correlation of average ranks (ties handled); NaN with < 2 pairs or a constant side."""
    x, y = _clean(a, b)
    if x.size < 2:
        return math.nan
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / den) if den > 0 else math.nan


def closer_share(
    student: Sequence[float | None], teacher: Sequence[float | None], ref: Sequence[float | None]
) -> float:
    """Share of reactions with |student − ref| < |teacher − ref| (strictly closer; ties count as not closer)."""
    s, t, r = _clean(student, teacher, ref)
    return float(np.mean(np.abs(s - r) < np.abs(t - r))) if s.size else math.nan


def summarize(
    ref: Sequence[float | None], teacher: Sequence[float | None], student: Sequence[float | None] | None
) -> dict[str, Any]:
    """Metrics of one group: n, MAE of teacher and student vs the reference, ΔMAE (student − teacher),
    Spearman vs the reference and student vs teacher, closer share. Student entries are None without one."""
    out: dict[str, Any] = {
        "n": int(_clean(ref, teacher)[0].size),
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
