"""Reaction-aware hierarchical screening (`screen funnel --reaction orr`): per surface, each model's adsorption
energies at the sites computed → its most stable site per adsorbate → CHE free energies → limiting potential
(or binding descriptor) → stage thresholds, student first, then the teacher on the survivors, then (optionally)
the set's DFT energies on theirs.

With `verify`, the teacher also computes every surface (not counted as funnel cost) so that the report can give
the student-vs-teacher confusion matrix at the stage thresholds, the recall of the teacher's shortlist by the
student stage and the measured compute saved. Energies are cached in the run directory (`EnergyStore`), so a
re-run resumes. In relax mode each clean slab is relaxed once per model and its adslabs start from that model's
relaxed slab (adsorbate moved with the surface atoms under it), so every adslab relaxation is consistent with
the slab it is referenced to.

Each cache entry holds the structure's wall time (the batch's split by atoms × force calls, measured where it was
computed, a Dask worker or this process) and, in relax mode, its relaxed positions: a resumed run rebuilds every
adslab start from the cached relaxed slab, so the adslab keys and energies are found again and nothing is
recomputed, with or without Dask.

Robustness (as in `screening.runner`): candidates with an unphysical structure are skipped before any model runs
(`CandidateSet.without_unphysical`); a structure a model cannot evaluate is retried alone and, if it fails again,
only its candidates are lost; a candidate whose energy failed or is not finite gets no ΔE (it never takes part in
a site choice or a metric), is flagged as an anomaly and listed with the reason in ``excluded`` and in the skipped
table. A broken cache file is quarantined and recomputed. One run at a time per run directory (``<run>/.lock``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calculators.hashing import structure_key
from calculators.stats import spearman
from screening.descriptors.classify import Stage, confusion, recall_of
from screening.descriptors.surfaces import (
    CandidateSet,
    Surface,
    SurfaceResult,
    adslab_on_relaxed_slab,
    adsorption_energy,
    assess,
    choose_sites,
)
from screening.descriptors.table import ReactionSpec, ReactionTable
from screening.evaluators import Evaluator
from screening.report import write_report
from screening.results import REACTION_FUNNEL_FILE, run_lock, write_run_file
from screening.runner import MIGRATION_TOL, EnergyStore, RunConfig, evaluate_systems, mp_u_caveat

SITE_CHOICE = (
    "Site choice: for each surface and adsorbate, each model (and DFT) uses its own most stable site (lowest ΔE) "
    "among the sites computed for that adsorbate; adsorbates that desorbed during relaxation are not counted."
)


@dataclasses.dataclass
class ModelRun:
    """One model in a reaction funnel: its (wrapped) evaluator, caches, gas energies and per-candidate results."""

    role: str
    evaluator: Evaluator
    store: EnergyStore
    gas_energies: dict[str, float] = dataclasses.field(default_factory=dict)
    delta_e: dict[str, float] = dataclasses.field(default_factory=dict)
    adslab_keys: dict[str, str] = dataclasses.field(default_factory=dict)
    flags: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    computed: set[str] = dataclasses.field(default_factory=set)  # surface ids
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)  # candidate id -> why it has no ΔE
    gas_from: str = ""  # whose gas energies these are ("teacher" for both models unless gas_energies == "self")
    gas_errors: dict[str, str] = dataclasses.field(default_factory=dict)  # gas key -> why it has no energy

    def keys_of(self, surfaces: Iterable[Surface]) -> list[str]:
        """System keys this model evaluated for `surfaces` (slabs and its own adslab keys)."""
        out: dict[str, None] = {}
        for s in surfaces:
            for c in s.candidates:
                out[c.slab_key] = None
                out[self.adslab_keys.get(c.id, c.adslab_key)] = None
        return list(out)

    def seconds(self, keys: Iterable[str]) -> float:
        """Measured wall time (s) of `keys` (0 for keys without a record)."""
        return float(sum(self.store.entries.get(k, {}).get("seconds", 0.0) for k in keys))


def _sync(run: ModelRun, keys: Iterable[str], relax: bool) -> None:
    """Forget cached entries without a wall time or (relax mode) relaxed positions (older caches): recomputed."""
    for k in keys:
        rec = run.store.entries.get(k)
        if rec is not None and ("seconds" not in rec or (relax and "positions" not in rec)):
            del run.store.entries[k]


def compute_surfaces(run: ModelRun, cset: CandidateSet, surfaces: Sequence[Surface], table: ReactionTable,
                     cfg: RunConfig) -> None:  # fmt: skip
    """Evaluate `surfaces` with the run's model (cached), then ΔE of every candidate in the table's scheme."""
    todo = [s for s in surfaces if s.id not in run.computed]
    if not todo:
        return
    relax = cfg.mode == "relax"
    kw = dict(mode=cfg.mode, batch_atoms=cfg.batch_atoms, fmax=cfg.fmax, max_steps=cfg.max_steps,
              keep_positions=relax)  # fmt: skip
    slab_keys = list(dict.fromkeys(c.slab_key for s in todo for c in s.candidates))
    atoms = dict(cset.atoms)
    _sync(run, slab_keys, relax)
    if relax:
        evaluate_systems(run.evaluator, atoms, slab_keys, run.store, **kw)
        for s in todo:
            for c in s.candidates:
                relaxed = run.store.entries.get(c.slab_key, {}).get("positions")
                if relaxed is None:  # the slab failed: reported below
                    continue
                start = adslab_on_relaxed_slab(cset.atoms[c.adslab_key], cset.atoms[c.slab_key], relaxed)
                if start is not None:
                    k = structure_key(start)
                    atoms.setdefault(k, start)
                    run.adslab_keys[c.id] = k
    ads_keys = list(dict.fromkeys(run.adslab_keys.get(c.id, c.adslab_key) for s in todo for c in s.candidates))
    _sync(run, ads_keys, relax)
    evaluate_systems(run.evaluator, atoms, slab_keys + ads_keys, run.store, **kw)
    energies = {k: float(v["energy"]) for k, v in run.store.entries.items()}
    for s in todo:
        for c in s.candidates:
            key = run.adslab_keys.get(c.id, c.adslab_key)
            problem = _energy_problem(run, c, key, energies, cset, table)
            if problem is not None:
                cls, why = problem
                run.delta_e.pop(c.id, None)
                run.excluded[c.id] = why
                run.flags[c.id] = [cls]
                continue
            run.delta_e[c.id] = adsorption_energy(c, energies, run.gas_energies, cset.gas, table, key)
            entry, flags = run.store.entries[key], []
            if not entry.get("converged", True):
                flags.append("not converged")
            if entry.get("desorbed"):
                flags.append("desorbed")
            elif entry.get("ads_shift", 0.0) > MIGRATION_TOL:
                flags.append("migrated")
            if not run.store.entries[c.slab_key].get("converged", True):
                flags.append("slab not converged")
            run.flags[c.id] = flags
        run.computed.add(s.id)


def _energy_problem(
    run: ModelRun, c: Any, adslab_key: str, energies: Mapping[str, float], cset: CandidateSet, table: ReactionTable
) -> tuple[str, str] | None:
    """(anomaly class, reason) when one energy of candidate `c` failed or is not finite (the model's slab or adslab,
    or a gas reference), else None."""
    own = (run.role, energies, run.store.errors)
    gas = (run.gas_from or run.role, run.gas_energies, run.gas_errors)
    species = [("slab", c.slab_key, own), ("adslab", adslab_key, own)]
    species += [(f"gas {g}", cset.gas.get(g), gas) for g in table.adsorbate(c.adsorbate).reference]
    for what, key, (who, src, errors) in species:
        if key is None or key not in src:
            why = errors.get(key or "", "no energy")
            return "evaluation failed", f"{who} could not evaluate the {what} of {c.id}: {why}"
        if not math.isfinite(src[key]):
            return "non-finite energy", f"{who} energy of the {what} of {c.id} is {src[key]}"
    return None


def _descriptor_target(
    reaction: ReactionSpec, table: ReactionTable, ref: Surface | None, values: Mapping[str, float | None],
    excluded: Sequence[str] = (),
) -> float | None:  # fmt: skip
    """A binding reaction's target ΔG: its number, or Σ c·ΔG of the descriptor on the reference surface."""
    if reaction.kind != "binding":
        return None
    if ref is None:
        return float(reaction.target)  # type: ignore[arg-type]
    chosen = choose_sites(ref, values, excluded)
    if any(a not in chosen for a in reaction.descriptor):
        return None
    return sum(c * (chosen[a][1] + table.adsorbate(a).correction) for a, c in reaction.descriptor.items())


