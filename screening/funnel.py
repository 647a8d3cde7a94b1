"""Hierarchical screening on raw ΔE: the student scores every candidate, the teacher re-evaluates the top fraction
(or the candidates within a window of a target ΔE), and the final ranking uses the teacher's energies.

Rankings are per adsorbate, never across adsorbates: ΔE of H* and O* are not comparable quantities (H* always has
the lowest ΔE, so a pooled ranking shortlists only H*). The fraction is taken within each adsorbate, ranks restart
at 1 for each adsorbate, and recall of the teacher's top-k is computed per adsorbate (and pooled). For a
catalytic criterion (limiting potential, |ΔG_H|), use the reaction-aware funnel (`screening.reaction_funnel`).

Score (lower is better): ΔE (eV) without a target (strongest binding first), |ΔE − target| with one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from screening.evaluators import Evaluator
from screening.reactions import ScreenSet
from screening.report import write_report
from screening.results import FUNNEL_FILE, run_lock, write_run_file
from screening.runner import (
    EnergyStore,
    RunConfig,
    evaluate_systems,
    run_screening,
    timing_summary,
)


def score(delta_e: float, target: float | None) -> float:
    """Lower is better: ΔE, or |ΔE − target| (eV)."""
    return delta_e if target is None else abs(delta_e - target)


def ranking(values: Mapping[str, float], target: float | None) -> list[str]:
    """Ids best first (ties by id)."""
    return sorted(values, key=lambda i: (score(values[i], target), i))


def by_group(ids: Sequence[str], groups: Mapping[str, str] | None) -> dict[str, list[str]]:
    """Ids per group (e.g. adsorbate), in input order; one group "" without `groups`."""
    out: dict[str, list[str]] = {}
    for i in ids:
        out.setdefault("" if groups is None else groups.get(i, ""), []).append(i)
    return out


def select(
    student: Mapping[str, float],
    *,
    fraction: float | None = None,
    target: float | None = None,
    window: float | None = None,
    groups: Mapping[str, str] | None = None,
) -> list[str]:
    """Candidates the teacher re-evaluates: within `window` eV of `target` by the student (window mode), else
    the best ceil(fraction·N) by student score (at least one). With `groups` (id → adsorbate), the fraction is
    taken within each group."""
    if groups is not None:
        out: list[str] = []
        for ids in by_group(list(student), groups).values():
            out += select({i: student[i] for i in ids}, fraction=fraction, target=target, window=window)
        return out
    if window is not None:
        if target is None:
            raise ValueError("--window needs --target")
        return [i for i in ranking(student, target) if abs(student[i] - target) <= window]
    if fraction is None or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = max(1, math.ceil(fraction * len(student)))
    return ranking(student, target)[:n]


def recall_at_k(final: Sequence[str], truth: Sequence[str], k: int) -> float:
    """|final[:k] ∩ truth[:k]| / min(k, len(truth))."""
    k = min(k, len(truth))
    return len(set(final[:k]) & set(truth[:k])) / k if k else math.nan


def grouped_ranking(values: Mapping[str, float], target: float | None, groups: Mapping[str, str]) -> dict[str, list]:
    """{group: ids best first} (see `ranking`)."""
    return {g: ranking({i: values[i] for i in ids}, target) for g, ids in by_group(list(values), groups).items()}


def grouped_recall(
    final: Mapping[str, Sequence[str]], truth: Mapping[str, Sequence[str]], k: int
) -> tuple[float, dict[str, float]]:
    """Recall of the truth's top-k per group, and pooled: Σ hits / Σ min(k, |truth_g|)."""
    per, hits, den = {}, 0, 0
    for g, t in truth.items():
        f = final.get(g, [])
        kk = min(k, len(t))
        if kk:
            h = len(set(f[:kk]) & set(t[:kk]))
            per[g], hits, den = h / kk, hits + h, den + kk
    return (hits / den if den else math.nan), per


def _deltas(reactions, energies: Mapping[str, float], gas: Mapping[str, float] | None, excluded: dict[str, str],
            who: str) -> dict[str, float]:  # fmt: skip
    """ΔE by reaction id where every energy is there and the result is finite; the others go to `excluded`."""
    out = {}
    for r in reactions:
        try:
            value = r.delta_e(energies, gas)
        except KeyError:
            excluded.setdefault(r.id, f"{who} could not evaluate a structure of this reaction")
            continue
        if math.isfinite(value):
            out[r.id] = value
        else:
            excluded.setdefault(r.id, f"{who} ΔE is {value}")
    return out


