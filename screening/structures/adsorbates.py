"""Adsorbates, their placement on sites, gas-phase references and reference stoichiometry.

Adsorbate geometries are given with the binding atom first, at the origin, the rest pointing up (+z):
OH and CH with H up, CO C-down, OOH (ORR/OER intermediate) end-on: O-O 1.45 Å tilted 38° from
the normal, H up on the distal O (O-O-H 112°). The binding atom sits where its distance to every slab atom is at least
the sum of covalent radii (ase.data) - exactly that sum to the nearest site atom(s).

Gas references (H2, O2, H2O, N2, CH4, CO, NH3, from ase.build.molecule) are centred in a cubic box of
`GAS_BOX` Å with pbc=(True, True, True), like the slabs, so one periodic model/calculator handles both.
Their tags are 2 (adsorbate-like, no surface). O2 is built as a closed-shell geometry (no spin).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from screening.structures.errors import StructureBuildError
from screening.structures.sites import AdsorptionSite, get_site

GAS_BOX = 15.0  # Å
_TETRA = np.degrees(np.arccos(-1.0 / 3.0))  # 109.47°


def _umbrella(symbol: str, n: int, bond: float, angle_deg: float) -> list[tuple[str, tuple[float, float, float]]]:
    """n atoms at `bond` Å from the origin, `angle_deg` from -z, spread evenly in azimuth (pointing up)."""
    th = np.radians(180.0 - angle_deg)
    return [
        (
            symbol,
            (
                bond * np.sin(th) * np.cos(2 * np.pi * k / n),
                bond * np.sin(th) * np.sin(2 * np.pi * k / n),
                bond * np.cos(th),
            ),
        )
        for k in range(n)
    ]


# name -> list of (symbol, position in Å relative to the binding atom); binding atom first
ADSORBATES: dict[str, list[tuple[str, tuple[float, float, float]]]] = {
    "H": [("H", (0.0, 0.0, 0.0))],
    "O": [("O", (0.0, 0.0, 0.0))],
    "N": [("N", (0.0, 0.0, 0.0))],
    "C": [("C", (0.0, 0.0, 0.0))],
    "OH": [("O", (0.0, 0.0, 0.0)), ("H", (0.0, 0.0, 0.97))],
    "CH": [("C", (0.0, 0.0, 0.0)), ("H", (0.0, 0.0, 1.09))],
    "NH": [("N", (0.0, 0.0, 0.0)), ("H", (0.0, 0.0, 1.02))],
    "CO": [("C", (0.0, 0.0, 0.0)), ("O", (0.0, 0.0, 1.14))],
    "CH2": [("C", (0.0, 0.0, 0.0)), *_umbrella("H", 2, 1.09, _TETRA)],
    "CH3": [("C", (0.0, 0.0, 0.0)), *_umbrella("H", 3, 1.09, _TETRA)],
    "NH2": [("N", (0.0, 0.0, 0.0)), *_umbrella("H", 2, 1.02, _TETRA)],
    "OOH": [("O", (0.0, 0.0, 0.0)), ("O", (0.9, 0.0, 1.14)), ("H", (0.41, 0.0, 1.989))],
}

GAS_MOLECULES = ("H2", "O2", "H2O", "N2", "CH4", "CO", "NH3")

# element -> gas-phase reference (CatalysisHub convention):
# H = 1/2 H2, O = H2O - H2, N = 1/2 N2, C = CH4 - 2 H2
ELEMENT_REFERENCES: dict[str, dict[str, float]] = {
    "H": {"H2": 0.5},
    "O": {"H2O": 1.0, "H2": -1.0},
    "N": {"N2": 0.5},
    "C": {"CH4": 1.0, "H2": -2.0},
}


def check_adsorbate(name: str) -> str:
    """`name` if it is a known adsorbate, else `StructureBuildError` listing them."""
    if name not in ADSORBATES:
        raise StructureBuildError(f"unknown adsorbate {name!r}; valid adsorbates: {list(ADSORBATES)}")
    return name


def adsorbate_atoms(name: str) -> Atoms:
    """The adsorbate as Atoms, binding atom (index 0) at the origin, pointing up (+z)."""
    spec = ADSORBATES[check_adsorbate(name)]
    return Atoms([s for s, _ in spec], positions=[p for _, p in spec])


def binding_height(slab: Atoms, site: AdsorptionSite, binding_symbol: str, scale: float = 1.0) -> float:
    """Height (Å) above the top layer for the binding atom at `site`.

    The lowest height at which the binding atom is at least scale x (sum of covalent radii) from every
    slab atom (minimum image in x, y), and at least 0.5 Å.
    """
    from ase.geometry import find_mic

    r_x = covalent_radii[atomic_numbers[binding_symbol]]
    vec = slab.positions - np.asarray(site.position)
    vec[:, 2] = 0.0
    vec, lateral = find_mic(vec, slab.cell, pbc=[True, True, False])
    dz = slab.positions[:, 2] - site.position[2]  # <= ~0 for slab atoms
    bond = scale * (r_x + covalent_radii[slab.numbers])
    mask = (lateral < bond) & (slab.get_tags() != 2)
    if not mask.any():
        return float(max(bond.min(), 0.5))
    need = dz[mask] + np.sqrt(bond[mask] ** 2 - lateral[mask] ** 2)
    return float(max(need.max(), 0.5))


def add_adsorbate(slab: Atoms, adsorbate: str, site: AdsorptionSite | str, height: float | None = None) -> Atoms:
    """Adslab: copy of `slab` with `adsorbate` (tag 2, free) bound at `site` (object or name).

    height: Å above the top layer (default: :func:`binding_height`). info gets adsorbate, site,
    site_kind, height.
    """
    ads = adsorbate_atoms(adsorbate)
    if isinstance(site, str):
        site = get_site(slab, site)
    h = binding_height(slab, site, ads[0].symbol) if height is None else float(height)
    ads.positions += np.asarray(site.position) + [0.0, 0.0, h]
    ads.set_tags(2)
    out = slab.copy()
    out.extend(ads)  # constraints of the slab (FixAtoms on its indices) are kept
    out.info.update(adsorbate=adsorbate, site=site.name, site_kind=site.kind, height=h)
    return out


def gas_molecule(name: str, box: float = GAS_BOX) -> Atoms:
    """Gas-phase reference `name` centred in a cubic box of `box` Å, pbc=(True, True, True), tags 2."""
    from ase.build import molecule

    if name not in GAS_MOLECULES:
        raise StructureBuildError(f"unknown gas reference {name!r}; valid gas references: {list(GAS_MOLECULES)}")
    mol = molecule(name)
    mol.set_cell([box, box, box])
    mol.center()
    mol.pbc = True
    mol.set_tags(2)
    mol.info.update(gas=name, kind="gas")
    return mol


def gas_coefficients(adsorbate: str, references: dict[str, dict[str, float]] | None = None) -> dict[str, float]:
    """ν of each gas reference so that E_ads = E(adslab) - E(slab) - Σ ν E(gas).

    Built from the adsorbate's elements with `references` (default :data:`ELEMENT_REFERENCES`), e.g.
    OH -> {'H2O': 1.0, 'H2': -0.5}; CO -> {'CH4': 1.0, 'H2O': 1.0, 'H2': -3.0}. Zero terms are dropped.
    """
    refs = ELEMENT_REFERENCES if references is None else references
    nu: dict[str, float] = {}
    for sym in adsorbate_atoms(adsorbate).get_chemical_symbols():
        if sym not in refs:
            raise StructureBuildError(f"no gas reference for element {sym!r}; references given for {list(refs)}")
        for gas, coeff in refs[sym].items():
            nu[gas] = nu.get(gas, 0.0) + coeff
    return {g: v for g, v in nu.items() if abs(v) > 1e-12}
