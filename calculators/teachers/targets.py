"""`teacher_targets`: all that a teacher gives the distillation for one batch, via the model contract."""

from __future__ import annotations

import torch

from calculators.batch import AtomsBatch
from calculators.hessian import hessian_rows
from calculators.model_api import HESSIAN, AtomisticModel


@torch.no_grad()
def _no_grad_predict(model: AtomisticModel, batch: AtomsBatch) -> dict[str, torch.Tensor]:
    return model.predict(batch, forces=True, features=True)


def teacher_targets(
    model: AtomisticModel,
    batch: AtomsBatch,
    *,
    rows: torch.Tensor | None = None,
    hessian_method: str = "auto",
    fd_step: float = 1e-3,
) -> dict[str, torch.Tensor]:
    """ENERGY (B,) eV, FORCES (N, 3) eV/Å, ATOM_ENERGIES (N,) eV, NODE_FEATURES (N, F), EDGE_INDEX (2, E) and,
    when `rows` (B, s) flat coordinate indices are given, HESSIAN rows (B, s, 3·n_max) eV/Å² (see
    `calculators.hessian.hessian_rows`). All detached."""
    if getattr(model, "conservative", False):
        out = model.predict(batch, forces=True, features=True)  # forces need autograd
    else:
        out = _no_grad_predict(model, batch)
    out = {k: v.detach() for k, v in out.items()}
    if rows is not None:
        out[HESSIAN] = hessian_rows(model, batch, rows, method=hessian_method, step=fd_step).detach()
    return out
