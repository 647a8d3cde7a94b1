"""`write_report(run_dir)` regenerates figures, tables, `summary.md` and `index.html` from a run's saved files
(`screening.results`: the results and, when present, the funnel summary) without recomputing anything."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from screening.report.html import index_html
from screening.report.plots import funnel_figure, make_figures
from screening.report.reaction import REACTION_TABLES, reaction_figures, reaction_summary_lines, reaction_tables
from screening.report.tables import (
    adsorbate_rows,
    agreement_rows,
    anomaly_rows,
    catbench_rows,
    fmt,
    funnel_rows,
    markdown,
    ranking_rows,
    reaction_rows,
    rebuild_tables,
    skipped_rows,
    speed_rows,
    write_table,
)
from screening.results import read_run

# tables written only by some runs (relax mode, a student, a funnel, rebuilt structures, a reaction funnel): those
# a report does not write are removed, so a folder never mixes two runs' tables
OPTIONAL_TABLES = (
    "anomalies",
    "anomaly_classes",
    "agreement",
    "funnel",
    "funnel_ranking",
    "rebuild_slab_relaxation",
    "rebuild_cells",
    "rebuild_lattices",
    "rebuild_sites",
    "rebuild_skip_reasons",
    *REACTION_TABLES,
)


def _model_line(role: str, d: dict[str, Any]) -> str:
    extra = [
        f"{k} {d[k]}" for k in ("path", "sha256", "package", "model", "parameters", "seed") if d.get(k) is not None
    ]
    return f"{role}: {d['label']} [{d.get('kind', '?')}]" + (" — " + ", ".join(extra) if extra else "")


def structures_line(results: dict[str, Any]) -> str | None:
    """Where the structures come from, in words (None when the run does not say): for rebuilt structures it
    states that they are not the DFT ones."""
    ds = results["dataset"]
    info = ds.get("structures_info") or {}
    if ds.get("structures") == "rebuild":
        parts = [f"{info.get('note', 'Structures rebuilt from CatalysisHub metadata')}."]
        if info.get("lattice") == "model":
            parts.append(f"Lattice constants: {info.get('lattice_method')} per model and bulk (table below).")
        parts.append(
            "Relaxed DFT geometries, sites the adsorbate left in DFT ('-d') and DFT lattice constants are not "
            "reproduced: the comparison with DFT includes these differences."
        )
        return "STRUCTURES: " + " ".join(parts)
    if info.get("note"):
        return str(info["note"])
    return None


def summary_lines(results: dict[str, Any]) -> list[str]:
    """What the report is about: reference, models with hashes, dataset, counts, headline metrics, caveats."""
    ds = results["dataset"]
    m = results["metrics"]["all"]
    lines = [structures_line(results)] if structures_line(results) else []
    lines += [
        f"Reference: {results['reference']}. {results['reference_note']}",
        _model_line("Teacher", results["models"]["teacher"]),
    ]
    if "student" in results["models"]:
        lines.append(_model_line("Student", results["models"]["student"]))
    else:
        lines.append(f"Student: absent — teacher-only run: {results.get('student_absent_reason')}")
    lines += [
        f"Dataset: {ds['name']} — {ds['source']}; counts: "
        + ", ".join(f"{k} {v}" for k, v in ds.get("counts", {}).items() if v not in (None, {}, 0) or k == "invalid"),
        f"Reactions screened: {ds['reactions_screened']}"
        + (
            f" ({ds['reactions_excluded']} excluded from the metrics: failed or non-finite energies, see Skipped)"
            if ds.get("reactions_excluded")
            else ""
        )
        + f"; distinct systems evaluated: {ds['distinct_systems']} ({ds['gas_systems']} gas); skipped/invalid: "
        f"{len(ds['skipped'])}",
        f"Mode: {results['config']['mode']}; gas-phase energies: {results['gas_energies']} "
        + (
            "(the teacher's gas energies are used for both models, FORK protocol)"
            if results["gas_energies"] == "teacher"
            else "(each model its own)"
        ),
        f"MAE teacher vs reference: {fmt(m['mae_teacher'])} eV; Spearman {fmt(m['spearman_teacher'])}",
    ]
    if "student" in results["models"]:
        t = results["timing"]
        lines.append(
            f"MAE student vs reference: {fmt(m['mae_student'])} eV (ΔMAE {fmt(m['delta_mae'])} eV); Spearman "
            f"{fmt(m['spearman_student'])}; student vs teacher Spearman {fmt(m['spearman_student_teacher'])}; "
            f"student closer to the reference in {fmt(m['student_closer_share'])} of reactions; "
            f"speedup {fmt(t.get('speedup'), 2)}×"
        )
    if results.get("caveat_reactions"):
        lines.append(
            f"Caveat on {results['caveat_reactions']} reaction(s) (column 'caveat'): " + "; ".join(results["caveats"])
        )
    for note in results.get("recovered_caches", []):
        lines.append(f"Recovered cache: {note}")
    lines.append("Timing: " + results["timing"]["note"])
    lines.append(f"Created {results['created']}" + (f" by `{results['command']}`" if results.get("command") else ""))
    return lines


def write_report(run_dir: str | Path, *, formats: Sequence[str] = ("png",), dpi: int = 100) -> list[str]:
    """(Re)write the report of a run directory from its run files (`screening.results`); returns file names.
    Tables an earlier run left but this one does not have (a relax run's anomalies, a funnel's tables) are
    removed, so the folder never mixes two runs."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    results, funnel, reaction = run.results, run.funnel, run.reaction
    figures: dict[str, list[str]] = {}
    sections: list[tuple[str, list[dict[str, Any]], list[str]]] = []
    if results is not None:
        figures = make_figures(results, run_dir, formats=formats, dpi=dpi)
        ref = results["reference"]
        tables = [
            (f"Per-adsorbate metrics (reference: {ref})", adsorbate_rows(results), "per_adsorbate"),
            ("Speed", speed_rows(results), "speed"),
            (f"Per-reaction results, eV (reference: {ref})", reaction_rows(results), "reactions"),
            ("Skipped / invalid reactions", skipped_rows(results), "skipped"),
        ]
        if "student" in results["models"]:
            tables.insert(1, ("Student vs teacher agreement (ΔE)", agreement_rows(results), "agreement"))
        tables += rebuild_tables(results)
        for title, rows, name in tables:
            sections.append((title, rows, write_table(rows, run_dir, name)))
    if results is not None and results.get("anomalies"):
        relax = results["config"].get("mode") == "relax"
        rows = anomaly_rows(results)
        heading = "Relaxation anomalies" if relax else "Anomalies (failed or non-finite energies)"
        sections.insert(2, (heading, rows, write_table(rows, run_dir, "anomalies")))
        if relax:  # single points: no relaxation to classify
            rows = catbench_rows(results)
            heading = "CatBench anomaly classes (one relaxation per model: reproduction failure not assessed)"
            sections.insert(3, (heading, rows, write_table(rows, run_dir, "anomaly_classes")))
    lines = summary_lines(results) if results is not None else []
    if funnel is not None:
        rows = funnel_rows(funnel)
        at = min(2, len(sections))
        sections.insert(at, ("Funnel (hierarchical screening)", rows, write_table(rows, run_dir, "funnel")))
        ranking = ranking_rows(funnel)
        sections.insert(
            at + 1,
            (
                "Funnel final ranking per adsorbate (teacher ΔE, eV)",
                ranking,
                write_table(ranking, run_dir, "funnel_ranking"),
            ),
        )
        figures["funnel"] = funnel_figure(funnel, run_dir, formats=formats, dpi=dpi)
        if results is None:
            mods = funnel["models"]
            lines = [
                "Funnel-only run (teacher did not evaluate every candidate: no full comparison)",
                _model_line("Teacher", mods["teacher"]),
                _model_line("Student", mods["student"]),
                f"Dataset: {funnel['dataset']['name']} — {funnel['dataset']['source']}",
            ]
    title = "Screening report"
    if results is not None and results["dataset"].get("structures") == "rebuild":
        info = results["dataset"].get("structures_info") or {}
        which = "model" if info.get("lattice", "model") == "model" else "default (builder)"
        title += f" — structures rebuilt from metadata with {which} lattice constants, not the DFT structures"
    if reaction is not None:
        title = f"Reaction-aware screening report: {reaction['reaction']['name'].upper()}"
        lines = reaction_summary_lines(reaction, _model_line) + lines
        figures = reaction_figures(reaction, run_dir, formats=formats, dpi=dpi) | figures
        sections = [
            (t, rows, write_table(rows, run_dir, stem)) for t, rows, stem in reaction_tables(reaction)
        ] + sections
    written = {f for _t, _r, fs in sections for f in fs}
    for name in OPTIONAL_TABLES:
        for ext in ("csv", "md"):
            stale = run_dir / f"{name}.{ext}"
            if stale.name not in written and stale.is_file():
                stale.unlink()
    md = [f"# {title}", ""] + [f"- {line}" for line in lines] + [""]
    for sec_title, rows, _files in sections:
        md += [f"## {sec_title}", "", markdown(rows)]
    md += ["## Figures", ""] + [f"![{n}]({f[0]})" for n, f in figures.items()] + [""]
    (run_dir / "summary.md").write_text("\n".join(md))
    (run_dir / "index.html").write_text(index_html(title, lines, sections, figures))
    files = ["summary.md", "index.html"] + [f for fs in figures.values() for f in fs]
    files += [f for _t, _r, fs in sections for f in fs]
    return files
