"""Slabs cut from bulk prototypes: z is the surface normal, periodic in x, y, vacuum along z.

pbc is (True, True, True) with `vacuum` Å of empty space on each side of the slab (as OC20 and
CatalysisHub do). Tags follow GemNet-OC: 1 free (surface) layers, 0 fixed (subsurface) layers, 2 adsorbate.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from screening.structures.bulk import assign_sites, canonical_prototype, make_bulk
from screening.structures.errors import StructureBuildError
from screening.structures.strain import apply_biaxial_strain

# facet name -> Miller indices in the cell that make_bulk returns for that prototype
FACETS: dict[str, dict[str, tuple[int, int, int]]] = {
    "fcc": {"111": (1, 1, 1), "100": (0, 1, 1)},  # primitive fcc cell
    "bcc": {"110": (0, 0, 1)},  # primitive bcc cell: conventional (110)
    "hcp": {"0001": (0, 0, 1)},
    "L12": {"111": (1, 1, 1)},
    "B2": {"110": (1, 1, 0)},
    "L10": {"101": (1, 0, 1)},  # primitive tetragonal cell: the close-packed mixed plane
    "D019": {"0001": (0, 0, 1)},
    "A2B_hcp": {"0001": (0, 0, 1)},
}
_FACET_ALIASES = {"bcc": {"101": "110", "011": "110"}, "hcp": {"001": "0001"}, "D019": {"001": "0001"}}
_FACET_ALIASES["A2B_hcp"] = {"001": "0001"}
_FACET_ALIASES["B2"] = {"101": "110", "011": "110"}
LAYER_TOL = 0.3  # Å: atoms closer than this in z belong to one atomic layer


def canonical_facet(prototype: str, facet: str | int | tuple) -> str:
    """Canonical facet name for `prototype` ('(101)' on bcc -> '110'); error lists the valid facets."""
    name = canonical_prototype(prototype)
    key = "".join(str(x) for x in facet) if isinstance(facet, tuple | list) else str(facet)
    key = key.strip().strip("()").replace(",", "").replace(" ", "")
    if key in FACETS[name]:
        return key
    alias = _FACET_ALIASES.get(name, {}).get(key)
    if alias:
        return alias
    raise StructureBuildError(
        f"facet {facet!r} is not available for prototype {name}; valid facets: {sorted(FACETS[name])} "
        f"(all: {', '.join(f'{p}: {sorted(f)}' for p, f in FACETS.items())})"
    )


def atomic_layers(z: np.ndarray, tol: float = LAYER_TOL) -> np.ndarray:
    """Layer index of each z (Å), 0 = lowest; a new layer starts at a gap larger than `tol`."""
    order = np.argsort(z)
    layer = np.zeros(len(z), dtype=int)
    current = 0
    for prev, idx in zip(order[:-1], order[1:], strict=True):
        if z[idx] - z[prev] > tol:
            current += 1
        layer[idx] = current
    return layer


def reduce_2d(v1: np.ndarray, v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss (Lagrange) reduction of a 2D lattice basis."""
    v1, v2 = v1.copy(), v2.copy()
    if v1 @ v1 > v2 @ v2:
        v1, v2 = v2, v1
    while True:
        mu = round(float(v1 @ v2) / float(v1 @ v1))
        v2 = v2 - mu * v1
        if v2 @ v2 >= v1 @ v1 - 1e-10:
            return v1, v2
        v1, v2 = v2, v1