def _rule(reaction: ReactionSpec, threshold: float) -> str:
    unit = "V" if reaction.metric in ("U_L", "eta") else "eV"
    name = {"U_L": "U_L", "eta": "η", "abs_dG": "|ΔG − target|"}[reaction.metric]
    return f"{name} {'≥' if reaction.better == 'higher' else '≤'} {threshold:g} {unit}"


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _model_block(res: SurfaceResult | None, cands: Mapping[str, Any], flags: Mapping[str, list[str]]) -> dict | None:
    if res is None:
        return None
    out: dict[str, Any] = {
        "sites": {a: cands[cid].site for a, (cid, _) in res.chosen.items()},
        "delta_e": {a: v for a, (_, v) in res.chosen.items()},
        "flags": sorted({f for cid, _ in res.chosen.values() for f in flags.get(cid, [])}),
        "reason": res.reason,
    }
    if res.activity is not None:
        a = res.activity
        out.update(
            G=a.free_energies, origin=a.origin, descriptor=a.descriptor, metric=_finite(a.metric), U_L=a.U_L,
            eta=a.eta, abs_dG=a.abs_dG, limiting_step=a.limiting_step,
        )  # fmt: skip
    return out


def _mae(a: Sequence[float], b: Sequence[float]) -> float | None:
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None and math.isfinite(x - y)]
    return float(np.mean([abs(x - y) for x, y in pairs])) if pairs else None


