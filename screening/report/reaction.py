"""Report of a reaction-aware funnel (``reaction_funnel.json``): funnel counts, volcano with both models,
student-vs-teacher confusion matrices at the stage thresholds, metric parity; stage, shortlist, surface, agreement,
compute and constants tables; summary lines. Reads the run file only (no model, no reaction table)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from screening.report.plots import STUDENT_COLOR, TEACHER_COLOR, _plt, _save, legend_outside
from screening.report.tables import fmt

DFT_COLOR = "k"
ROLE_COLOR = {"student": STUDENT_COLOR, "teacher": TEACHER_COLOR, "dft": DFT_COLOR}
ROLE_MARKER = {"student": "s", "teacher": "o", "dft": "^"}


def _label(rf: dict[str, Any], role: str) -> str:
    if role == "dft":
        return f"DFT ({rf['dataset']['name']})"
    return f"{role}: {rf['models'][role]['label']}"


def _y_of(rf: dict[str, Any], block: dict[str, Any]) -> float | None:
    """Volcano y: U_L (electrochemical) or −|ΔG − target| (binding)."""
    if rf["reaction"]["kind"] == "electrochemical":
        return block.get("U_L")
    v = block.get("abs_dG")
    return None if v is None else -v


def _threshold_y(rf: dict[str, Any], thr: float) -> float | None:
    r = rf["reaction"]
    if r["metric"] == "U_L":
        return thr
    if r["metric"] == "abs_dG":
        return -thr
    if r["metric"] == "eta" and r.get("equilibrium_potential_V") is not None:
        u0 = r["equilibrium_potential_V"]
        return u0 - thr if r["direction"] == "reduction" else u0 + thr
    return None


def reaction_figures(
    rf: dict[str, Any], out_dir: str | Path, *, formats: Sequence[str] = ("png",), dpi: int = 100
) -> dict[str, list[str]]:
    """Funnel counts, volcano, confusion matrices and metric parity; returns {name: [files]}."""
    plt = _plt()
    out_dir = Path(out_dir)
    figs: dict[str, list[str]] = {}
    r = rf["reaction"]
    metric_name = {"U_L": "U_L [V]", "eta": "η [V]", "abs_dG": "|ΔG − target| [eV]"}[r["metric"]]

    # funnel: counts per stage
    stages = rf["stages"]
    labels = [f"all surfaces\n({rf['dataset']['name']})"] + [f"{s['stage']}\n{s['rule']}" for s in stages]
    counts = [rf["dataset"]["surfaces"]] + [s["passed"] for s in stages]
    colors = ["0.6"] + [ROLE_COLOR.get(s["stage"], "0.3") for s in stages]
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(labels), 3.4))
    bars = ax.bar(range(len(labels)), counts, color=colors)
    for b, c in zip(bars, counts, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), str(c), ha="center", va="bottom", fontsize=8)
    cmp = rf.get("comparison", {})
    if cmp.get("teacher_shortlist") is not None:
        label = f"teacher on all surfaces passes {cmp['rule_teacher']}: {cmp['teacher_shortlist']}"
        ax.axhline(cmp["teacher_shortlist"], color=TEACHER_COLOR, ls="--", lw=0.8, label=label)
        ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.08))  # above the title: covers no bar
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("surfaces")
    ax.set_title(f"{r['name'].upper()} funnel: surfaces passing each stage", fontsize=9)
    figs["reaction_funnel"] = _save(fig, out_dir, "reaction_funnel", formats, dpi)

    # volcano
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    xs_all: list[float] = []
    pts: dict[str, dict[str, tuple[float, float]]] = {}
    for role in ("teacher", "student", "dft"):
        pts[role] = {}
        for s in rf["surfaces"]:
            b = (s.get("models") or {}).get(role)
            if not b or b.get("descriptor") is None or _y_of(rf, b) is None:
                continue
            pts[role][s["surface"]] = (b["descriptor"], _y_of(rf, b))
    for sid, (x, y) in pts["teacher"].items():
        if sid in pts["student"]:
            xs, ys = pts["student"][sid]
            ax.plot([x, xs], [y, ys], color="0.8", lw=0.5, zorder=1)
    for role in ("teacher", "student", "dft"):
        if not pts[role]:
            continue
        x, y = np.asarray(list(pts[role].values())).T
        xs_all += list(x)
        ax.scatter(x, y, s=14, c=ROLE_COLOR[role], marker=ROLE_MARKER[role], label=_label(rf, role), zorder=2,
                   alpha=0.8)  # fmt: skip
    lines = r["volcano"]["lines"]
    if lines and xs_all:
        lo, hi = min(xs_all), max(xs_all)
        pad = 0.1 * (hi - lo or 1.0)
        grid = np.linspace(lo - pad, hi + pad, 200)
        pick = np.min if r["volcano"]["envelope"] == "min" else np.max
        curve = pick(np.stack([a * grid + b for a, b in lines]), axis=0)
        ax.plot(grid, curve, color="0.3", lw=1, label="theory (table's volcano lines)", zorder=0)
    elif r["kind"] == "binding" and xs_all:
        lo, hi = min(xs_all + [0.0]), max(xs_all + [0.0])
        grid = np.linspace(lo, hi, 100)
        ax.plot(grid, -np.abs(grid), color="0.3", lw=1, label="−|x|", zorder=0)
    for st in stages:
        y = _threshold_y(rf, st["threshold"])
        if y is not None:
            ax.axhline(y, color=ROLE_COLOR.get(st["stage"], "0.3"), ls=":", lw=0.9, label=f"{st['stage']} stage")
    ax.set_xlabel(r["descriptor_label"])
    ax.set_ylabel("U_L [V]" if r["kind"] == "electrochemical" else "−|ΔE − target| [eV]")
    ax.set_title(f"Volcano: {r['title']}", fontsize=8)
    legend_outside(ax, fontsize=6)
    figs["volcano"] = _save(fig, out_dir, "volcano", formats, dpi)

    # confusion matrices
    mats = [(k, cmp.get(k)) for k in ("confusion_funnel", "confusion_same_threshold") if cmp.get(k)]
    if mats:
        fig, axes = plt.subplots(1, len(mats), figsize=(3.4 * len(mats), 3.2), squeeze=False)
        titles = {
            "confusion_funnel": f"student {cmp['rule_student']}\nvs teacher {cmp['rule_teacher']}",
            "confusion_same_threshold": f"both at {cmp['rule_teacher']}",
        }
        for ax, (key, c) in zip(axes[0], mats, strict=True):
            m = np.asarray([[c["tp"], c["fn"]], [c["fp"], c["tn"]]])
            ax.imshow(m, cmap="Blues")
            for (i, j), v in np.ndenumerate(m):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=11,
                        color="w" if v > m.max() / 2 else "k")  # fmt: skip
            ax.set_xticks([0, 1], ["student passes", "student rejects"], fontsize=7)
            ax.set_yticks([0, 1], ["teacher passes", "teacher rejects"], fontsize=7)
            ax.set_title(titles[key] + f"\nrecall {fmt(c['recall'], 2)}, precision {fmt(c['precision'], 2)}",
                         fontsize=7)  # fmt: skip
        fig.tight_layout()
        figs["confusion"] = _save(fig, out_dir, "confusion", formats, dpi)

    # metric parity (the quadrants are the confusion matrix)
    pairs = [
        (s["models"]["teacher"].get("metric"), s["models"]["student"].get("metric"))
        for s in rf["surfaces"]
        if s.get("models", {}).get("teacher") and s.get("models", {}).get("student")
    ]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if pairs:
        t, s_ = np.asarray(pairs).T
        fig, ax = plt.subplots(figsize=(4.2, 4.0))
        ax.scatter(t, s_, s=12, c="0.3")
        lo, hi = float(min(t.min(), s_.min())), float(max(t.max(), s_.max()))
        ax.plot([lo, hi], [lo, hi], color="0.6", ls="--", lw=0.8)
        if cmp.get("teacher_threshold") is not None:
            ax.axvline(cmp["teacher_threshold"], color=TEACHER_COLOR, ls=":", lw=0.9, label="teacher threshold")
            ax.axhline(cmp["student_threshold"], color=STUDENT_COLOR, ls=":", lw=0.9, label="student threshold")
            legend_outside(ax)
        ax.set_xlabel(f"teacher {metric_name}")
        ax.set_ylabel(f"student {metric_name}")
        ax.set_title(f"Student vs teacher (Spearman {fmt(cmp.get('spearman_metric'), 2)})", fontsize=8)
        figs["metric_parity"] = _save(fig, out_dir, "metric_parity", formats, dpi)
    return figs


def stage_rows(rf: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stage."""
    keys = ("stage", "model", "rule", "entered", "complete", "passed", "structures", "measured_seconds")
    return [{k: s.get(k) for k in keys} for s in rf["stages"]]


