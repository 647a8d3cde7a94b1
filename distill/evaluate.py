"""Accuracy of a model against cached labels, and adsorption-energy ranking against the teacher."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from calculators.batched import predict_many
from calculators.keys import DFT_ENERGY, DFT_FORCES, ENERGY, FORCES, PAIR_ENERGY
from calculators.loading import load_model
from calculators.stats import spearman
from distill.data import heldout_adsorption_systems
from distill.labels import LabelCache, collate
from distill.pairs import with_partners


def evaluate_records(
    model: Any, records: Sequence[dict[str, torch.Tensor]], *, batch_size: int = 16, targets: str = "teacher"
) -> dict[str, float]:
    """Energy MAE (eV/atom and eV/structure) and force MAE (eV/Å, per component) of `model` on cached records;
    with teacher targets and records carrying adsorbate-removal pairs (`distill.pairs`) also "pair_mae" (eV, the
    interaction energies) and "num_pairs".

    `targets`: "teacher" labels or "dft" ("dft_energy"/"dft_forces").
    """
    e_key, f_key = (ENERGY, FORCES) if targets == "teacher" else (DFT_ENERGY, DFT_FORCES)
    dtype, device = _dtype_device(model)
    e_err, e_err_atom, f_err = [], [], []
    pair_err = None
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    try:
        for lo in range(0, len(records), batch_size):
            batch, labels = collate(records[lo : lo + batch_size], dtype=dtype, device=device)
            out = model.predict(batch, forces=True)
            de = (out[ENERGY] - labels[e_key]).abs().double()
            e_err.append(de)
            e_err_atom.append(de / batch.natoms.double())
            f_err.append((out[FORCES] - labels[f_key]).abs().double().reshape(-1))
        if targets == "teacher" and any(PAIR_ENERGY in r for r in records):
            pair_err = interaction_energy_errors(model, records, batch_size=batch_size)
    finally:
        if was_training:
            model.train()
    result = {
        "energy_mae_per_atom": float(torch.cat(e_err_atom).mean()),
        "energy_mae": float(torch.cat(e_err).mean()),
        "force_mae": float(torch.cat(f_err).mean()),
        "num_structures": len(records),
    }
    if pair_err is not None:
        result.update(pair_mae=float(pair_err.mean()), num_pairs=len(pair_err))
    return result


def interaction_energy_errors(
    model: Any, records: Sequence[dict[str, torch.Tensor]], *, batch_size: int = 16
) -> torch.Tensor:
    """|ΔE_model − ΔE_teacher| (eV) of the interaction energy E(adslab) − E(stripped slab) for every record with
    pair labels (`distill.pairs`; empty when none has)."""
    paired = [r for r in records if PAIR_ENERGY in r]
    dtype, device = _dtype_device(model)
    errs = []
    for lo in range(0, len(paired), batch_size):
        both, index = with_partners(paired[lo : lo + batch_size])
        batch, labels = collate(both, dtype=dtype, device=device)
        energy = model.predict(batch, forces=False)[ENERGY].double()
        target = labels[ENERGY].double()
        a, s = index[:, 0].to(energy.device), index[:, 1].to(energy.device)
        errs.append(((energy[a] - energy[s]) - (target[a] - target[s])).abs().cpu())
    return torch.cat(errs) if errs else torch.zeros(0, dtype=torch.float64)


def _dtype_device(model: Any) -> tuple[torch.dtype, Any]:
    """The dtype and device of a torch model's parameters (float32 on CPU for other models)."""
    if isinstance(model, torch.nn.Module):
        p = next(model.parameters())
        return p.dtype, p.device
    return torch.float32, "cpu"


def adsorption_energies(model: Any, systems: Sequence[Any], batch_size: int = 16) -> list[float]:
    """Single-point adsorption energies (eV) of `systems` (AdsorptionSystem) with `model` (unrelaxed geometries)."""
    gas = {}
    for s in systems:
        gas.update(s.gas)
    names = sorted(gas)
    structures = [s.adslab for s in systems] + [s.slab for s in systems] + [gas[g] for g in names]
    res = predict_many(model, structures, forces=False, progress=False)
    energies = [float(r["energy"]) for r in res]
    n = len(systems)
    e_gas = dict(zip(names, energies[2 * n :], strict=True))
    return [s.adsorption_energy(energies[i], energies[n + i], e_gas) for i, s in enumerate(systems)]


def heldout_spearman(
    model: Any, teacher: Any, n: int, seed: int = 12345, reference: Sequence[float] | None = None
) -> float:
    """Spearman ρ between `model`'s and the teacher's single-point adsorption energies on `n` held-out systems.

    `teacher`: an AtomisticModel or a registry name; `reference`: precomputed teacher energies (skips the teacher).
    """
    systems = heldout_adsorption_systems(n, seed)
    if reference is None:
        reference = teacher_adsorption_energies(teacher, systems)
    return spearman(adsorption_energies(model, systems), reference)


def teacher_adsorption_energies(teacher: Any, systems: Sequence[Any]) -> list[float]:
    """Adsorption energies (eV) of `systems` with the teacher (an AtomisticModel, registry name or checkpoint)."""
    return adsorption_energies(load_model(teacher), systems)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike, cache: str | os.PathLike, *, adsorption: int = 0, teacher: Any = "sevennet-0"
) -> dict[str, float]:
    """`evaluate_records` of a model (anything `calculators.load_model` takes) on a label cache and, with
    `adsorption` > 0, its adsorption-energy Spearman against the teacher on that many held-out systems."""
    records = LabelCache(cache).records()  # first: a missing or incomplete cache fails before any model loads
    model = load_model(checkpoint)
    result = evaluate_records(model, records)
    if adsorption:
        result["adsorption_spearman"] = heldout_spearman(model, teacher, adsorption)
    return result