def run_reaction_funnel(
    cset: CandidateSet,
    reaction: ReactionSpec,
    table: ReactionTable,
    teacher: Evaluator,
    student: Evaluator,
    run_dir: str | Path,
    *,
    stages: Sequence[Stage],
    verify: bool = True,
    top_k: int = 10,
    force_scaling: bool = False,
    config: RunConfig | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Run the stages over `cset` (see the module docstring); writes and returns ``reaction_funnel.json``.
    `LockedError` when another run holds the run directory."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        return _run_reaction_funnel(
            cset, reaction, table, teacher, student, run_dir, stages=stages, verify=verify, top_k=top_k,
            force_scaling=force_scaling, config=config or RunConfig(), command=command,
        )  # fmt: skip


def _run_reaction_funnel(
    cset: CandidateSet,
    reaction: ReactionSpec,
    table: ReactionTable,
    teacher: Evaluator,
    student: Evaluator,
    run_dir: Path,
    *,
    stages: Sequence[Stage],
    verify: bool,
    top_k: int,
    force_scaling: bool,
    config: RunConfig,
    command: str | None,
) -> dict[str, Any]:
    cfg = config
    cset = cset.without_unphysical(table)
    roles = [s.role for s in stages]
    if "dft" in roles and not cset.has_dft:
        raise ValueError(f"a dft stage needs DFT energies: {cset.name} has none for {reaction.name} in the table's "
                         "reference scheme")  # fmt: skip
    runs: dict[str, ModelRun] = {}
    for role, ev in (("teacher", teacher), ("student", student)):
        runs[role] = ModelRun(role, dataclasses.replace(ev, calls=0), EnergyStore(run_dir, role, ev, cfg.mode))
    # gas references: the teacher's for both models (FORK protocol) unless gas_energies == "self"
    gas_keys = sorted(set(cset.gas.values()))
    kw = dict(mode=cfg.mode, batch_atoms=cfg.batch_atoms, gas_keys=frozenset(gas_keys), fmax=cfg.fmax,
              max_steps=cfg.max_steps, keep_positions=cfg.mode == "relax")  # fmt: skip
    t_run, s_run = runs["teacher"], runs["student"]
    t_run.gas_energies = evaluate_systems(t_run.evaluator, cset.atoms, gas_keys, t_run.store, **kw)
    t_run.gas_from, t_run.gas_errors = "teacher", t_run.store.errors
    s_run.gas_energies, s_run.gas_from, s_run.gas_errors = t_run.gas_energies, "teacher", t_run.store.errors
    if cfg.gas_energies == "self":
        s_run.gas_energies = evaluate_systems(s_run.evaluator, cset.atoms, gas_keys, s_run.store, **kw)
        s_run.gas_from, s_run.gas_errors = "student", s_run.store.errors
    by_id = {s.id: s for s in cset.surfaces}
    cands = cset.candidates
    ref = cset.reference_surface
    results: dict[str, dict[str, SurfaceResult]] = {"teacher": {}, "student": {}, "dft": {}}

    def evaluate(role: str, ids: Sequence[str]) -> None:
        if role == "dft":
            dft = {c.id: c.dft for c in cands.values()}
            target = _descriptor_target(reaction, table, None, dft) if reaction.target_surface is None else None
            for i in ids:
                results["dft"][i] = assess(by_id[i], dft, reaction, table, target=target, force_scaling=force_scaling)
                if reaction.kind == "binding" and target is None:
                    results["dft"][i].reason = "no DFT for the reference surface"
            return
        run = runs[role]
        compute_surfaces(run, cset, ([ref] if ref is not None else []) + [by_id[i] for i in ids], table, cfg)
        excluded = [cid for cid, f in run.flags.items() if "desorbed" in f]
        target = _descriptor_target(reaction, table, ref, run.delta_e, excluded)
        for i in ids:
            res = assess(by_id[i], run.delta_e, reaction, table, target=target, excluded=excluded,
                         force_scaling=force_scaling)  # fmt: skip
            lost = [run.excluded[c.id] for c in by_id[i].candidates if c.id in run.excluded]
            if res.activity is None and lost:
                res.reason = f"{res.reason}; excluded: {'; '.join(lost)}"
            results[role][i] = res

    survivors = [s.id for s in cset.surfaces]
    stage_rows: list[dict[str, Any]] = []
    stage_pass: dict[str, set[str]] = {}
    for st in stages:
        entered = list(survivors)
        t0 = time.perf_counter()
        evaluate(st.role, entered)
        complete = [i for i in entered if results[st.role][i].activity is not None]
        passed = [i for i in complete if reaction.passes(results[st.role][i].metric, st.threshold)]
        row: dict[str, Any] = {
            "stage": st.role,
            "model": runs[st.role].evaluator.label if st.role in runs else f"DFT ({cset.name})",
            "rule": _rule(reaction, st.threshold),
            "threshold": st.threshold,
            "entered": len(entered),
            "complete": len(complete),
            "passed": len(passed),
            "wall_seconds_this_run": time.perf_counter() - t0,
        }
        if st.role in runs:
            run = runs[st.role]
            keys = run.keys_of(([ref] if ref is not None else []) + [by_id[i] for i in entered])
            row["structures"] = len(keys)
            row["measured_seconds"] = run.seconds(keys)
        stage_rows.append(row)
        stage_pass[st.role] = set(passed)
        survivors = passed
    last = stages[-1].role
    final_ids = survivors
    verified: list[str] = []
    if verify:
        all_ids = [s.id for s in cset.surfaces]
        for role in ("student", "teacher"):
            missing = [i for i in all_ids if i not in results[role]]
            if missing:
                evaluate(role, missing)
                verified.append(role)
        if cset.has_dft:
            evaluate("dft", [i for i in all_ids if i not in results["dft"]])

    thr = {s.role: s.threshold for s in stages}
    excluded_all: dict[str, str] = {}
    for run in runs.values():
        for cid, why in run.excluded.items():
            excluded_all[cid] = f"{excluded_all[cid]}; {why}" if cid in excluded_all else why
    out_surfaces = []
    for s in cset.surfaces:
        row = s.labels()
        row["models"] = {
            role: _model_block(results[role].get(s.id), cands, runs[role].flags if role in runs else {})
            for role in ("student", "teacher", "dft")
            if s.id in results[role]
        }
        row["entered"] = {st.role: (k == 0 or s.id in stage_pass[stages[k - 1].role]) for k, st in enumerate(stages)}
        # passed a stage (None: never entered it, e.g. rejected by the student before the teacher stage)
        row["stages"] = {st.role: (s.id in stage_pass[st.role]) if row["entered"][st.role] else None for st in stages}
        if teacher.mptrj_energies:
            symbols = {sym for c in s.candidates for sym in cset.atoms[c.adslab_key].get_chemical_symbols()}
            row["caveat"] = mp_u_caveat(symbols)
        out_surfaces.append(row)
    rank_role = last
    final_metric = {i: results[rank_role][i].metric for i in final_ids}
    shortlist = []
    for n, i in enumerate(reaction.better_first(final_metric)):
        entry: dict[str, Any] = {"rank": n + 1, **by_id[i].labels()}
        for role in ("student", "teacher", "dft"):
            r = results[role].get(i)
            if r is None:
                continue
            a = r.activity
            entry[f"{role}_metric"] = None if a is None else _finite(a.metric)
            if reaction.kind == "electrochemical":
                entry[f"{role}_U_L"] = None if a is None else a.U_L
                entry[f"{role}_eta"] = None if a is None else a.eta
            entry[f"{role}_descriptor"] = None if a is None else a.descriptor
            if role != "dft":
                entry[f"{role}_sites"] = ", ".join(f"{ad}@{cands[cid].site}" for ad, (cid, _) in r.chosen.items())
        shortlist.append(entry)

    out: dict[str, Any] = {
        "version": 1,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "reaction": {
            "name": reaction.name,
            "title": reaction.title,
            "kind": reaction.kind,
            "metric": reaction.metric,
            "better": reaction.better,
            "formula": reaction.formula,
            "descriptor_label": reaction.descriptor_label,
            "adsorbates": list(reaction.adsorbates),
            "scaling": {a: list(v) for a, v in reaction.scaling.items()},
            "direction": reaction.direction if reaction.kind == "electrochemical" else None,
            "equilibrium_potential_V": reaction.equilibrium_potential if reaction.kind == "electrochemical" else None,
            "volcano": {"lines": [list(x) for x in reaction.volcano_lines], "envelope": reaction.volcano_envelope},
            "target": list(reaction.target) if isinstance(reaction.target, tuple) else reaction.target,
            "force_scaling": force_scaling,
        },  # fmt: skip
        "table": {"origin": table.origin, "constants": table.constants(reaction)},
        "site_choice": SITE_CHOICE,
        "dataset": {
            "name": cset.name,
            "source": cset.source,
            "reference_kind": cset.reference_kind,
            "surfaces": len(cset.surfaces),
            "candidates": sum(len(s.candidates) for s in cset.surfaces),
            "has_dft": cset.has_dft,
            "skipped": [{"id": i, "reason": why} for i, why in cset.skipped]
            + [{"id": cid, "reason": f"excluded: {why}"} for cid, why in excluded_all.items()],
            "candidates_excluded": len(excluded_all),
        },  # fmt: skip
        "config": {**cfg.__dict__, "verify": verify, "top_k": top_k},
        "models": {
            "teacher": teacher.description | {"label": teacher.label},
            "student": student.description | {"label": student.label},
        },
        "stages": stage_rows,
        "final_stage": last,
        "surfaces": out_surfaces,
        "shortlist": shortlist,
        "verified_by": verified,
    }
    if ref is not None:
        out["reference_surface"] = {
            "surface": ref.id,
            "targets": {
                role: _descriptor_target(reaction, table, ref, runs[role].delta_e,
                                         [c for c, f in runs[role].flags.items() if "desorbed" in f])
                for role in runs if ref.id in runs[role].computed
            },
        }  # fmt: skip
    if verify:
        out["comparison"] = _compare(reaction, results, thr, cset, runs, top_k)
    else:  # the teacher saw only the student's survivors: a confusion matrix over them would be biased
        out["comparison"] = {"note": "--no-verify: the teacher evaluated only the surfaces that passed the student"}
    out["compute"] = _compute(cset, runs, stage_rows, results, verify)
    if cfg.mode == "relax":
        out["anomalies"] = {role: _count_flags(run.flags) for role, run in runs.items() if run.flags}
    else:  # single points: failed or non-finite energies are the only anomalies
        out["anomalies"] = {
            role: _count_flags({c: run.flags[c] for c in run.excluded}, with_clean=False)
            for role, run in runs.items()
            if run.excluded
        }
    out["excluded"] = [{"id": cid, "reason": why} for cid, why in excluded_all.items()]
    out["recovered_caches"] = [note for run in runs.values() for note in run.store.recovered]
    write_run_file(run_dir / REACTION_FUNNEL_FILE, out)
    return out


