"""Candidate neighbour lists: the brute-force pair search (`calculators.pair_search`) and ASE's binned list give the
same pairs."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from gemnet_helpers import pt_slab_o

import calculators.neighbors as nb
from calculators.batch import AtomsBatch


def _pairs(candidates) -> set[tuple[int, int, int, int, int]]:
    i, j = candidates.edge_index.tolist()
    s = candidates.cell_offsets.round().long().tolist()
    return {(a, b, *o) for a, b, o in zip(i, j, s, strict=True)}


def _structures() -> list[Atoms]:
    slab = pt_slab_o()
    outside = fcc111("Cu", (2, 2, 3), vacuum=5.0)
    outside.positions[0] += outside.cell[0] * 1.3  # an atom outside its cell
    small = bulk("Pt", "fcc", a=3.92)  # one atom: many images of itself
    tilted = bulk("Ti", "hcp", a=2.95, c=4.69) * (2, 1, 1)
    mol = molecule("H2O")
    mol.center(vacuum=3.0)
    mol.pbc = False
    overlap = pt_slab_o(size=(1, 1, 2))
    overlap.positions[-1] = overlap.positions[-2] + [0.005, 0.0, 0.0]  # near-coincident atoms stay pairs
    return [slab, outside, small, tilted, mol, overlap]


@pytest.mark.parametrize("radius", [3.0, 6.5])
def test_torch_search_matches_ase(monkeypatch, radius):
    structures = _structures()
    batch = AtomsBatch.from_atoms(structures, tags=[np.zeros(len(a), dtype=int) for a in structures])
    fast = nb.build_neighbors(batch, radius)
    monkeypatch.setattr(nb, "MAX_BRUTE_FORCE_DISTANCES", 0)  # force ASE's list
    slow = nb.build_neighbors(batch, radius)
    assert _pairs(fast) == _pairs(slow) and fast.edge_index.shape == slow.edge_index.shape
    assert fast.cell_offsets.dtype == slow.cell_offsets.dtype == batch.dtype