def _flat(block: dict[str, Any] | None, role: str, kind: str, adsorbates: Sequence[str]) -> dict[str, Any]:
    """One model's columns, always the same keys (None where the surface has no value)."""
    b = block or {}
    out: dict[str, Any] = {f"{role}_metric": b.get("metric")}
    if kind == "electrochemical":
        out[f"{role}_U_L"] = b.get("U_L")
        out[f"{role}_eta"] = b.get("eta")
    out[f"{role}_descriptor"] = b.get("descriptor")
    for a in adsorbates:
        g, src = (b.get("G") or {}).get(a), (b.get("origin") or {}).get(a)
        out[f"{role}_G_{a}"] = g if g is None or src == "computed" else f"{g:.3f} ({src})"
    if role != "dft":
        out[f"{role}_sites"] = ", ".join(f"{a}@{s}" for a, s in (b.get("sites") or {}).items())
        out[f"{role}_flags"] = b.get("flags") or []
    out[f"{role}_missing"] = b.get("reason")
    return out


METRIC_UNITS = {"U_L": "V", "eta": "V", "abs_dG": "eV"}
_VALUE_COLUMN = re.compile(r"^(student|teacher|dft)_(metric|U_L|eta|descriptor|G_\w+)$")


def with_units(row: dict[str, Any], rf: dict[str, Any]) -> dict[str, Any]:
    """`row` with units in its value columns' names: ``<role>_U_L_V``, ``<role>_eta_V``, ``<role>_descriptor_eV``,
    ``<role>_G_<X>_eV`` and ``<role>_metric_<unit of the reaction's metric>``. The run file keeps the bare
    names, so a report regenerated from any ``reaction_funnel.json`` gets the units."""
    metric_unit = METRIC_UNITS.get(rf["reaction"].get("metric"), "")
    out: dict[str, Any] = {}
    for k, v in row.items():
        m = _VALUE_COLUMN.match(k)
        if m is None:
            out[k] = v
            continue
        field = m.group(2)
        unit = metric_unit if field == "metric" else ("V" if field in ("U_L", "eta") else "eV")
        out[f"{k}_{unit}" if unit else k] = v
    return out


