"""Random but reproducible sampling of (elements, prototypes, facets, adsorbates, strains).

Structure k of `ChemicalSpace.sample(n, seed)` depends only on (seed, k): sample(10, s) is the first
ten of sample(50, s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from screening.structures.adsorbates import add_adsorbate, check_adsorbate, gas_coefficients, gas_molecule
from screening.structures.bulk import PROTOTYPES, canonical_prototype, composition_formula
from screening.structures.errors import StructureBuildError
from screening.structures.perturb import random_strain, rattle
from screening.structures.sites import AdsorptionSite, find_sites
from screening.structures.slabs import FACETS, canonical_facet, make_slab


@dataclass
class ChemicalSpace:
    """What to sample.

    elements: metals to combine; prototypes: see bulk.PROTOTYPES (binary ones need >= 2 elements);
    facets: prototype -> facets, or facet names kept where valid (default: all facets of each prototype);
    adsorbates: see ADSORBATES;
    strains: biaxial strains in % to pick from (or, with continuous_strain, the [min, max] range);
    clean_fraction: share of clean slabs; rattle: Gaussian displacement of free atoms, Å;
    perturb_strain: random symmetric in-plane strain, components uniform in ± this many %;
    layers, size, vacuum (Å per side), fixed_layers: passed to make_slab.
    """

    elements: Sequence[str]
    prototypes: Sequence[str] = ("fcc", "bcc", "hcp", "L12", "B2", "L10", "D019", "A2B_hcp")
    facets: Mapping[str, Sequence[str]] | Sequence[str] | None = None
    adsorbates: Sequence[str] = ("H", "O", "OH")
    strains: Sequence[float] = (-2.0, -1.0, 0.0, 1.0, 2.0)
    continuous_strain: bool = False
    clean_fraction: float = 0.0
    rattle: float = 0.0
    perturb_strain: float = 0.0
    layers: int = 3
    size: tuple[int, int] | None = None
    vacuum: float = 6.0
    fixed_layers: int | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.elements = [e.strip() for e in self.elements]
        if not self.elements:
            raise StructureBuildError("ChemicalSpace needs at least one element")
        from ase.data import atomic_numbers

        for e in self.elements:
            if e not in atomic_numbers or e == "X":
                raise StructureBuildError(f"unknown element {e!r}")
        protos = [canonical_prototype(p) for p in self.prototypes]
        if len(set(self.elements)) < 2:
            protos = [p for p in protos if PROTOTYPES[p].stoichiometry[1] == 0]
        facets: dict[str, list[str]] = {}
        for p in protos:
            if self.facets is None:
                facets[p] = sorted(FACETS[p])
            elif isinstance(self.facets, Mapping):
                if p in self.facets:
                    facets[p] = [canonical_facet(p, f) for f in self.facets[p]]
            else:  # facet names for any prototype: keep those valid for p
                facets[p] = [f for f in (_try_facet(p, f) for f in self.facets) if f]
        if self.facets is not None and not isinstance(self.facets, Mapping):
            for f in self.facets:
                if not any(_try_facet(p, f) for p in PROTOTYPES):
                    raise StructureBuildError(
                        f"facet {f!r} exists for no prototype; valid: "
                        + ", ".join(f"{p}: {sorted(fs)}" for p, fs in FACETS.items())
                    )
        self._facets = {p: f for p, f in facets.items() if f}
        if not self._facets:
            raise StructureBuildError(
                f"no prototype/facet fits elements {self.elements} and prototypes {list(self.prototypes)}; "
                f"valid prototypes: {sorted(PROTOTYPES)} (binary ones need two elements)"
            )
        for a in self.adsorbates:
            check_adsorbate(a)
        if len(self.strains) == 0:
            raise StructureBuildError("strains must list at least one value (%)")
        if not 0.0 <= self.clean_fraction <= 1.0:
            raise StructureBuildError(f"clean_fraction must be in [0, 1], got {self.clean_fraction}")
        if not self.adsorbates and self.clean_fraction < 1.0:
            raise StructureBuildError("no adsorbates given: set clean_fraction=1 for clean slabs only")

    @property
    def prototype_facets(self) -> dict[str, list[str]]:
        """Prototype -> facets actually sampled."""
        return dict(self._facets)

    def _slab(self, a: str, b: str | None, proto: str, facet: str, strain: float) -> tuple[Atoms, list]:
        key = (a, b, proto, facet, round(strain, 8))
        if key not in self._cache:
            comp = (a,) if b is None else (a, b)
            slab = make_slab(
                comp,
                proto,
                facet,
                layers=self.layers,
                size=self.size,
                vacuum=self.vacuum,
                fixed_layers=self.fixed_layers,
                strain=strain,
            )
            self._cache[key] = (slab, find_sites(slab))
        return self._cache[key]

    def surfaces(self) -> list[tuple[str, str | None, str, str, float]]:
        """Every (element A, element B or None, prototype, facet, strain %) a draw can pick, in a fixed order
        (discrete strains only: `ValueError` with `continuous_strain`). A and B of a binary prototype are ordered
        pairs, as draws pick them."""
        if self.continuous_strain:
            raise ValueError("a continuous strain range has no finite list of surfaces")
        out: list[tuple[str, str | None, str, str, float]] = []
        n = len(self.elements)
        for proto in sorted(self._facets):
            if PROTOTYPES[proto].stoichiometry[1] == 0:
                pairs: list[tuple[str, str | None]] = [(e, None) for e in self.elements]
            else:
                pairs = [(self.elements[i], self.elements[j]) for i in range(n) for j in range(n) if i != j]
            for a, b in pairs:
                for facet in self._facets[proto]:
                    out += [(a, b, proto, facet, float(s)) for s in self.strains]
        return out

    def site_names(self, a: str, b: str | None, prototype: str, facet: str, strain: float) -> list[str]:
        """Names of the sites a draw can pick on that surface (`find_sites` order)."""
        return [site.name for site in self._slab(a, b, prototype, facet, strain)[1]]

    def draw(self, seed: int, index: int) -> Atoms:
        """Structure number `index` of the stream for `seed`."""
        rng = np.random.default_rng([int(seed), int(index)])
        protos = sorted(self._facets)
        proto = protos[rng.integers(len(protos))]
        if PROTOTYPES[proto].stoichiometry[1] == 0:
            a, b = self.elements[rng.integers(len(self.elements))], None
        else:
            i, j = rng.choice(len(self.elements), size=2, replace=False)
            a, b = self.elements[i], self.elements[j]
        facet = self._facets[proto][rng.integers(len(self._facets[proto]))]
        if self.continuous_strain:
            strain = float(rng.uniform(min(self.strains), max(self.strains)))
        else:
            strain = float(self.strains[rng.integers(len(self.strains))])
        slab, sites = self._slab(a, b, proto, facet, strain)
        if rng.random() < self.clean_fraction:
            atoms = slab.copy()
            atoms.info.update(adsorbate="none", site="none", site_kind="none", kind="slab")
        else:
            ads = self.adsorbates[rng.integers(len(self.adsorbates))]
            site: AdsorptionSite = sites[rng.integers(len(sites))]
            atoms = add_adsorbate(slab, ads, site)
            atoms.info["kind"] = "adslab"
        if self.perturb_strain > 0:
            atoms = random_strain(atoms, self.perturb_strain, rng)
        if self.rattle > 0:
            atoms = rattle(atoms, self.rattle, rng)
        atoms.info.update(
            composition=composition_formula(a, b, proto),
            sample_seed=int(seed),
            sample_index=int(index),
        )
        return atoms

    def gas_references(self) -> list[Atoms]:
        """The gas-phase references (H2, H2O, ...) that the adsorption energies of these adsorbates need."""
        return [gas_molecule(g) for g in sorted({g for a in self.adsorbates for g in gas_coefficients(a)})]

    def sample(self, n: int, seed: int = 0) -> list[Atoms]:
        """`n` structures (adslabs and, with clean_fraction, clean slabs), metadata in atoms.info."""
        if n < 0:
            raise StructureBuildError(f"n must be >= 0, got {n}")
        return [self.draw(seed, k) for k in range(n)]


def _try_facet(prototype: str, facet: str) -> str | None:
    try:
        return canonical_facet(prototype, facet)
    except StructureBuildError:
        return None
