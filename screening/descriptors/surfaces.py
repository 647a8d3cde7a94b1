"""Surfaces to screen for a reaction: per surface (composition, prototype, facet, strain), its clean slab and its
adsorbates at one or more sites; adsorption energies in the reaction table's reference scheme; the site of each
adsorbate chosen per model as the most stable one among those computed.

Sources: generated surfaces (`generate_candidates`: ChemicalSpace draws distinct surfaces, each gets the
reaction's adsorbates at up to `sites` sites in order of preference) or any `ScreenSet` (`candidates_from_set`: a
CatalysisHub set, a file, the built-in set), whose reactions are regrouped by surface. A set's DFT reaction energy
is kept for a candidate when the reaction's gas references are the table's (else it is not comparable).
`assess` turns one surface's per-candidate ΔE (one model's, or DFT's) into its chosen sites and CHE activity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from ase import Atoms

from calculators.batch import structure_problem
from calculators.hashing import structure_key
from screening.descriptors.che import Activity, MissingAdsorbate, activity
from screening.descriptors.table import ReactionSpec, ReactionTable
from screening.reactions import ScreenSet
from screening.structures import PROTOTYPES, ChemicalSpace, add_adsorbate, find_sites, gas_molecule, make_slab

# kinds of site tried first, per adsorbate (then the remaining kinds in find_sites order)
SITE_PREFERENCE: dict[str, tuple[str, ...]] = {
    "H": ("fcc", "hcp", "hollow", "threefold", "bridge", "shortbridge", "longbridge", "ontop"),
    "O": ("fcc", "hcp", "hollow", "threefold", "bridge", "shortbridge", "longbridge", "ontop"),
    "N": ("fcc", "hcp", "hollow", "threefold", "bridge", "shortbridge", "longbridge", "ontop"),
    "C": ("hcp", "fcc", "hollow", "threefold", "bridge", "shortbridge", "longbridge", "ontop"),
    "OH": ("ontop", "bridge", "shortbridge", "longbridge", "fcc", "hcp", "hollow", "threefold"),
    "OOH": ("ontop", "bridge", "shortbridge", "longbridge", "fcc", "hcp", "hollow", "threefold"),
    "CO": ("ontop", "fcc", "hcp", "hollow", "threefold", "bridge", "shortbridge", "longbridge"),
}


@dataclass
class SiteCandidate:
    """One adsorbate at one site of one surface: the system keys of its clean slab and adslab, and the set's DFT
    ΔE (eV, table reference scheme) when it has a comparable one."""

    id: str
    surface: str
    adsorbate: str
    site: str
    slab_key: str
    adslab_key: str
    dft: float | None = None
    reaction_id: str = ""


@dataclass
class Surface:
    """A surface and its site candidates. `reference`: the reference surface of a binding reaction's target."""

    id: str
    composition: str
    facet: str
    strain: float
    candidates: list[SiteCandidate] = field(default_factory=list)
    reference: bool = False

    @property
    def adsorbates(self) -> set[str]:
        """Adsorbates with at least one candidate."""
        return {c.adsorbate for c in self.candidates}

    def labels(self) -> dict[str, Any]:
        """Composition, facet and strain (%) for tables."""
        return {"surface": self.id, "composition": self.composition, "facet": self.facet, "strain_percent": self.strain}


