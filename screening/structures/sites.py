"""Adsorption sites on a slab's top layer, named the way CatalysisHub datasets name them.

Kinds: ontop, bridge (or shortbridge/longbridge when bond lengths differ by > 3 %), fcc and hcp hollows
(threefold sites with an atom of the 2nd layer below = hcp; of the 3rd layer, or none on a close-packed
layer = fcc), threefold (other threefold sites, e.g. bcc(110)) and hollow (fourfold). On binary slabs the
name carries the site's chemistry, A = majority/first element, B = second, letters sorted: ontopA, ontopB,
bridgeAB, longbridgeAA, fccAAB, hcpAAA, threefoldAAB, hollowAABB. Pure metals get the bare kind.
Symmetry-distinct sites only: sites with the same name and the same radial environment (per element,
seen from 1.5 Å above the site) are merged; `multiplicity` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from scipy.spatial import Delaunay

from screening.structures.errors import StructureBuildError
from screening.structures.slabs import LAYER_TOL, atomic_layers

BOND_FACTOR = 1.3  # top-layer pairs closer than 1.3 x the shortest pair are bonds (bridges)
PROBE_HEIGHT = 1.5  # Å above the top layer, where the environment fingerprint is taken
_FP_GRID = np.linspace(0.0, 6.0, 121)
_FP_SIGMA = 0.1  # Å


@dataclass
class AdsorptionSite:
    """One adsorption site. position: (x, y, z of the top layer) in Å; atoms: indices of the site atoms.

    base_name is the CatalysisHub-style name without the numeric suffix that separates distinct
    environments sharing a name.
    """

    name: str
    kind: str
    position: np.ndarray
    atoms: tuple[int, ...]
    symbols: tuple[str, ...]
    multiplicity: int = 1
    base_name: str = ""
    equivalent_positions: list[np.ndarray] = field(default_factory=list, repr=False)


def _element_roles(slab: Atoms) -> dict[str, str]:
    a = slab.info.get("element_A")
    b = slab.info.get("element_B")
    symbols = slab.get_chemical_symbols()
    if not a:
        metal = [s for s, t in zip(symbols, slab.get_tags(), strict=True) if t != 2]
        uniq, counts = np.unique(metal, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        a = str(uniq[order[0]])
        b = str(uniq[order[1]]) if len(uniq) > 1 else None
    roles = {a: "A"}
    if b and b != "none":
        roles[b] = "B"
    return roles


def _layers_from_top(slab: Atoms) -> np.ndarray:
    """Layer index per slab atom counted from the top (0 = top); adsorbate atoms (tag 2) get -1."""
    tags = slab.get_tags()
    metal = np.where(tags != 2)[0]
    layer = np.full(len(slab), -1)
    lay = atomic_layers(slab.positions[metal, 2], tol=LAYER_TOL + 0.2)
    layer[metal] = lay.max() - lay
    return layer


def _wrap_frac(frac: np.ndarray) -> np.ndarray:
    return frac - np.floor(frac + 1e-6)


def _fingerprint(slab: Atoms, point: np.ndarray) -> np.ndarray:
    """Gaussian-smeared radial distribution (per element) of slab atoms around `point`."""
    from ase.geometry import find_mic

    vec = slab.positions - point
    vec, dist = find_mic(vec, slab.cell, pbc=[True, True, False])
    symbols = np.array(slab.get_chemical_symbols())
    out = []
    for elem in sorted(set(symbols)):
        d = dist[symbols == elem]
        d = d[d < _FP_GRID[-1] + 3 * _FP_SIGMA]
        out.append(np.exp(-0.5 * ((_FP_GRID[:, None] - d[None, :]) / _FP_SIGMA) ** 2).sum(axis=1))
    return np.concatenate(out)


def find_sites(slab: Atoms, unique: bool = True) -> list[AdsorptionSite]:
    """Adsorption sites on the top layer of `slab` (z = surface normal, periodic in x, y).

    unique=True returns one representative per symmetry-distinct site (with multiplicity and the
    positions of its equivalents); unique=False returns every site in the cell.
    """
    if len(slab) == 0:
        raise StructureBuildError("empty slab")
    layer = _layers_from_top(slab)
    top = np.where(layer == 0)[0]
    cell2 = np.asarray(slab.cell[:2, :2])
    z_top = float(slab.positions[top, 2].mean())
    roles = _element_roles(slab)
    symbols = slab.get_chemical_symbols()

    # periodic images of the top layer in the plane
    shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)])
    xy = slab.positions[top, :2]
    pts = (xy[None, :, :] + (shifts @ cell2)[:, None, :]).reshape(-1, 2)
    owner = np.tile(top, len(shifts))
    tri = Delaunay(pts)
    edge_len = {}
    for simplex in tri.simplices:
        for k in range(3):
            e = tuple(sorted((int(simplex[k]), int(simplex[(k + 1) % 3]))))
            edge_len[e] = float(np.linalg.norm(pts[e[0]] - pts[e[1]]))
    dmin = min(edge_len.values())
    bond_cut = BOND_FACTOR * dmin
    inv = np.linalg.inv(cell2)

    def home(p2: np.ndarray) -> bool:
        f = p2 @ inv
        return bool(np.all(f >= -1e-6) and np.all(f < 1 - 1e-6))

    raw: list[tuple[str, np.ndarray, tuple[int, ...], float]] = []  # kind, xy, atoms, aux length
    for i in top:
        raw.append(("ontop", slab.positions[i, :2].copy(), (int(i),), 0.0))
    for (p, q), length in edge_len.items():
        mid = 0.5 * (pts[p] + pts[q])
        if length <= bond_cut and home(mid):
            raw.append(("bridge", mid, (int(owner[p]), int(owner[q])), length))
    quads: dict[tuple[int, int], set[int]] = {}
    for simplex in tri.simplices:
        edges = [tuple(sorted((int(simplex[k]), int(simplex[(k + 1) % 3])))) for k in range(3)]
        long_edges = [e for e in edges if edge_len[e] > bond_cut]
        if not long_edges:
            centroid = pts[simplex].mean(axis=0)
            if home(centroid):
                lengths = [edge_len[e] for e in edges]
                raw.append(
                    (
                        "threefold",
                        centroid,
                        tuple(int(owner[s]) for s in simplex),
                        max(lengths) / min(lengths),
                    )
                )
        elif len(long_edges) == 1:
            quads.setdefault(long_edges[0], set()).update(int(s) for s in simplex)
    for e, members in quads.items():
        mid = 0.5 * (pts[e[0]] + pts[e[1]])
        if len(members) == 4 and home(mid):
            raw.append(("hollow", mid, tuple(int(owner[s]) for s in sorted(members)), 0.0))

    # bridge lengths: short/long when they differ
    bridge_lengths = sorted({round(r[3], 2) for r in raw if r[0] == "bridge"})
    split = len(bridge_lengths) > 1 and bridge_lengths[-1] > 1.03 * bridge_lengths[0]

    sub = {n: np.where(layer == n)[0] for n in (1, 2)}
    lateral_tol = 0.35 * dmin

    def atom_below(p2: np.ndarray, n: int) -> bool:
        idx = sub[n]
        if len(idx) == 0:
            return False
        d = slab.positions[idx, :2] - p2
        f = d @ inv
        f -= np.round(f)
        return bool(np.min(np.linalg.norm(f @ cell2, axis=1)) < lateral_tol)

    sites: list[AdsorptionSite] = []
    for kind, p2, members, aux in raw:
        if kind == "bridge" and split:
            kind = "shortbridge" if aux < 1.015 * bridge_lengths[0] else "longbridge"
        elif kind == "threefold" and aux < 1.1:  # close-packed layer: fcc or hcp hollow
            kind = "hcp" if atom_below(p2, 1) else "fcc"
        f = _wrap_frac(p2 @ inv)
        pos = np.array([*(f @ cell2), z_top])
        syms = tuple(symbols[m] for m in members)
        label = "".join(sorted(roles.get(s, "X") for s in syms)) if len(roles) > 1 else ""
        sites.append(AdsorptionSite(kind + label, kind, pos, members, syms, base_name=kind + label))
    sites.sort(key=lambda s: (_KIND_ORDER.get(s.kind, 9), s.name, round(s.position[1], 3), round(s.position[0], 3)))
    if not unique:
        return sites

    groups: list[tuple[AdsorptionSite, np.ndarray]] = []
    for s in sites:
        fp = _fingerprint(slab, s.position + [0.0, 0.0, PROBE_HEIGHT])
        for rep, rep_fp in groups:
            if rep.name == s.name and np.max(np.abs(rep_fp - fp)) < 0.05:
                rep.multiplicity += 1
                rep.equivalent_positions.append(s.position)
                break
        else:
            s.equivalent_positions = [s.position]
            groups.append((s, fp))
    reps = [g[0] for g in groups]
    # distinct environments that share a name get a numeric suffix (e.g. hcpAAB, hcpAAB_2)
    seen: dict[str, int] = {}
    for s in reps:
        seen[s.name] = seen.get(s.name, 0) + 1
        if seen[s.name] > 1:
            s.name = f"{s.name}_{seen[s.name]}"
    return reps


_KIND_ORDER = {"ontop": 0, "bridge": 1, "shortbridge": 1, "longbridge": 2, "fcc": 3, "hcp": 4, "threefold": 5}
_KIND_ORDER["hollow"] = 6


def get_site(slab: Atoms, name: str) -> AdsorptionSite:
    """The symmetry-distinct site called `name`; `StructureBuildError` listing the available names."""
    sites = find_sites(slab)
    for s in sites:
        if s.name == name:
            return s
    raise StructureBuildError(
        f"no site {name!r} on this {slab.info.get('composition', '')} {slab.info.get('facet', '')} slab; "
        f"available sites: {[s.name for s in sites]}"
    )
