"""Rebuild a CatalysisHub dataset's structures from its metadata, once per model, as a `ScreenSet`.

For every reaction: `spec_from_reaction` (prototype, cell, layers, facet, strain, adsorbates, named sites, gas
species), then per model: its own lattice constants (`model_lattice`, cached per model and bulk), the clean slab
(`make_slab_cell`, strained relative to that lattice), the named site (`match_site`) and the adslab
(`add_adsorbate`); gas references from `gas_molecule`, identical for all models. Every system gets a stable key
from its construction (not from its coordinates), so the teacher's and the student's versions of one slab share a
key and each model's energy cache stays valid: the clean slab is evaluated (or relaxed) once per model and shared
by every adsorbate on it.

A reaction that cannot be rebuilt is listed in `ScreenSet.skipped` with its reason: an unknown prototype or facet,
a site name the built slab lacks, an element a model lacks, a lattice relaxation without minimum, a composition
that differs from ``chemicalComposition``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from calculators.hashing import structure_key
from screening.evaluators import Evaluator
from screening.reactions import ScreenReaction, ScreenSet
from screening.rebuild.lattice import LATTICE_METHOD, LatticeCache, model_lattice
from screening.rebuild.spec import NotRebuildable, RebuildSpec, SurfaceSpec, spec_from_reaction
from screening.structures import StructureBuildError, add_adsorbate, find_sites, gas_molecule, make_bulk
from screening.structures.site_names import composition_counts, match_site
from screening.structures.surface_cells import make_slab_cell

STRUCTURES_NOTE = (
    "Structures rebuilt from CatalysisHub metadata with each model's own relaxed lattice constants, not taken "
    "from the DFT calculations"
)
STRUCTURES_NOTE_DEFAULT = (
    "Structures rebuilt from CatalysisHub metadata with the builder's default lattice constants (Vegard / ASE "
    "reference states), not taken from the DFT calculations"
)


@dataclass
class _Built:
    slab: Atoms
    sites: list[Any]


def _lattice_for(
    role: str, ev: Evaluator, surf: SurfaceSpec, caches: Mapping[str, LatticeCache | None], lattice: str
) -> dict[str, Any]:
    if lattice == "default":  # the builder's constants (make_bulk's defaults), recorded for the report
        try:
            bulk = make_bulk(surf.composition, surf.prototype)
        except StructureBuildError:
            return {"a": None, "c": None, "source": "builder default"}
        a, c = float(bulk.info["a"]), bulk.info.get("c")
        return {"a": None, "c": None, "default_a": a, "default_c": None if c is None else float(c),
                "source": "builder default"}  # fmt: skip
    return model_lattice(ev.energies, caches.get(role), surf.composition, surf.prototype)


def _build_slab(surf: SurfaceSpec, lat: Mapping[str, Any]) -> Atoms:
    slab = make_slab_cell(
        surf.composition, surf.prototype, surf.facet, surf.sites_per_layer, surf.layers, strain=surf.strain,
        a=lat.get("a"), c=lat.get("c"), shape=surf.shape,
    )  # fmt: skip
    counts = composition_counts(slab)
    if counts != dict(surf.counts):
        raise StructureBuildError(f"built slab has {counts}, chemicalComposition says {dict(surf.counts)}")
    slab.info.update(adsorbate="none", site="none", kind="slab")
    return slab


def _frac(slab: Atoms, pos: np.ndarray) -> list[float]:
    f = np.linalg.solve(np.asarray(slab.cell[:2, :2]).T, np.asarray(pos[:2]))
    f = np.round(f - np.floor(f + 1e-6), 3) % 1.0
    return [float(x) + 0.0 for x in f]


def rebuild_screen_set(
    dataset: Any,
    evaluators: Mapping[str, Evaluator | None],
    *,
    lattice: str = "model",
    lattice_cache: str | Path | None = None,
    limit: int | None = None,
) -> ScreenSet:
    """A `ScreenSet` (reference: DFT reactionEnergy) whose structures are rebuilt from `dataset`'s metadata.

    evaluators: role -> Evaluator ("teacher" first; None entries are ignored); each role gets its own structures
    (`ScreenSet.role_atoms`) on its own lattice constants when `lattice="model"`, or all share the builder's
    default constants with `lattice="default"` (no model call; for tests and quick looks). `lattice_cache`: root
    of the per-model lattice caches (default `default_lattice_cache()`). `limit`: the first N rebuildable
    reactions (the rest are counted as ``counts["beyond_limit"]``, not as skipped)."""
    if lattice not in ("model", "default"):
        raise ValueError(f"lattice must be 'model' or 'default', got {lattice!r}")
    roles = {r: ev for r, ev in evaluators.items() if ev is not None}
    if "teacher" not in roles:
        raise ValueError("rebuild_screen_set needs a teacher evaluator")
    caches = {r: LatticeCache(lattice_cache, ev.fingerprint, ev.label) for r, ev in roles.items()}
    skipped: list[tuple[str, str]] = [(inv.id, f"invalid: {inv.reason}") for inv in dataset.invalid]
    specs: list[tuple[Any, RebuildSpec]] = []
    for r in dataset.reactions:
        if r.reaction_energy is None:
            skipped.append((r.id, "no DFT reaction energy"))
            continue
        try:
            specs.append((r, spec_from_reaction(r)))
        except NotRebuildable as err:
            skipped.append((r.id, str(err)))
    beyond_limit = 0
    if limit is not None and len(specs) > limit:  # not screened, but not a skip: counted apart
        beyond_limit = len(specs) - limit
        specs = specs[:limit]

    lattices: dict[str, dict[str, dict[str, Any]]] = {role: {} for role in roles}
    slabs: dict[tuple[str, SurfaceSpec], _Built | str] = {}  # (role, surface) -> built slab or error
    atoms: dict[str, dict[str, Atoms]] = {role: {} for role in roles}
    gas_cache: dict[str, tuple[str, Atoms]] = {}
    site_rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    reactions: list[ScreenReaction] = []
    reaction_notes: dict[str, str] = {}
    adslab_recipes: dict[str, dict[str, str]] = {}
    slab_labels: dict[str, str] = {}
    mode_tag = "model-lattice" if lattice == "model" else "default-lattice"

    for r, spec in specs:
        surf = spec.surface
        reason = None
        built: dict[str, _Built] = {}
        for role, ev in roles.items():
            lat = lattices[role].get(surf.bulk_key)
            if lat is None:
                lat = lattices[role][surf.bulk_key] = _lattice_for(role, ev, surf, caches, lattice)
            if "error" in lat:
                kind, _, detail = str(lat["error"]).partition(":")
                reason = f"{kind} ({ev.label}):{detail}"
                break
            got = slabs.get((role, surf))
            if got is None:
                try:
                    slab = _build_slab(surf, lat)
                    got = _Built(slab, find_sites(slab))
                except StructureBuildError as err:
                    got = f"slab not built: {err}"
                slabs[(role, surf)] = got
            if isinstance(got, str):
                reason = got
                break
            built[role] = got
        if reason is not None:
            skipped.append((r.id, reason))
            continue
        systems: dict[str, dict[str, Atoms]] = {role: {} for role in roles}
        keys: dict[str, str] = {}
        notes: list[str] = []
        try:
            for name, (ads, site_name) in spec.adsorbed.items():
                matched = {role: match_site(b.slab, site_name, b.sites) for role, b in built.items()}
                m = matched["teacher"]
                if any(x.site.name != m.site.name for x in matched.values()):  # pragma: no cover - same topology
                    raise StructureBuildError(f"site {site_name.raw!r} maps to different sites per model")
                for role, mm in matched.items():
                    adslab = add_adsorbate(built[role].slab, ads, mm.site)
                    adslab.info["kind"] = "adslab"
                    systems[role][name] = adslab
                keys[name] = surf.key(mode_tag, ads, m.site.name)
                adslab_recipes[keys[name]] = {
                    "slab": surf.key(mode_tag, "clean"),
                    "adsorbate": ads,
                    "site": m.site.name,
                }
                if m.note:
                    notes.append(f"{ads}@{site_name.raw}: {m.note}")
                row = site_rows.setdefault(
                    (surf.prototype, surf.facet, site_name.raw, m.site.name),
                    {
                        "prototype": surf.prototype,
                        "facet": surf.facet,
                        "catalysishub_site": site_name.raw,
                        "built_site": m.site.name,
                        "kind": m.site.kind,
                        "site_atoms": "-".join(m.site.symbols),
                        "fractional_xy": _frac(built["teacher"].slab, m.site.position),
                        "equivalent_sites_in_cell": m.site.multiplicity,
                        "note": m.note or "",
                        "reactions": 0,
                    },
                )
                row["reactions"] += 1
        except StructureBuildError as err:
            skipped.append((r.id, f"site not on the built slab: {err}"))
            continue
        slab_labels[surf.key(mode_tag, "clean")] = surf.label
        for role in roles:  # adslabs are rebuilt on the relaxed clean slab in relax mode (`prerelax_slabs`)
            atoms[role].setdefault(surf.key(mode_tag, "clean"), built[role].slab)
        if spec.has_slab:
            for role in roles:
                systems[role]["star"] = built[role].slab
            keys["star"] = surf.key(mode_tag, "clean")
        for name, mol in spec.gas.items():
            if mol not in gas_cache:
                g = gas_molecule(mol)
                gas_cache[mol] = (structure_key(g), g)
            keys[name] = gas_cache[mol][0]
            for role in roles:
                systems[role][name] = gas_cache[mol][1]
        for role in roles:
            for name, a in systems[role].items():
                atoms[role].setdefault(keys[name], a)
        sites = r.sites if isinstance(r.sites, dict) else {}
        reactions.append(
            ScreenReaction(
                id=r.id,
                equation=r.equation,
                reactants=dict(r.reactants),
                products=dict(r.products),
                systems=keys,
                gas={n: n in spec.gas for n in keys},
                reference=float(r.reaction_energy),
                adsorbate=r.adsorbate or "",
                surface=r.surface_composition or r.chemical_composition or "",
                facet=r.facet_raw or r.facet or "",
                site=",".join(f"{k}:{v}" for k, v in sites.items()),
                strain_percent=float(r.strain_percent or 0.0),
            )
        )
        if notes:
            reaction_notes[r.id] = "; ".join(notes)

    lattice_rows = []
    for role, ev in roles.items():
        for bulk_key, lat in lattices[role].items():
            comp, proto = bulk_key.split("|")
            default = lat.get("source") == "builder default"  # built with a=None: the builder's constants
            lattice_rows.append(
                {
                    "model": ev.label,
                    "composition": comp,
                    "prototype": proto,
                    "a_A": lat.get("default_a") if default else lat.get("a"),
                    "c_A": lat.get("default_c") if default else lat.get("c"),
                    "default_a_A": lat.get("default_a"),
                    "energy_per_atom_eV": lat.get("energy_per_atom"),
                    "source": lat.get("source"),
                    "note": lat.get("error") or lat.get("note") or "",
                }
            )
    cells = sorted(
        {
            (s.composition, s.prototype, s.facet, s.shape, s.sites_per_layer, s.layers, s.natoms)
            for (_role, s), b in slabs.items()
            if not isinstance(b, str)
        }
    )
    note = STRUCTURES_NOTE if lattice == "model" else STRUCTURES_NOTE_DEFAULT
    info = {
        "kind": "rebuild",
        "note": note,
        "lattice": lattice,
        "lattice_method": LATTICE_METHOD if lattice == "model" else "builder default",
        "lattice_cache": {role: str(c.path) for role, c in caches.items()} if lattice == "model" else {},
        "lattices": lattice_rows,
        "sites": sorted(site_rows.values(), key=lambda d: (d["prototype"], d["facet"], d["catalysishub_site"])),
        "cells": [
            {"composition": c, "prototype": p, "facet": f, "shape": sh, "sites_per_layer": n, "layers": L, "atoms": na}
            for c, p, f, sh, n, L, na in cells
        ],
        "reaction_notes": reaction_notes,
        "slabs": slab_labels,
        "adslabs": adslab_recipes,
        "skip_reasons": reason_counts(skipped),
    }
    counts = dict(dataset.counts)
    counts["rebuilt"] = len(reactions)
    counts["not_rebuilt"] = len(skipped)
    if beyond_limit:
        counts["beyond_limit"] = beyond_limit
    source = f"{note.lower()[0]}{note[1:]}; metadata from {dataset.source}"
    teacher_atoms = atoms["teacher"]
    role_atoms = {role: a for role, a in atoms.items() if role != "teacher"}
    return ScreenSet(
        dataset.name, source, "dft", reactions, teacher_atoms, skipped, counts,
        role_atoms=role_atoms, structures="rebuild", structures_info=info,
    )  # fmt: skip


def reason_counts(skipped: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Counts of skip reasons by family: the text before the first ':' ('unknown prototype', 'site not on the built
    slab', 'model lacks an element', ...), '(model)' suffixes dropped."""
    out: Counter[str] = Counter()
    for _id, why in skipped:
        head = why.split(":", 1)[0].strip()
        out[head.split(" (")[0]] += 1
    return dict(out)
