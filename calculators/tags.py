"""GemNet-OC atom tags (0 bulk/subsurface, 1 surface, 2 adsorbate) inferred from geometry when absent.

Rules of `infer_tags` (positions along z, Å):
- Not periodic in both x and y (molecule, cluster, gas-phase reference): every atom is 2 (adsorbate-like),
  as for the gas-phase references of OC20-style adsorption energies.
- Periodic in x and y without a vacuum gap along z of at least `vacuum` (bulk): every atom is 0.
- Slab (periodic in x, y with a vacuum gap or pbc[2] False): "adsorbate elements" (H, B, C, N, O, F, Si, P, S,
  Cl, Se, Br, I and noble gases) lying more than `layer_tol` above the top metal layer are 2; every atom
  (metal or not, e.g. lattice O of an oxide) within `layer_tol` below the highest metal atom is 1; the rest 0.
  A slab without any metal atom is tagged like a molecule (all 2).
Slabs must not be wrapped through the periodic z boundary (as `ase.build` slabs are not).
"""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms

ADSORBATE_ELEMENTS = frozenset(
    {1, 2, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 34, 35, 36, 53, 54}
)  # H He B C N O F Ne Si P S Cl Ar Se Br Kr I Xe


def _has_vacuum_gap(atoms: Atoms, vacuum: float) -> bool:
    if not atoms.pbc[2]:
        return True
    cell = np.asarray(atoms.cell[:])
    normal = np.cross(cell[0], cell[1])
    if np.linalg.norm(normal) < 1e-8:
        return True
    normal /= np.linalg.norm(normal)
    height = abs(float(np.dot(cell[2], normal)))
    if height < 1e-8:
        return True
    z = np.sort(atoms.positions @ normal % height)
    gaps = np.diff(np.concatenate([z, [z[0] + height]]))
    return bool(gaps.max() >= vacuum)


def infer_tags(atoms: Atoms, *, layer_tol: float = 1.0, vacuum: float = 5.0) -> np.ndarray:
    """Tags (N,) int64 for `atoms` following the module rules; `layer_tol` and `vacuum` in Å."""
    n = len(atoms)
    if not (atoms.pbc[0] and atoms.pbc[1]):
        return np.full(n, 2, dtype=np.int64)
    if not _has_vacuum_gap(atoms, vacuum):
        return np.zeros(n, dtype=np.int64)
    numbers = atoms.numbers
    z = atoms.positions[:, 2]
    metal = np.array([int(x) not in ADSORBATE_ELEMENTS for x in numbers])
    if not metal.any():
        return np.full(n, 2, dtype=np.int64)
    top = z[metal].max()
    tags = np.zeros(n, dtype=np.int64)
    tags[z >= top - layer_tol] = 1
    tags[~metal & (z > top + layer_tol)] = 2
    return tags


def tags_for(atoms: Atoms) -> np.ndarray:
    """The structure's own tags when any is nonzero and all are in {0, 1, 2}, else `infer_tags(atoms)`.

    Tags outside {0, 1, 2} (e.g. `ase.build` layer numbers 1, 2, 3, ...) are not GemNet-OC tags: a warning is
    issued and tags are inferred instead.
    """
    tags = np.asarray(atoms.get_tags(), dtype=np.int64)
    if not np.any(tags != 0):
        return infer_tags(atoms)
    if tags.min() < 0 or tags.max() > 2:
        warnings.warn(
            f"{atoms.get_chemical_formula()}: tags {sorted(set(tags.tolist()))} are not GemNet-OC tags "
            "(0 bulk, 1 surface, 2 adsorbate; ase.build numbers layers instead); inferring tags",
            stacklevel=2,
        )
        return infer_tags(atoms)
    return tags
