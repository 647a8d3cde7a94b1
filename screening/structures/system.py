"""Everything needed for one adsorption energy: clean slab, adslab and gas references with ν.

E_ads = E(adslab) - E(slab) - Σ_g ν_g E(g), e.g. OH* from H2O and H2: ν = {H2O: 1, H2: -1/2}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ase import Atoms

from screening.structures.adsorbates import add_adsorbate, check_adsorbate, gas_coefficients, gas_molecule
from screening.structures.sites import AdsorptionSite, find_sites, get_site
from screening.structures.slabs import make_slab


@dataclass
class AdsorptionSystem:
    """Clean slab, adslab, gas references and their stoichiometric coefficients ν for one adsorption."""

    slab: Atoms
    adslab: Atoms
    gas: dict[str, Atoms]
    coefficients: dict[str, float]
    site: AdsorptionSite

    def adsorption_energy(self, e_adslab: float, e_slab: float, e_gas: Mapping[str, float]) -> float:
        """E(adslab) - E(slab) - Σ ν E(gas), all in eV."""
        missing = [g for g in self.coefficients if g not in e_gas]
        if missing:
            raise KeyError(f"missing gas energies for {missing}")
        return float(e_adslab - e_slab - sum(nu * e_gas[g] for g, nu in self.coefficients.items()))

    def evaluate(self, energy: Callable[[Atoms], float]) -> float:
        """Adsorption energy (eV) with `energy(atoms)` (e.g. a single point or a relaxation with a model)."""
        return self.adsorption_energy(
            energy(self.adslab), energy(self.slab), {g: energy(m) for g, m in self.gas.items()}
        )


def build_adsorption_system(
    composition: str | dict | tuple | list,
    prototype: str,
    facet: str,
    adsorbate: str,
    site: str | AdsorptionSite | None = None,
    strain: float = 0.0,
    references: dict[str, dict[str, float]] | None = None,
    **slab_kwargs,
) -> AdsorptionSystem:
    """Slab, adslab and gas references for (composition, prototype, facet, strain %, adsorbate, site).

    site: a name from :func:`find_sites` (e.g. 'fcc', 'hcpAAB'); None = the first distinct site (ontop).
    slab_kwargs go to :func:`make_slab` (layers, size, vacuum, fixed_layers, a, c, bulk).
    """
    check_adsorbate(adsorbate)
    slab = make_slab(composition, prototype, facet, strain=strain, **slab_kwargs)
    if site is None:
        site_obj = find_sites(slab)[0]
    elif isinstance(site, str):
        site_obj = get_site(slab, site)
    else:
        site_obj = site
    adslab = add_adsorbate(slab, adsorbate, site_obj)
    nu = gas_coefficients(adsorbate, references)
    slab.info.update(adsorbate="none", site="none", kind="slab")
    adslab.info["kind"] = "adslab"
    return AdsorptionSystem(slab, adslab, {g: gas_molecule(g) for g in nu}, nu, site_obj)
