"""Catalyst structure builder: bulk -> strained slab -> adsorption site -> adslab (+ gas references).

One builder serves high-throughput screening (candidates) and data-free distillation (structures to label
with a teacher). Only ase, numpy and scipy are needed. Names are imported lazily (PEP 562) so that
`screen --help` does not pay for ase/scipy.

Modules: bulk (prototypes, lattice constants, relax_lattice), slabs (make_slab, FACETS), strain, sites
(find_sites), adsorbates (add_adsorbate, gas references, ν), system (build_adsorption_system), sampling
(ChemicalSpace), perturb (rattle, random_strain, relaxation_snapshots), io (extxyz / ASE db), cli.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ADSORBATES": "adsorbates",
    "ELEMENT_REFERENCES": "adsorbates",
    "GAS_MOLECULES": "adsorbates",
    "add_adsorbate": "adsorbates",
    "adsorbate_atoms": "adsorbates",
    "binding_height": "adsorbates",
    "gas_coefficients": "adsorbates",
    "gas_molecule": "adsorbates",
    "PROTOTYPES": "bulk",
    "make_bulk": "bulk",
    "relax_lattice": "bulk",
    "StructureBuildError": "errors",
    "AdsorptionSite": "sites",
    "find_sites": "sites",
    "get_site": "sites",
    "FACETS": "slabs",
    "make_slab": "slabs",
    "apply_biaxial_strain": "strain",
    "AdsorptionSystem": "system",
    "build_adsorption_system": "system",
    "ChemicalSpace": "sampling",
    "rattle": "perturb",
    "random_strain": "perturb",
    "relaxation_snapshots": "perturb",
    "read_structures": "io",
    "write_structures": "io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"screening.structures.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'screening.structures' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