def run_funnel(
    screen_set: ScreenSet,
    teacher: Evaluator,
    student: Evaluator,
    run_dir: str | Path,
    *,
    fraction: float | None = 0.2,
    target: float | None = None,
    window: float | None = None,
    top_k: int = 5,
    verify: bool = True,
    config: RunConfig | None = None,
) -> dict[str, Any]:
    """Funnel over `screen_set` (energies cached in `run_dir` like `run_screening`). With `verify`, the teacher
    also evaluates every candidate (not counted as funnel cost) to give recall of its own top-k.
    Writes and returns ``funnel.json``'s content. Candidates with an unphysical structure, or whose energies
    failed or are not finite, are left out of every ranking and listed in ``excluded`` with the reason."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        return _run_funnel(screen_set, teacher, student, run_dir, fraction, target, window, top_k, verify, config)


def _run_funnel(screen_set, teacher, student, run_dir, fraction, target, window, top_k, verify, config):
    cfg = config or RunConfig()
    screen_set = screen_set.without_unphysical()
    excluded: dict[str, str] = {}
    gas = screen_set.gas_keys
    kw = dict(mode=cfg.mode, batch_atoms=cfg.batch_atoms, gas_keys=gas, fmax=cfg.fmax, max_steps=cfg.max_steps)
    t_store = EnergyStore(run_dir, "teacher", teacher, cfg.mode)
    s_store = EnergyStore(run_dir, "student", student, cfg.mode)
    # gas references from the teacher for both (FORK protocol) unless --gas-energies self
    e_gas = evaluate_systems(teacher, screen_set.atoms, sorted(gas), t_store, **kw)
    e_gas_s = e_gas
    if cfg.gas_energies == "self":
        e_gas_s = evaluate_systems(student, screen_set.atoms, sorted(gas), s_store, **kw)
    surf = [k for k in screen_set.atoms if k not in gas]
    e_s = evaluate_systems(student, screen_set.atoms, surf, s_store, **kw)
    student_de = _deltas(screen_set.reactions, e_s, e_gas_s, excluded, "student")
    groups = {r.id: r.adsorbate for r in screen_set.reactions}
    chosen = select(student_de, fraction=fraction, target=target, window=window, groups=groups)
    by_id = {r.id: r for r in screen_set.reactions}
    chosen_keys = sorted({k for i in chosen for k in by_id[i].systems.values() if k not in gas})
    e_t = evaluate_systems(teacher, screen_set.atoms, chosen_keys, t_store, **kw)
    teacher_de = _deltas([by_id[i] for i in chosen], e_t, e_gas, excluded, "teacher")
    final = grouped_ranking(teacher_de, target, groups)
    n_surf_all = len(surf)
    out: dict[str, Any] = {
        "candidates": len(screen_set.reactions),
        "selection": (
            {"mode": "window", "target": target, "window": window}
            if window is not None
            else {"mode": "fraction", "fraction": fraction, "target": target}
        ),
        "score": ("ΔE (lower is better)" if target is None else f"|ΔE − {target:g} eV| (lower is better)")
        + ", ranked within each adsorbate",
        "ranking": "per adsorbate",
        "re_evaluated": len(chosen),
        "teacher_structures_funnel": len(chosen_keys),
        "teacher_structures_all": n_surf_all,
        "structures_saved_share": 1 - len(chosen_keys) / n_surf_all if n_surf_all else math.nan,
        "top_k": top_k,
        "final_ranking": [
            {"adsorbate": g, "rank": n + 1, "id": i, "teacher": teacher_de[i], "student": student_de[i]}
            for g, ids in sorted(final.items())
            for n, i in enumerate(ids)
        ],
        "student_scores": student_de,
        "skipped": [{"id": i, "reason": why} for i, why in screen_set.skipped],
    }
    st = timing_summary(s_store)
    if verify:
        e_all = evaluate_systems(teacher, screen_set.atoms, surf, t_store, **kw)
        teacher_all = _deltas(screen_set.reactions, e_all, e_gas, excluded, "teacher")
        truth = grouped_ranking({i: v for i, v in teacher_all.items() if i not in excluded}, target, groups)
        out["teacher_top_k"] = {g: ids[:top_k] for g, ids in sorted(truth.items())}
        out["recall_at_k"], out["recall_at_k_by_adsorbate"] = grouped_recall(final, truth, top_k)
        out["student_only_recall_at_k"], _ = grouped_recall(grouped_ranking(student_de, target, groups), truth, top_k)
        out["teacher_scores"] = teacher_all
    tt = timing_summary(t_store)
    if tt["ms_per_structure"] and st["ms_per_structure"]:
        cost_funnel = n_surf_all * st["ms_per_structure"] + len(chosen_keys) * tt["ms_per_structure"]
        cost_teacher = n_surf_all * tt["ms_per_structure"]
        out["estimated_seconds_funnel"] = cost_funnel / 1000
        out["estimated_seconds_teacher_all"] = cost_teacher / 1000
        out["compute_saved_share"] = 1 - cost_funnel / cost_teacher
    out["timing"] = {"teacher": tt, "student": st}
    out["models"] = {
        "teacher": teacher.description | {"label": teacher.label},
        "student": student.description | {"label": student.label},
    }
    out["dataset"] = {"name": screen_set.name, "source": screen_set.source}
    out["excluded"] = [{"id": i, "reason": why} for i, why in excluded.items()]
    write_run_file(run_dir / FUNNEL_FILE, out)
    return out


def funnel_and_report(
    screen_set: ScreenSet,
    teacher: Evaluator,
    student: Evaluator,
    run_dir: str | Path,
    *,
    fraction: float | None = 0.2,
    target: float | None = None,
    window: float | None = None,
    top_k: int = 5,
    verify: bool = True,
    config: RunConfig | None = None,
) -> dict[str, Any]:
    """`run_funnel` (window mode when `window` is given, else the best `fraction`), then, with `verify`, the full
    teacher/student comparison from the cached energies (no model call), then the report; all under the run
    directory's lock."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        result = run_funnel(
            screen_set, teacher, student, run_dir, fraction=None if window is not None else fraction, target=target,
            window=window, top_k=top_k, verify=verify, config=config,
        )  # fmt: skip
        if verify:  # every energy is cached now: the full comparison costs no model call
            run_screening(screen_set, teacher, student, run_dir, config=config)
        write_report(run_dir)
    return result
