"""Candidate neighbour lists (cutoff + skin) that models reuse between calls while atoms move little."""

from __future__ import annotations

import numpy as np
import torch
from ase.neighborlist import primitive_neighbor_list

from calculators.batch import AtomsBatch
from calculators.model_api import NeighborCandidates
from calculators.pair_search import MAX_BRUTE_FORCE_DISTANCES, find_pairs_within_budget


def build_neighbors(batch: AtomsBatch, radius: float) -> NeighborCandidates:
    """All ordered pairs (i, j, lattice shift) closer than `radius` (Å) in every structure of `batch`.

    Small batches (up to `MAX_BRUTE_FORCE_DISTANCES` pair-image distances, e.g. slabs of a few hundred atoms) use
    the brute-force search of `calculators.pair_search` (~0.5 ms for a 37-atom slab); larger ones ASE's binned
    `primitive_neighbor_list` per structure on CPU (linear in atoms, ~5 ms of Python for the same slab). Both give
    the same pairs within `radius`; the brute-force list may hold a few more up to radius·(1 + 1e-5), which every
    consumer filters with its own cutoff. Non-periodic directions may have a zero cell.
    """
    with torch.no_grad():
        found = find_pairs_within_budget(batch, radius, MAX_BRUTE_FORCE_DISTANCES)
        if found is not None:
            target, source, image = found
            return _candidates(batch, torch.stack([target, source]), image, radius)
    pos_all = batch.positions.detach().cpu().double().numpy()
    cells = batch.cell.detach().cpu().double().numpy()
    pbcs = batch.pbc.cpu().numpy()
    starts = np.concatenate([[0], np.cumsum(batch.natoms.cpu().numpy())])
    edges, shifts = [], []
    for b in range(batch.num_structures):
        lo, hi = int(starts[b]), int(starts[b + 1])
        pos = pos_all[lo:hi]
        cell = cells[b].copy()
        pbc = pbcs[b]
        # non-periodic directions: any cell vector works, ASE only needs a non-degenerate one
        for k in range(3):
            if not pbc[k] and np.linalg.norm(cell[k]) < 1e-8:
                cell[k] = 0.0
        i, j, s = primitive_neighbor_list("ijS", pbc, cell, pos, float(radius), self_interaction=False)
        edges.append(np.stack([i, j]).astype(np.int64) + lo)
        shifts.append(s.astype(np.float64))
    edge_index = torch.as_tensor(np.concatenate(edges, axis=1), device=batch.device)
    return _candidates(batch, edge_index, torch.as_tensor(np.concatenate(shifts)), radius)


def _candidates(batch: AtomsBatch, edge_index: torch.Tensor, shifts: torch.Tensor, radius: float) -> NeighborCandidates:
    return NeighborCandidates(
        edge_index=edge_index,
        cell_offsets=shifts.to(device=batch.device, dtype=batch.dtype),
        radius=float(radius),
        reference_positions=batch.positions.detach().clone(),
        reference_cell=batch.cell.detach().clone(),
    )


def candidates_valid(candidates: NeighborCandidates | None, batch: AtomsBatch, skin: float) -> bool:
    """True if `candidates` still contain every pair within radius − skin: same shapes and cell, and no atom
    moved more than skin/2 (Å) since they were built."""
    if candidates is None:
        return False
    ref = candidates.reference_positions
    if ref.shape != batch.positions.shape or candidates.reference_cell.shape != batch.cell.shape:
        return False
    if not torch.allclose(candidates.reference_cell, batch.cell.detach(), rtol=0.0, atol=1e-9):
        return False
    disp = torch.linalg.norm(batch.positions.detach() - ref, dim=-1)
    return bool(disp.numel() == 0 or float(disp.max()) < 0.5 * skin)


def select_within(
    candidates: NeighborCandidates, batch: AtomsBatch, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges of `candidates` within `cutoff` (Å) now: (edge_index (2, E'), vectors (E', 3)).

    Vectors are differentiable with respect to `batch.positions`; a helper for models implementing
    `supports_neighbors`.
    """
    vec = candidates.edge_vectors(batch.positions, batch.cell, batch.batch)
    keep = torch.linalg.norm(vec.detach(), dim=-1) < cutoff
    return candidates.edge_index[:, keep], vec[keep]
