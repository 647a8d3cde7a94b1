"""Per-element reference energies E_ref(Z) fitted to teacher energies (eV).

E(structure) ≈ Σ_i E_ref(Z_i): a least-squares fit of the energies on composition counts, before training.
The student adds Σ E_ref(Z_i) to its output (also to per-atom energies) and its network learns the residual,
so its capacity goes into chemistry instead of per-element absolute energies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def composition_matrix(numbers: Sequence[Sequence[int] | np.ndarray | torch.Tensor], num_elements: int) -> np.ndarray:
    """(S, num_elements) counts of each element (column Z-1) in each structure."""
    out = np.zeros((len(numbers), num_elements))
    for i, z in enumerate(numbers):
        z = np.asarray(z, dtype=np.int64)
        if z.size and (z.min() < 1 or z.max() > num_elements):
            raise ValueError(f"structure {i}: atomic numbers outside 1..{num_elements}")
        np.add.at(out[i], z - 1, 1.0)
    return out


def fit_element_references(
    numbers: Sequence[Sequence[int] | np.ndarray | torch.Tensor],
    energies: Sequence[float] | np.ndarray | torch.Tensor,
    num_elements: int,
    *,
    ridge: float = 1e-8,
) -> list[float]:
    """E_ref(Z) (eV, index Z-1) minimising Σ_s (E_s − Σ_Z n_sZ E_ref(Z))², with a tiny ridge so that
    elements that never occur get 0 and collinear compositions get the minimum-norm solution."""
    a = composition_matrix(numbers, num_elements)
    e = np.asarray(energies, dtype=np.float64).reshape(-1)
    if a.shape[0] != e.shape[0]:
        raise ValueError(f"{a.shape[0]} structures but {e.shape[0]} energies")
    if not np.isfinite(e).all():
        raise ValueError("non-finite energies cannot be fitted")
    present = a.sum(0) > 0
    sub = a[:, present]
    lhs = sub.T @ sub + ridge * np.eye(sub.shape[1])
    sol = np.linalg.solve(lhs, sub.T @ e)
    refs = np.zeros(num_elements)
    refs[present] = sol
    return [float(v) for v in refs]


def references_from_records(records: Sequence[dict], num_elements: int, key: str = "energy") -> list[float]:
    """Fit E_ref(Z) to label-cache records (`numbers`, `energy`)."""
    return fit_element_references([r["numbers"] for r in records], [float(r[key]) for r in records], num_elements)
