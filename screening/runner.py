"""Screening engine: evaluate each distinct system once per model (batched, timed, cached in the run directory),
assemble reaction energies, compute metrics and anomalies, and write `results.json`.

Resumability: per-model energies live in ``<run>/energies/<role>-<mode>-<fingerprint id>.json`` (written
atomically after every batch); a re-run with the same models and structures reads them instead of calling the model.
An energy cache that cannot be read (truncated, edited) is named, moved to ``energies/quarantine/`` and recomputed.

Robustness: structures with overlapping atoms or absurd coordinates are skipped before screening
(`ScreenSet.without_unphysical`); a structure a model cannot evaluate (an element it lacks, a crash) is retried
alone and, if it fails again, its reactions are skipped with the reason while the others are screened; a
non-finite energy (NaN, inf) keeps its reaction out of the metrics, listed with the reason in the skipped table and
counted as an anomaly. One run at a time per run directory (``<run>/.lock``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from calculators.batched import atom_batches
from calculators.files import CacheRecoveredWarning, CorruptFileError, quarantine, read_json
from screening.evaluators import Evaluator
from screening.metrics import grouped
from screening.reactions import ScreenReaction, ScreenSet
from screening.report import write_report
from screening.results import ENERGIES_DIR, RESULTS_FILE, run_lock, write_run_file

SLAB_MOVE_TOL = 0.5  # Å: a slab atom moving more than this during relaxation is an anomaly
MIGRATION_TOL = 1.0  # Å: lateral move of the adsorbate's binding atom counted as migration
DESORPTION_RATIO = 1.5  # adsorbate–surface distance / sum of covalent radii above this = desorbed
ENERGY_ANOMALY = 2.0  # eV: |ΔE_model − ΔE_ref| above this
# Materials Project (MPtrj) applies +U to these elements only when O or F is present: a model trained on MPtrj
# (SevenNet-0) mixes PBE and PBE+U energy scales between the clean slab and the O-covered one.
MP_U_ELEMENTS = frozenset({"Co", "Cr", "Fe", "Mn", "Mo", "Ni", "V", "W"})


def mp_u_caveat(symbols: set[str]) -> str | None:
    """Caveat for MPtrj-trained models when a reaction combines a +U element with O or F, else None."""
    u = sorted(symbols & MP_U_ELEMENTS)
    if u and symbols & {"O", "F"}:
        return f"MPtrj PBE+U mixing ({','.join(u)} with O/F): ΔE of an MPtrj-trained model is not comparable"
    return None


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _valid_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("energy"), int | float)
        and not isinstance(entry.get("energy"), bool)
        and isinstance(entry.get("natoms"), int)
    )


class EnergyStore:
    """Per-model cache of system results in a run directory: {key: {energy, natoms, ...}} plus batch timings.

    A cache file that is not valid JSON or not an energy cache is moved to ``energies/quarantine/`` (a
    `CacheRecoveredWarning` names it) and its energies are recomputed; single malformed entries are recomputed.
    `errors` holds, for this run only, why structures could not be evaluated (key → reason)."""

    def __init__(self, run_dir: Path, role: str, evaluator: Evaluator, mode: str) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in evaluator.fingerprint)[:48]
        self.path = Path(run_dir) / ENERGIES_DIR / f"{role}-{mode}-{safe}.json"
        self.errors: dict[str, str] = {}
        self.recovered: list[str] = []
        self.data: dict[str, Any] = {
            "fingerprint": evaluator.fingerprint,
            "label": evaluator.label,
            "mode": mode,
            "entries": {},
            "batches": [],
        }
        if self.path.is_file():
            try:
                old = read_json(self.path)
                if not (
                    isinstance(old, dict)
                    and isinstance(old.get("entries"), dict)
                    and isinstance(old.get("batches"), list)
                ):
                    raise CorruptFileError(self.path, "not a screening energy cache (no entries/batches)")
            except CorruptFileError as err:
                moved = quarantine(self.path)
                note = f"energy cache {err}; moved to {moved}, its energies are recomputed"
                self.recovered.append(note)
                warnings.warn(note, CacheRecoveredWarning, stacklevel=2)
                return
            if old.get("fingerprint") == evaluator.fingerprint and old.get("mode") == mode:
                bad = [k for k, e in old["entries"].items() if not _valid_entry(e)]
                for k in bad:
                    del old["entries"][k]
                if bad:
                    note = f"energy cache {self.path}: {len(bad)} malformed entries ({bad[:3]}) are recomputed"
                    self.recovered.append(note)
                    warnings.warn(note, CacheRecoveredWarning, stacklevel=2)
                self.data = old

    @property
    def entries(self) -> dict[str, dict[str, Any]]:
        """Cached results by system key."""
        return self.data["entries"]

    def save(self) -> None:
        """Write atomically."""
        write_run_file(self.path, self.data)


def _relax_diagnostics(before: Atoms, after_pos: np.ndarray, gas: bool) -> dict[str, Any]:
    """Slab displacement (max, Å), lateral move of the adsorbate's lowest atom (Å), desorption flag."""
    from ase.data import covalent_radii
    from ase.geometry import get_distances

    tags = before.get_tags()
    disp_vec = after_pos - before.positions
    disp = np.linalg.norm(disp_vec, axis=1)
    ads = tags == 2
    out: dict[str, Any] = {"slab_shift": float(disp[~ads].max(initial=0.0)) if not gas else 0.0}
    if gas or not ads.any() or ads.all():
        out.update(ads_shift=0.0, desorbed=False)
        return out
    ads_idx = np.flatnonzero(ads)
    low = ads_idx[np.argmin(before.positions[ads_idx, 2])]
    out["ads_shift"] = float(np.linalg.norm(disp_vec[low, :2]))
    slab_idx = np.flatnonzero(~ads)
    _, d = get_distances(after_pos[ads_idx], after_pos[slab_idx], cell=before.cell, pbc=before.pbc)
    radii = covalent_radii[before.numbers[ads_idx]][:, None] + covalent_radii[before.numbers[slab_idx]][None, :]
    out["desorbed"] = bool((d / radii).min() > DESORPTION_RATIO)
    return out


