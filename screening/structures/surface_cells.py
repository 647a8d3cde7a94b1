"""Slabs whose surface cell is a supercell of the *parent* lattice: the 2D lattice of one atomic layer with the
chemical order ignored (fcc(111) and hcp(0001): triangular; bcc(110): centred rectangular).

CatalysisHub sets such as AlonsoStrain2023 use one surface cell for every prototype, e.g. 2×2 parent sites per
layer and 4 layers (16 atoms: ``Ag16``, ``Ag12In4`` on L1₂(111), ``Ag8Nd8`` on B2(110)), whereas `make_slab`'s
``size`` repeats the *ordered* primitive cell (4 atoms per layer for L1₂(111), 2 for B2(110)). Here a cell with
``n`` parent sites per layer is the most compact index-``n`` sublattice of the parent lattice that is commensurate
with the chemical order (n = 4: 2×2; n = 3: √3×√3 R30°; n = 9: 3×3; ...).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from ase import Atoms
from ase.build import make_supercell
from ase.constraints import FixAtoms

from screening.structures.errors import StructureBuildError
from screening.structures.slabs import atomic_layers, make_slab, reduce_2d
from screening.structures.strain import apply_biaxial_strain

# parent sites per layer tried, in order, when only the atom count is known (2×2 first, as CatalysisHub sets use)
PREFERRED_SITES_PER_LAYER = (4, 3, 9, 1, 2, 6, 8, 12, 16)
_TOL = 1e-6


def parent_lattice(slab: Atoms) -> np.ndarray:
    """2×2 array whose rows are a reduced basis (Å, xy) of the parent lattice of `slab`'s top layer: the lattice of
    all its atom positions, species ignored. `StructureBuildError` if the layer is not a Bravais lattice."""
    z = slab.positions[:, 2]
    layer = atomic_layers(z)
    top = np.flatnonzero(layer == layer.max())
    cell2 = np.asarray(slab.cell[:2, :2])
    p = slab.positions[top, :2]
    cands = []
    for i in range(len(top)):
        for n1, n2 in itertools.product(range(-2, 3), repeat=2):
            v = p[i] - p[0] + n1 * cell2[0] + n2 * cell2[1]
            if np.linalg.norm(v) > 1e-6:
                cands.append(v)
    cands.sort(key=lambda v: (round(float(np.linalg.norm(v)), 6), round(float(-v[0]), 6), round(float(-v[1]), 6)))
    v1 = cands[0]
    v2 = next(v for v in cands if abs(v1[0] * v[1] - v1[1] * v[0]) > 1e-6 * np.dot(v1, v1))
    area = abs(np.linalg.det(cell2)) / len(top)
    if abs(abs(v1[0] * v2[1] - v1[1] * v2[0]) - area) > 1e-4 * area:
        raise StructureBuildError("the top layer is not a Bravais lattice: no parent surface cell")
    return np.array([v1, v2])


def _hnf(n: int) -> list[np.ndarray]:
    """All index-n sublattices of Z² as Hermite normal forms [[a, b], [0, d]], a·d = n, 0 ≤ b < d (rows = basis)."""
    out = []
    for a in range(1, n + 1):
        if n % a:
            continue
        d = n // a
        for b in range(d):
            out.append(np.array([[a, b], [0, d]]))
    return out


def supercell_matrix(slab: Atoms, sites_per_layer: int, shape: str = "compact") -> np.ndarray | None:
    """Integer 2×2 matrix M (new cell rows = M @ slab's in-plane cell rows) of an index-n sublattice of the parent
    lattice (n = `sites_per_layer`) commensurate with `slab`'s ordered cell; None when none is.

    shape="compact": for n = k² the k×k supercell of the parent cell when commensurate; otherwise the sublattice
    with the shortest longest reduced vector, then the smallest difference of the two lengths, then the smallest
    |cos γ|. shape="rectangular": the most compact sublattice with a right angle (None if there is none)."""
    if shape not in ("compact", "rectangular"):
        raise StructureBuildError(f"unknown cell shape {shape!r}; valid: ['compact', 'rectangular']")
    parent = parent_lattice(slab)
    cell2 = np.asarray(slab.cell[:2, :2])
    inv = np.linalg.inv(cell2)
    k = math.isqrt(sites_per_layer)
    if k * k == sites_per_layer and shape == "compact":
        m = k * parent @ inv
        if np.max(np.abs(m - np.round(m))) <= 1e-6:
            return np.round(m).astype(int)
    best: tuple[tuple[float, float, float], np.ndarray] | None = None
    for h in _hnf(sites_per_layer):
        target = h @ parent
        m = target @ inv
        if np.max(np.abs(m - np.round(m))) > 1e-6:
            continue
        r1, r2 = reduce_2d(target[0], target[1])
        l1, l2 = float(np.linalg.norm(r1)), float(np.linalg.norm(r2))
        if shape == "rectangular" and abs(float(r1 @ r2)) > 1e-6 * l1 * l2:
            continue
        score = (round(max(l1, l2), 6), round(abs(l1 - l2), 6), round(abs(float(r1 @ r2)) / (l1 * l2), 6))
        if best is None or score < best[0]:
            basis = np.array([r1, r2]) @ inv
            best = (score, np.round(basis).astype(int))
    return None if best is None else best[1]


def _standard_orientation(atoms: Atoms) -> Atoms:
    """a1 along x, a2 in the upper half plane (right-handed), reduced in-plane basis, atoms wrapped in xy."""
    cell = np.asarray(atoms.cell[:])
    v1, v2 = reduce_2d(cell[0, :2], cell[1, :2])
    if v1[0] * v2[1] - v1[1] * v2[0] < 0:
        v2 = -v2
    ang = math.atan2(v1[1], v1[0])
    rot = np.array([[math.cos(-ang), -math.sin(-ang)], [math.sin(-ang), math.cos(-ang)]])
    v1, v2 = rot @ v1, rot @ v2
    out = atoms.copy()
    pos = out.positions.copy()
    pos[:, :2] = pos[:, :2] @ rot.T
    new = np.array([[v1[0], v1[1], 0.0], [v2[0], v2[1], 0.0], [0.0, 0.0, cell[2, 2]]])
    frac = np.linalg.solve(new[:2, :2].T, pos[:, :2].T).T
    frac -= np.floor(frac + 1e-9)
    pos[:, :2] = frac @ new[:2, :2]
    out.set_cell(new)
    out.positions = pos
    return out


def make_slab_cell(
    composition: str | dict | tuple | list,
    prototype: str,
    facet: str,
    sites_per_layer: int = 4,
    layers: int = 4,
    *,
    strain: float = 0.0,
    a: float | None = None,
    c: float | None = None,
    vacuum: float = 7.5,
    fixed_layers: int | None = None,
    shape: str = "compact",
) -> Atoms:
    """Slab like `make_slab` whose surface cell holds `sites_per_layer` parent-lattice sites per layer (4 = 2×2,
    3 = √3×√3 R30°, ...; `shape`: see `supercell_matrix`), `layers` atomic layers, biaxial `strain` % applied
    last. `StructureBuildError` when the chemical order does not fit in such a cell. info['size'] reads e.g.
    '2x2 parent (4 sites/layer)'."""
    unit = make_slab(
        composition, prototype, facet, layers=layers, size=(1, 1), vacuum=vacuum, fixed_layers=fixed_layers, a=a, c=c
    )
    m = supercell_matrix(unit, sites_per_layer, shape)
    if m is None:
        per_layer = len(unit) // layers
        raise StructureBuildError(
            f"a {shape} surface cell with {sites_per_layer} sites per layer does not fit the chemical order of "
            f"{unit.info.get('composition')} {unit.info.get('prototype')}({unit.info.get('facet')}) "
            f"(its ordered cell has {per_layer} atoms per layer)"
        )
    p3 = np.eye(3, dtype=int)
    p3[:2, :2] = m
    info = dict(unit.info)
    unit.set_constraint()
    big = _standard_orientation(make_supercell(unit, p3, wrap=True))
    # tags and FixAtoms from the layers, as make_slab sets them
    layer = atomic_layers(big.positions[:, 2])
    nfixed = info.get("layers", layers) // 2 if fixed_layers is None else fixed_layers
    fixed = layer < nfixed
    big.set_tags(np.where(fixed, 0, 1))
    big.set_constraint(FixAtoms(mask=fixed))
    big.info = info
    if shape == "rectangular":
        lengths = np.linalg.norm(big.cell[:2, :2], axis=1)
        big.info["size"] = f"rectangular {lengths[0]:.2f}x{lengths[1]:.2f} A ({sites_per_layer} sites/layer)"
    else:
        label = {4: "2x2", 3: "sqrt3xsqrt3", 9: "3x3", 1: "1x1", 16: "4x4"}.get(sites_per_layer, f"{sites_per_layer}")
        big.info["size"] = f"{label} parent ({sites_per_layer} sites/layer)"
    if strain:
        big = apply_biaxial_strain(big, strain)
    return big


def cell_for_count(
    composition: str | dict | tuple | list,
    prototype: str,
    facet: str,
    natoms: int,
    *,
    max_layers: int = 10,
    shape: str = "compact",
) -> tuple[int, int]:
    """(sites_per_layer, layers) for a slab of `natoms` atoms: the first n of `PREFERRED_SITES_PER_LAYER` that
    divides `natoms` into 2..`max_layers` layers and fits the chemical order in a `shape` cell.
    `StructureBuildError` if none."""
    unit = make_slab(composition, prototype, facet, layers=2, size=(1, 1))
    tried = []
    for n in PREFERRED_SITES_PER_LAYER:
        if natoms % n or not 2 <= natoms // n <= max_layers:
            continue
        tried.append(n)
        if supercell_matrix(unit, n, shape) is not None:
            return n, natoms // n
    raise StructureBuildError(
        f"no surface cell of {natoms} atoms fits {unit.info.get('composition')} {unit.info.get('prototype')}"
        f"({unit.info.get('facet')}) (tried {tried or 'no'} sites/layer with 2-{max_layers} layers)"
    )
