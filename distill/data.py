"""Training structures for data-free distillation: adslabs and clean slabs from a `ChemicalSpace`, plus rattled
gas-phase references, and held-out adsorption systems for the adsorption-energy ranking check."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from screening.structures import (
    AdsorptionSystem,
    ChemicalSpace,
    build_adsorption_system,
    find_sites,
    gas_molecule,
    make_slab,
)
from screening.structures import rattle as rattle_atoms  # `rattle` is also a parameter name below

DEFAULT_ELEMENTS = ("Pt", "Pd", "Cu", "Ni", "Au", "Ag", "Rh", "Co")
DEFAULT_ADSORBATES = ("H", "O", "OH", "N", "C", "CH", "CO")
DEFAULT_PROTOTYPES = ("fcc", "bcc", "hcp", "L12", "B2", "L10")
GAS = ("H2", "H2O", "N2", "CH4", "CO")


def generate_structures(
    n: int,
    seed: int = 0,
    *,
    elements: Sequence[str] = DEFAULT_ELEMENTS,
    adsorbates: Sequence[str] = DEFAULT_ADSORBATES,
    prototypes: Sequence[str] = DEFAULT_PROTOTYPES,
    size: tuple[int, int] = (2, 2),
    layers: int = 3,
    rattle: float = 0.05,
    clean_fraction: float = 0.15,
    gas_fraction: float = 0.05,
    perturb_strain: float = 1.0,
    alloy_fraction: float = 0.4,
    alloy_size: tuple[int, int] = (1, 1),
) -> list[Atoms]:
    """`n` structures: about `gas_fraction` rattled gas references, the rest sampled slabs/adslabs (rattle Å):
    pure metals (fcc/bcc/hcp) on a `size` surface cell, `alloy_fraction` binary intermetallics on `alloy_size`
    (their conventional surface cells are already 2-4 times larger)."""
    n_gas = int(round(gas_fraction * n))
    n_alloy = int(round(alloy_fraction * (n - n_gas)))
    common = dict(
        elements=list(elements),
        adsorbates=list(adsorbates),
        layers=layers,
        rattle=rattle,
        clean_fraction=clean_fraction,
        perturb_strain=perturb_strain,
    )
    pure = [p for p in prototypes if p in ("fcc", "bcc", "hcp")]
    alloys = [p for p in prototypes if p not in pure]
    out = []
    if pure:
        out += ChemicalSpace(prototypes=pure, size=size, **common).sample(
            n - n_gas - n_alloy if alloys else n - n_gas, seed
        )
    if alloys:
        out += ChemicalSpace(prototypes=alloys, size=alloy_size, **common).sample(
            n_alloy if pure else n - n_gas, seed + 1
        )
    rng = np.random.default_rng([seed, 99])
    for k in range(n_gas):
        name = GAS[k % len(GAS)]
        mol = rattle_atoms(gas_molecule(name), 0.05, rng)
        mol.info.update(kind="gas", gas=name)
        out.append(mol)
    return out


def heldout_adsorption_systems(
    n: int,
    seed: int = 12345,
    *,
    elements: Sequence[str] = DEFAULT_ELEMENTS,
    adsorbates: Sequence[str] = DEFAULT_ADSORBATES,
    size: tuple[int, int] = (2, 2),
    layers: int = 3,
) -> list[AdsorptionSystem]:
    """`n` adsorption systems (pure fcc(111)/(100) and L12(111) slabs) for the adsorption-energy Spearman check."""
    rng = np.random.default_rng(seed)
    systems, tries = [], 0
    while len(systems) < n and tries < 20 * n:
        tries += 1
        ads = str(adsorbates[rng.integers(len(adsorbates))])
        if rng.random() < 0.6:
            comp, proto, facet = str(elements[rng.integers(len(elements))]), "fcc", ["111", "100"][rng.integers(2)]
        else:
            a, b = rng.choice(len(elements), 2, replace=False)
            comp, proto, facet = (str(elements[a]), str(elements[b])), "L12", "111"
        strain = float(rng.uniform(-2, 2))
        cell_size = size if proto == "fcc" else (1, 1)
        try:
            slab = make_slab(comp, proto, facet, layers=layers, size=cell_size, strain=strain)
            sites = find_sites(slab)
            site = sites[rng.integers(len(sites))]
            systems.append(
                build_adsorption_system(comp, proto, facet, ads, site, strain, layers=layers, size=cell_size)
            )
        except Exception:  # noqa: BLE001 - skip combinations the builder cannot make
            continue
    return systems