def compute_batch(
    evaluator: Evaluator,
    sub: Sequence[Atoms],
    batch_keys: Sequence[str],
    *,
    mode: str,
    gas_keys: set[str] | frozenset[str],
    fmax: float,
    max_steps: int,
    keep_positions: bool = False,
) -> tuple[list[tuple[dict[str, dict[str, Any]], dict[str, Any]]], dict[str, str]]:
    """One batch with `evaluator`: ([(entries by key, batch timing record)], errors by key). A batch that raises
    is retried one structure at a time; a structure that still fails is in `errors` with its reason. Pure: writes
    nothing (the in-process path and Dask workers share it; only the caller writes the cache).

    Every entry carries ``seconds``: its share of the batch's wall clock (split by atoms × force calls); in relax
    mode with `keep_positions`, also the relaxed ``positions`` (Å, rounded to 1e-6) so that a caller can build on
    the relaxed geometry after a resume."""
    t0 = time.perf_counter()
    try:
        if mode == "relax":
            outcomes = evaluator.relax(sub, fmax, max_steps)
        else:
            energies = evaluator.energies(sub)
    except Exception as err:  # noqa: BLE001 - one bad structure must not cost the others
        if len(batch_keys) == 1:
            return [], {batch_keys[0]: f"{type(err).__name__}: {err}"}
        done: list[tuple[dict[str, dict[str, Any]], dict[str, Any]]] = []
        errors: dict[str, str] = {}
        for a, k in zip(sub, batch_keys, strict=True):
            d, e = compute_batch(
                evaluator, [a], [k], mode=mode, gas_keys=gas_keys, fmax=fmax, max_steps=max_steps,
                keep_positions=keep_positions,
            )  # fmt: skip
            done += d
            errors.update(e)
        return done, errors
    dt = time.perf_counter() - t0
    weights = [len(a) * (max(int(outcomes[j].steps), 1) if mode == "relax" else 1) for j, a in enumerate(sub)]
    total = float(sum(weights)) or 1.0
    entries: dict[str, dict[str, Any]] = {}
    for j, k in enumerate(batch_keys):
        entry: dict[str, Any] = {"natoms": len(sub[j]), "gas": k in gas_keys, "seconds": dt * weights[j] / total}
        if mode == "relax":
            o = outcomes[j]
            entry.update(energy=o.energy, converged=o.converged, steps=o.steps)
            entry.update(_relax_diagnostics(sub[j], np.asarray(o.positions), k in gas_keys))
            if keep_positions:
                entry["positions"] = np.asarray(o.positions, dtype=float).round(6).tolist()
        else:
            entry["energy"] = energies[j]
        entries[k] = entry
    record = {
        "structures": len(sub),
        "atoms": sum(len(a) for a in sub),
        "seconds": dt,
        "gas": batch_keys[0] in gas_keys,
        # force evaluations: FIRE steps (relax) or one per structure (single point)
        "force_calls": sum(o.steps for o in outcomes) if mode == "relax" else len(sub),
    }
    return [(entries, record)], {}


