"""The one batched model contract that every model (GemNet-OC student or teacher, SevenNet teacher) follows.

Calculators, screening and distillation code talk to models only through this contract, and the reusable model
checks in `tests/model_checks.py` run against every implementation.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from distill.batch import AtomsBatch

# Keys of the dict a model returns. Shapes: B structures, N atoms, E edges.
ENERGY = "energy"  # (B,) eV, total energy per structure
FORCES = "forces"  # (N, 3) eV/Å
ATOM_ENERGIES = "atom_energies"  # (N,) eV, per-atom contributions summing to ENERGY
NODE_FEATURES = "node_features"  # (N, F) invariant atom embeddings (the input of the energy head)
EDGE_INDEX = "edge_index"  # (2, E) int64, [source, target] atoms of the model's main graph


@runtime_checkable
class AtomisticModel(Protocol):
    """A model that maps an `AtomsBatch` to energies, forces and optional features.

    Attributes:
        cutoff: radius of the model's main graph, Å.
        max_atomic_number: largest Z the model has an embedding for.
        conservative: True if forces are −∂E/∂positions (finite-difference checks apply).
    """

    cutoff: float
    max_atomic_number: int
    conservative: bool

    def predict(
        self, batch: AtomsBatch, *, forces: bool = True, features: bool = False
    ) -> dict[str, torch.Tensor]:
        """Return at least ENERGY (and FORCES when `forces`), ATOM_ENERGIES, and with `features`
        NODE_FEATURES and EDGE_INDEX. Must not change the batch."""
        ...
