"""Content hashes: of files, of structures (label-cache manifests, screening system keys) and of tensors."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from ase import Atoms

from calculators.batch import fixed_mask


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _rounded(values, decimals: int) -> np.ndarray:
    """float64 `values` rounded to `decimals`, with −0.0 made +0.0: a coordinate that is zero up to float noise
    (an atom on a cell edge, ±2e-16 depending on the numerical libraries) must hash the same on every machine."""
    return np.round(np.asarray(values, dtype=np.float64), decimals) + 0.0


def update_structure_hash(h, atoms: Atoms, *, decimals: int, constraints: bool = False) -> None:
    """Feed one structure into the hash object `h`: atomic numbers, positions and cell rounded to `decimals`
    (Å), pbc and, with `constraints`, the tags and the indices of atoms held by FixAtoms."""
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(_rounded(atoms.positions, decimals).tobytes())
    h.update(_rounded(atoms.cell[:], decimals).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    if constraints:
        h.update(np.asarray(atoms.get_tags(), dtype=np.int64).tobytes())
        h.update(np.flatnonzero(fixed_mask(atoms)).astype(np.int64).tobytes())


def structures_sha256(structures: Iterable[Atoms], decimals: int = 8) -> str:
    """sha256 of a list of structures (numbers, positions and cells to 10^-`decimals` Å, pbc): identifies the
    structure set of a label cache.

    1e-8 Å by default: structures that went through a text file written at 1e-8 Å (the trajectories of
    `distill make-student`, read back on a rerun) hash as they did in memory, which a coarser rounding breaks at
    its half-way points. Sets that are always regenerated in memory (the benchmark's held-out sets) use 5: the
    same generated set differs in its last digits between numpy/scipy builds, and a 1e-8 Å hash changed with
    them on a new machine."""
    h = hashlib.sha256()
    for atoms in structures:
        update_structure_hash(h, atoms, decimals=decimals)
    return h.hexdigest()


def structure_key(atoms: Atoms) -> str:
    """16-hex content key of one structure (numbers, positions and cell to 1e-5 Å, pbc, tags, fixed atoms): the
    same structure gets the same key wherever it comes from, so it is evaluated once."""
    h = hashlib.sha256()
    update_structure_hash(h, atoms, decimals=5, constraints=True)
    return h.hexdigest()[:16]


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the names and raw bytes of a state_dict, in name order (identifies model weights)."""
    h = hashlib.sha256()
    for key, value in sorted(tensors.items()):
        h.update(key.encode())
        h.update(value.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