def _remote_batch(
    remote: dict[str, Any], fingerprint: str, sub: list[Atoms], batch_keys: list[str], options: dict[str, Any]
) -> dict[str, Any]:
    """A Dask task: one batch with the evaluator `remote` describes, loaded once per worker (and warmed up once,
    untimed). Returns the results; writes nothing."""
    from screening.evaluators import remote_evaluator

    ev = remote_evaluator(remote)
    if ev.fingerprint != fingerprint:
        raise RuntimeError(
            f"the worker's {remote['spec']} is another model (fingerprint {ev.fingerprint} != the client's "
            f"{fingerprint}): workers must see the same checkpoint files"
        )
    calls0 = ev.calls
    if not getattr(ev, "_warmed_up", False):
        smallest = min(sub, key=len)
        with contextlib.suppress(Exception):  # first call pays one-off costs: not timed
            ev.energies([smallest])
        ev._warmed_up = True  # type: ignore[attr-defined]
    done, errors = compute_batch(ev, sub, batch_keys, **options)
    return {"done": done, "errors": errors, "calls": ev.calls - calls0, "pid": os.getpid()}


def evaluate_systems(
    evaluator: Evaluator,
    atoms_by_key: Mapping[str, Atoms],
    keys: Sequence[str],
    store: EnergyStore,
    *,
    mode: str = "single-point",
    batch_atoms: int = 256,
    gas_keys: set[str] | frozenset[str] = frozenset(),
    fmax: float = 0.05,
    max_steps: int = 300,
    warmup: bool = True,
    executor: Any = None,
    progress: bool | None = None,
    keep_positions: bool = False,
) -> dict[str, float]:
    """Energies (eV) of `keys` with `evaluator`, cached in `store`: only missing keys are computed, in batches
    of ≤ `batch_atoms` atoms; each batch is timed (wall clock) and saved at once. Gas systems and the others
    go in separate batches so that timings per structure can be reported for surfaces alone.

    A batch that raises is retried one structure at a time; a structure that still fails is left out of the
    result, its reason in `store.errors` (the other structures are evaluated). Non-finite energies are returned
    (and cached) as they are: the caller decides what they mean.

    `executor`: a `calculators.distributed.DaskExecutor` (default: the one of an enclosing `dask_executor`
    context, if any): each batch is one task on the cluster; results come back here and are written by this
    process only, after each task. Without one (or for an evaluator workers cannot rebuild), batches run here.
    The wall clock of the whole evaluation, the structures it computed and the number of workers go into
    ``store.data["runs"]`` (throughput in `timing_summary`). Each entry has its ``seconds`` and, in relax mode with
    `keep_positions`, its relaxed ``positions`` (see `compute_batch`)."""
    from calculators.distributed import current

    executor = executor if executor is not None else current()
    if executor is not None and evaluator.remote is None:
        warnings.warn(f"{evaluator.label} cannot be rebuilt on Dask workers; evaluated in this process", stacklevel=2)
        executor = None
    todo = [k for k in dict.fromkeys(keys) if k not in store.entries]
    options = dict(mode=mode, gas_keys=frozenset(gas_keys), fmax=fmax, max_steps=max_steps,
                   keep_positions=keep_positions)  # fmt: skip
    batches: list[list[str]] = []
    for group_keys in ([k for k in todo if k in gas_keys], [k for k in todo if k not in gas_keys]):
        structs = [atoms_by_key[k] for k in group_keys]
        for idx in atom_batches([len(a) for a in structs], batch_atoms, largest_first=False):
            batches.append([group_keys[i] for i in idx])

    def apply(done: list, errors: dict[str, str]) -> None:
        for entries, record in done:
            store.entries.update(entries)
            store.data["batches"].append(record)
        store.errors.update(errors)
        if done:
            store.save()

    t_start = time.perf_counter()
    n_done = 0
    if executor is None:
        if todo and warmup and not store.data.get("warmed_up_once"):
            smallest = min(todo, key=lambda k: len(atoms_by_key[k]))
            # first call pays one-off costs: not timed; a bad structure is reported by the evaluation below
            with contextlib.suppress(Exception):
                evaluator.energies([atoms_by_key[smallest]])
        for batch_keys in batches:
            done, errors = compute_batch(evaluator, [atoms_by_key[k] for k in batch_keys], batch_keys, **options)
            apply(done, errors)
            n_done += sum(r["structures"] for _, r in done)
        workers, kind = 1, "in-process"
    else:
        workers, kind = executor.workers, "dask"
        args = [(evaluator.remote, evaluator.fingerprint, [atoms_by_key[k] for k in b], b, options) for b in batches]
        show = bool(batches) if progress is None else progress
        for i, res, err in executor.run(_remote_batch, args, desc=f"{evaluator.label} batches", progress=show):
            if err is not None:  # the task itself failed (a worker lost too often, a wrong model): reported
                why = f"{type(err).__name__}: {err}"
                apply([], {k: why for k in batches[i]})
                continue
            apply(res["done"], res["errors"])
            evaluator.calls += res["calls"]
            n_done += sum(r["structures"] for _, r in res["done"])
        workers = max(workers, executor.workers)
    if batches:
        store.data.setdefault("runs", []).append(
            {"executor": kind, "workers": workers, "structures": n_done, "seconds": time.perf_counter() - t_start}
        )
        store.save()
    return {k: float(store.entries[k]["energy"]) for k in keys if k in store.entries}


