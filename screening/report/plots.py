"""Figures of a screening run (matplotlib, Agg backend): parity, connected parity, error difference,
cumulative error, absolute-error histograms and per-adsorbate parity panels. All energies in eV."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TEACHER_COLOR = "#1f77b4"
STUDENT_COLOR = "#d62728"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _arrays(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.asarray([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)


def _save(fig: Any, out_dir: Path, name: str, formats: Sequence[str], dpi: int) -> list[str]:
    files = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        files.append(path.name)
    _plt().close(fig)
    return files


def _diag(ax: Any, *cols: np.ndarray) -> None:
    vals = np.concatenate([c[np.isfinite(c)] for c in cols]) if cols else np.zeros(1)
    if vals.size == 0:
        return
    lo, hi = float(vals.min()), float(vals.max())
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=0.8, ls="--", zorder=0)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)


def legend_outside(ax: Any, fontsize: float = 7) -> Any:
    """The axes' legend to the right of the plotting area, where it cannot cover a data point (a legend inside
    sits over whichever corner the data reach: over-predictions fill a parity plot's upper left). Saved figures
    use ``bbox_inches="tight"``, so the legend stays in the picture."""
    return ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _mae(p: np.ndarray, r: np.ndarray) -> float:
    ok = np.isfinite(p) & np.isfinite(r)
    return float(np.mean(np.abs(p[ok] - r[ok]))) if ok.any() else float("nan")


def make_figures(
    results: dict[str, Any], out_dir: str | Path, *, formats: Sequence[str] = ("png",), dpi: int = 100
) -> dict[str, list[str]]:
    """Write all figures into `out_dir`; returns {figure name: [file names]}. Student figures only with a
    student; with the teacher as reference, teacher parity is the diagonal by construction (still drawn)."""
    plt = _plt()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = results["reactions"]
    ref_label = results["reference"]
    ref, t = _arrays(rows, "reference"), _arrays(rows, "teacher")
    has_s = "student" in results["models"]
    s = _arrays(rows, "student") if has_s else None
    t_label = f"teacher: {results['models']['teacher']['label']}"
    s_label = f"{results['models']['student']['label']}" if has_s else ""
    figs: dict[str, list[str]] = {}

    # parity
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    ax.scatter(ref, t, s=14, c=TEACHER_COLOR, label=f"{t_label} (MAE {_mae(t, ref):.3f} eV)", alpha=0.8)
    cols = [ref, t]
    if has_s:
        ax.scatter(ref, s, s=14, c=STUDENT_COLOR, marker="s", label=f"{s_label} (MAE {_mae(s, ref):.3f} eV)", alpha=0.8)
        cols.append(s)
    _diag(ax, *cols)
    ax.set_xlabel(f"ΔE reference [eV]\n({ref_label})")
    ax.set_ylabel("ΔE predicted [eV]")
    ax.set_title("Parity")
    legend_outside(ax)
    figs["parity"] = _save(fig, out_dir, "parity", formats, dpi)

    if has_s:
        # connected parity: grey line from teacher to student prediction of each reaction
        fig, ax = plt.subplots(figsize=(4.4, 4.2))
        for x, a, b in zip(ref, t, s, strict=True):
            if np.isfinite(a) and np.isfinite(b):
                ax.plot([x, x], [a, b], color="0.6", lw=0.7, zorder=1)
        ax.scatter(ref, t, s=12, c=TEACHER_COLOR, label=t_label, zorder=2)
        ax.scatter(ref, s, s=12, c=STUDENT_COLOR, marker="s", label=s_label, zorder=2)
        _diag(ax, ref, t, s)
        ax.set_xlabel(f"ΔE reference [eV]\n({ref_label})")
        ax.set_ylabel("ΔE predicted [eV]")
        ax.set_title("Connected parity (grey: same reaction)")
        legend_outside(ax)
        figs["parity_connected"] = _save(fig, out_dir, "parity_connected", formats, dpi)

        # error difference distribution
        diff = np.abs(s - ref) - np.abs(t - ref)
        diff = diff[np.isfinite(diff)]
        fig, ax = plt.subplots(figsize=(4.6, 3.2))
        ax.hist(diff, bins=min(30, max(5, diff.size // 2)), color="0.4")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("|student − ref| − |teacher − ref| [eV]")
        ax.set_ylabel("reactions")
        share = float(np.mean(diff < 0)) if diff.size else float("nan")
        ax.set_title(f"Error difference (student closer: {share:.0%})")
        figs["error_difference"] = _save(fig, out_dir, "error_difference", formats, dpi)

    # cumulative error distribution
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for arr, lab, col in ((t, t_label, TEACHER_COLOR), (s, s_label, STUDENT_COLOR)):
        if arr is None:
            continue
        e = np.sort(np.abs(arr - ref)[np.isfinite(arr - ref)])
        if e.size:
            ax.step(e, np.arange(1, e.size + 1) / e.size, where="post", color=col, label=lab)
    ax.set_xlabel(f"|ΔE − ref| [eV] (ref: {ref_label})")
    ax.set_ylabel("cumulative share")
    ax.set_ylim(0, 1.02)
    legend_outside(ax)
    ax.set_title("Cumulative absolute error")
    figs["cumulative_error"] = _save(fig, out_dir, "cumulative_error", formats, dpi)

    # absolute error histograms with MAE
    panels = [(t, t_label, TEACHER_COLOR)] + ([(s, s_label, STUDENT_COLOR)] if has_s else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.0), squeeze=False)
    for ax, (arr, lab, col) in zip(axes[0], panels, strict=True):
        e = np.abs(arr - ref)[np.isfinite(arr - ref)]
        ax.hist(e, bins=min(30, max(5, e.size // 2)), color=col, alpha=0.8)
        m = float(e.mean()) if e.size else float("nan")
        ax.axvline(m, color="k", ls="--", lw=1)  # named in the title: a legend would sit on the tail's bars
        ax.set_xlabel("|ΔE − ref| [eV]")
        ax.set_ylabel("reactions")
        ax.set_title(f"{lab}\nMAE {m:.3f} eV (dashed line)", fontsize=8)
    figs["abs_error_hist"] = _save(fig, out_dir, "abs_error_hist", formats, dpi)

    # per-adsorbate panels
    ads = sorted({r["adsorbate"] for r in rows})
    if ads:
        n = len(ads)
        ncol = min(n, 3)
        nrow = (n + ncol - 1) // ncol
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 3.3 * nrow), squeeze=False, layout="constrained")
        for ax, a in zip(axes.flat, ads, strict=False):
            m = np.asarray([r["adsorbate"] == a for r in rows])
            ax.scatter(ref[m], t[m], s=12, c=TEACHER_COLOR, label=t_label)
            cols = [ref[m], t[m]]
            mae = f"teacher {_mae(t[m], ref[m]):.2f}"
            if has_s:
                ax.scatter(ref[m], s[m], s=12, c=STUDENT_COLOR, marker="s", label=s_label)
                cols.append(s[m])
                mae += f", student {_mae(s[m], ref[m]):.2f}"
            _diag(ax, *cols)
            ax.set_title(f"{a}* (n={int(m.sum())})\nMAE {mae} eV", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        # one legend for all panels, above them (inside a panel it would cover its upper-left points)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=7, loc="outside upper center", ncol=len(labels))
        fig.supxlabel(f"ΔE reference [eV] ({ref_label})", fontsize=8)
        fig.supylabel("ΔE predicted [eV]", fontsize=8)
        figs["parity_by_adsorbate"] = _save(fig, out_dir, "parity_by_adsorbate", formats, dpi)
    return figs


def funnel_figure(
    funnel: dict[str, Any], out_dir: str | Path, *, formats: Sequence[str] = ("png",), dpi: int = 100
) -> list[str]:
    """Student vs teacher ΔE of the funnel candidates (re-evaluated ones highlighted)."""
    plt = _plt()
    chosen = {r["id"] for r in funnel["final_ranking"]}
    st = funnel["student_scores"]
    te = funnel.get("teacher_scores") or {r["id"]: r["teacher"] for r in funnel["final_ranking"]}
    ids = [i for i in st if i in te]
    x = np.asarray([te[i] for i in ids])
    y = np.asarray([st[i] for i in ids])
    m = np.asarray([i in chosen for i in ids], dtype=bool)
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    ax.scatter(x[~m], y[~m], s=12, c="0.6", label="student only")
    ax.scatter(x[m], y[m], s=16, c=STUDENT_COLOR, label="re-evaluated by teacher")
    _diag(ax, x, y)
    sel = funnel["selection"]
    if sel.get("target") is not None:
        ax.axhline(sel["target"], color="k", lw=0.6)
        if sel.get("window") is not None:
            ax.axhspan(sel["target"] - sel["window"], sel["target"] + sel["window"], color="y", alpha=0.2)
    ax.set_xlabel("ΔE teacher [eV]")
    ax.set_ylabel("ΔE student [eV]")
    ax.set_title("Funnel: student score vs teacher")
    legend_outside(ax)
    return _save(fig, Path(out_dir), "funnel", formats, dpi)
