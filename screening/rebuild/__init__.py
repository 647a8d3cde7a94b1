"""Screen a CatalysisHub dataset from its metadata alone: rebuild every reaction's structures (prototype, cell,
layers, facet, strain, named site, adsorbate) on each model's own lattice constants.

    from screening.rebuild import choose_structures, rebuild_screen_set
    used, why = choose_structures(dataset, "auto")       # "cathub" when structures are cached, else "rebuild"
    sset = rebuild_screen_set(dataset, {"teacher": t, "student": s})

Modules: spec (metadata -> RebuildSpec or the reason it cannot be rebuilt), lattice (each model's lattice
constants, cached per model and bulk), build (the ScreenSet), prerelax (relax mode: each clean slab relaxed once
per model, adsorbates placed on it), robust (relaxations that cannot break a run).
The site names and surface cells live in the structure builder (`screening.structures.site_names`,
`screening.structures.surface_cells`).
"""

from __future__ import annotations

from typing import Any

from screening.rebuild.build import STRUCTURES_NOTE, reason_counts, rebuild_screen_set
from screening.rebuild.lattice import LatticeCache, LatticeError, default_lattice_cache, fit_lattice, model_lattice
from screening.rebuild.prerelax import prerelax_slabs
from screening.rebuild.robust import robust_evaluator
from screening.rebuild.run import add_slab_anomalies, run_rebuilt_and_report
from screening.rebuild.spec import NotRebuildable, RebuildSpec, SurfaceSpec, spec_from_reaction, surface_spec

STRUCTURE_SOURCES = ("auto", "cathub", "rebuild")


def choose_structures(dataset: Any, requested: str = "auto") -> tuple[str, str]:
    """("cathub" | "rebuild", why) for a loaded `screening.cathub.Dataset`. "auto": the DFT structures when the
    cache or file holds structures for any reaction, else a rebuild from the metadata."""
    if requested not in STRUCTURE_SOURCES:
        raise ValueError(f"--structures must be one of {list(STRUCTURE_SOURCES)}, got {requested!r}")
    reactions = list(dataset.reactions) + [i.reaction for i in dataset.invalid if i.reaction is not None]
    with_structures = sum(1 for r in reactions if r.systems and all(s.atoms is not None for s in r.systems.values()))
    have = f"structures for {with_structures} of {len(reactions)} reactions"
    if requested == "cathub":
        return "cathub", f"requested; {have}"
    if requested == "rebuild":
        return "rebuild", f"requested; {have} (not used)"
    if with_structures:
        return "cathub", f"auto: the data holds {have}; --structures rebuild rebuilds them from metadata instead"
    return "rebuild", "auto: the data holds metadata only (no structures): rebuilt from metadata"


__all__ = [
    "STRUCTURES_NOTE",
    "STRUCTURE_SOURCES",
    "LatticeCache",
    "LatticeError",
    "NotRebuildable",
    "RebuildSpec",
    "SurfaceSpec",
    "choose_structures",
    "default_lattice_cache",
    "fit_lattice",
    "model_lattice",
    "prerelax_slabs",
    "reason_counts",
    "rebuild_screen_set",
    "robust_evaluator",
    "run_rebuilt_and_report",
    "add_slab_anomalies",
    "spec_from_reaction",
    "surface_spec",
]
