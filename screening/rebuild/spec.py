"""What a CatalysisHub reaction's metadata says about its structures, as a `RebuildSpec` — or why it cannot be
rebuilt (`NotRebuildable`, whose message is the reason listed in the report's skipped table).

Metadata read (AlonsoStrain2023 conventions, shared by SainiElectronic2022 and LiScreening2021):

* ``surfaceComposition`` ``<formula>-<lattice>``: the formula gives the elements (A first: the majority element
  of A3B/A2B, the first-written one of AB) and the lattice the prototype, see `PROTOTYPES_BY_LATTICE`; a builder
  prototype name (``Cu3Au-L12``) is accepted too;
* ``chemicalComposition`` (``Ag12In4``): the clean slab's atom counts; the surface cell has 4 parent-lattice sites
  per layer (2×2) when that divides the count and fits the chemical order, else 3 (√3×√3), 9 (3×3), ...
  (`screening.structures.surface_cells.cell_for_count`); layers = atoms / sites per layer;
* ``facet`` (``111-5%``, ``101+3%``, ``0001``): Miller index and biaxial strain in % (negative = compressive);
* ``sites`` (``{"OH": "ontopB"}``): the named site of each adsorbate (`screening.structures.site_names`);
* ``reactants``/``products``: ``star`` (clean slab), ``<ads>star`` (adslab), ``<molecule>gas`` (gas reference).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from screening.structures import ADSORBATES, GAS_MOLECULES, StructureBuildError
from screening.structures.bulk import canonical_prototype, parse_composition
from screening.structures.site_names import SiteName, parse_site_name
from screening.structures.slabs import canonical_facet
from screening.structures.surface_cells import cell_for_count

# (A count, B count) of the reduced formula -> lattice word of surfaceComposition -> builder prototype
PROTOTYPES_BY_LATTICE: dict[tuple[int, int], dict[str, str]] = {
    (1, 0): {"fcc": "fcc", "bcc": "bcc", "hcp": "hcp"},
    (3, 1): {"fcc": "L12", "hcp": "D019"},
    (1, 1): {"bcc": "B2", "fcc": "L10"},
    (2, 1): {"hcp": "A2B_hcp"},
}
# surface-cell shape per prototype where CatalysisHub's sets differ from the most compact cell: AlonsoStrain2023's
# AB bcc(101) slabs use the rectangular √2a × 2a cell (its site table puts ontopA at (½, 0), longbridgeA at (½, ¼))
CELL_SHAPES: dict[str, str] = {"B2": "rectangular"}
SPEC_VERSION = "rebuild-v1"  # part of every rebuilt system's key: bump when the construction changes


class NotRebuildable(ValueError):
    """A reaction whose structures cannot be rebuilt from its metadata; the message, '<family>: <detail>', is the
    reason (families: unknown prototype, unknown facet, no surface cell, composition mismatch, unknown site name,
    unknown adsorbate, unknown gas reference, unknown species, metadata incomplete)."""


@dataclass(frozen=True)
class SurfaceSpec:
    """The clean slab: composition (A first), builder prototype and facet, strain %, cell and layers, and the
    element counts of chemicalComposition."""

    composition: str
    prototype: str
    facet: str
    strain: float
    sites_per_layer: int
    layers: int
    shape: str
    counts: tuple[tuple[str, int], ...]

    @property
    def bulk_key(self) -> str:
        """The bulk whose lattice constant a model relaxes, e.g. 'Ag3In|L12'."""
        return f"{self.composition}|{self.prototype}"

    @property
    def natoms(self) -> int:
        """Atoms of the clean slab."""
        return sum(n for _, n in self.counts)

    @property
    def label(self) -> str:
        """E.g. 'Ag3In L12(111) -5% 2x2x4'."""
        cell = f"{self.sites_per_layer}/layer x{self.layers}"
        return f"{self.composition} {self.prototype}({self.facet}) {self.strain:+g}% {cell}"

    def key(self, *extra: Any) -> str:
        """Stable id of a system built on this surface (`extra`: adsorbate and site), for energy caches."""
        blob = json.dumps([SPEC_VERSION, self.__dict__ | {"counts": list(self.counts)}, *extra], sort_keys=True)
        return "rb-" + hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass
class RebuildSpec:
    """Everything needed to rebuild one reaction: the surface, each adsorbed species (name -> (adsorbate,
    parsed site name)) and each gas species (name -> molecule)."""

    reaction_id: str
    surface: SurfaceSpec
    adsorbed: dict[str, tuple[str, SiteName]] = field(default_factory=dict)
    gas: dict[str, str] = field(default_factory=dict)
    has_slab: bool = True


_SURFACE_RE = re.compile(r"^(?P<formula>[A-Za-z0-9]+)-(?P<lattice>[A-Za-z0-9_]+)$")


def _pattern(ratio: tuple[int, int]) -> str:
    """(3, 1) -> 'A3B', (1, 0) -> 'A'."""
    a, b = ratio
    return "A" + (str(a) if a > 1 else "") + ("" if b == 0 else "B" + (str(b) if b > 1 else ""))


def surface_prototype(surface_composition: str | None) -> tuple[str, str]:
    """(composition formula, builder prototype) from ``surfaceComposition``; `NotRebuildable` if unknown."""
    if not surface_composition:
        raise NotRebuildable("metadata incomplete: no surfaceComposition")
    m = _SURFACE_RE.match(surface_composition.strip())
    if m is None:
        raise NotRebuildable(f"unknown prototype: surfaceComposition {surface_composition!r} is not formula-lattice")
    formula, lattice = m.group("formula"), m.group("lattice")
    try:
        counts = list(parse_composition(formula).values())
    except StructureBuildError as err:
        raise NotRebuildable(f"unknown prototype: {err}") from None
    g = math.gcd(*counts)
    ratio = (1, 0) if len(counts) == 1 else (max(counts) // g, min(counts) // g)
    proto = PROTOTYPES_BY_LATTICE.get(ratio, {}).get(lattice.lower())
    if proto is None and lattice.lower() not in ("fcc", "bcc", "hcp"):
        try:
            proto = canonical_prototype(lattice)  # a builder name such as L12, B2
        except StructureBuildError:
            proto = None
    if proto is None:
        known = ", ".join(f"{_pattern(r)}-{lat}" for r, d in PROTOTYPES_BY_LATTICE.items() for lat in d)
        raise NotRebuildable(
            f"unknown prototype: {_pattern(ratio)}-{lattice} ({surface_composition}); the builder makes {known}"
        )
    return formula, proto


def _counts(chemical_composition: str | None) -> dict[str, int]:
    if not chemical_composition:
        raise NotRebuildable("metadata incomplete: no chemicalComposition (atom count unknown)")
    tokens = re.findall(r"([A-Z][a-z]?)(\d*)", chemical_composition)
    if "".join(s + n for s, n in tokens) != chemical_composition.strip():
        raise NotRebuildable(f"metadata incomplete: cannot read chemicalComposition {chemical_composition!r}")
    out: dict[str, int] = {}
    for sym, n in tokens:
        out[sym] = out.get(sym, 0) + (int(n) if n else 1)
    return out


def surface_spec(
    surface_composition: str | None, chemical_composition: str | None, facet: str | None, strain: float
) -> SurfaceSpec:
    """The clean slab of a reaction's metadata; `NotRebuildable` with the reason otherwise."""
    formula, proto = surface_prototype(surface_composition)
    counts = _counts(chemical_composition)
    elements = set(parse_composition(formula))
    if set(counts) != elements:
        raise NotRebuildable(
            f"composition mismatch: chemicalComposition {chemical_composition} has elements {sorted(counts)} but "
            f"surfaceComposition {surface_composition} has {sorted(elements)}"
        )
    if not facet:
        raise NotRebuildable("metadata incomplete: no facet")
    try:
        facet_name = canonical_facet(proto, facet)
    except StructureBuildError as err:
        raise NotRebuildable(f"unknown facet: {err}") from None
    shape = CELL_SHAPES.get(proto, "compact")
    natoms = sum(counts.values())
    try:
        n, layers = cell_for_count(formula, proto, facet_name, natoms, shape=shape)
    except StructureBuildError as err:
        raise NotRebuildable(f"no surface cell: {err}") from None
    order = list(parse_composition(formula))
    return SurfaceSpec(
        composition=formula,
        prototype=proto,
        facet=facet_name,
        strain=float(strain or 0.0),
        sites_per_layer=n,
        layers=layers,
        shape=shape,
        counts=tuple((el, counts[el]) for el in order),
    )