def timing_summary(store: EnergyStore) -> dict[str, Any]:
    """ms per structure / per atom / per batch over the non-gas batches of a store (all batches if none)."""
    batches = [b for b in store.data["batches"] if not b.get("gas")] or store.data["batches"]
    if not batches:
        return {"structures": 0, "batches": 0, "ms_per_structure": None, "ms_per_batch": None, "ms_per_atom": None}
    secs = sum(b["seconds"] for b in batches)
    n = sum(b["structures"] for b in batches)
    atoms = sum(b["atoms"] for b in batches)
    calls = sum(b.get("force_calls", b["structures"]) for b in batches)
    return {
        "model_calls_per_structure": calls / n,
        "structures": n,
        "atoms": atoms,
        "batches": len(batches),
        "seconds": secs,
        "ms_per_structure": 1000 * secs / n,
        "ms_per_atom": 1000 * secs / atoms,
        "ms_per_batch": 1000 * secs / len(batches),
        **throughput(store),
    }


def throughput(store: EnergyStore) -> dict[str, Any]:
    """Workers and structures per second (wall clock of the evaluations that computed structures, gas included)
    over the runs recorded in `store` (``{}`` for caches from before runs were recorded)."""
    runs = [r for r in store.data.get("runs", []) if r.get("structures")]
    if not runs:
        return {}
    secs = sum(r["seconds"] for r in runs)
    return {
        "executor": runs[-1]["executor"],
        "workers": runs[-1]["workers"],
        "structures_per_s": sum(r["structures"] for r in runs) / secs if secs > 0 else None,
    }