@dataclass
class CandidateSet:
    """What a reaction funnel screens. `atoms`: every structure by key (slabs, adslabs, gas molecules); `gas`:
    gas name → key; `reference_kind`: "dft" when candidates may carry DFT energies."""

    name: str
    source: str
    reference_kind: str
    surfaces: list[Surface]
    atoms: dict[str, Atoms]
    gas: dict[str, str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reference_surface: Surface | None = None

    @property
    def candidates(self) -> dict[str, SiteCandidate]:
        """All candidates by id (reference surface included)."""
        out = {c.id: c for s in self.surfaces for c in s.candidates}
        if self.reference_surface is not None:
            out.update({c.id: c for c in self.reference_surface.candidates})
        return out

    @property
    def has_dft(self) -> bool:
        """Does any candidate carry a DFT energy?"""
        return any(c.dft is not None for s in self.surfaces for c in s.candidates)

    def without_unphysical(self, table: ReactionTable | None = None) -> CandidateSet:
        """This set without the candidates whose clean slab or adslab is unphysical (atoms closer than half the sum
        of their covalent radii, absurd coordinates, a degenerate cell) or, with `table`, whose reference gases
        are; each skipped with the reason (like `ScreenSet.without_unphysical`). Surfaces left without candidates
        are dropped. Returns `self` when every structure is fine."""
        bad = {key: why for key, atoms in self.atoms.items() if (why := structure_problem(atoms)) is not None}
        if not bad:
            return self
        skipped = list(self.skipped)

        def problems(c: SiteCandidate) -> list[str]:
            found = [f"{what}: {bad[k]}" for what, k in (("slab", c.slab_key), ("adslab", c.adslab_key)) if k in bad]
            if table is not None:
                for g in table.adsorbate(c.adsorbate).reference:
                    k = self.gas.get(g)
                    if k in bad:
                        found.append(f"gas {g}: {bad[k]}")
            return found

        def keep(surface: Surface | None) -> Surface | None:
            if surface is None:
                return None
            kept = []
            for c in surface.candidates:
                found = problems(c)
                if found:
                    skipped.append((c.reaction_id or c.id, "; ".join(found)))
                else:
                    kept.append(c)
            return replace(surface, candidates=kept) if kept else None

        surfaces = [x for x in (keep(s) for s in self.surfaces) if x is not None]
        ref = keep(self.reference_surface)
        if self.reference_surface is not None and ref is None:
            ref = replace(self.reference_surface, candidates=[])
        keys = set(self.gas.values()) - set(bad)
        for s in [*surfaces, *([ref] if ref is not None else [])]:
            for c in s.candidates:
                keys |= {c.slab_key, c.adslab_key}
        atoms = {k: a for k, a in self.atoms.items() if k in keys}
        gas = {g: k for g, k in self.gas.items() if k not in bad}
        return replace(self, surfaces=surfaces, atoms=atoms, gas=gas, skipped=skipped, reference_surface=ref)


def order_sites(sites: Sequence[Any], adsorbate: str) -> list[Any]:
    """Sites in order of preference for `adsorbate` (`SITE_PREFERENCE`, then find_sites order)."""
    pref = SITE_PREFERENCE.get(adsorbate, ())
    rank = {k: i for i, k in enumerate(pref)}
    return [s for _, s in sorted(enumerate(sites), key=lambda p: (rank.get(p[1].kind, len(pref)), p[0]))]


def reaction_adsorbates(reaction: ReactionSpec, *, computed_scaled: bool = False) -> list[str]:
    """Adsorbates to compute for `reaction`: all but the scaled ones, plus those with `computed_scaled`."""
    return [a for a in reaction.adsorbates if a not in reaction.scaling or computed_scaled]


def _surface_candidates(
    surface: Surface, slab: Atoms, adsorbates: Sequence[str], sites: int, atoms: dict[str, Atoms]
) -> list[tuple[str, str]]:
    """Adds the slab and its adslabs to `atoms` and candidates to `surface`; returns (id, reason) of failures."""
    ks = structure_key(slab)
    atoms.setdefault(ks, slab)
    failed: list[tuple[str, str]] = []
    found = find_sites(slab)
    for ads in adsorbates:
        for site in order_sites(found, ads)[: max(1, sites)]:
            cid = f"{surface.id}|{ads}@{site.name}"
            try:
                adslab = add_adsorbate(slab, ads, site)
            except Exception as err:  # a builder limitation is reported, not fatal
                failed.append((cid, f"build failed: {err}"))
                continue
            adslab.info["kind"] = "adslab"
            ka = structure_key(adslab)
            atoms.setdefault(ka, adslab)
            surface.candidates.append(SiteCandidate(cid, surface.id, ads, site.name, ks, ka))
    return failed


def surface_id(composition: str, prototype: str, facet: str, strain: float) -> str:
    """``Pt3Ni-L12(111)+1%`` style id (strain omitted when 0)."""
    s = "" if strain == 0 else f"{strain:+g}%"
    return f"{composition}-{prototype}({facet}){s}"


def _gas(atoms: dict[str, Atoms], names: Sequence[str], known: Mapping[str, Atoms] | None = None) -> dict[str, str]:
    out = {}
    for g in sorted(set(names)):
        mol = (known or {}).get(g) or gas_molecule(g)
        k = structure_key(mol)
        atoms.setdefault(k, mol)
        out[g] = k
    return out


def reference_surface(
    reaction: ReactionSpec, atoms: dict[str, Atoms], *, sites: int = 2, layers: int = 3, vacuum: float = 6.0
) -> Surface | None:
    """The reference surface of a binding reaction (its target), built with the structure builder; None when the
    reaction's target is a number."""
    spec = reaction.target_surface
    if spec is None:
        return None
    comp, proto, facet = spec
    slab = make_slab(comp, proto, facet, layers=layers, vacuum=vacuum)
    surf = Surface("reference:" + surface_id(comp, proto, facet, 0.0), comp, f"{proto}({facet})", 0.0, reference=True)
    _surface_candidates(surf, slab, list(reaction.descriptor), sites, atoms)
    return surf


def generate_candidates(
    reaction: ReactionSpec,
    table: ReactionTable,
    elements: Sequence[str],
    n: int,
    *,
    seed: int = 0,
    adsorbates: Sequence[str] | None = None,
    sites: int = 2,
    prototypes: Sequence[str] = ("fcc", "L12", "B2"),
    facets: Sequence[str] | None = None,
    strains: Sequence[float] = (-2.0, 0.0, 2.0),
    layers: int = 3,
    vacuum: float = 6.0,
) -> CandidateSet:
    """`n` distinct surfaces drawn from `ChemicalSpace(elements, prototypes, facets, strains)` (draw k depends only
    on (seed, k); duplicates are skipped, AB and BA of a 1:1 prototype being one surface), each with `adsorbates`
    at up to `sites` sites in order of preference (`SITE_PREFERENCE`). Default adsorbates: the reaction's, without
    those a scaling relation gives (ORR: O, OH; pass OOH too to compute it)."""
    ads = list(adsorbates) if adsorbates else reaction_adsorbates(reaction)
    for a in ads:
        table.adsorbate(a)
    space = ChemicalSpace(
        elements, prototypes=prototypes, facets=facets, adsorbates=(), strains=strains, clean_fraction=1.0,
        layers=layers, vacuum=vacuum,
    )  # fmt: skip
    atoms: dict[str, Atoms] = {}
    surfaces: list[Surface] = []
    skipped: list[tuple[str, str]] = []
    seen: set[tuple] = set()
    k = 0
    while len(surfaces) < n and k < 50 * max(n, 1):
        slab = space.draw(seed, k)
        k += 1
        info = slab.info
        sid = surface_id(str(info["composition"]), str(info["prototype"]), str(info["facet"]), float(info["strain"]))
        a, b = str(info["element_A"]), str(info["element_B"])
        if PROTOTYPES[str(info["prototype"])].stoichiometry == (1, 1):  # AB = BA (B2, L10): one surface
            a, b = sorted((a, b))
        key = (a, b, str(info["prototype"]), str(info["facet"]), round(float(info["strain"]), 6))
        if key in seen:
            continue
        seen.add(key)
        slab.info = {key: info[key] for key in ("composition", "prototype", "facet", "strain", "element_A",
                                                 "element_B", "layers", "size")}  # fmt: skip
        slab.info["kind"] = "slab"
        surf = Surface(sid, str(info["composition"]), f"{info['prototype']}({info['facet']})", float(info["strain"]))
        skipped += _surface_candidates(surf, slab, ads, sites, atoms)
        surfaces.append(surf)
    if len(surfaces) < n:
        skipped.append(("generate", f"only {len(surfaces)} distinct surfaces in {k} draws (asked for {n})"))
    ref = reference_surface(reaction, atoms, sites=sites, layers=layers, vacuum=vacuum)
    gas = _gas(atoms, [g for a in ads + list(reaction.descriptor) for g in table.adsorbate(a).reference])
    source = (
        f"generated: {len(surfaces)} distinct surfaces from ChemicalSpace({list(elements)}, prototypes="
        f"{list(prototypes)}, strains={list(strains)} %), seed {seed}; {', '.join(a + '*' for a in ads)} at up to "
        f"{sites} site(s) each; {layers} layers"
    )
    return CandidateSet("generated", source, "none", surfaces, atoms, gas, skipped, ref)


def _gas_coefficients(r: Any) -> dict[str, float]:
    """ν of a CatalysisHub-style adsorption reaction: reactant gases minus product gases, names without 'gas'."""
    nu: dict[str, float] = {}
    for n, c in r.reactants.items():
        if r.gas.get(n):
            g = n[:-3] if n.endswith("gas") else n
            nu[g] = nu.get(g, 0.0) + float(c)
    for n, c in r.products.items():
        if r.gas.get(n):
            g = n[:-3] if n.endswith("gas") else n
            nu[g] = nu.get(g, 0.0) - float(c)
    return {g: v for g, v in nu.items() if abs(v) > 1e-9}


def _same_reference(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    keys = set(a) | set(b)
    return all(abs(a.get(k, 0.0) - b.get(k, 0.0)) < 1e-6 for k in keys)


def candidates_from_set(
    sset: ScreenSet, reaction: ReactionSpec, table: ReactionTable, *, sites: int = 2
) -> CandidateSet:
    """Regroup a ScreenSet's adsorption reactions (``* + gases → X*``) of the reaction's adsorbates by surface
    (surface, facet, strain). Other reactions are skipped with a reason. The reference surface of a binding
    reaction is built with the structure builder (no DFT for it)."""
    wanted = set(reaction.adsorbates)
    atoms: dict[str, Atoms] = {}
    by_surface: dict[str, Surface] = {}
    skipped = list(sset.skipped)
    known_gas: dict[str, Atoms] = {}
    by_pair: dict[tuple[str, str, str], SiteCandidate] = {}
    for r in sset.reactions:
        for n in r.systems:
            if r.gas.get(n) and n.endswith("gas"):
                known_gas.setdefault(n[:-3], sset.atoms[r.systems[n]])
    for r in sset.reactions:
        ads = r.adsorbate
        if ads not in wanted:
            skipped.append((r.id, f"adsorbate {ads or '?'} not used by {reaction.name}"))
            continue
        products = [n for n in r.products if not r.gas.get(n)]
        if "star" not in r.reactants or products != [f"{ads}star"]:
            skipped.append((r.id, f"not an adsorption reaction * + gas -> {ads}*: {r.equation}"))
            continue
        sid = f"{r.surface} {r.facet}".strip()
        surf = by_surface.setdefault(sid, Surface(sid, r.surface, r.facet, float(r.strain_percent)))
        ks, ka = r.systems["star"], r.systems[f"{ads}star"]
        atoms.setdefault(ks, sset.atoms[ks])
        atoms.setdefault(ka, sset.atoms[ka])
        dft = None
        same_ref = _same_reference(_gas_coefficients(r), table.adsorbate(ads).reference)
        if sset.reference_kind == "dft" and r.reference is not None and same_ref:
            dft = float(r.reference)
        pair = (sid, ks, ka)
        if pair in by_pair:  # same structures as an earlier reaction (e.g. another gas reference)
            if by_pair[pair].dft is None and dft is not None:
                by_pair[pair].dft = dft
            continue
        cid = f"{sid}|{ads}@{r.site or r.id}"
        if any(c.id == cid for c in surf.candidates):
            cid = f"{cid}#{len(surf.candidates)}"
        cand = SiteCandidate(cid, sid, ads, r.site or r.id, ks, ka, dft, r.id)
        by_pair[pair] = cand
        surf.candidates.append(cand)
    ref = reference_surface(reaction, atoms, sites=sites)
    names = [g for a in reaction.adsorbates for g in table.adsorbate(a).reference]
    gas = _gas(atoms, names, known_gas)
    source = f"{sset.source}; regrouped by surface for {reaction.name}"
    kind = "dft" if sset.reference_kind == "dft" else "none"
    return CandidateSet(sset.name, source, kind, list(by_surface.values()), atoms, gas, skipped, ref)


def adsorption_energy(
    cand: SiteCandidate,
    energies: Mapping[str, float],
    gas_energies: Mapping[str, float],
    gas_keys: Mapping[str, str],
    table: ReactionTable,
    adslab_key: str | None = None,
) -> float:
    """ΔE = E(adslab) − E(slab) − Σ ν E(gas) (eV) with the table's ν for the candidate's adsorbate; `adslab_key`
    replaces the candidate's adslab key (relax mode: the adslab started from this model's relaxed slab)."""
    nu = table.adsorbate(cand.adsorbate).reference
    e_gas = sum(v * gas_energies[gas_keys[g]] for g, v in nu.items())
    return float(energies[adslab_key or cand.adslab_key] - energies[cand.slab_key] - e_gas)


def choose_sites(
    surface: Surface, values: Mapping[str, float | None], excluded: Sequence[str] = ()
) -> dict[str, tuple[str, float]]:
    """Per adsorbate, the most stable candidate (lowest finite ΔE) among those computed and not `excluded`
    (e.g. desorbed): {adsorbate: (candidate id, ΔE)}. Ties go to the first candidate."""
    out: dict[str, tuple[str, float]] = {}
    bad = set(excluded)
    for c in surface.candidates:
        v = values.get(c.id)
        if v is None or not math.isfinite(v) or c.id in bad:
            continue
        if c.adsorbate not in out or v < out[c.adsorbate][1]:
            out[c.adsorbate] = (c.id, float(v))
    return out


def adslab_on_relaxed_slab(adslab: Atoms, slab: Atoms, relaxed: np.ndarray, radius: float = 3.0) -> Atoms | None:
    """The adslab restarted on a relaxed clean slab: slab atoms at their relaxed positions, the adsorbate moved by
    the mean displacement of the slab atoms within `radius` Å of its lowest atom. None when the adslab's first
    atoms are not the slab (then it is relaxed as given)."""
    n = len(slab)
    if len(adslab) <= n or not np.array_equal(adslab.numbers[:n], slab.numbers):
        return None
    if not np.allclose(adslab.positions[:n], slab.positions, atol=1e-6) or not np.allclose(adslab.cell, slab.cell):
        return None
    from ase.geometry import get_distances

    relaxed = np.asarray(relaxed, dtype=float)
    disp = relaxed - slab.positions
    ads = np.arange(n, len(adslab))
    low = ads[np.argmin(adslab.positions[ads, 2])]
    _, d = get_distances(adslab.positions[low][None], slab.positions, cell=slab.cell, pbc=slab.pbc)
    near = d[0] < radius
    shift = disp[near].mean(axis=0) if near.any() else np.zeros(3)
    out = adslab.copy()
    out.positions[:n] = relaxed
    out.positions[n:] += shift
    return out


@dataclass
class SurfaceResult:
    """One surface under one model (or DFT): chosen sites {adsorbate: (candidate id, ΔE)}, the activity, or why
    there is none."""

    chosen: dict[str, tuple[str, float]]
    activity: Activity | None
    reason: str | None = None

    @property
    def metric(self) -> float | None:
        """The reaction's metric, None without an activity."""
        return None if self.activity is None else self.activity.metric


def assess(
    surface: Surface,
    values: Mapping[str, float | None],
    reaction: ReactionSpec,
    table: ReactionTable,
    *,
    target: float | None = None,
    excluded: Sequence[str] = (),
    force_scaling: bool = False,
) -> SurfaceResult:
    """Site choice (most stable computed site per adsorbate), then the CHE activity of one surface."""
    chosen = choose_sites(surface, values, excluded)
    if reaction.kind == "binding" and target is None and reaction.target_surface is not None:
        return SurfaceResult(chosen, None, "no target (reference surface not computed)")
    try:
        act = activity({a: v for a, (_, v) in chosen.items()}, reaction, table, target=target,
                       force_scaling=force_scaling)  # fmt: skip
    except MissingAdsorbate as err:
        return SurfaceResult(chosen, None, f"no {err.args[0]}* energy")
    return SurfaceResult(chosen, act)
