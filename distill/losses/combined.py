"""`LossConfig` (a weight and settings per loss term) and `DistillationLoss`, which runs the student and combines
the switched-on terms.

Label keys (`calculators.keys`; per batch, see `distill.labels`): "energy" (B,) eV, "forces" (N, 3) eV/Å,
"atom_energies" (N,) eV, "node_features" (N, Ft) teacher atom embeddings, "hessian_rows" (B, s, 3*n_max) eV/Å²
with "hessian_index" (B, s) flat rows 3*atom+xyz, optional DFT targets "dft_energy" (B,), "dft_forces" (N, 3), and
"pair_index" (P, 2) [adslab, stripped slab] structure indices for the pair loss, and "labelled_structures" ()
when atom energies, features and Hessian rows cover only the first structures of the batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from calculators.batch import AtomsBatch
from calculators.keys import (
    ATOM_ENERGIES,
    DFT_ENERGY,
    DFT_FORCES,
    EDGE_INDEX,
    ENERGY,
    FORCES,
    H_BLOCKS,
    HESSIAN_INDEX,
    HESSIAN_ROWS,
    LABELLED_STRUCTURES,
    NODE_FEATURES,
    PAIR_INDEX,
)
from calculators.parsing import checked_choice, checked_number, dataclass_from_dict
from distill.losses.atomic import atomic_energy_loss
from distill.losses.fork import fork_loss, instance_contrastive_loss
from distill.losses.hessian import hessian_loss, student_hessian_rows
from distill.losses.n2n import ProjectionHead, n2n_loss
from distill.losses.task import energy_loss, force_loss, pair_loss


@dataclass
class LossConfig:
    """Weights (0 switches a term off) and settings of every loss term.

    targets: "teacher" (soft labels) or "dft" (hard labels "dft_energy"/"dft_forces") for the task loss.
    n2n_features: student features matched to the teacher's: "x_E" (input of the energy head) and/or
    "h<i>" (atom embedding after block i; h0 = initial embedding); one projection head each.
    pair: weight of the interaction-energy MAE (eV) over adsorbate-removal pairs (`distill.pairs`): the
    training step adds each paired record's stripped slab to the batch.
    energy_gradient: weight of the force loss (`force_kind`, eV/Å) of −∂E/∂x, the student's energy gradient,
    against the teacher's forces. A direct-force student's energy head otherwise learns from one number per
    structure (its direct forces from 3N); this gives the energy the force labels too and makes the two heads
    agree (on the held-out set the shipped student's heads differed by 0.39 eV/Å per atom, median).
    """

    energy: float = 1.0
    forces: float = 10.0
    energy_kind: str = "mae"
    force_kind: str = "l2mae"
    targets: str = "teacher"
    fork: float = 0.0
    fork_tau: float = 0.15
    fork_max_edges: int = 512
    instance: float = 0.0
    n2n: float = 0.0
    n2n_features: list[str] = field(default_factory=lambda: ["x_E"])
    hessian: float = 0.0
    hessian_rows: int = 2
    atomic: float = 0.0
    pair: float = 0.0
    energy_gradient: float = 0.0
    head_hidden: int | None = None

    def __post_init__(self) -> None:
        """Check every setting: weights are finite and ≥ 0 (a negative weight would train the student away from
        its teacher), kinds and targets known; numeric strings become numbers."""
        what = "loss settings"
        for name in ("energy", "forces", "fork", "instance", "n2n", "hessian", "atomic", "pair", "energy_gradient"):
            setattr(self, name, checked_number(getattr(self, name), name, what=what, low=0))
        self.fork_tau = checked_number(self.fork_tau, "fork_tau", what=what, low=0, low_open=True)
        self.fork_max_edges = checked_number(self.fork_max_edges, "fork_max_edges", what=what, integer=True, low=2)
        self.hessian_rows = checked_number(self.hessian_rows, "hessian_rows", what=what, integer=True, low=1)
        self.head_hidden = checked_number(
            self.head_hidden, "head_hidden", what=what, integer=True, low=1, optional=True
        )
        checked_choice(self.energy_kind, "energy_kind", ("mae", "mse"), what=what)
        checked_choice(self.force_kind, "force_kind", ("l2mae", "mae", "mse"), what=what)
        checked_choice(self.targets, "targets", ("teacher", "dft"), what=what)
        names = self.n2n_features
        if not isinstance(names, list) or not all(isinstance(f, str) for f in names) or (self.n2n > 0 and not names):
            raise ValueError(
                f"{what}: n2n_features must be a list of names (x_E, h0, h1, ...), got {self.n2n_features!r}"
            )

    @property
    def needs_teacher_features(self) -> bool:
        return self.fork > 0 or self.instance > 0 or self.n2n > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LossConfig:
        return dataclass_from_dict(cls, values, what="loss settings")


def _student_feature(out: dict, name: str) -> torch.Tensor:
    if name == "x_E":
        return out[NODE_FEATURES]
    if name.startswith("h") and name[1:].isdigit():
        return out[H_BLOCKS][int(name[1:])]
    raise ValueError(f"unknown student feature {name!r} (x_E, h0, h1, ...)")


class DistillationLoss(nn.Module):
    """All loss terms and the projection heads (trained with the student, discarded afterwards).

    `student_width`: emb_size_atom of the student; `teacher_width`: width of the teacher's node features.
    """

    def __init__(self, config: LossConfig, student_width: int, teacher_width: int | None = None) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.needs_teacher_features and not teacher_width:
            raise ValueError("FORK / instance / n2n losses need teacher node features (teacher_width)")
        if c.pair > 0 and c.targets != "teacher":
            raise ValueError("the pair loss needs targets='teacher' (stripped slabs carry teacher labels only)")
        self.fork_head = ProjectionHead(student_width, teacher_width, c.head_hidden) if c.fork > 0 else None
        self.instance_head = ProjectionHead(student_width, teacher_width, c.head_hidden) if c.instance > 0 else None
        self.n2n_heads = nn.ModuleDict(
            {name: ProjectionHead(student_width, teacher_width, c.head_hidden) for name in c.n2n_features}
            if c.n2n > 0
            else {}
        )

    def forward(
        self,
        model: nn.Module,
        batch: AtomsBatch,
        labels: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Run the student on `batch` and return (total loss, {term: value}) for the enabled terms."""
        c = self.config
        want_hessian = c.hessian > 0 and HESSIAN_ROWS in labels
        if want_hessian or c.energy_gradient > 0:
            pos = batch.positions.detach().clone().requires_grad_(True)
            batch = replace(batch, positions=pos)
        need_features = c.needs_teacher_features
        out = model(batch, forces=True, features=need_features, create_graph=True)
        terms: dict[str, torch.Tensor] = {}
        # atom energies, teacher features and Hessian rows may cover only the leading structures (pair partners
        # come after them, `distill.pairs.collate_with_partners`)
        n_lab = int(labels[LABELLED_STRUCTURES]) if LABELLED_STRUCTURES in labels else len(batch.natoms)
        natoms_lab = batch.natoms[:n_lab]
        atoms_lab = int(natoms_lab.sum())
        e_key, f_key = (ENERGY, FORCES) if c.targets == "teacher" else (DFT_ENERGY, DFT_FORCES)
        if c.targets not in ("teacher", "dft"):
            raise ValueError(f"targets must be 'teacher' or 'dft', got {c.targets!r}")
        if c.energy > 0:
            if e_key not in labels:
                raise KeyError(f"task loss needs labels[{e_key!r}]")
            terms["energy"] = energy_loss(out[ENERGY], labels[e_key], batch.natoms, c.energy_kind)
        if c.forces > 0:
            if f_key not in labels:
                raise KeyError(f"task loss needs labels[{f_key!r}]")
            terms["forces"] = force_loss(out[FORCES], labels[f_key], c.force_kind)
        if need_features:
            teacher_z = labels[NODE_FEATURES]
            student_z = out[NODE_FEATURES][:atoms_lab]
            if c.fork > 0:
                edges = out[EDGE_INDEX]
                edges = edges[:, (edges < atoms_lab).all(dim=0)]
                terms["fork"] = fork_loss(
                    student_z,
                    teacher_z,
                    edges,
                    self.fork_head,
                    tau=c.fork_tau,
                    max_edges=c.fork_max_edges,
                    generator=generator,
                )
            if c.instance > 0:
                terms["instance"] = instance_contrastive_loss(
                    student_z, teacher_z, self.instance_head, tau=c.fork_tau,
                    max_atoms=c.fork_max_edges, generator=generator,
                )  # fmt: skip
            if c.n2n > 0:
                parts = [
                    n2n_loss(_student_feature(out, k)[:atoms_lab], teacher_z, h) for k, h in self.n2n_heads.items()
                ]
                terms["n2n"] = torch.stack(parts).mean()
        if c.atomic > 0:
            terms["atomic"] = atomic_energy_loss(out[ATOM_ENERGIES][:atoms_lab], labels[ATOM_ENERGIES])
        if c.pair > 0 and PAIR_INDEX in labels and len(labels[PAIR_INDEX]):
            terms["pair"] = pair_loss(out[ENERGY], labels[ENERGY], labels[PAIR_INDEX])
        if c.energy_gradient > 0:
            (grad,) = torch.autograd.grad(out[ENERGY].sum(), batch.positions, create_graph=True)
            terms["energy_gradient"] = force_loss(-grad, labels[f_key], c.force_kind)
        if want_hessian:
            rows = labels[HESSIAN_INDEX]
            pred = student_hessian_rows(out[FORCES], batch.positions, replace(batch, natoms=natoms_lab), rows)
            terms["hessian"] = hessian_loss(pred, labels[HESSIAN_ROWS], natoms_lab)
        weights = {
            "energy": c.energy, "forces": c.forces, "fork": c.fork, "instance": c.instance,
            "n2n": c.n2n, "atomic": c.atomic, "hessian": c.hessian, "pair": c.pair,
            "energy_gradient": c.energy_gradient,
        }  # fmt: skip
        if not terms:
            raise ValueError("every loss term is switched off")
        total = sum(weights[k] * v for k, v in terms.items())
        return total, {k: float(v.detach()) for k, v in terms.items()} | {"total": float(total.detach())}
