"""Catalyst structure builder: bulk -> strained slab -> adsorption site -> adslab (+ gas references).

One builder serves high-throughput screening (candidates) and data-free distillation (structures to label
with a teacher). Only ase, numpy and scipy are needed.
"""

from __future__ import annotations

from screening.structures.adsorbates import (
    ADSORBATES,
    ELEMENT_REFERENCES,
    GAS_MOLECULES,
    add_adsorbate,
    adsorbate_atoms,
    binding_height,
    gas_coefficients,
    gas_molecule,
)
from screening.structures.bulk import PROTOTYPES, make_bulk, relax_lattice
from screening.structures.errors import StructureBuildError
from screening.structures.sites import AdsorptionSite, find_sites, get_site
from screening.structures.slabs import FACETS, make_slab
from screening.structures.strain import apply_biaxial_strain

__all__ = [
    "ADSORBATES",
    "ELEMENT_REFERENCES",
    "FACETS",
    "GAS_MOLECULES",
    "PROTOTYPES",
    "AdsorptionSite",
    "StructureBuildError",
    "add_adsorbate",
    "adsorbate_atoms",
    "apply_biaxial_strain",
    "binding_height",
    "find_sites",
    "gas_coefficients",
    "gas_molecule",
    "get_site",
    "make_bulk",
    "make_slab",
    "relax_lattice",
]
