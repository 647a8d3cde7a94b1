"""Batched prediction and relaxation of many structures (screening): `predict_many`, `relax_many`."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from tqdm import tqdm

from calculators.batch import AtomsBatch, UnphysicalStructureWarning, unphysical_reason, validate_atoms
from calculators.model_api import ATOM_ENERGIES, ENERGY, FORCES, AtomisticModel
from calculators.parsing import checked_number
from calculators.tags import tags_for


def model_place(model: AtomisticModel) -> tuple[torch.device, torch.dtype]:
    """(device, float dtype) of a model's parameters (or its `device`/`dtype` attributes; CPU float32)."""
    if isinstance(model, torch.nn.Module):
        try:
            p = next(model.parameters())
            return p.device, p.dtype
        except StopIteration:
            pass
    return torch.device(getattr(model, "device", "cpu")), getattr(model, "dtype", torch.float32)


def default_batch_atoms(device: torch.device) -> int:
    """Atom budget per batch: 8192 on GPU; 256 on CPU, where larger batches are memory-bound and slower per
    structure (SevenNet-0, 37-atom slabs, 1 thread: 0.56 s/structure at 1-4 per batch, 1.4 s at 16)."""
    return 8192 if device.type == "cuda" else 256


def validate_many(model: AtomisticModel, atoms_list: Sequence[Atoms]) -> None:
    """`StructureError` for structures no model can evaluate (same checks as the ASE calculator), and an
    `UnphysicalStructureWarning` naming each structure whose atoms overlap."""
    for i, atoms in enumerate(atoms_list):
        validate_atoms(atoms, i, int(model.max_atomic_number))
    for i, atoms in enumerate(atoms_list):
        reason = unphysical_reason(atoms)
        if reason is not None:
            warnings.warn(f"structure {i}: {reason}", UnphysicalStructureWarning, stacklevel=3)


