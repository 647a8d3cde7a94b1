"""Relax mode on rebuilt structures: each model relaxes every clean slab once, and the adsorbates are placed on its
relaxed slab — the slab is shared by all its adsorbates, geometry and energy.

Why: a rebuilt slab is ideal (bulk positions, strained in plane), so its first relaxation includes the ordinary
surface relaxation (outward expansion of a compressed slab, buckling of a large minority atom: 0.3–0.7 Å for
Ag₃In(111) at −5 %). Starting the adslabs from the relaxed slab makes the runner's displacement checks measure what
the adsorbate does, as CatBench's do when they start from DFT-relaxed structures, and saves steps. The runner then
re-relaxes the relaxed slabs (a few steps; its energy cache gets them like any system) and relaxes the adslabs.

The pre-relaxation is cached in ``<run>/rebuild/slabs-<role>-<fingerprint id>.json`` (positions, energy,
convergence, steps, seconds; written atomically after each batch), so a re-run resumes; its timings are reported
separately (`structures_info["slab_prerelax"]`).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from calculators.batched import atom_batches
from calculators.files import CacheRecoveredWarning, CorruptFileError, atomic_write_json, quarantine, read_json
from screening.evaluators import Evaluator
from screening.reactions import ScreenSet
from screening.structures import add_adsorbate, find_sites

PRERELAX_DIR = "rebuild"


def _cache_path(run_dir: Path, role: str, ev: Evaluator) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in ev.fingerprint)[:48]
    return Path(run_dir) / PRERELAX_DIR / f"slabs-{role}-{safe}.json"


def _moved_site(site: Any, ideal: Atoms, relaxed: Atoms) -> Any:
    """The site moved with its atoms: xy by their mean lateral displacement, z at their mean relaxed height."""
    members = list(site.atoms)
    disp = (relaxed.positions[members] - ideal.positions[members]).mean(axis=0)
    pos = np.array(site.position, dtype=float)
    pos[:2] += disp[:2]
    pos[2] = float(relaxed.positions[members, 2].mean())
    return replace(site, position=pos)


def prerelax_slabs(
    sset: ScreenSet,
    evaluators: Mapping[str, Evaluator | None],
    run_dir: str | Path,
    *,
    fmax: float = 0.05,
    max_steps: int = 300,
    batch_atoms: int = 256,
) -> ScreenSet:
    """A copy of the rebuilt `sset` whose clean slabs are relaxed by each role's model and whose adslabs are built on
    them (see module docstring). Roles without an evaluator keep the ideal structures."""
    info = dict(sset.structures_info)
    recipes: dict[str, dict[str, str]] = info.get("adslabs", {})
    labels: dict[str, str] = info.get("slabs", {})
    slab_keys = sorted(labels)
    summary: dict[str, Any] = {}
    new_atoms: dict[str, dict[str, Atoms]] = {}
    for role, ev in evaluators.items():
        atoms = sset.atoms_for(role)
        if ev is None:
            continue
        path = _cache_path(Path(run_dir), role, ev)
        cache: dict[str, Any] = {"fingerprint": ev.fingerprint, "fmax": fmax, "max_steps": max_steps, "slabs": {}}
        if path.is_file():
            try:
                old = read_json(path)
                if not (isinstance(old, dict) and isinstance(old.get("slabs"), dict)):
                    raise CorruptFileError(path, "not a slab pre-relaxation cache (no slabs)")
            except CorruptFileError as err:
                old = {}
                warnings.warn(f"slab pre-relaxation cache {err}; moved to {quarantine(path)}, its slabs are "
                              "relaxed again", CacheRecoveredWarning, stacklevel=2)  # fmt: skip
            if (old.get("fingerprint"), old.get("fmax"), old.get("max_steps")) == (ev.fingerprint, fmax, max_steps):
                cache = old
        todo = [k for k in slab_keys if k in atoms and k not in cache["slabs"]]
        for idx in atom_batches([len(atoms[k]) for k in todo], batch_atoms, largest_first=False):
            batch = [atoms[todo[i]] for i in idx]
            t0 = time.perf_counter()
            outs = ev.relax(batch, fmax, max_steps)
            dt = time.perf_counter() - t0
            for i, o in zip(idx, outs, strict=True):
                before = atoms[todo[i]].positions
                d = np.asarray(o.positions) - before
                cache["slabs"][todo[i]] = {
                    "energy": o.energy,
                    "converged": o.converged,
                    "steps": o.steps,
                    "seconds": dt * len(atoms[todo[i]]) / sum(len(a) for a in batch),
                    "max_dz": float(np.abs(d[:, 2]).max()),
                    "max_lateral": float(np.linalg.norm(d[:, :2], axis=1).max()),
                    "positions": np.asarray(o.positions).tolist(),
                }
            atomic_write_json(path, cache)
        role_atoms = dict(atoms)
        relaxed: dict[str, Atoms] = {}
        for k in slab_keys:
            if k not in atoms or k not in cache["slabs"]:
                continue
            a = atoms[k].copy()
            a.positions = np.asarray(cache["slabs"][k]["positions"])
            a.info["prerelaxed"] = True
            relaxed[k] = role_atoms[k] = a
        sites: dict[str, dict[str, Any]] = {}
        for key, rec in recipes.items():
            slab_key = rec["slab"]
            if key not in atoms or slab_key not in relaxed:
                continue
            if slab_key not in sites:
                sites[slab_key] = {s.name: s for s in find_sites(atoms[slab_key])}
            site = _moved_site(sites[slab_key][rec["site"]], atoms[slab_key], relaxed[slab_key])
            adslab = add_adsorbate(relaxed[slab_key], rec["adsorbate"], site)
            adslab.info["kind"] = "adslab"
            role_atoms[key] = adslab
        new_atoms[role] = role_atoms
        entries = [cache["slabs"][k] | {"key": k} for k in slab_keys if k in cache["slabs"]]
        summary[role] = {
            "model": ev.label,
            "slabs": len(entries),
            "converged": sum(bool(e["converged"]) for e in entries),
            "seconds": sum(e["seconds"] for e in entries),
            "force_calls": sum(e["steps"] for e in entries),
            "rows": [
                {
                    "model": ev.label,
                    "slab": labels.get(e["key"], e["key"]),
                    "key": e["key"],
                    "steps": e["steps"],
                    "converged": e["converged"],
                    "energy_eV": e["energy"],
                    "max_dz_A": e["max_dz"],
                    "max_lateral_A": e["max_lateral"],
                }
                for e in entries
            ],
        }
    info["slab_prerelax"] = summary | {"fmax": fmax, "max_steps": max_steps}
    # new keys for the systems that changed: a model's pre-relaxed slab is a function of its fingerprint (each
    # energy cache is per model) and of fmax and max_steps, so those go into the key
    tag = hashlib.sha256(json.dumps(["prerelaxed", fmax, max_steps]).encode()).hexdigest()[:8]
    changed = set(slab_keys) | set(recipes)
    rekey = {k: f"{k}-r{tag}" if k in changed else k for k in sset.atoms}

    def remap(d: Mapping[str, Atoms]) -> dict[str, Atoms]:
        return {rekey.get(k, k): a for k, a in d.items()}

    teacher_atoms = remap(new_atoms.get("teacher", sset.atoms))
    role_atoms = {r: remap(new_atoms.get(r, a)) for r, a in sset.role_atoms.items()}
    reactions = [replace(r, systems={n: rekey.get(k, k) for n, k in r.systems.items()}) for r in sset.reactions]
    info["slabs"] = {rekey.get(k, k): v for k, v in labels.items()}
    for role_summary in summary.values():
        for row in role_summary["rows"]:
            row["key"] = rekey.get(row["key"], row["key"])
    info["adslabs"] = {rekey.get(k, k): v | {"slab": rekey.get(v["slab"], v["slab"])} for k, v in recipes.items()}
    return replace(sset, reactions=reactions, atoms=teacher_atoms, role_atoms=role_atoms, structures_info=info)
