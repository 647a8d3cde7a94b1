"""Catalyst structure builder: bulk -> strained slab -> adsorption site -> adslab (+ gas references).

One builder serves high-throughput screening (candidates) and data-free distillation (structures to label
with a teacher). Only ase, numpy and scipy are needed (an import-linter contract keeps it so).

Modules: bulk (prototypes, lattice constants, relax_lattice), slabs (make_slab, FACETS), strain, sites
(find_sites), adsorbates (add_adsorbate, gas references, ν), system (build_adsorption_system), sampling
(ChemicalSpace), perturb (rattle, random_strain, relaxation_snapshots), io (extxyz / ASE db).
"""

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
from screening.structures.io import read_structures, write_structures
from screening.structures.perturb import random_strain, rattle, relaxation_snapshots
from screening.structures.sampling import ChemicalSpace
from screening.structures.sites import AdsorptionSite, find_sites, get_site
from screening.structures.slabs import FACETS, make_slab
from screening.structures.strain import apply_biaxial_strain
from screening.structures.system import AdsorptionSystem, build_adsorption_system

__all__ = [
    "ADSORBATES",
    "AdsorptionSite",
    "AdsorptionSystem",
    "ChemicalSpace",
    "ELEMENT_REFERENCES",
    "FACETS",
    "GAS_MOLECULES",
    "PROTOTYPES",
    "StructureBuildError",
    "add_adsorbate",
    "adsorbate_atoms",
    "apply_biaxial_strain",
    "binding_height",
    "build_adsorption_system",
    "find_sites",
    "gas_coefficients",
    "gas_molecule",
    "get_site",
    "make_bulk",
    "make_slab",
    "random_strain",
    "rattle",
    "read_structures",
    "relax_lattice",
    "relaxation_snapshots",
    "write_structures",
]