def shortlist_rows(rf: dict[str, Any]) -> list[dict[str, Any]]:
    """The shortlist (passed every stage), with units in the column names."""
    return [with_units(r, rf) for r in rf["shortlist"]]


def surface_rows(rf: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per surface: both models' (and DFT's) values, sites and stage results."""
    rows = []
    kind, ads = rf["reaction"]["kind"], rf["reaction"]["adsorbates"]
    roles = [r for r in ("student", "teacher", "dft") if any(r in (s.get("models") or {}) for s in rf["surfaces"])]
    for s in rf["surfaces"]:
        row = {k: s[k] for k in ("surface", "composition", "facet", "strain_percent")}
        for role in roles:
            row.update(_flat((s.get("models") or {}).get(role), role, kind, ads))
        for st, ok in s["stages"].items():
            row[f"passed_{st}"] = ok
        if s.get("caveat"):
            row["caveat"] = s["caveat"]
        rows.append(with_units(row, rf))
    return rows


def comparison_rows(rf: dict[str, Any]) -> list[dict[str, Any]]:
    """Headline comparison: recall, confusion, rank agreement, compute saved."""
    c, comp = rf.get("comparison", {}), rf.get("compute", {})
    metric = rf["reaction"].get("metric")
    unit = METRIC_UNITS.get(metric)
    metric_label = f"{metric}, {unit}" if unit else "metric"
    rows: list[tuple[str, Any]] = [("surfaces evaluated by both models", c.get("surfaces_compared"))]
    if c.get("note"):
        rows.append(("note", c["note"]))
    if "confusion_funnel" in c:
        f = c["confusion_funnel"]
        rows += [
            ("… with every required adsorbate for both (counted below)", f["n"]),
            (f"teacher shortlist on all surfaces ({c['rule_teacher']})", c["teacher_shortlist"]),
            (f"kept by the student stage ({c['rule_student']})", c["student_kept"]),
            ("recall of the teacher's shortlist by the student stage", c["recall_teacher_shortlist"]),
            (f"recall of the teacher's top-{len(c['teacher_top_k'])} by the student stage", c["recall_teacher_top_k"]),
            ("confusion (student stage vs teacher stage): tp / fn / fp / tn", f"{f['tp']} / {f['fn']} / {f['fp']} / "
                                                                               f"{f['tn']}"),
            (f"Spearman student vs teacher ({metric or 'metric'})", c.get("spearman_metric")),
            (f"MAE student vs teacher ({metric_label})", c.get("mae_metric")),
        ]  # fmt: skip
        if c.get("mae_eta") is not None:
            rows.append(("MAE student vs teacher (η, V)", c["mae_eta"]))
    for role in ("teacher", "student"):
        d = c.get(f"{role}_vs_dft")
        if d:
            k = d["confusion"]
            rows.append((f"{role} vs DFT at {d['threshold']:g}: tp / fn / fp / tn, MAE ({metric_label})",
                         f"{k['tp']} / {k['fn']} / {k['fp']} / {k['tn']}, {fmt(d['mae_metric'])}"))  # fmt: skip
    if comp:
        rows += [
            ("funnel compute, s (measured: model stages)", comp.get("funnel_seconds")),
            ("teacher on every surface, s" + ("" if comp.get("teacher_all_measured") else " (estimated)"),
             comp.get("teacher_all_seconds")),
            ("compute saved (fraction of the teacher on every surface)", comp.get("compute_saved_share")),
            ("student s/structure", comp.get("student_seconds_per_structure")),
            ("teacher s/structure", comp.get("teacher_seconds_per_structure")),
        ]  # fmt: skip
    return [{"metric": k, "value": v} for k, v in rows]


def confusion_rows(rf: dict[str, Any]) -> list[dict[str, Any]]:
    """Both confusion matrices (student stage vs teacher stage; both at the teacher's threshold)."""
    c = rf.get("comparison", {})
    out = []
    for key, title in (
        ("confusion_funnel", f"student {c.get('rule_student')} vs teacher {c.get('rule_teacher')}"),
        ("confusion_same_threshold", f"student vs teacher, both {c.get('rule_teacher')}"),
    ):
        if c.get(key):
            out.append({"matrix": title, **c[key]})
    return out


def anomaly_rows(rf: dict[str, Any]) -> list[dict[str, Any]]:
    """Relax-mode anomalies per model (candidates)."""
    return [
        {"model": rf["models"][role]["label"], "class": k, "candidates": n}
        for role, counts in rf.get("anomalies", {}).items()
        for k, n in counts.items()
    ]


REACTION_TABLES = (
    "reaction_stages",
    "reaction_comparison",
    "reaction_shortlist",
    "reaction_confusion",
    "reaction_adsorbates",
    "reaction_constants",
    "reaction_surfaces",
    "reaction_anomalies",
    "reaction_skipped",
)  # file stems of `reaction_tables`


def reaction_tables(rf: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], str]]:
    """(title, rows, file stem) of every table, in report order."""
    name = rf["reaction"]["name"].upper()
    out = [
        (f"{name} funnel stages", stage_rows(rf), "reaction_stages"),
        (f"{name} comparison: recall, confusion, compute saved", comparison_rows(rf), "reaction_comparison"),
        (f"{name} shortlist (passed every stage), both models' values", shortlist_rows(rf), "reaction_shortlist"),
        ("Confusion matrices at the stage thresholds", confusion_rows(rf), "reaction_confusion"),
        ("Adsorption energies, student vs teacher (eV)", rf.get("comparison", {}).get("adsorbates", []),
         "reaction_adsorbates"),
        ("Constants used (reaction table)", rf["table"]["constants"], "reaction_constants"),
        ("All surfaces", surface_rows(rf), "reaction_surfaces"),
    ]  # fmt: skip
    if rf.get("anomalies"):
        relax = rf["config"].get("mode") == "relax"
        heading = "Relaxation anomalies" if relax else "Anomalies (failed or non-finite energies)"
        out.insert(5, (heading, anomaly_rows(rf), "reaction_anomalies"))
    skipped = rf["dataset"].get("skipped", [])
    if skipped:
        out.append(("Skipped", skipped, "reaction_skipped"))
    return out


