"""Rank statistics shared by distillation checks and screening metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata


def finite_pairs(*columns: Sequence[float | None]) -> list[np.ndarray]:
    """The columns as float arrays restricted to the rows where every value is finite (None counts as missing)."""
    arrays = [np.asarray([np.nan if v is None else v for v in c], dtype=float) for c in columns]
    if not arrays or not arrays[0].size:
        return [a[:0] for a in arrays]
    ok = np.all([np.isfinite(a) for a in arrays], axis=0)
    return [a[ok] for a in arrays]


def spearman(a: Sequence[float | None], b: Sequence[float | None]) -> float:
    """Spearman ρ: Pearson correlation of average ranks (ties share their mean rank) over the pairs where both
    values are finite; NaN with fewer than 2 pairs or a constant side."""
    x, y = finite_pairs(a, b)
    if x.size < 2:
        return math.nan
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / den) if den > 0 else math.nan
