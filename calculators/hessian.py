"""Hessian rows of any `AtomisticModel`: double backward (conservative models) or finite differences."""

from __future__ import annotations

from dataclasses import replace

import torch

from calculators.batch import AtomsBatch
from calculators.model_api import FORCES, AtomisticModel


def _flat_index(batch: AtomsBatch, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Global flat coordinate indices (B, s) and the per-structure offsets (B,) of 3*atom."""
    natoms = batch.natoms.to(rows.device)
    if rows.dim() != 2 or rows.shape[0] != batch.num_structures:
        raise ValueError(f"rows must be (B={batch.num_structures}, s), got {tuple(rows.shape)}")
    if bool((rows < 0).any()) or bool((rows >= 3 * natoms[:, None]).any()):
        raise ValueError("rows must be flat coordinate indices 3*atom+xyz within each structure")
    start = 3 * (torch.cumsum(natoms, 0) - natoms)
    return rows + start[:, None], start


def _scatter_rows(batch: AtomsBatch, flat: torch.Tensor, start: torch.Tensor, s_index: int, out: torch.Tensor):
    """Copy per-structure slices of one global (3N,) row vector `flat` into out[:, s_index, :3n_b]."""
    for b, n in enumerate(batch.natoms.tolist()):
        lo = int(start[b])
        out[b, s_index, : 3 * n] = flat[lo : lo + 3 * n]


def hessian_rows(
    model: AtomisticModel,
    batch: AtomsBatch,
    rows: torch.Tensor,
    *,
    method: str = "auto",
    step: float = 1e-3,
) -> torch.Tensor:
    """Rows of the Hessian ∂²E/∂x_r∂x (eV/Å²) for each structure: (B, s, 3*n_max), zero-padded past 3*n_b.

    `rows` (B, s) int64: flat coordinate indices 3*atom+xyz within each structure. `method`: "autograd"
    (double backward; needs `model.supports_create_graph`), "fd" (central differences of forces with `step` Å;
    2s model calls, all structures displaced at once) or "auto" (autograd when available, else fd). Structures
    are independent, so one backward (or one displaced call) serves the same row slot of every structure.
    """
    rows = rows.to(device=batch.device, dtype=torch.long)
    gidx, start = _flat_index(batch, rows)
    bsz, s = rows.shape
    nmax = int(batch.natoms.max())
    out = torch.zeros(bsz, s, 3 * nmax, dtype=batch.dtype, device=batch.device)
    use_autograd = getattr(model, "supports_create_graph", False) and getattr(model, "conservative", False)
    if method == "autograd" and not use_autograd:
        raise ValueError("this model does not support double backward (supports_create_graph); use method='fd'")
    if method == "autograd" or (method == "auto" and use_autograd):
        pos = batch.positions.detach().clone().requires_grad_(True)
        view = replace(batch, positions=pos)
        with torch.enable_grad():
            forces = model.predict(view, forces=True, create_graph=True)[FORCES].reshape(-1)
            for k in range(s):
                target = forces[gidx[:, k]].sum()
                (grad,) = torch.autograd.grad(target, pos, retain_graph=k < s - 1, allow_unused=True)
                grad = torch.zeros_like(pos) if grad is None else grad
                _scatter_rows(batch, -grad.reshape(-1).detach(), start, k, out)
        return out
    if method not in ("fd", "auto"):
        raise ValueError(f"unknown method {method!r}")
    # H[r, :] = ∂²E/∂x_r∂x = −∂F/∂x_r (symmetric), by displacing coordinate r of every structure at once
    for k in range(s):
        plus = batch.positions.detach().clone().reshape(-1)
        minus = plus.clone()
        plus[gidx[:, k]] += step
        minus[gidx[:, k]] -= step
        fp = model.predict(replace(batch, positions=plus.reshape(-1, 3)))[FORCES]
        fm = model.predict(replace(batch, positions=minus.reshape(-1, 3)))[FORCES]
        row = -(fp.detach() - fm.detach()).reshape(-1) / (2 * step)
        _scatter_rows(batch, row.to(out.dtype), start, k, out)
    return out
