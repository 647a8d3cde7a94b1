"""The one batched model contract that every model (GemNet-OC student or teacher, SevenNet teacher) follows.

Calculators, screening and distillation code talk to models only through this contract, and the reusable model
checks in `calculators/testing.py` run against every implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from calculators.batch import AtomsBatch
from calculators.keys import ATOM_ENERGIES, EDGE_INDEX, ENERGY, FORCES, HESSIAN, NODE_FEATURES

__all__ = [  # the output keys (defined in calculators.keys) travel with the contract
    "ATOM_ENERGIES",
    "EDGE_INDEX",
    "ENERGY",
    "FORCES",
    "HESSIAN",
    "NODE_FEATURES",
    "AtomisticModel",
    "NeighborCandidates",
]


@dataclass
class NeighborCandidates:
    """Candidate pairs for graph reuse between calls (ASE's "skin" idea), built once for a batch.

    Holds every ordered pair (i, j), i != j or j a periodic image of i, whose distance was below
    `radius` = model cutoff + skin when built. A model receiving candidates recomputes the vectors from the
    current positions, ``vec = positions[j] - positions[i] + cell_offsets @ cell[batch[i]]`` (Å), and applies
    its own cutoff and max-neighbour selection on every call. The candidates stay valid while no atom moved
    more than skin/2 since `reference_positions` and the cell, atomic numbers and pbc are unchanged
    (`calculators.neighbors.candidates_valid` checks it).

    edge_index:          (2, E) int64, [i, j] global atom indices in the batch (both directions present)
    cell_offsets:        (E, 3) same float dtype as positions, integer lattice shifts of j
    radius:              float, Å, the cutoff + skin used to build
    reference_positions: (N, 3) positions at build time, Å
    reference_cell:      (B, 3, 3) cell at build time, Å
    """

    edge_index: torch.Tensor
    cell_offsets: torch.Tensor
    radius: float
    reference_positions: torch.Tensor
    reference_cell: torch.Tensor

    def edge_vectors(self, positions: torch.Tensor, cell: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """(E, 3) vectors from i to j (Å), differentiable with respect to `positions` and `cell`."""
        i, j = self.edge_index
        shift = torch.einsum("ek,ekl->el", self.cell_offsets.to(positions.dtype), cell[batch[i]])
        return positions[j] - positions[i] + shift


@runtime_checkable
class AtomisticModel(Protocol):
    """A model that maps an `AtomsBatch` to energies, forces and optional features.

    Attributes:
        cutoff: radius of the model's main graph, Å.
        max_atomic_number: largest Z the model has an embedding for.
        conservative: True if forces are −∂E/∂positions (finite-difference checks apply).

    Optional extensions (checked with `getattr`, absent means unsupported):
        supports_neighbors: bool. If True, `predict` accepts ``neighbors: NeighborCandidates | None`` and
            uses those candidate pairs (re-filtered by distance to its cutoff) instead of a fresh
            neighbour search. Calculators then build candidates with cutoff + skin and reuse them while
            valid, so relaxations do not redo the neighbour search each step.
        supports_create_graph: bool. If True (conservative models), `predict` accepts
            ``create_graph: bool = False``; with True and ``batch.positions.requires_grad``, FORCES are
            differentiable with respect to ``batch.positions`` (Hessian rows by double backward).
            Otherwise `calculators.hessian.hessian_rows` falls back to central finite differences.
        mptrj_energies: bool. True for models trained on MPtrj, whose energies mix PBE and PBE+U the way
            Materials Project does (+U on Co, Cr, Fe, Mn, Mo, Ni, V, W only with O or F): screening flags
            reactions whose ΔE mixes the two scales.
    """

    cutoff: float
    max_atomic_number: int
    conservative: bool

    def predict(self, batch: AtomsBatch, *, forces: bool = True, features: bool = False) -> dict[str, torch.Tensor]:
        """Return at least ENERGY (and FORCES when `forces`), ATOM_ENERGIES, and with `features`
        NODE_FEATURES and EDGE_INDEX. Must not change the batch."""
        ...