def _count_flags(flags: Mapping[str, list[str]], with_clean: bool = True) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in flags.values():
        for x in f:
            counts[x] = counts.get(x, 0) + 1
    if with_clean:
        counts["candidates without anomaly"] = sum(1 for f in flags.values() if not f)
    return counts


def _compare(
    reaction: ReactionSpec,
    results: Mapping[str, Mapping[str, SurfaceResult]],
    thr: Mapping[str, float],
    cset: CandidateSet,
    runs: Mapping[str, ModelRun],
    top_k: int,
) -> dict[str, Any]:
    """Student vs teacher (and each vs DFT) over the surfaces both evaluated."""
    s_res, t_res = results["student"], results["teacher"]
    common = [i for i in s_res if i in t_res]
    out: dict[str, Any] = {"surfaces_compared": len(common)}
    if not common:
        return out
    t_thr = thr.get("teacher", thr.get("student"))
    s_thr = thr.get("student", t_thr)
    s_m = {i: s_res[i].metric for i in common}
    t_m = {i: t_res[i].metric for i in common}
    p_s = lambda v: reaction.passes(v, s_thr)  # noqa: E731
    p_t = lambda v: reaction.passes(v, t_thr)  # noqa: E731
    funnel = confusion(s_m, t_m, p_s, p_t)
    same = confusion(s_m, t_m, p_t, p_t)
    t_short = [i for i in common if p_t(t_m[i])]
    s_kept = [i for i in common if p_s(s_m[i])]
    t_ranked = reaction.better_first({i: v for i, v in t_m.items() if v is not None and math.isfinite(v)})
    out.update(
        student_threshold=s_thr,
        teacher_threshold=t_thr,
        rule_student=_rule(reaction, s_thr),
        rule_teacher=_rule(reaction, t_thr),
        confusion_funnel=funnel.to_dict(),
        confusion_same_threshold=same.to_dict(),
        teacher_shortlist=len(t_short),
        student_kept=len(s_kept),
        recall_teacher_shortlist=recall_of(t_short, s_kept),
        teacher_top_k=t_ranked[:top_k],
        recall_teacher_top_k=recall_of(t_ranked[:top_k], s_kept),
        spearman_metric=spearman([s_m[i] for i in common], [t_m[i] for i in common]),
        mae_metric=_mae([s_m[i] for i in common], [t_m[i] for i in common]),
    )
    if reaction.kind == "electrochemical":
        out["mae_eta"] = _mae(
            [s_res[i].activity.eta if s_res[i].activity else None for i in common],
            [t_res[i].activity.eta if t_res[i].activity else None for i in common],
        )
    # adsorption energies: at each model's chosen site, and candidate by candidate
    cands = cset.candidates
    rows = []
    for a in reaction.adsorbates:
        chosen_s = [s_res[i].chosen.get(a) for i in common]
        chosen_t = [t_res[i].chosen.get(a) for i in common]
        pairs = [(x, y) for x, y in zip(chosen_s, chosen_t, strict=True) if x is not None and y is not None]
        ids = [c.id for c in cands.values() if c.adsorbate == a and c.surface in set(common)]
        cs = [runs["student"].delta_e.get(c) for c in ids]
        ct = [runs["teacher"].delta_e.get(c) for c in ids]
        if not pairs and not ids:
            continue
        row: dict[str, Any] = {
            "adsorbate": a,
            "surfaces": len(pairs),
            "MAE_best_site_eV": _mae([p[0][1] for p in pairs], [p[1][1] for p in pairs]),
            "spearman_best_site": spearman([p[0][1] for p in pairs], [p[1][1] for p in pairs]),
            "same_site_share": float(np.mean([p[0][0] == p[1][0] for p in pairs])) if pairs else None,
            "candidates": len(ids),
            "MAE_all_sites_eV": _mae(cs, ct),
            "spearman_all_sites": spearman(cs, ct),
        }
        if cset.has_dft:
            dft = [cands[c].dft for c in ids]
            row["MAE_teacher_vs_DFT_eV"] = _mae(ct, dft)
            row["MAE_student_vs_DFT_eV"] = _mae(cs, dft)
        rows.append(row)
    out["adsorbates"] = rows
    out["site_agreement_note"] = SITE_CHOICE
    d_res = results.get("dft", {})
    if d_res:
        final = thr.get("dft", t_thr)
        for role in ("teacher", "student"):
            ids = [i for i in d_res if i in results[role]]
            m = {i: results[role][i].metric for i in ids}
            d = {i: d_res[i].metric for i in ids}
            c = confusion(m, d, lambda v: reaction.passes(v, final), lambda v: reaction.passes(v, final))
            out[f"{role}_vs_dft"] = {
                "threshold": final, "confusion": c.to_dict(), "mae_metric": _mae([m[i] for i in ids],
                                                                                   [d[i] for i in ids]),
            }  # fmt: skip
    return out


