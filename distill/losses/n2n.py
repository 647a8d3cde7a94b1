"""Node-to-node feature matching: MSE between projected student atom embeddings and the teacher's."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """Two-layer MLP from the student's embedding width to the teacher's (only used in training, then discarded)."""

    def __init__(self, in_features: int, out_features: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(in_features, out_features)
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.SiLU(), nn.Linear(hidden, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def n2n_loss(student_z: torch.Tensor, teacher_z: torch.Tensor, head: nn.Module | None = None) -> torch.Tensor:
    """Mean squared error between head(student) (N, Ft) and the (detached) teacher features (N, Ft)."""
    pred = head(student_z) if head is not None else student_z
    return (pred - teacher_z.detach().to(pred.dtype)).pow(2).mean()
