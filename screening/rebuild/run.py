"""`run_rebuilt_and_report`: a screening run on rebuilt structures — relax mode made robust (`robust_evaluator`),
each clean slab relaxed once per model with the adsorbates placed on it (`prerelax_slabs`), the runner, then the
clean-slab anomalies of that first relaxation added to the reactions that use the slab, and the report.

Clean-slab flags (per model; CatBench class: unphysical relaxation): "clean slab not converged", "clean slab
reconstructed" (an atom moved more than `SLAB_LATERAL_TOL` in the plane) and "clean slab broken" (an atom moved more
than `SLAB_DZ_TOL` along z). Out-of-plane moves below that are the ordinary relaxation of an ideal strained slab
(0.3–0.9 Å at ±5 % strain) and are not flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from screening.evaluators import Evaluator
from screening.reactions import ScreenSet
from screening.rebuild.prerelax import prerelax_slabs
from screening.rebuild.robust import robust_evaluator
from screening.report import write_report
from screening.results import RESULTS_FILE, run_lock, write_run_file
from screening.runner import RunConfig, run_screening

SLAB_LATERAL_TOL = 0.5  # Å (CatBench's displacement threshold)
SLAB_DZ_TOL = 1.5  # Å


def slab_flags(entry: dict[str, Any]) -> list[str]:
    """Anomaly flags of one clean-slab pre-relaxation (`prerelax_slabs` row)."""
    flags = []
    if not entry.get("converged", True):
        flags.append("clean slab not converged")
    if entry.get("max_lateral_A", 0.0) > SLAB_LATERAL_TOL:
        flags.append(f"clean slab reconstructed (lateral > {SLAB_LATERAL_TOL:g} Å)")
    if entry.get("max_dz_A", 0.0) > SLAB_DZ_TOL:
        flags.append(f"clean slab broken (|Δz| > {SLAB_DZ_TOL:g} Å)")
    return flags


def add_slab_anomalies(results: dict[str, Any], sset: ScreenSet) -> dict[str, Any]:
    """Add each model's clean-slab flags to the anomalies of the reactions on that slab and recount them."""
    info = results["dataset"].get("structures_info") or {}
    pre = info.get("slab_prerelax") or {}
    adslabs = info.get("adslabs") or {}
    slab_of: dict[str, str] = {}
    for r in sset.reactions:
        keys = [r.systems.get("star")] + [adslabs.get(k, {}).get("slab") for k in r.systems.values()]
        slab_of[r.id] = next((k for k in keys if k), "")
    for role in results.get("anomalies", {}):
        flags = {row["key"]: slab_flags(row) for row in (pre.get(role) or {}).get("rows", [])}
        counts: dict[str, int] = {}
        for row in results["reactions"]:
            extra = [f for f in flags.get(slab_of.get(row["id"], ""), []) if f not in row.get(f"{role}_anomalies", [])]
            row[f"{role}_anomalies"] = list(row.get(f"{role}_anomalies", [])) + extra
            for a in row[f"{role}_anomalies"]:
                counts[a] = counts.get(a, 0) + 1
        counts["reactions without anomaly"] = sum(1 for row in results["reactions"] if not row[f"{role}_anomalies"])
        results["anomalies"][role] = counts
    return results


def run_rebuilt_and_report(
    sset: ScreenSet,
    teacher: Evaluator,
    student: Evaluator | None,
    run_dir: str | Path,
    *,
    config: RunConfig | None = None,
    student_absent_reason: str | None = None,
    command: str | None = None,
    formats: Sequence[str] = ("png",),
) -> dict[str, Any]:
    """Screen a rebuilt `sset` (module docstring) into `run_dir`; returns the results (also in results.json). All
    under the run directory's lock (`screening.results.run_lock`)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        return _run_rebuilt(sset, teacher, student, run_dir, config or RunConfig(), student_absent_reason, command,
                            formats)  # fmt: skip


def _run_rebuilt(
    sset: ScreenSet,
    teacher: Evaluator,
    student: Evaluator | None,
    run_dir: Path,
    cfg: RunConfig,
    student_absent_reason: str | None,
    command: str | None,
    formats: Sequence[str],
) -> dict[str, Any]:
    if cfg.mode == "relax":
        teacher = robust_evaluator(teacher)
        student = robust_evaluator(student) if student is not None else None
        sset = prerelax_slabs(
            sset, {"teacher": teacher, "student": student}, run_dir, fmax=cfg.fmax, max_steps=cfg.max_steps,
            batch_atoms=cfg.batch_atoms,
        )  # fmt: skip
    results = run_screening(
        sset, teacher, student, run_dir, config=cfg, student_absent_reason=student_absent_reason, command=command
    )
    if cfg.mode == "relax":
        results = add_slab_anomalies(results, sset)
        write_run_file(run_dir / RESULTS_FILE, results)
    write_report(run_dir, formats=formats)
    return results