def _compute(
    cset: CandidateSet,
    runs: Mapping[str, ModelRun],
    stage_rows: Sequence[Mapping[str, Any]],
    results: Mapping[str, Mapping[str, SurfaceResult]],
    verify: bool,
) -> dict[str, Any]:
    """Measured compute of the funnel (its model stages) against the teacher on every surface."""
    ref = [cset.reference_surface] if cset.reference_surface is not None else []
    funnel = sum(r.get("measured_seconds", 0.0) for r in stage_rows)
    funnel_structures = {r["stage"]: r.get("structures") for r in stage_rows if "structures" in r}
    t = runs["teacher"]
    all_surfaces = ref + list(cset.surfaces)
    out: dict[str, Any] = {
        "funnel_seconds": funnel,
        "funnel_structures": funnel_structures,
        "note": (
            "wall clock of the model calls, per structure (batch time split by atoms × force calls), measured in "
            "the run that computed it; gas references excluded (shared, a few molecules)"
        ),
    }
    for role, run in runs.items():
        keys = run.keys_of(s for s in all_surfaces if s.id in run.computed)
        secs = run.seconds(keys)
        out[f"{role}_structures_computed"] = len(keys)
        out[f"{role}_seconds_per_structure"] = secs / len(keys) if keys else None
    if all(s.id in t.computed for s in cset.surfaces):
        keys = t.keys_of(all_surfaces)
        out["teacher_all_seconds"] = t.seconds(keys)
        out["teacher_all_structures"] = len(keys)
        out["teacher_all_measured"] = True
    elif out.get("teacher_seconds_per_structure"):
        n = len(runs["student"].keys_of(all_surfaces))
        out["teacher_all_seconds"] = out["teacher_seconds_per_structure"] * n
        out["teacher_all_structures"] = n
        out["teacher_all_measured"] = False
    if out.get("teacher_all_seconds"):
        out["compute_saved_share"] = 1.0 - funnel / out["teacher_all_seconds"]
    return out


def reaction_funnel_and_report(
    cset: CandidateSet,
    reaction: ReactionSpec,
    table: ReactionTable,
    teacher: Evaluator,
    student: Evaluator,
    run_dir: str | Path,
    *,
    formats: Sequence[str] = ("png",),
    **kw: Any,
) -> dict[str, Any]:
    """`run_reaction_funnel`, then the report of the run directory, under the run directory's lock."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        out = run_reaction_funnel(cset, reaction, table, teacher, student, run_dir, **kw)
        write_report(run_dir, formats=formats)
    return out
