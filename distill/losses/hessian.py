"""Hessian distillation (Amin et al. 2025): match s sampled rows of the student's Hessian to cached teacher rows.

Row r of the Hessian is H[r, :] = ∂²E/∂x_r∂x = −∂F_r/∂x. The student rows are vector-Jacobian products of its
forces: one `autograd.grad(F_r, positions, create_graph=True)` per row slot, for all structures at once. For
the conservative student (forces = −∂E/∂x) these are exact Hessian rows; for the direct-force student they are
rows of the force Jacobian −∂F/∂x (not necessarily symmetric), which the loss pushes towards the teacher's true
(symmetric) Hessian rows. The teacher rows come from `calculators.hessian.hessian_rows` and are cached.
"""

from __future__ import annotations

import torch

from calculators.batch import AtomsBatch


def flat_row_index(natoms: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Global flat coordinate indices (B, s) of per-structure flat rows `rows` (B, s) = 3*atom+xyz."""
    start = 3 * (torch.cumsum(natoms, 0) - natoms)
    return rows + start.to(rows.device)[:, None]


def student_hessian_rows(
    forces: torch.Tensor, positions: torch.Tensor, batch: AtomsBatch, rows: torch.Tensor
) -> torch.Tensor:
    """Rows −∂F_r/∂x (B, s, 3*n_max) eV/Å², zero-padded, differentiable (create_graph) for training.

    `forces` (N, 3) must depend on `positions` (N, 3) (which had requires_grad before the forward pass).
    """
    gidx = flat_row_index(batch.natoms, rows)
    flat = forces.reshape(-1)
    bsz, s = rows.shape
    nmax = int(batch.natoms.max())
    start = (3 * (torch.cumsum(batch.natoms, 0) - batch.natoms)).tolist()
    out = []
    for k in range(s):
        (grad,) = torch.autograd.grad(flat[gidx[:, k]].sum(), positions, create_graph=True, retain_graph=True)
        g = -grad.reshape(-1)
        per = []
        for b, n in enumerate(batch.natoms.tolist()):
            row = g[start[b] : start[b] + 3 * n]
            per.append(torch.nn.functional.pad(row, (0, 3 * (nmax - n))))
        out.append(torch.stack(per))
    return torch.stack(out, dim=1)


def hessian_row_mask(natoms: torch.Tensor, s: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, s, 3*n_max) mask of the valid (non-padding) entries."""
    nmax = int(natoms.max())
    cols = torch.arange(3 * nmax, device=natoms.device)
    mask = cols[None, :] < 3 * natoms[:, None]
    return mask[:, None, :].expand(-1, s, -1).to(dtype)


def hessian_loss(pred: torch.Tensor, target: torch.Tensor, natoms: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Loss between student and teacher Hessian rows (B, s, 3*n_max) over valid entries: "mse" or "mae"."""
    target = target.detach().to(pred.dtype)
    width = min(pred.shape[-1], target.shape[-1])
    pred, target = pred[..., :width], target[..., :width]
    mask = hessian_row_mask(natoms, pred.shape[1], pred.dtype)[..., :width]
    diff = (pred - target) * mask
    err = diff.pow(2) if kind == "mse" else diff.abs()
    return err.sum() / mask.sum().clamp(min=1)
