"""Distillation losses, each switchable with its own weight (`LossConfig`), combined by `DistillationLoss`."""

from distill.losses.atomic import atomic_energy_loss
from distill.losses.combined import DistillationLoss, LossConfig
from distill.losses.fork import fork_loss, info_nce, instance_contrastive_loss, relational_vectors, unique_pairs
from distill.losses.hessian import hessian_loss, student_hessian_rows
from distill.losses.n2n import ProjectionHead, n2n_loss
from distill.losses.task import energy_loss, force_loss

__all__ = [
    "DistillationLoss",
    "LossConfig",
    "ProjectionHead",
    "atomic_energy_loss",
    "energy_loss",
    "force_loss",
    "fork_loss",
    "hessian_loss",
    "info_nce",
    "instance_contrastive_loss",
    "n2n_loss",
    "relational_vectors",
    "student_hessian_rows",
    "unique_pairs",
]