def spec_from_reaction(reaction: Any) -> RebuildSpec:
    """`RebuildSpec` of a `screening.cathub.Reaction` (metadata suffices); `NotRebuildable` with the reason."""
    surf = surface_spec(
        reaction.surface_composition, reaction.chemical_composition, reaction.facet, reaction.strain_percent
    )
    spec = RebuildSpec(str(reaction.id), surf)
    sites = reaction.sites if isinstance(reaction.sites, dict) else {}
    names = list(dict.fromkeys([*reaction.reactants, *reaction.products]))
    spec.has_slab = "star" in names
    for name in names:
        if name == "star":
            continue
        if name.endswith("gas"):
            mol = name[: -len("gas")]
            if mol not in GAS_MOLECULES:
                raise NotRebuildable(f"unknown gas reference: {mol!r} (known: {list(GAS_MOLECULES)})")
            spec.gas[name] = mol
        elif name.endswith("star"):
            ads = name[: -len("star")]
            if ads not in ADSORBATES:
                raise NotRebuildable(f"unknown adsorbate: {ads!r} (known: {list(ADSORBATES)})")
            site = sites.get(ads)
            if not isinstance(site, str) or not site:
                raise NotRebuildable(f"metadata incomplete: no site name for adsorbate {ads!r} in sites {sites}")
            try:
                spec.adsorbed[name] = (ads, parse_site_name(site))
            except StructureBuildError as err:
                raise NotRebuildable(f"unknown site name: {err}") from None
        else:
            raise NotRebuildable(f"unknown species: {name!r} is neither <ads>star nor <molecule>gas")
    if not spec.adsorbed:
        raise NotRebuildable("unknown species: no adsorbed species in the reaction")
    return spec