def reaction_summary_lines(rf: dict[str, Any], model_line: Any) -> list[str]:
    """What the report is about, for the summary and index page."""
    r, ds, c, comp = rf["reaction"], rf["dataset"], rf.get("comparison", {}), rf.get("compute", {})
    lines = [
        f"Reaction: {r['title']} — {r['formula']}",
        model_line("Teacher", rf["models"]["teacher"]),
        model_line("Student", rf["models"]["student"]),
        f"Surfaces: {ds['surfaces']} ({ds['candidates']} adsorbate–site candidates) from {ds['source']}",
        rf["site_choice"],
        f"Mode: {rf['config']['mode']}"
        + ("; each clean slab relaxed once per model, its adslabs started from that relaxed slab"
           if rf["config"]["mode"] == "relax" else "")
        + f"; gas references: {rf['config']['gas_energies']}",
        "Stages: " + " → ".join(f"{s['stage']} ({s['rule']}): {s['entered']} in, {s['passed']} pass"
                                for s in rf["stages"]),
    ]  # fmt: skip
    if r.get("scaling"):
        lines.append(
            "Scaling: "
            + "; ".join(f"ΔG_{a} = ΔG_{frm} + {off:g} eV where {a}* is not computed" for a, (frm, off) in
                        r["scaling"].items())
            + (" (forced for every surface)" if r.get("force_scaling") else "")
        )  # fmt: skip
    lines.append(
        "Constants: "
        + "; ".join(f"{row['quantity']} = {row['value_eV']:g}" for row in rf["table"]["constants"])
        + f" (sources in the constants table; {', '.join(rf['table']['origin'])})"
    )
    if "confusion_funnel" in c:
        lines.append(
            f"Recall of the teacher's shortlist ({c['teacher_shortlist']} surfaces pass {c['rule_teacher']} with the "
            f"teacher on all) by the student stage ({c['rule_student']}): {fmt(c['recall_teacher_shortlist'], 2)}; "
            f"student vs teacher Spearman {fmt(c.get('spearman_metric'), 2)}"
        )
    if comp.get("compute_saved_share") is not None:
        lines.append(
            f"Compute saved: {fmt(comp['compute_saved_share'], 2)} (funnel {fmt(comp['funnel_seconds'], 1)} s vs "
            f"teacher on every surface {fmt(comp['teacher_all_seconds'], 1)} s"
            + ("" if comp.get("teacher_all_measured") else ", estimated")
            + "). "
            + comp["note"]
        )
    if ds.get("has_dft"):
        lines.append("DFT: the set's DFT reaction energies are used where their gas references match the table's.")
    else:
        lines.append("No DFT energies for these surfaces: the shortlist is the candidate list for DFT.")
    if rf.get("reference_surface"):
        ref = rf["reference_surface"]
        lines.append(
            f"Target: each model's own ΔE on {ref['surface']}: "
            + ", ".join(f"{k} {fmt(v)}" for k, v in ref["targets"].items())
            + " eV"
        )
    cav = sum(1 for s in rf["surfaces"] if s.get("caveat"))
    if cav:
        lines.append(f"Caveat on {cav} surface(s) (column 'caveat'): MPtrj PBE+U mixing for the teacher's energies")
    if ds.get("candidates_excluded"):
        lines.append(
            f"Excluded: {ds['candidates_excluded']} adsorbate–site candidate(s) with failed or non-finite energies "
            "take part in no site choice or metric (reasons in the Skipped table)"
        )
    for note in rf.get("recovered_caches", []):
        lines.append(f"Recovered cache: {note}")
    lines.append(f"Created {rf['created']}" + (f" by `{rf['command']}`" if rf.get("command") else ""))
    return lines
