"""Biaxial (in-plane) strain of slabs: z is the surface normal, a1 and a2 lie in the xy plane."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from screening.structures.errors import StructureBuildError


def _check_surface_cell(atoms: Atoms) -> None:
    cell = np.asarray(atoms.cell[:])
    if abs(cell[0, 2]) > 1e-8 or abs(cell[1, 2]) > 1e-8 or np.linalg.norm(cell[2, :2]) > 1e-8:
        raise StructureBuildError(
            "biaxial strain needs a surface cell with a1, a2 in the xy plane and a3 along z "
            f"(got cell {np.round(cell, 4).tolist()})"
        )


def apply_biaxial_strain(atoms: Atoms, percent: float) -> Atoms:
    """Copy of `atoms` with both in-plane lattice vectors scaled by 1 + percent/100 (z unchanged).

    Atoms move with the cell (fractional coordinates kept): x and y scale, z does not. Tensile > 0.
    """
    if percent <= -100.0:
        raise StructureBuildError(f"strain must be > -100 %, got {percent}")
    _check_surface_cell(atoms)
    out = atoms.copy()
    factor = 1.0 + float(percent) / 100.0
    cell = np.array(out.cell[:])
    cell[:2, :2] *= factor
    out.set_cell(cell, scale_atoms=True)
    out.info["strain"] = float(out.info.get("strain", 0.0)) + float(percent)
    return out


def apply_inplane_strain(atoms: Atoms, eps: np.ndarray) -> Atoms:
    """Copy of `atoms` deformed by a symmetric 2x2 in-plane strain tensor `eps` (fractions, not %)."""
    _check_surface_cell(atoms)
    eps = np.asarray(eps, dtype=float)
    if eps.shape != (2, 2):
        raise StructureBuildError(f"in-plane strain tensor must be 2x2, got shape {eps.shape}")
    deform = np.eye(3)
    deform[:2, :2] += 0.5 * (eps + eps.T)
    out = atoms.copy()
    out.set_cell(np.asarray(out.cell[:]) @ deform.T, scale_atoms=True)
    return out
