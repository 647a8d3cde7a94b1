"""Reactions to screen and ΔE assembly from per-system energies.

Sign convention (CatalysisHub API.md): ``ΔE = Σ_products c·E − Σ_reactants c·E`` with the coefficients exactly as
in the reaction's ``reactants``/``products`` dicts; a negative reactant coefficient (``"H2gas": -0.5``) means the
species is released. Energies in eV.

Each distinct structure is evaluated once: systems are keyed by a content hash of the structure
(`structure_key`), so a clean slab or a gas reference shared by many reactions appears once in `ScreenSet.atoms`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from calculators.batch import structure_problem
from calculators.hashing import structure_key
from screening.cathub import DatasetMismatchError, OfflineError, load_dataset
from screening.structures import (
    PROTOTYPES,
    ChemicalSpace,
    build_adsorption_system,
    find_sites,
    gas_coefficients,
    gas_molecule,
    make_slab,
)


@dataclass
class ScreenReaction:
    """One reaction: signed coefficients per species name, the system key of each species, its reference ΔE
    (DFT for datasets, None for generated candidates until a reference model fills it), and labels."""

    id: str
    equation: str
    reactants: dict[str, float]
    products: dict[str, float]
    systems: dict[str, str]  # species name -> system key
    gas: dict[str, bool]  # species name -> gas-phase species?
    reference: float | None = None
    adsorbate: str = ""
    surface: str = ""
    facet: str = ""
    site: str = ""
    strain_percent: float = 0.0

    def delta_e(self, energies: Mapping[str, float], gas_energies: Mapping[str, float] | None = None) -> float:
        """ΔE = Σ_products c·E − Σ_reactants c·E (eV) from energies by system key; gas-phase species take their
        energy from `gas_energies` when given (e.g. the teacher's, FORK protocol). KeyError if one is missing."""

        def e(name: str) -> float:
            key = self.systems[name]
            if gas_energies is not None and self.gas.get(name, False):
                return float(gas_energies[key])
            return float(energies[key])

        return sum(c * e(n) for n, c in self.products.items()) - sum(c * e(n) for n, c in self.reactants.items())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScreenReaction:
        """Inverse of `to_dict`."""
        return cls(**dict(d))


@dataclass
class ScreenSet:
    """Reactions, their distinct structures by key, and what was skipped (id, reason).

    `role_atoms` (optional): structures of one model role ("student") under the same keys, when each model gets
    its own (structures rebuilt on each model's lattice constants); other roles use `atoms`. `structures` says
    where the structures come from ("cathub": the DFT structures, "rebuild": rebuilt from metadata, "builtin",
    "generated") and `structures_info` carries what a report shows about it."""

    name: str
    source: str
    reference_kind: str  # "dft" or "teacher"
    reactions: list[ScreenReaction]
    atoms: dict[str, Atoms]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    role_atoms: dict[str, dict[str, Atoms]] = field(default_factory=dict)
    structures: str = ""
    structures_info: dict[str, Any] = field(default_factory=dict)

    @property
    def gas_keys(self) -> set[str]:
        """Keys of systems that are gas-phase species in some reaction."""
        return {r.systems[n] for r in self.reactions for n, g in r.gas.items() if g}

    def atoms_for(self, role: str) -> dict[str, Atoms]:
        """Structures by key as model `role` ("teacher", "student") evaluates them."""
        return self.role_atoms.get(role, self.atoms)

    def without_unphysical(self) -> ScreenSet:
        """This set without the reactions that use an unphysical structure (atoms closer than half the sum of
        their covalent radii, absurd coordinates, a degenerate periodic cell), each skipped with the reason, so
        no model's number for them reaches a metric. Per-role structures (`role_atoms`) are checked too (the
        reason then names the role). Returns `self` when every structure is fine."""
        bad: dict[str, str] = {}
        sources = [("", self.atoms)] + [(f"{role} structure: ", at) for role, at in self.role_atoms.items()]
        for prefix, by_key in sources:
            for key, atoms in by_key.items():
                if key in bad or (prefix and self.atoms.get(key) is atoms):
                    continue
                why = structure_problem(atoms)
                if why is not None:
                    bad[key] = prefix + why
        if not bad:
            return self
        reactions, skipped = [], list(self.skipped)
        for r in self.reactions:
            found = [f"{name}: {bad[k]}" for name, k in r.systems.items() if k in bad]
            if found:
                skipped.append((r.id, "; ".join(found)))
            else:
                reactions.append(r)
        return self._subset(reactions, skipped)

    def limit(self, n: int | None) -> ScreenSet:
        """The first `n` reactions (None: all) with only the structures they need. The rest are not screened,
        which is not a skip: they are counted as ``counts["beyond_limit"]``, not listed in `skipped` (a built-in
        set with `limit` is never built beyond it)."""
        if n is None or n >= len(self.reactions):
            return self
        out = self._subset(self.reactions[:n], list(self.skipped))
        out.counts["beyond_limit"] = len(self.reactions) - n
        return out

    def _subset(self, reactions: list, skipped: list) -> ScreenSet:
        """This set with only `reactions` and the structures they need; `skipped` replaces the skipped list."""
        keys = {k for r in reactions for k in r.systems.values()}
        return ScreenSet(
            self.name,
            self.source,
            self.reference_kind,
            reactions,
            {k: a for k, a in self.atoms.items() if k in keys},
            skipped,
            dict(self.counts),
            {role: {k: a for k, a in at.items() if k in keys} for role, at in self.role_atoms.items()},
            self.structures,
            dict(self.structures_info),
        )


def from_dataset(dataset: Any) -> ScreenSet:
    """A `screening.cathub.Dataset` as a ScreenSet (reference: DFT reaction energies). Reactions without
    structures or DFT energy are skipped with a reason; invalid ones keep their validation reason."""
    reactions: list[ScreenReaction] = []
    atoms: dict[str, Atoms] = {}
    skipped: list[tuple[str, str]] = [(inv.id, f"invalid: {inv.reason}") for inv in dataset.invalid]
    for r in dataset.reactions:
        if r.reaction_energy is None:
            skipped.append((r.id, "no DFT reaction energy"))
            continue
        names = list(r.reactants) + [n for n in r.products if n not in r.reactants]
        missing = [n for n in names if n not in r.systems or r.systems[n].atoms is None]
        if missing:
            skipped.append((r.id, f"no structure for {', '.join(missing)}"))
            continue
        keys, gas = {}, {}
        for n in names:
            s = r.systems[n]
            k = structure_key(s.atoms)
            atoms.setdefault(k, s.atoms)
            keys[n], gas[n] = k, bool(s.gas)
        sites = r.sites if isinstance(r.sites, dict) else {}
        reactions.append(
            ScreenReaction(
                id=r.id,
                equation=r.equation,
                reactants=dict(r.reactants),
                products=dict(r.products),
                systems=keys,
                gas=gas,
                reference=float(r.reaction_energy),
                adsorbate=r.adsorbate or "",
                surface=r.surface_composition or r.chemical_composition or "",
                facet=r.facet_raw or r.facet or "",
                site=",".join(f"{k}:{v}" for k, v in sites.items()),
                strain_percent=float(r.strain_percent or 0.0),
            )
        )
    counts = dict(dataset.counts)
    info = {"kind": "cathub", "note": "Structures: the DFT structures from CatalysisHub"}
    return ScreenSet(
        dataset.name, dataset.source, "dft", reactions, atoms, skipped, counts, structures="cathub",
        structures_info=info,
    )  # fmt: skip


# ----------------------------------------------------------------------------- generated candidates
# Built-in offline screening set: H, O, OH on small fcc(111)-type slabs of pure metals and A3B / AB alloys.
BUILTIN_SURFACES: tuple[tuple[str, str, str], ...] = (
    ("Pt", "fcc", "111"),
    ("Cu", "fcc", "111"),
    ("Ni", "fcc", "111"),
    ("Pd", "fcc", "111"),
    ("Au", "fcc", "111"),
    ("Ag", "fcc", "111"),
    ("Rh", "fcc", "111"),
    ("Ir", "fcc", "111"),
    ("Pt3Ni", "L12", "111"),
    ("Cu3Au", "L12", "111"),
    ("Pd3Ag", "L12", "111"),
    ("CuPd", "B2", "110"),
)
BUILTIN_ADSORBATES: tuple[str, ...] = ("H", "O", "OH")
PREFERRED_SITE = {"H": "fcc", "O": "fcc", "OH": "ontop", "N": "fcc", "C": "hcp"}


def _pick_site(slab: Atoms, adsorbate: str) -> Any:
    sites = find_sites(slab)
    want = PREFERRED_SITE.get(adsorbate, "ontop")
    for s in sites:
        if s.name.startswith(want):
            return s
    return sites[0]


def _add_system(
    atoms_by_key: dict[str, Atoms], slab: Atoms, adslab: Atoms, gas: Mapping[str, Atoms]
) -> tuple[str, str, dict[str, str]]:
    ks, ka = structure_key(slab), structure_key(adslab)
    atoms_by_key.setdefault(ks, slab)
    atoms_by_key.setdefault(ka, adslab)
    gk = {}
    for g, m in gas.items():
        k = structure_key(m)
        atoms_by_key.setdefault(k, m)
        gk[g] = k
    return ks, ka, gk


def adsorption_reaction(
    rid: str,
    adsorbate: str,
    coefficients: Mapping[str, float],
    slab_key: str,
    adslab_key: str,
    gas_keys: Mapping[str, str],
    **labels: Any,
) -> ScreenReaction:
    """Adsorption as a CatalysisHub-style reaction: reactants ``star`` + Σ ν·gas (ν may be negative),
    product ``<ads>star``; ΔE = E(adslab) − E(slab) − Σ ν E(gas)."""
    reactants = {"star": 1.0, **{f"{g}gas": float(nu) for g, nu in coefficients.items()}}
    products = {f"{adsorbate}star": 1.0}
    terms = " ".join(
        f"{'-' if nu < 0 else '+'} {abs(nu):g}{g}(g)" if abs(nu) != 1 else f"{'-' if nu < 0 else '+'} {g}(g)"
        for g, nu in coefficients.items()
    )
    equation = f"* {terms} -> {adsorbate}*".replace("  ", " ")
    systems = {"star": slab_key, f"{adsorbate}star": adslab_key, **{f"{g}gas": k for g, k in gas_keys.items()}}
    gas = {n: n.endswith("gas") for n in systems}
    return ScreenReaction(rid, equation, reactants, products, systems, gas, None, adsorbate, **labels)


def builtin_set(
    surfaces: Sequence[tuple[str, str, str]] = BUILTIN_SURFACES,
    adsorbates: Sequence[str] = BUILTIN_ADSORBATES,
    *,
    layers: int = 3,
    vacuum: float = 6.0,
    limit: int | None = None,
) -> ScreenSet:
    """The built-in offline screening set: every (surface, adsorbate) pair, small slabs (3 layers, smallest
    cell with ≥ 4 atoms per layer), unrelaxed adsorbate at the preferred site (H, O: fcc hollow; OH: ontop).
    Reference ΔE is filled later by the teacher (not DFT). Order: surface-major, so `limit` keeps whole
    surfaces first."""
    reactions: list[ScreenReaction] = []
    atoms: dict[str, Atoms] = {}
    skipped: list[tuple[str, str]] = []
    for comp, proto, facet in surfaces:
        slab = None
        for ads in adsorbates:
            if limit is not None and len(reactions) >= limit:
                break
            rid = f"{comp}-{proto}({facet})-{ads}"
            try:
                if slab is None:
                    slab = make_slab(comp, proto, facet, layers=layers, vacuum=vacuum)
                site = _pick_site(slab, ads)
                sys_ = build_adsorption_system(comp, proto, facet, ads, site=site, layers=layers, vacuum=vacuum)
            except Exception as err:  # a builder limitation is reported, not fatal
                skipped.append((rid, f"build failed: {err}"))
                continue
            ks, ka, gk = _add_system(atoms, sys_.slab, sys_.adslab, sys_.gas)
            reactions.append(
                adsorption_reaction(
                    rid, ads, sys_.coefficients, ks, ka, gk, surface=comp, facet=f"{proto}({facet})",
                    site=site.name,
                )
            )  # fmt: skip
    source = f"built-in: {len(surfaces)} surfaces × {list(adsorbates)}, {layers} layers, unrelaxed"
    counts = {"reactions": len(reactions)}
    beyond = len(surfaces) * len(adsorbates) - len(reactions) - len(skipped)
    if limit is not None and beyond:  # not built, not skipped: counted like `ScreenSet.limit` does
        counts["beyond_limit"] = beyond
    return ScreenSet("builtin", source, "teacher", reactions, atoms, skipped, counts, structures="builtin")


def _site_elements(site: str, a: str, b: str | None) -> str:
    """A site name with its chemistry letters written as elements (``ontopA`` on CuPd → ``ontop[Cu]``,
    ``threefoldABB`` on PdCu → ``threefold[Cu,Cu,Pd]``), so that one site of an AB = BA surface has one name."""
    m = re.fullmatch(r"([a-z]+)([AB]*)(_\d+)?", site)
    if m is None or not m.group(2):
        return site
    letters = sorted(a if ch == "A" else str(b) for ch in m.group(2))
    return f"{m.group(1)}[{','.join(letters)}]{m.group(3) or ''}"


def _identity(a: str, b: str | None, proto: str, facet: str, strain: float, ads: str, site: str) -> tuple:
    if b is not None and PROTOTYPES[proto].stoichiometry == (1, 1):
        site = _site_elements(site, a, b)
        a, b = sorted((a, b))
    return (a, b, proto, facet, round(float(strain), 6), ads, site)


def candidate_identity(adslab: Atoms) -> tuple:
    """What makes a drawn candidate distinct: its elements, prototype, facet, strain (%), adsorbate and site.
    AB and BA of a 1:1 prototype (B2, L10) are one surface (the slabs differ by a translation), as in the
    reaction funnel's `generate_candidates`; their site names are compared element by element."""
    info = adslab.info
    b = info.get("element_B")
    return _identity(
        str(info.get("element_A", "")), None if b in (None, "", "None") else str(b), str(info.get("prototype", "")),
        str(info.get("facet", "")), float(info.get("strain", 0.0) or 0.0), str(info.get("adsorbate", "")),
        str(info.get("site", "")),
    )  # fmt: skip


def distinct_candidates(space: ChemicalSpace) -> int:
    """How many distinct candidates (`candidate_identity`) a space with discrete strains holds."""
    found = {
        _identity(a, b, proto, facet, strain, ads, site)
        for a, b, proto, facet, strain in space.surfaces()
        for site in space.site_names(a, b, proto, facet, strain)
        for ads in space.adsorbates
    }
    return len(found)


def generated_set(
    elements: Sequence[str],
    n: int,
    *,
    seed: int = 0,
    adsorbates: Sequence[str] = BUILTIN_ADSORBATES,
    prototypes: Sequence[str] = ("fcc", "L12", "B2"),
    facets: Sequence[str] | None = ("111", "110"),
    strains: Sequence[float] = (0.0,),
    max_draws: int | None = None,
) -> ScreenSet:
    """`n` distinct candidates drawn from `ChemicalSpace(...)` (draw k depends only on (seed, k); a draw that
    repeats an earlier candidate, `candidate_identity`, is passed over, so no structure is screened twice).
    The clean slab of each is the adslab without its adsorbate (tag 2), gas references from `gas_molecule` with
    ν from `gas_coefficients`. When the space holds fewer than `n` distinct candidates (`distinct_candidates`,
    counted once 100 draws in a row found nothing new; drawing stops when all are found) or `max_draws` (default
    50·n) run out first, the set has fewer: ``skipped`` and ``counts["possible"]`` say how many exist."""
    space = ChemicalSpace(elements, prototypes=prototypes, facets=facets, adsorbates=adsorbates, strains=strains)
    reactions: list[ScreenReaction] = []
    atoms: dict[str, Atoms] = {}
    gas_cache: dict[str, Atoms] = {}
    seen: set[tuple] = set()
    skipped: list[tuple[str, str]] = []
    limit = 50 * max(n, 1) if max_draws is None else max_draws
    possible: int | None = None  # counted once draws stop finding new candidates
    k = repeats = 0
    while len(reactions) < n and k < limit:
        adslab = space.draw(seed, k)
        k += 1
        ident = candidate_identity(adslab)
        if ident in seen:
            repeats += 1
            if possible is None and repeats >= 100:
                possible = distinct_candidates(space)
            if possible is not None and len(seen) >= possible:
                break  # the space is exhausted
            continue
        repeats = 0
        seen.add(ident)
        ads = str(adslab.info.get("adsorbate", ""))
        slab = adslab[adslab.get_tags() != 2]
        slab.info = {}
        nu = gas_coefficients(ads)
        gas = {g: gas_cache.setdefault(g, gas_molecule(g)) for g in nu}
        ks, ka, gk = _add_system(atoms, slab, adslab, gas)
        comp = str(adslab.info.get("composition", ""))
        site = str(adslab.info.get("site", ""))
        rid = f"cand{len(reactions):04d}-{comp}-{ads}@{site}"
        facet = f"{adslab.info.get('prototype', '')}({adslab.info.get('facet', '')})"
        strain = float(adslab.info.get("strain", 0.0) or 0.0)
        reactions.append(
            adsorption_reaction(rid, ads, nu, ks, ka, gk, surface=comp, facet=facet, site=site, strain_percent=strain)
        )
    if len(reactions) < n:
        possible = distinct_candidates(space) if possible is None else possible
        why = (
            f"the space holds only {possible} distinct candidates"
            if len(reactions) >= possible
            else f"only {len(reactions)} of the space's {possible} distinct candidates in {k} draws"
        )
        skipped.append(("generate", f"{why} (asked for {n})"))
        counts_possible = {"possible": possible}
    else:
        counts_possible = {}
    source = (
        f"generated: {len(reactions)} distinct candidates from ChemicalSpace({list(elements)}), seed={seed} "
        f"({k} draws), unrelaxed"
    )
    counts = {"reactions": len(reactions), "draws": k, **counts_possible}
    return ScreenSet("generated", source, "teacher", reactions, atoms, skipped, counts, structures="generated")


class ScreenSetError(ValueError):
    """A dataset that cannot be screened as asked (not cached, unreadable)."""


def load_screen_set(
    dataset: str | None = None,
    data_file: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    limit: int | None = None,
) -> ScreenSet:
    """What `screen run` / `screen funnel` screen: the built-in offline set when neither `dataset` nor `data_file`
    is given, else a CatalysisHub dataset (cache or file, `from_dataset`), limited to its first `limit` reactions.
    `FileNotFoundError` for a missing file; `ScreenSetError` saying how to get the data otherwise."""
    if dataset is None and data_file is None:
        return builtin_set(limit=limit)
    return from_dataset(load_reaction_dataset(dataset, data_file, cache_dir=cache_dir)).limit(limit)


def load_reaction_dataset(
    dataset: str | None, data_file: str | Path | None = None, *, cache_dir: str | Path | None = None
) -> Any:
    """The `screening.cathub.Dataset` of `dataset` (cache) or `data_file`; `FileNotFoundError` for a missing file,
    `ScreenSetError` saying how to get the data otherwise, that the data hold no reaction, or that `data_file`
    holds another pubId than the named `dataset` (without `dataset`, the file's stem is only a label and nothing
    is checked)."""
    try:
        ds = load_dataset(
            dataset or Path(data_file).stem, cache_dir=cache_dir, data_file=data_file, check_pub_id=dataset is not None
        )
    except FileNotFoundError:
        raise
    except DatasetMismatchError as err:
        raise ScreenSetError(str(err)) from err
    except OfflineError as err:
        raise ScreenSetError(
            f"{err}\nTo get the data: `screen fetch --dataset {dataset}` with CATHUB_API_KEY set (resumable; "
            "`--metadata-only` suffices for `screen run --structures rebuild`), or pass --data-file FILE. Without "
            "a dataset, `screen run` screens the built-in offline set."
        ) from err
    except Exception as err:  # file format errors: one message, no traceback
        raise ScreenSetError(f"could not load dataset: {type(err).__name__}: {err}") from err
    if not ds.reactions and not ds.invalid:
        where = f"{data_file} holds" if data_file is not None else f"the cache of {ds.pub_id} ({ds.source}) holds"
        raise ScreenSetError(f"{where} no reactions: nothing to screen")
    return ds
