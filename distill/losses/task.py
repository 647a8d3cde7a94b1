"""Task losses: energies (per-atom normalised) and forces against teacher (soft) or DFT (hard) labels, and the
energy differences of adsorbate-removal pairs."""

from __future__ import annotations

import torch


def energy_loss(pred: torch.Tensor, target: torch.Tensor, natoms: torch.Tensor, kind: str = "mae") -> torch.Tensor:
    """Loss on energies per atom: `pred`, `target` (B,) eV, `natoms` (B,); result in eV/atom ("mae") or (eV/atom)²."""
    diff = (pred - target.to(pred.dtype)) / natoms.to(pred.dtype)
    return _reduce(diff, kind)


def force_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l2mae") -> torch.Tensor:
    """Loss on forces (N, 3) eV/Å: "l2mae" (mean per-atom Euclidean error), "mae" or "mse" over components."""
    diff = pred - target.to(pred.dtype)
    if kind == "l2mae":
        return diff.norm(dim=-1).mean()
    return _reduce(diff, kind)


def pair_loss(pred: torch.Tensor, target: torch.Tensor, pair_index: torch.Tensor) -> torch.Tensor:
    """MAE (eV) of the energy differences E[a] − E[b] over the rows [a, b] of `pair_index` (P, 2): an adslab and
    the same structure without its adsorbate (`distill.pairs`), so the interaction energy. `pred`, `target` (B,) eV."""
    a, b = pair_index[:, 0], pair_index[:, 1]
    return ((pred[a] - pred[b]) - (target[a] - target[b]).to(pred.dtype)).abs().mean()


def _reduce(diff: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mae":
        return diff.abs().mean()
    if kind == "mse":
        return diff.pow(2).mean()
    raise ValueError(f"unknown loss kind {kind!r} (mae, mse, l2mae for forces)")
