"""Held-out screening set for judging a distilled student against its teacher (`benchmarks/student_benchmark.py`).

Built with the structure builder (`screening.structures`) in the recipe of `distill.screening_data`: the
CatalysisHub metals (`SCREENING_METALS`), pure fcc/hcp/bcc and binary L12, D019, B2, L10, A2B_hcp prototypes on
their facets, `SURFACE_SIZE` surface cells, 4 layers (bottom 2 fixed), 7.5 Å vacuum per side and a biaxial strain
uniform in -8...+8 %. Each sampled clean slab carries up to `per_surface` (adsorbate, site) pairs with distinct
adsorbates drawn from H, O, OH, N, C, CH, CO (balanced: adsorbates are dealt from shuffled decks, so any 7
consecutive reactions hold all 7) at the slab's named sites; every clean slab is shared by its adsorbates.

Reaction energy (eV): ΔE = E(adslab) − E(slab) − Σ_g ν_g E(gas g), ν from `screening.structures.gas_coefficients`
(H: ½H2, O: H2O − H2, N: ½N2, C: CH4 − 2H2). Gas molecules are centred in a fixed cubic box (15 Å, periodic).

Seeds are >= `HELDOUT_SEED` (9000), disjoint from the training streams (1000-1002). Everything is a deterministic
function of the arguments. `heldout_label_structures` gives rattled surfaces (seed 9001), gas molecules and bulk
cells for the held-out energy/force check.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from distill.screening_data import (
    ALLOY_PROTOTYPES,
    HELDOUT_SEED,
    PURE_PROTOTYPES,
    SCREENING_ADSORBATES,
    SCREENING_METALS,
    STRAIN_RANGE,
    SURFACE_SIZE,
)

LAYERS = 4
VACUUM = 7.5  # Å on each side of the slab
GAS_BOX = 15.0  # Å, cubic periodic box of the gas references
GAS_FOR_METRICS = ("H2", "O2", "H2O")  # always relaxed: bond lengths and E(H2O) − E(H2) − ½E(O2)
# structure-set hashes of the held-out sets round to 1e-5 Å: regenerated in memory on every machine, they differ
# in their last digits between numpy/scipy builds (`calculators.hashing.structures_sha256`)
HASH_DECIMALS = 5


@dataclass(frozen=True)
class HeldoutReaction:
    """One adsorption reaction: adsorbate at `site` on clean slab `surface`; ν of each gas reference."""

    id: str
    surface: str
    adsorbate: str
    site: str
    coefficients: Mapping[str, float]
    composition: str
    prototype: str
    facet: str
    strain: float  # biaxial strain, %


@dataclass
class HeldoutSet:
    """Clean slabs (by surface id), adslabs (by reaction id), gas molecules (by name), reactions and the
    parameters that define the set (`params`, also hashed into `key`)."""

    slabs: dict[str, Atoms]
    adslabs: dict[str, Atoms]
    gases: dict[str, Atoms]
    reactions: list[HeldoutReaction]
    params: dict[str, Any]
    skipped: list[str] = field(default_factory=list)

    def structures(self) -> dict[str, Atoms]:
        """Every structure to evaluate, in a fixed order: "gas/<name>", "slab/<surface>", "ads/<reaction>"."""
        out = {f"gas/{g}": a for g, a in self.gases.items()}
        out.update({f"slab/{s}": a for s, a in self.slabs.items()})
        out.update({f"ads/{r}": a for r, a in self.adslabs.items()})
        return out

    @property
    def key(self) -> str:
        """Short hash of the parameters and of the initial structures (numbers, positions, cells, pbc)."""
        from distill.labels import structures_hash

        h = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode())
        h.update(structures_hash(list(self.structures().values()), HASH_DECIMALS).encode())
        return h.hexdigest()[:12]

    def by_adsorbate(self) -> dict[str, list[HeldoutReaction]]:
        """Reactions grouped by adsorbate (in `SCREENING_ADSORBATES` order, then any others)."""
        out: dict[str, list[HeldoutReaction]] = {}
        for r in self.reactions:
            out.setdefault(r.adsorbate, []).append(r)
        order = [a for a in SCREENING_ADSORBATES if a in out] + sorted(set(out) - set(SCREENING_ADSORBATES))
        return {a: out[a] for a in order}

    def by_prototype(self) -> dict[str, list[HeldoutReaction]]:
        """Reactions grouped by the slab's bulk prototype (pure `PURE_PROTOTYPES`, then binary
        `ALLOY_PROTOTYPES`, then any others), followed by the two groups "pure" and "binary"."""
        out: dict[str, list[HeldoutReaction]] = {}
        for r in self.reactions:
            out.setdefault(r.prototype, []).append(r)
        known = (*PURE_PROTOTYPES, *ALLOY_PROTOTYPES)
        order = [p for p in known if p in out] + sorted(set(out) - set(known))
        groups = {p: out[p] for p in order}
        groups["pure"] = [r for r in self.reactions if r.prototype in PURE_PROTOTYPES]
        groups["binary"] = [r for r in self.reactions if r.prototype not in PURE_PROTOTYPES]
        return groups


def reaction_energy(
    e_adslab: float, e_slab: float, e_gas: Mapping[str, float], coefficients: Mapping[str, float]
) -> float:
    """ΔE = E(adslab) − E(slab) − Σ ν_g E(gas g), all in eV; NaN when any term is missing or non-finite."""
    terms = [e_adslab, e_slab] + [e_gas.get(g, math.nan) for g in coefficients]
    if not all(t is not None and math.isfinite(float(t)) for t in terms):
        return math.nan
    return float(e_adslab - e_slab - sum(nu * e_gas[g] for g, nu in coefficients.items()))


def _deal(deck: list[str], rng: np.random.Generator, adsorbates: Sequence[str], k: int) -> list[str]:
    """Take `k` distinct adsorbates from the front of `deck`, refilling it with shuffled copies as needed."""
    k = min(k, len(adsorbates))
    out: list[str] = []
    while len(out) < k:
        if not deck:
            deck.extend(str(adsorbates[i]) for i in rng.permutation(len(adsorbates)))
        j = next((i for i, a in enumerate(deck) if a not in out), None)
        if j is None:  # the deck holds only adsorbates already taken: add a fresh permutation behind
            deck.extend(str(adsorbates[i]) for i in rng.permutation(len(adsorbates)))
            continue
        out.append(deck.pop(j))
    return out


def _draw_slab(
    rng: np.random.Generator, elements: Sequence[str], alloy_fraction: float
) -> tuple[Atoms, tuple[str, ...], str, str, float]:
    from screening.structures import make_slab
    from screening.structures.slabs import FACETS

    alloy = len(elements) > 1 and rng.random() < alloy_fraction
    protos = ALLOY_PROTOTYPES if alloy else PURE_PROTOTYPES
    proto = str(protos[rng.integers(len(protos))])
    if alloy:
        i, j = rng.choice(len(elements), size=2, replace=False)
        comp: tuple[str, ...] = (str(elements[i]), str(elements[j]))
    else:
        comp = (str(elements[rng.integers(len(elements))]),)
    facets = sorted(FACETS[proto])
    facet = facets[rng.integers(len(facets))]
    strain = float(rng.uniform(*STRAIN_RANGE))
    slab = make_slab(comp, proto, facet, layers=LAYERS, size=SURFACE_SIZE[proto], vacuum=VACUUM, strain=strain)
    return slab, comp, proto, facet, strain


def heldout_reactions(
    n_reactions: int = 300,
    seed: int = HELDOUT_SEED,
    *,
    per_surface: int = 3,
    alloy_fraction: float = 0.45,
    elements: Sequence[str] = SCREENING_METALS,
    adsorbates: Sequence[str] = SCREENING_ADSORBATES,
) -> HeldoutSet:
    """`n_reactions` held-out adsorption reactions on ceil(n / per_surface) sampled clean slabs.

    Surface k is drawn from `numpy.random.default_rng([seed, 53, k])`; combinations the builder cannot make are
    skipped (listed in `skipped`). Raises ValueError for seeds below `HELDOUT_SEED` (the training streams).
    """
    from screening.structures import add_adsorbate, find_sites, gas_coefficients, gas_molecule

    if seed < HELDOUT_SEED:
        raise ValueError(f"held-out seeds must be >= {HELDOUT_SEED} (training uses 1000-1002), got {seed}")
    if n_reactions < 1 or per_surface < 1:
        raise ValueError(f"need n_reactions >= 1 and per_surface >= 1, got {n_reactions}, {per_surface}")
    deck_rng = np.random.default_rng([seed, 59])
    deck: list[str] = []
    slabs: dict[str, Atoms] = {}
    adslabs: dict[str, Atoms] = {}
    reactions: list[HeldoutReaction] = []
    skipped: list[str] = []
    k = 0
    while len(reactions) < n_reactions:
        if k > 50 * n_reactions + 100:  # pragma: no cover - only with element lists the builder cannot use
            raise RuntimeError(f"could not build {n_reactions} reactions; skipped: {skipped[:10]}")
        rng = np.random.default_rng([seed, 53, k])
        sid = f"s{k:04d}"
        k += 1
        try:
            slab, comp, proto, facet, strain = _draw_slab(rng, elements, alloy_fraction)
            sites = find_sites(slab)
        except Exception as err:  # noqa: BLE001 - a combination the builder cannot make
            skipped.append(f"{sid}: {type(err).__name__}: {err}")
            continue
        slab.info.update(kind="slab", adsorbate="none", site="none", surface=sid)
        chosen = _deal(deck, deck_rng, adsorbates, min(per_surface, n_reactions - len(reactions)))
        made = 0
        for ads in chosen:
            site = sites[rng.integers(len(sites))]
            rid = f"r{len(reactions):04d}"
            atoms = add_adsorbate(slab, ads, site)
            atoms.info.update(kind="adslab", surface=sid, reaction=rid)
            adslabs[rid] = atoms
            reactions.append(
                HeldoutReaction(
                    id=rid,
                    surface=sid,
                    adsorbate=ads,
                    site=site.name,
                    coefficients=dict(gas_coefficients(ads)),
                    composition=str(slab.info.get("composition", slab.get_chemical_formula())),
                    prototype=proto,
                    facet=facet,
                    strain=strain,
                )
            )
            made += 1
        if made:
            slabs[sid] = slab
    names = sorted({g for r in reactions for g in r.coefficients} | set(GAS_FOR_METRICS))
    gases = {g: gas_molecule(g, GAS_BOX) for g in names}
    params = {
        "n_reactions": int(n_reactions),
        "seed": int(seed),
        "per_surface": int(per_surface),
        "alloy_fraction": float(alloy_fraction),
        "elements": list(elements),
        "adsorbates": list(adsorbates),
        "layers": LAYERS,
        "vacuum": VACUUM,
        "strain_range": list(STRAIN_RANGE),
        "gas_box": GAS_BOX,
    }
    return HeldoutSet(slabs, adslabs, gases, reactions, params, skipped)


def heldout_label_structures(n: int = 300, seed: int = HELDOUT_SEED + 1) -> tuple[list[Atoms], list[str]]:
    """`n` held-out structures for energy/force accuracy, and their kinds ("surface", "gas", "bulk").

    About 8 % gas molecules (stretched/bent, 8 species x n // 100), 12 % bulk cells (rattled 0.05 Å, strained)
    and the rest rattled slabs/adslabs from `distill.screening_data.surface_structures(·, seed)`.
    """
    from distill.screening_data import bulk_structures, gas_structures, surface_structures

    if seed < HELDOUT_SEED:
        raise ValueError(f"held-out seeds must be >= {HELDOUT_SEED}, got {seed}")
    gas = gas_structures(n // 100, seed) if n >= 100 else []
    n_bulk = n * 12 // 100
    bulk: list[Atoms] = []
    if n_bulk:
        pool = bulk_structures(seed, n_strains=1, n_alloys=max(4, n_bulk // 3))
        pick = np.random.default_rng([seed, 61]).choice(len(pool), size=min(n_bulk, len(pool)), replace=False)
        bulk = [pool[int(i)] for i in sorted(pick)]
    surfaces = surface_structures(n - len(gas) - len(bulk), seed)
    structures = surfaces + gas + bulk
    kinds = ["surface"] * len(surfaces) + ["gas"] * len(gas) + ["bulk"] * len(bulk)
    return structures, kinds
