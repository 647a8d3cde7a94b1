"""`AtomsBatch`: many structures of different sizes as one set of tensors (the input of every model).

Shapes use B structures and N atoms in total. Units: Å for positions and cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from ase import Atoms
from ase.constraints import FixAtoms
from ase.data import chemical_symbols

# Å: positions beyond this are not a plausible atomistic structure (float32 resolves only ~1e-3 Å there, and
# lattice-image searches overflow far beyond it); they are refused rather than wrapped into meaningless numbers
MAX_COORDINATE = 1.0e4
# interatomic distances below this fraction of the sum of covalent radii are flagged as unphysical (H2 at
# 0.74 Å is 1.19 × (0.31 + 0.31); atoms placed on top of each other are far below)
MIN_DISTANCE_RATIO = 0.5


class StructureError(ValueError):
    """A structure that no model can evaluate (empty, NaN, absurd coordinates, zero cell with PBC, unknown
    element, ...)."""


class UnphysicalStructureWarning(UserWarning):
    """A structure a model can evaluate but whose numbers mean nothing (atoms closer than a fraction of their
    covalent radii): see `unphysical_reason`."""


def _label(atoms: Atoms, index: int) -> str:
    return f"structure {index} ({atoms.get_chemical_formula() or 'empty'})"


def validate_atoms(atoms: Atoms, index: int = 0, max_atomic_number: int | None = None) -> None:
    """Raise `StructureError` with a clear message if `atoms` cannot be evaluated."""
    if not isinstance(atoms, Atoms):
        raise StructureError(f"structure {index}: expected ase.Atoms, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise StructureError(f"{_label(atoms, index)}: has no atoms")
    pos = atoms.get_positions()
    if not np.all(np.isfinite(pos)):
        bad = np.where(~np.isfinite(pos).all(axis=1))[0]
        raise StructureError(f"{_label(atoms, index)}: non-finite positions at atoms {bad[:10].tolist()}")
    far = np.flatnonzero(np.abs(pos).max(axis=1) > MAX_COORDINATE)
    if far.size:
        raise StructureError(
            f"{_label(atoms, index)}: atoms {far[:10].tolist()} lie {np.abs(pos[far]).max():.3g} Å from the origin, "
            f"beyond any plausible cell (|coordinate| ≤ {MAX_COORDINATE:g} Å)"
        )
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any():
        cell = np.asarray(atoms.cell[:], dtype=float)
        if not np.all(np.isfinite(cell)):
            raise StructureError(f"{_label(atoms, index)}: non-finite cell")
        lengths = np.linalg.norm(cell, axis=1)
        # only the periodic vectors must span a lattice: zero vectors along non-periodic directions (2-D slabs,
        # 1-D wires) are allowed
        periodic = cell[pbc]
        gram = periodic @ periodic.T
        volume = np.sqrt(max(float(np.linalg.det(gram)), 0.0))
        if np.any(lengths[pbc] < 1e-6) or volume < 1e-6 * max(1.0, float(np.prod(lengths[pbc]))):
            raise StructureError(
                f"{_label(atoms, index)}: periodic along {pbc.tolist()} but the cell is zero or degenerate along "
                f"the periodic directions (vectors zero or linearly dependent; lengths "
                f"{np.round(lengths, 4).tolist()} Å); set a cell or pbc=False"
            )
        if np.abs(cell).max() > MAX_COORDINATE:
            raise StructureError(f"{_label(atoms, index)}: cell vectors longer than {MAX_COORDINATE:g} Å")
    numbers = atoms.numbers
    if numbers.min() < 1:
        raise StructureError(f"{_label(atoms, index)}: atomic number {int(numbers.min())} is not an element")
    if max_atomic_number is not None and numbers.max() > max_atomic_number:
        bad = sorted({int(z) for z in numbers if z > max_atomic_number})
        names = [chemical_symbols[z] if z < len(chemical_symbols) else str(z) for z in bad]
        raise StructureError(
            f"{_label(atoms, index)}: element(s) {names} (Z={bad}) are unknown to this model, "
            f"which embeds Z ≤ {max_atomic_number}"
        )


def close_contacts(atoms: Atoms, ratio: float = MIN_DISTANCE_RATIO) -> list[tuple[int, int, float, float]]:
    """Atom pairs (i < j, distance Å, limit Å) closer than `ratio` × the sum of their covalent radii, periodic
    images included, closest first."""
    from ase.data import covalent_radii
    from ase.neighborlist import primitive_neighbor_list

    radii = ratio * covalent_radii[np.asarray(atoms.numbers)]
    if len(atoms) == 0:
        return []
    cell = np.asarray(atoms.cell[:], dtype=float)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    i, j, d = primitive_neighbor_list("ijd", pbc, cell, atoms.get_positions(), radii, self_interaction=False)
    keep = i <= j
    out = [
        (int(a), int(b), float(x), float(radii[a] + radii[b]))
        for a, b, x in zip(i[keep], j[keep], d[keep], strict=True)
    ]
    # an atom closer than the limit to its own periodic image (i == j) means a cell far too small for it
    return sorted(set(out), key=lambda t: t[2])


def unphysical_reason(atoms: Atoms, ratio: float = MIN_DISTANCE_RATIO) -> str | None:
    """Why the numbers of a model on `atoms` would mean nothing (atoms closer than `ratio` × the sum of their
    covalent radii, naming the closest pair), or None. Structures that cannot be evaluated at all raise
    `StructureError` in `validate_atoms` instead."""
    contacts = close_contacts(atoms, ratio)
    if not contacts:
        return None
    i, j, d, limit = contacts[0]
    sym = atoms.get_chemical_symbols()
    what = f"atom {i} ({sym[i]}) and its periodic image" if i == j else f"atoms {i} ({sym[i]}) and {j} ({sym[j]})"
    more = f" ({len(contacts)} such pairs)" if len(contacts) > 1 else ""
    return (
        f"unphysical structure {atoms.get_chemical_formula()}: {what} are {d:.3f} Å apart, below {ratio:g} × the sum "
        f"of their covalent radii ({limit:.2f} Å){more}"
    )


def structure_problem(atoms: Atoms) -> str | None:
    """Why `atoms` cannot be used for a metric: `validate_atoms`' reason (formula first) or `unphysical_reason`;
    None when it is fine."""
    try:
        validate_atoms(atoms)
    except StructureError as err:
        return f"{atoms.get_chemical_formula()}: {str(err).split(': ', 1)[-1]}"
    return unphysical_reason(atoms)


def fixed_mask(atoms: Atoms) -> np.ndarray:
    """Boolean mask (N,) of atoms held by FixAtoms constraints."""
    mask = np.zeros(len(atoms), dtype=bool)
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            mask[constraint.get_indices()] = True
    return mask


@dataclass
class AtomsBatch:
    """B structures, N atoms in total, as tensors on one device.

    positions:      (N, 3) float, Å
    atomic_numbers: (N,) int64
    cell:           (B, 3, 3) float, Å; rows are lattice vectors (zeros along non-periodic directions allowed)
    pbc:            (B, 3) bool
    batch:          (N,) int64, index of the structure each atom belongs to (sorted)
    natoms:         (B,) int64
    tags:           (N,) int64; 0 bulk/subsurface, 1 surface, 2 adsorbate (GemNet-OC convention)
    fixed:          (N,) bool; atoms held by FixAtoms
    """

    positions: torch.Tensor
    atomic_numbers: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    batch: torch.Tensor
    natoms: torch.Tensor
    tags: torch.Tensor
    fixed: torch.Tensor

    @property
    def num_structures(self) -> int:
        return int(self.natoms.shape[0])

    @property
    def num_atoms(self) -> int:
        return int(self.positions.shape[0])

    @property
    def device(self) -> torch.device:
        return self.positions.device

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    @classmethod
    def from_atoms(
        cls,
        atoms_list: Atoms | Sequence[Atoms],
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        max_atomic_number: int | None = None,
        tags: Sequence[np.ndarray] | None = None,
    ) -> AtomsBatch:
        """Stack ASE structures into one batch, validating each (`StructureError` on bad input).

        `tags` overrides `atoms.get_tags()` per structure (e.g. inferred tags, see calculators).
        """
        if isinstance(atoms_list, Atoms):
            atoms_list = [atoms_list]
        if len(atoms_list) == 0:
            raise StructureError("empty list of structures")
        for i, atoms in enumerate(atoms_list):
            validate_atoms(atoms, i, max_atomic_number)
        if tags is not None and len(tags) != len(atoms_list):
            raise ValueError(f"got {len(tags)} tag arrays for {len(atoms_list)} structures")
        natoms = np.array([len(a) for a in atoms_list], dtype=np.int64)
        positions = np.concatenate([a.get_positions() for a in atoms_list])
        numbers = np.concatenate([a.numbers for a in atoms_list]).astype(np.int64)
        cells = np.stack([np.asarray(a.cell[:], dtype=float) for a in atoms_list])
        pbcs = np.stack([np.asarray(a.pbc, dtype=bool) for a in atoms_list])
        tag_arrays = tags if tags is not None else [a.get_tags() for a in atoms_list]
        tag_all = np.concatenate([np.asarray(t, dtype=np.int64) for t in tag_arrays])
        if tag_all.shape[0] != natoms.sum():
            raise ValueError("tag arrays do not match the numbers of atoms")
        fixed = np.concatenate([fixed_mask(a) for a in atoms_list])
        batch = np.repeat(np.arange(len(atoms_list), dtype=np.int64), natoms)
        return cls(
            positions=torch.as_tensor(positions, dtype=dtype, device=device),
            atomic_numbers=torch.as_tensor(numbers, device=device),
            cell=torch.as_tensor(cells, dtype=dtype, device=device),
            pbc=torch.as_tensor(pbcs, device=device),
            batch=torch.as_tensor(batch, device=device),
            natoms=torch.as_tensor(natoms, device=device),
            tags=torch.as_tensor(tag_all, device=device),
            fixed=torch.as_tensor(fixed, device=device),
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> AtomsBatch:
        """Copy to another device and/or float dtype (integer and bool tensors keep their dtype)."""
        out = {}
        for f in fields(self):
            t: torch.Tensor = getattr(self, f.name)
            if t.is_floating_point():
                out[f.name] = t.to(device=device, dtype=dtype)
            else:
                out[f.name] = t.to(device=device)
        return AtomsBatch(**out)

    def split_atoms(self, values: torch.Tensor) -> list[torch.Tensor]:
        """Split a per-atom tensor (N, ...) into one tensor per structure."""
        return list(torch.split(values, self.natoms.tolist()))