def atom_batches(sizes: Sequence[int], budget: int, *, largest_first: bool = True) -> list[list[int]]:
    """Indices grouped so that each group has at most `budget` atoms (a larger single structure forms its own
    group), taking structures largest first (fewer, fuller batches) or in input order."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i]) if largest_first else range(len(sizes))
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i in order:
        if current and total + sizes[i] > budget:
            groups.append(current)
            current, total = [], 0
        current.append(i)
        total += sizes[i]
    if current:
        groups.append(current)
    return groups


def predict_many(
    model: AtomisticModel,
    atoms_list: Sequence[Atoms],
    *,
    batch_atoms: int | None = None,
    forces: bool = True,
    progress: bool = True,
) -> list[dict[str, float | np.ndarray]]:
    """Evaluate many structures in batches of at most `batch_atoms` atoms (None: `default_batch_atoms`);
    results in input order. `forces=False` skips the backward pass (energy-only screening, ~3x faster).

    Each result: {"energy": eV, "free_energy": eV, "energies": (n,) eV, "forces": (n, 3) eV/Å if `forces`}.
    All structures are validated first (`StructureError` naming the index of the bad one).
    """
    checked_number(batch_atoms, "batch_atoms", what="predict_many", integer=True, low=1, optional=True)
    validate_many(model, atoms_list)
    device, dtype = model_place(model)
    batch_atoms = batch_atoms or default_batch_atoms(device)
    results: list[dict[str, float | np.ndarray] | None] = [None] * len(atoms_list)
    groups = atom_batches([len(a) for a in atoms_list], batch_atoms)
    for group in tqdm(groups, disable=not progress, desc="predict", unit="batch"):
        sub = [atoms_list[i] for i in group]
        batch = AtomsBatch.from_atoms(sub, device=device, dtype=dtype, tags=[tags_for(a) for a in sub])
        out = model.predict(batch, forces=forces)
        energies = out[ENERGY].detach().cpu().double().numpy()
        per_atom = batch.split_atoms(out[ATOM_ENERGIES].detach().cpu().double()) if ATOM_ENERGIES in out else None
        f_split = batch.split_atoms(out[FORCES].detach().cpu().double()) if forces else None
        for k, i in enumerate(group):
            res: dict[str, float | np.ndarray] = {
                "energy": float(energies[k]),
                "free_energy": float(energies[k]),
            }
            if per_atom is not None:
                res["energies"] = per_atom[k].numpy()
            if f_split is not None:
                res["forces"] = f_split[k].numpy()
            results[i] = res
    return results  # type: ignore[return-value]


@dataclass
class RelaxResult:
    """Outcome of `relax_many`, in input order: relaxed copies (with a SinglePointCalculator holding the final
    energy/forces), convergence flags (max force < fmax), force evaluations, final energies (eV)."""

    atoms: list[Atoms]
    converged: list[bool]
    steps: list[int]
    energies: list[float]
    # with `snapshot_every`: per structure, (force evaluation, positions (n, 3) Å) at evaluations 0, k, 2k, ...
    # and the last one (the relaxed positions)
    snapshots: list[list[tuple[int, np.ndarray]]] | None = None


def relax_many(
    model: AtomisticModel,
    atoms_list: Sequence[Atoms],
    *,
    fmax: float = 0.05,
    max_steps: int = 300,
    batch_atoms: int | None = None,
    dt: float = 0.1,
    dt_max: float = 1.0,
    max_step: float = 0.2,
    snapshot_every: int | None = None,
    progress: bool = False,
) -> RelaxResult:
    """Relax many structures at once with FIRE on batched tensors (fixed cell).

    FIRE parameters follow ASE's `FIRE` (dt 0.1, dt_max 1.0, maxstep 0.2 Å, N_min 5, f_inc 1.1, f_dec 0.5,
    α_start 0.1, f_α 0.99), applied per structure. Atoms held by FixAtoms get zero force and never move.
    A structure stops once its max force < `fmax` (eV/Å) or after `max_steps` force evaluations; converged
    ones leave the batch; one whose forces are not finite stops there, unconverged. Structures are grouped into
    batches of at most `batch_atoms` atoms (None:
    `default_batch_atoms`). `snapshot_every` = k: also keep the positions at force evaluations 0, k, 2k, ... and
    the last one of each structure (`RelaxResult.snapshots`: relaxation paths for training data).
    """
    what = "relax_many"
    checked_number(snapshot_every, "snapshot_every", what=what, integer=True, low=1, optional=True)
    checked_number(max_steps, "max_steps", what=what, integer=True, low=0)
    checked_number(batch_atoms, "batch_atoms", what=what, integer=True, low=1, optional=True)
    for name, value in (("fmax", fmax), ("dt", dt), ("dt_max", dt_max), ("max_step", max_step)):
        checked_number(value, name, what=what, low=0, low_open=True)
    validate_many(model, atoms_list)
    device, dtype = model_place(model)
    batch_atoms = batch_atoms or default_batch_atoms(device)
    n = len(atoms_list)
    out_atoms: list[Atoms] = [a.copy() for a in atoms_list]
    converged, steps, energies = [False] * n, [0] * n, [float("nan")] * n
    snapshots: list[list[tuple[int, np.ndarray]]] | None = [[] for _ in range(n)] if snapshot_every else None
    groups = atom_batches([len(a) for a in atoms_list], batch_atoms)
    for group in tqdm(groups, disable=not progress, desc="relax", unit="batch"):
        sub = [atoms_list[i] for i in group]
        full = AtomsBatch.from_atoms(sub, device=device, dtype=dtype, tags=[tags_for(a) for a in sub])
        _fire(
            model, full, group, out_atoms, converged, steps, energies, fmax, max_steps, dt, dt_max, max_step,
            snapshots, snapshot_every,
        )  # fmt: skip
    return RelaxResult(out_atoms, converged, steps, energies, snapshots)


def _subset(full: AtomsBatch, positions: torch.Tensor, active: torch.Tensor) -> tuple[AtomsBatch, torch.Tensor]:
    """Batch of the active structures (mask (B,)) at `positions`; returns it and its atom mask (N,)."""
    atom_mask = active[full.batch]
    idx = torch.nonzero(active).squeeze(1)
    remap = torch.full((full.num_structures,), -1, dtype=torch.long, device=full.device)
    remap[idx] = torch.arange(idx.numel(), device=full.device)
    sub = AtomsBatch(
        positions=positions[atom_mask],
        atomic_numbers=full.atomic_numbers[atom_mask],
        cell=full.cell[idx],
        pbc=full.pbc[idx],
        batch=remap[full.batch[atom_mask]],
        natoms=full.natoms[idx],
        tags=full.tags[atom_mask],
        fixed=full.fixed[atom_mask],
    )
    return sub, atom_mask


def _fire(model, full, group, out_atoms, converged, steps, energies, fmax, max_steps, dt0, dt_max, max_step,
          snapshots=None, every=None):  # fmt: skip
    bsz = full.num_structures
    dev, dtype = full.device, full.dtype
    pos = full.positions.detach().clone()
    vel = torch.zeros_like(pos)
    dt = torch.full((bsz,), dt0, dtype=dtype, device=dev)
    alpha = torch.full((bsz,), 0.1, dtype=dtype, device=dev)
    n_pos = torch.zeros(bsz, dtype=torch.long, device=dev)
    active = torch.ones(bsz, dtype=torch.bool, device=dev)
    n_steps = torch.zeros(bsz, dtype=torch.long, device=dev)
    last_forces = torch.zeros_like(pos)
    last_energy = torch.full((bsz,), float("nan"), dtype=dtype, device=dev)
    done = torch.zeros(bsz, dtype=torch.bool, device=dev)
    first = True
    while bool(active.any()):
        sub, amask = _subset(full, pos, active)
        out = model.predict(sub, forces=True)
        f = out[FORCES].detach().to(dtype).clone()
        f[sub.fixed] = 0.0
        idx = torch.nonzero(active).squeeze(1)
        last_forces[amask] = f
        last_energy[idx] = out[ENERGY].detach().to(dtype)
        n_steps[idx] += 1
        fnorm = torch.linalg.norm(f, dim=1)
        fmax_s = torch.zeros(idx.numel(), dtype=dtype, device=dev).scatter_reduce(
            0, sub.batch, fnorm, "amax", include_self=True
        )
        conv_now = fmax_s < fmax
        done[idx[conv_now]] = True
        # a structure whose forces are not finite stops where it is (unconverged) instead of moving to NaN
        # positions that would break every later step of its batch
        stop = conv_now | (n_steps[idx] >= max_steps) | ~torch.isfinite(fmax_s)
        if snapshots is not None:
            _keep_snapshots(snapshots, group, idx, n_steps[idx], stop, pos[amask], sub.natoms, every)
        # FIRE update for the structures that go on
        v = vel[amask]
        b = sub.batch
        if not first:
            power = torch.zeros(idx.numel(), dtype=dtype, device=dev).index_add(0, b, (f * v).sum(1))
            vnorm = torch.sqrt(torch.zeros_like(power).index_add(0, b, (v * v).sum(1)))
            fn = torch.sqrt(torch.zeros_like(power).index_add(0, b, (f * f).sum(1)))
            a = alpha[idx]
            mix = (a * vnorm / fn.clamp_min(1e-12))[b, None]
            up = power > 0
            v = torch.where(up[b, None], (1 - a)[b, None] * v + mix * f, torch.zeros_like(v))
            grow = up & (n_pos[idx] > 5)
            dt[idx] = torch.where(grow, (dt[idx] * 1.1).clamp_max(dt_max), torch.where(up, dt[idx], dt[idx] * 0.5))
            alpha[idx] = torch.where(grow, a * 0.99, torch.where(up, a, torch.full_like(a, 0.1)))
            n_pos[idx] = torch.where(up, n_pos[idx] + 1, torch.zeros_like(n_pos[idx]))
        v = v + dt[idx][b, None] * f
        dr = dt[idx][b, None] * v
        drn = torch.sqrt(torch.zeros(idx.numel(), dtype=dtype, device=dev).index_add(0, b, (dr * dr).sum(1)))
        scale = torch.where(drn > max_step, max_step / drn.clamp_min(1e-12), torch.ones_like(drn))
        dr = dr * scale[b, None]
        dr[sub.fixed] = 0.0
        keep = ~stop[b]
        vel[amask] = torch.where(keep[:, None], v, torch.zeros_like(v))
        new_pos = pos[amask] + torch.where(keep[:, None], dr, torch.zeros_like(dr))
        pos[amask] = new_pos
        active[idx[stop]] = False
        first = False
    pos_split = full.split_atoms(pos.cpu().double())
    f_split = full.split_atoms(last_forces.cpu().double())
    for k, i in enumerate(group):
        atoms = out_atoms[i]
        atoms.positions = pos_split[k].numpy()
        energy = float(last_energy[k])
        atoms.calc = SinglePointCalculator(atoms, energy=energy, free_energy=energy, forces=f_split[k].numpy())
        converged[i] = bool(done[k])
        steps[i] = int(n_steps[k])
        energies[i] = energy


def _keep_snapshots(snapshots, group, idx, evaluation, stop, positions, natoms, every) -> None:
    """Append (force evaluation − 1, positions) of the active structures `idx` evaluated now whose evaluation is
    a multiple of `every` or their last (`stop`); one host copy per step that keeps any."""
    take = ((evaluation - 1) % every == 0) | stop
    if not bool(take.any()):
        return
    parts = torch.split(positions.detach().cpu().double(), natoms.tolist())
    for k in torch.nonzero(take).squeeze(1).tolist():
        snapshots[group[int(idx[k])]].append((int(evaluation[k]) - 1, parts[k].numpy().copy()))