@dataclass
class RunConfig:
    """Options of a screening run."""

    mode: str = "single-point"  # or "relax"
    gas_energies: str = "teacher"  # "teacher": gas species use the teacher's energies for both models; "self"
    batch_atoms: int = 256
    fmax: float = 0.05
    max_steps: int = 300
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("single-point", "relax"):
            raise ValueError(f"--mode must be single-point or relax, got {self.mode!r}")
        if self.gas_energies not in ("teacher", "self"):
            raise ValueError(f"--gas-energies must be teacher or self, got {self.gas_energies!r}")


def _reaction_anomalies(
    r: ScreenReaction, entries: Mapping[str, Mapping[str, Any]], delta: float | None, ref: float | None
) -> list[str]:
    out = []
    sys_entries = [entries[k] for k in r.systems.values() if k in entries]
    if any(not e.get("converged", True) for e in sys_entries):
        out.append("not converged")
    if any(e.get("slab_shift", 0.0) > SLAB_MOVE_TOL for e in sys_entries):
        out.append(f"slab moved > {SLAB_MOVE_TOL} Å")
    if any(e.get("desorbed") for e in sys_entries):
        out.append("adsorbate desorbed")
    elif any(e.get("ads_shift", 0.0) > MIGRATION_TOL for e in sys_entries):
        out.append("adsorbate migrated")
    if delta is not None and ref is not None and abs(delta - ref) > ENERGY_ANOMALY:
        out.append(f"|ΔE − ref| > {ENERGY_ANOMALY:g} eV")
    return out


def reference_label(screen_set: ScreenSet, teacher: Evaluator) -> str:
    """What the reference is, in words, for every table and plot."""
    if screen_set.reference_kind == "dft":
        return "DFT (CatalysisHub reactionEnergy)"
    return f"teacher ({teacher.label}), not DFT"


def run_screening(
    screen_set: ScreenSet,
    teacher: Evaluator,
    student: Evaluator | None,
    run_dir: str | Path,
    *,
    config: RunConfig | None = None,
    student_absent_reason: str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Evaluate, assemble ΔE, compute metrics/timing/anomalies; writes and returns ``results.json``'s content.

    Reactions with an unphysical structure are skipped before any model runs; those whose energies failed or are
    not finite are kept in ``reactions`` with an ``excluded`` reason (values None), left out of every metric and
    listed in ``dataset.skipped``. `LockedError` when another run holds the run directory."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        return _run_screening(
            screen_set, teacher, student, run_dir, config or RunConfig(), student_absent_reason, command
        )


