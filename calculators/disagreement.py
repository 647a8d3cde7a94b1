"""A direct-force student's own uncertainty flag: how far its two force estimates disagree.

A GemNet-OC with direct forces predicts forces with a separate head; its energy is still a differentiable
function of the positions, so −∂E/∂x is a second, independent force estimate. Where the two agree the network is
on ground it was trained on; where they disagree it is not (on the shipped student and its held-out screening
set: the top tenth by disagreement have about twice the single-point ΔE error of the rest; see
`reports/student/history.md`, session 18).

`force_disagreement(model, atoms_list)` gives one number per structure (eV/Å): the median over its free atoms
(those FixAtoms does not hold; all atoms when every one is held) of |F_direct − (−∂E/∂x)|. A conservative model
has one force estimate and no such flag (`supports_disagreement` is False; `force_disagreement` raises).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from ase import Atoms

from calculators.batch import AtomsBatch
from calculators.batched import atom_batches, default_batch_atoms, model_place, validate_many
from calculators.gemnet import GemNetOC
from calculators.keys import ENERGY, FORCES
from calculators.parsing import checked_number
from calculators.tags import tags_for


def supports_disagreement(model: object) -> bool:
    """True for a model with a direct-force head and a differentiable energy (a direct-force GemNet-OC)."""
    return isinstance(model, GemNetOC) and bool(model.direct_forces and model.regress_forces)


def force_disagreement(model: object, atoms_list: Sequence[Atoms], *, batch_atoms: int | None = None) -> list[float]:
    """Per structure (input order), eV/Å: median over free atoms of |F_direct − (−∂E/∂x)|.

    Batches of at most `batch_atoms` atoms (None: the device's default). One forward pass with the direct-force
    head and one backward pass per batch (about twice an energy-and-forces call). `ValueError` for a model
    without a direct-force head; `StructureError` naming the index of an invalid structure."""
    if not supports_disagreement(model):
        raise ValueError(
            f"{type(model).__name__} has no direct-force head beside its energy gradient: a force-disagreement "
            "flag needs a direct-force student (conservative models and SevenNet-0 have one force estimate)"
        )
    checked_number(batch_atoms, "batch_atoms", what="force_disagreement", integer=True, low=1, optional=True)
    atoms_list = list(atoms_list)
    validate_many(model, atoms_list)
    device, dtype = model_place(model)
    out: list[float] = [float("nan")] * len(atoms_list)
    for group in atom_batches([len(a) for a in atoms_list], batch_atoms or default_batch_atoms(device)):
        sub = [atoms_list[i] for i in group]
        batch = AtomsBatch.from_atoms(sub, device=device, dtype=dtype, tags=[tags_for(a) for a in sub])
        pos = batch.positions.detach().clone().requires_grad_(True)
        batch = replace(batch, positions=pos)
        with torch.enable_grad():
            pred = model(batch, forces=True, create_graph=False)  # type: ignore[operator]
            (grad,) = torch.autograd.grad(pred[ENERGY].sum(), pos)
        gap = (pred[FORCES].detach() + grad).norm(dim=1).double().cpu()
        free = (~batch.fixed).cpu()
        for k, (g, f) in enumerate(zip(batch.split_atoms(gap), batch.split_atoms(free), strict=True)):
            values = g[f] if bool(f.any()) else g
            out[group[k]] = float(values.median())
    return out