def _surface_unit(bulk: Atoms, miller: tuple[int, int, int], layers: int) -> Atoms:
    """`layers` atomic layers of `bulk` normal to `miller` in the primitive surface cell, a3 = along z."""
    from ase.build import surface

    def z_wrapped(s: Atoms) -> np.ndarray:
        # surface() can leave an atom at z == c (same layer as z == 0): wrap it back
        z = s.positions[:, 2] % s.cell[2, 2]
        return np.where(z > s.cell[2, 2] - 1e-6, z - s.cell[2, 2], z)

    probe = surface(bulk, miller, layers=1, periodic=True)
    per_repeat = atomic_layers(z_wrapped(probe)).max() + 1
    repeats = math.ceil(layers / per_repeat) + 1
    s = surface(bulk, miller, layers=repeats, periodic=True)
    cell = np.asarray(s.cell[:])
    v1, v2 = reduce_2d(cell[0, :2], cell[1, :2])
    if v1[0] * v2[1] - v1[1] * v2[0] < 0:
        v2 = -v2
    angle = math.atan2(v1[1], v1[0])
    rot = np.array([[math.cos(-angle), -math.sin(-angle)], [math.sin(-angle), math.cos(-angle)]])
    v1, v2 = rot @ v1, rot @ v2
    pos = s.positions.copy()
    pos[:, 2] = z_wrapped(s)
    pos[:, :2] = pos[:, :2] @ rot.T
    layer = atomic_layers(pos[:, 2])
    keep = layer < layers
    if layer.max() + 1 < layers:  # pragma: no cover - repeats chosen to avoid this
        raise StructureBuildError("could not cut enough layers")
    pos = pos[keep]
    new_cell = np.array([[v1[0], v1[1], 0.0], [v2[0], v2[1], 0.0], [0.0, 0.0, 1.0]])
    frac = np.linalg.solve(new_cell[:2, :2].T, pos[:, :2].T).T
    frac = frac - np.floor(frac + 1e-9)
    pos[:, :2] = frac @ new_cell[:2, :2]
    pos[:, 2] -= pos[:, 2].min()
    out = Atoms(np.asarray(s.get_chemical_symbols())[keep], positions=pos, cell=new_cell, pbc=True)
    return out


def make_slab(
    composition: str | dict | tuple | list,
    prototype: str,
    facet: str,
    layers: int = 4,
    size: tuple[int, int] | None = None,
    vacuum: float = 7.5,
    fixed_layers: int | None = None,
    strain: float = 0.0,
    a: float | None = None,
    c: float | None = None,
    bulk: Atoms | None = None,
    min_surface_atoms: int = 4,
) -> Atoms:
    """Slab of `composition`/`prototype` exposing `facet`, biaxially strained by `strain` %.

    layers: atomic layers; size: repeats of the (ordered) primitive surface cell, default the smallest
    n x n with >= `min_surface_atoms` atoms per layer; vacuum: Å on each side; fixed_layers: bottom layers
    held by FixAtoms (tag 0), default layers // 2; the others get tag 1. a, c (Å) or a prebuilt (e.g.
    relaxed) `bulk` set the lattice.
    info: composition, prototype, facet, strain, layers, size, a, c (hexagonal, tetragonal),
    element_A, element_B.
    """
    name = canonical_prototype(prototype)
    facet_name = canonical_facet(name, facet)
    if layers < 2:
        raise StructureBuildError(f"layers must be >= 2, got {layers}")
    if fixed_layers is None:
        fixed_layers = layers // 2
    if not 0 <= fixed_layers < layers:
        raise StructureBuildError(f"fixed_layers must be in [0, {layers - 1}], got {fixed_layers}")
    if vacuum <= 0:
        raise StructureBuildError(f"vacuum must be > 0 Å, got {vacuum}")
    if bulk is None:
        bulk = make_bulk(composition, name, a=a, c=c)
    elem_a, elem_b = assign_sites(composition, name)
    unit = _surface_unit(bulk, FACETS[name][facet_name], layers)
    per_layer = len(unit) // layers
    if size is None:
        n = 1
        while n * n * per_layer < min_surface_atoms:
            n += 1
        size = (n, n)
    if size[0] < 1 or size[1] < 1:
        raise StructureBuildError(f"size must be positive, got {size}")
    slab = unit.repeat((int(size[0]), int(size[1]), 1))
    thickness = float(slab.positions[:, 2].max())
    cell = np.array(slab.cell[:])
    cell[2] = [0.0, 0.0, thickness + 2.0 * vacuum]
    slab.set_cell(cell)
    slab.positions[:, 2] += vacuum
    layer = atomic_layers(slab.positions[:, 2])
    fixed = layer < fixed_layers
    slab.set_tags(np.where(fixed, 0, 1))
    slab.set_constraint(FixAtoms(mask=fixed))
    slab.info.update(
        composition=bulk.info.get("composition", slab.get_chemical_formula()),
        prototype=name,
        facet=facet_name,
        strain=0.0,
        layers=int(layers),
        size=f"{size[0]}x{size[1]}",
        a=float(bulk.info.get("a", float("nan"))),
        element_A=elem_a,
        element_B=elem_b or "none",
    )
    if "c" in bulk.info:
        slab.info["c"] = float(bulk.info["c"])
    if strain:
        slab = apply_biaxial_strain(slab, strain)
    return slab