def _energy_problems(
    r: ScreenReaction,
    energies: Mapping[str, float],
    errors: Mapping[str, str],
    role: str,
    gas: tuple[Mapping[str, float], Mapping[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """(anomaly class, reason) for each species of `r` whose energy failed or is not finite; gas species take
    theirs from `gas` (the teacher's energies and errors) when given."""
    out = []
    for name in dict.fromkeys([*r.reactants, *r.products]):
        key = r.systems[name]
        src, errs, who = (
            (gas[0], gas[1], "teacher") if gas is not None and r.gas.get(name) else (energies, errors, role)
        )
        if key not in src:
            why = errs.get(key, "no energy")
            out.append(("evaluation failed", f"{who} could not evaluate {name}: {why}"))
        elif not math.isfinite(src[key]):
            out.append(("non-finite energy", f"{who} energy of {name} is {src[key]}"))
    return out


def _run_screening(
    screen_set: ScreenSet,
    teacher: Evaluator,
    student: Evaluator | None,
    run_dir: Path,
    cfg: RunConfig,
    student_absent_reason: str | None,
    command: str | None,
) -> dict[str, Any]:
    screen_set = screen_set.without_unphysical()
    gas_keys = screen_set.gas_keys
    all_keys = list(screen_set.atoms)
    t_store = EnergyStore(run_dir, "teacher", teacher, cfg.mode)
    e_teacher = evaluate_systems(
        teacher, screen_set.atoms_for("teacher"), all_keys, t_store, mode=cfg.mode, batch_atoms=cfg.batch_atoms,
        gas_keys=gas_keys, fmax=cfg.fmax, max_steps=cfg.max_steps,
    )  # fmt: skip
    e_student: dict[str, float] | None = None
    s_store = None
    if student is not None:
        s_keys = [k for k in all_keys if not (cfg.gas_energies == "teacher" and k in gas_keys)]
        s_store = EnergyStore(run_dir, "student", student, cfg.mode)
        e_student = evaluate_systems(
            student, screen_set.atoms_for("student"), s_keys, s_store, mode=cfg.mode, batch_atoms=cfg.batch_atoms,
            gas_keys=gas_keys, fmax=cfg.fmax, max_steps=cfg.max_steps,
        )  # fmt: skip
    gas_ref = e_teacher if cfg.gas_energies == "teacher" else None
    gas_src = (e_teacher, t_store.errors) if gas_ref is not None else None
    rows = []
    problem_counts: dict[str, dict[str, int]] = {"teacher": {}, "student": {}}
    for r in screen_set.reactions:
        t_problems = _energy_problems(r, e_teacher, t_store.errors, "teacher")
        s_problems = (
            _energy_problems(r, e_student, s_store.errors, "student", gas_src)
            if e_student is not None and s_store is not None
            else []
        )
        t = None if t_problems else r.delta_e(e_teacher)
        s = None if s_problems or e_student is None else r.delta_e(e_student, gas_ref)
        ref = r.reference if screen_set.reference_kind == "dft" else t
        row: dict[str, Any] = {
            "id": r.id,
            "equation": r.equation,
            "adsorbate": r.adsorbate,
            "surface": r.surface,
            "facet": r.facet,
            "site": r.site,
            "strain_percent": r.strain_percent,
            "reference": ref,
            "teacher": t,
            "student": s,
            "teacher_error": None if t is None or ref is None else t - ref,
            "student_error": None if s is None or ref is None else s - ref,
        }
        problems = t_problems + s_problems
        if problems:
            row["excluded"] = "; ".join(dict.fromkeys(why for _, why in problems))
        for role, found in (("teacher", t_problems), ("student", s_problems)):
            for cls in dict.fromkeys(c for c, _ in found):
                problem_counts[role][cls] = problem_counts[role].get(cls, 0) + 1
        if teacher.mptrj_energies:
            symbols = {sym for k in r.systems.values() for sym in screen_set.atoms[k].get_chemical_symbols()}
            row["caveat"] = mp_u_caveat(symbols)
        if cfg.mode == "relax":
            row["teacher_anomalies"] = _reaction_anomalies(r, t_store.entries, t, ref) + list(
                dict.fromkeys(c for c, _ in t_problems)
            )
            if s_store is not None:
                row["student_anomalies"] = _reaction_anomalies(r, s_store.entries, s, ref) + list(
                    dict.fromkeys(c for c, _ in s_problems)
                )
        rows.append(row)
    has_student = student is not None
    included = [row for row in rows if "excluded" not in row]
    excluded = [(row["id"], f"excluded from the metrics: {row['excluded']}") for row in rows if "excluded" in row]
    metrics = grouped(included, "adsorbate", has_student)
    timing: dict[str, Any] = {"teacher": timing_summary(t_store)}
    if s_store is not None:
        timing["student"] = timing_summary(s_store)
        ts, ss = timing["teacher"]["ms_per_structure"], timing["student"]["ms_per_structure"]
        timing["speedup"] = ts / ss if ts and ss else None
        if cfg.mode == "relax":  # relaxations differ in step counts: also compare per model call
            tc = ts / timing["teacher"]["model_calls_per_structure"] if ts else None
            sc = ss / timing["student"]["model_calls_per_structure"] if ss else None
            timing["speedup_per_model_call"] = tc / sc if tc and sc else None
    timing["note"] = (
        "wall clock per batch over surface (non-gas) systems measured in the run that computed them "
        f"(batches of ≤ {cfg.batch_atoms} atoms, {cfg.threads or 'default'} torch thread(s)); one untimed warm-up "
        "call per model"
    )
    anomalies: dict[str, dict[str, int]] = {}
    if cfg.mode == "relax":
        for role in ("teacher", "student") if has_student else ("teacher",):
            counts: dict[str, int] = {}
            for row in rows:
                for a in row.get(f"{role}_anomalies", []):
                    counts[a] = counts.get(a, 0) + 1
            counts["reactions without anomaly"] = sum(1 for row in rows if not row.get(f"{role}_anomalies"))
            anomalies[role] = counts
    else:  # single points: failed or non-finite energies are the only anomalies
        anomalies = {role: counts for role, counts in problem_counts.items() if counts}
    results = {
        "version": 1,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "config": cfg.__dict__,
        "dataset": {
            "name": screen_set.name,
            "source": screen_set.source,
            "reference_kind": screen_set.reference_kind,
            "counts": screen_set.counts,
            "reactions_screened": len(rows),
            "reactions_excluded": len(excluded),
            "distinct_systems": len(screen_set.atoms),
            "gas_systems": len(gas_keys),
            "skipped": [{"id": i, "reason": why} for i, why in [*screen_set.skipped, *excluded]],
            "structures": screen_set.structures,
            "structures_info": screen_set.structures_info,
        },
        "reference": reference_label(screen_set, teacher),
        "reference_note": (
            "MAE is computed on raw ΔE against DFT, as CatBench reports it: universal potentials and DFT differ "
            "by constant per-species offsets, which are not removed."
            if screen_set.reference_kind == "dft"
            else "Reference energies are the teacher's own ΔE: teacher errors are zero by construction; the "
            "student columns measure agreement with the teacher, not accuracy against DFT."
        ),
        "models": {"teacher": teacher.description | {"label": teacher.label}},
        "student_absent_reason": student_absent_reason if student is None else None,
        "caveats": sorted({row["caveat"] for row in rows if row.get("caveat")}),
        "caveat_reactions": sum(1 for row in rows if row.get("caveat")),
        "gas_energies": cfg.gas_energies,
        "reactions": rows,
        "metrics": {
            k: {m: _finite(v) if isinstance(v, float) else v for m, v in d.items()} for k, d in metrics.items()
        },
        "timing": timing,
        "anomalies": anomalies,
        "recovered_caches": t_store.recovered + (s_store.recovered if s_store is not None else []),
    }
    if student is not None:
        results["models"]["student"] = student.description | {"label": student.label}
    write_run_file(run_dir / RESULTS_FILE, results)
    return results


def run_and_report(
    screen_set: ScreenSet,
    teacher: Evaluator,
    student: Evaluator | None,
    run_dir: str | Path,
    *,
    config: RunConfig | None = None,
    student_absent_reason: str | None = None,
    command: str | None = None,
    formats: Sequence[str] = ("png",),
) -> dict[str, Any]:
    """`run_screening`, then the report of the run directory (`screening.report.write_report`), under the run
    directory's lock."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        results = run_screening(
            screen_set, teacher, student, run_dir, config=config, student_absent_reason=student_absent_reason,
            command=command,
        )  # fmt: skip
        write_report(run_dir, formats=formats)
    return results
