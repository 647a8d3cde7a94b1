"""Atomic-energy distillation: student per-atom energies against the teacher's per-atom energies (eV)."""

from __future__ import annotations

import torch


def atomic_energy_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Loss on per-atom energies (N,) eV: "mse" (eV²) or "mae" (eV)."""
    diff = pred - target.detach().to(pred.dtype)
    if kind == "mse":
        return diff.pow(2).mean()
    if kind == "mae":
        return diff.abs().mean()
    raise ValueError(f"unknown loss kind {kind!r}")
