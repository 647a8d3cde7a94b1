"""Reusable checks of the `AtomisticModel` contract (torch-sim `testing.py` style) and a tiny test model, shipped
with the package so that any model, including one from outside this project, can be checked:

    from calculators import testing
    for check in testing.ALL_CHECKS:
        check(my_model)  # AssertionError on a broken contract

The project's tests run them on the `MorsePairModel` below, SevenNet-0, the GemNet-OC presets and the shipped
student. `pt_slab_o()` and `sample_structures()` are the structures they use.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111, molecule
from ase.constraints import FixAtoms
from ase.data import covalent_radii
from ase.optimize import BFGS

from calculators.ase_calculator import ModelCalculator
from calculators.batch import AtomsBatch
from calculators.model_api import (
    ATOM_ENERGIES,
    EDGE_INDEX,
    ENERGY,
    FORCES,
    NODE_FEATURES,
    AtomisticModel,
    NeighborCandidates,
)
from calculators.neighbors import build_neighbors, select_within


class MorsePairModel(torch.nn.Module):
    """Pairwise Morse potential with a cosine cutoff, implementing the full contract (conservative, neighbour
    candidates, create_graph). E = Σ_{i<j} D[(1 − e^{−a(r−r0)})² − 1]·fc(r), r0 = sum of covalent radii (Å).
    Counts `calls` and `neighbor_searches` (searches it did itself because no candidates were passed)."""

    conservative = True
    supports_neighbors = True
    supports_create_graph = True

    def __init__(self, cutoff: float = 5.0, depth: float = 0.5, alpha: float = 1.5) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.max_atomic_number = 94
        self.register_buffer("r0", torch.as_tensor(covalent_radii[:95], dtype=torch.float32))
        self.depth = depth
        self.alpha = alpha
        self.calls = 0
        self.neighbor_searches = 0

    def predict(
        self,
        batch: AtomsBatch,
        *,
        forces: bool = True,
        features: bool = False,
        neighbors: NeighborCandidates | None = None,
        create_graph: bool = False,
    ) -> dict[str, torch.Tensor]:
        self.calls += 1
        if neighbors is None:
            neighbors = build_neighbors(batch, self.cutoff)
            self.neighbor_searches += 1
        pos = batch.positions
        if forces and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        view = replace(batch, positions=pos)
        with torch.enable_grad():
            edge_index, vec = select_within(neighbors, view, self.cutoff)
            i, j = edge_index
            r = torch.linalg.norm(vec, dim=-1)
            z = batch.atomic_numbers
            r0 = (self.r0[z[i]] + self.r0[z[j]]).to(pos.dtype)
            fc = 0.5 * (torch.cos(torch.pi * r / self.cutoff) + 1.0)
            pair = self.depth * ((1 - torch.exp(-self.alpha * (r - r0))) ** 2 - 1) * fc
            atom_e = torch.zeros(batch.num_atoms, dtype=pos.dtype, device=pos.device).index_add(0, i, 0.5 * pair)
            energy = torch.zeros(batch.num_structures, dtype=pos.dtype, device=pos.device)
            energy = energy.index_add(0, batch.batch, atom_e)
            out = {ENERGY: energy, ATOM_ENERGIES: atom_e}
            if forces:
                out[FORCES] = -torch.autograd.grad(energy.sum(), pos, create_graph=create_graph)[0]
        if features:
            k = torch.tensor([0.5, 1.0, 2.0], dtype=pos.dtype, device=pos.device)
            dens = (torch.exp(-r[:, None] * k) * fc[:, None]).detach()
            out[NODE_FEATURES] = torch.zeros(batch.num_atoms, 3, dtype=pos.dtype).index_add(0, i, dens)
            out[EDGE_INDEX] = edge_index
        return out if create_graph else {key: v.detach() for key, v in out.items()}


# ---------------------------------------------------------------- structures
def pt_slab_o(displace: float = 0.0) -> Atoms:
    """Pt(111) 2x2x3 with O in the fcc hollow at 1.2 Å, bottom layer fixed (13 atoms)."""
    slab = fcc111("Pt", (2, 2, 3), a=3.92, vacuum=6.0)
    add_adsorbate(slab, "O", 1.2, "fcc")
    slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))
    ase_tags = slab.get_tags()  # ase: 0 adsorbate, 1 top layer ... 3 bottom → GemNet convention
    slab.set_tags(np.select([ase_tags == 0, ase_tags == 1], [2, 1], 0))
    slab.positions[-1] += [0.1 * displace, 0.0, 0.3 * displace]
    return slab


def sample_structures() -> list[Atoms]:
    """A slab with O, a periodic bulk cell and a molecule: different sizes and periodicities."""
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    cu.rattle(0.05, seed=1)
    h2o = molecule("H2O")
    return [pt_slab_o(displace=0.5), cu, h2o]


def _predict(model: AtomisticModel, atoms: Atoms | list[Atoms], features: bool = False) -> dict[str, torch.Tensor]:
    dtype = getattr(model, "dtype", torch.float32)
    batch = AtomsBatch.from_atoms(atoms, dtype=dtype if isinstance(dtype, torch.dtype) else torch.float32)
    return model.predict(batch, forces=True, features=features)


def _tol(model: AtomisticModel, scale: float = 1.0) -> float:
    dtype = getattr(model, "dtype", torch.float32)
    return scale * (1e-7 if dtype == torch.float64 else 2e-4)


# ---------------------------------------------------------------- checks
def check_energy_forces_shapes(model: AtomisticModel) -> None:
    """ENERGY (B,), FORCES (N,3), ATOM_ENERGIES (N,) summing to ENERGY, NODE_FEATURES (N,F), EDGE_INDEX."""
    structures = sample_structures()
    n = sum(len(a) for a in structures)
    out = _predict(model, structures, features=True)
    assert out[ENERGY].shape == (3,)
    assert out[FORCES].shape == (n, 3)
    assert out[ATOM_ENERGIES].shape == (n,)
    assert out[NODE_FEATURES].shape[0] == n and out[NODE_FEATURES].dim() == 2
    ei = out[EDGE_INDEX]
    assert ei.dim() == 2 and ei.shape[0] == 2 and ei.dtype == torch.long
    assert int(ei.min()) >= 0 and int(ei.max()) < n
    assert all(torch.isfinite(out[k]).all() for k in (ENERGY, FORCES, ATOM_ENERGIES, NODE_FEATURES))
    sums = torch.zeros(3, dtype=out[ENERGY].dtype).index_add(
        0,
        torch.repeat_interleave(torch.arange(3), torch.tensor([len(a) for a in structures])),
        out[ATOM_ENERGIES],
    )
    torch.testing.assert_close(sums, out[ENERGY], atol=_tol(model, 50), rtol=1e-5)


def check_energy_only_matches(model: AtomisticModel) -> None:
    """`predict(forces=False)` (the screening single-point path, which may skip force-only layers) gives the
    energies and per-atom energies of a force call, and no forces."""
    structures = sample_structures()
    dtype = getattr(model, "dtype", torch.float32)
    batch = AtomsBatch.from_atoms(structures, dtype=dtype if isinstance(dtype, torch.dtype) else torch.float32)
    full = model.predict(batch, forces=True)
    with torch.no_grad():
        energy_only = model.predict(batch, forces=False)
    assert FORCES not in energy_only or energy_only[FORCES] is None
    torch.testing.assert_close(energy_only[ENERGY], full[ENERGY], atol=_tol(model, 10), rtol=1e-6)
    if ATOM_ENERGIES in energy_only and ATOM_ENERGIES in full:
        torch.testing.assert_close(energy_only[ATOM_ENERGIES], full[ATOM_ENERGIES], atol=_tol(model, 10), rtol=1e-6)


def check_forces_are_gradient(model: AtomisticModel, step: float = 1e-2, atol: float = 0.02) -> None:
    """Forces equal −dE/dx by central finite differences (only for conservative models)."""
    if not model.conservative:
        return
    atoms = pt_slab_o(displace=0.5)
    f = _predict(model, atoms)[FORCES].double().numpy()
    for atom, axis in [(len(atoms) - 1, 0), (len(atoms) - 1, 2), (9, 1), (0, 2)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[atom, axis] += sign * step
            energies.append(float(_predict(model, moved)[ENERGY][0]))
        fd = -(energies[0] - energies[1]) / (2 * step)
        assert abs(fd - f[atom, axis]) < atol, (atom, axis, fd, f[atom, axis])


def check_batch_equals_single(model: AtomisticModel) -> None:
    """Predicting a batch gives the same energies and forces as predicting each structure alone."""
    structures = sample_structures()
    out = _predict(model, structures)
    forces = torch.split(out[FORCES], [len(a) for a in structures])
    for k, atoms in enumerate(structures):
        single = _predict(model, atoms)
        torch.testing.assert_close(out[ENERGY][k], single[ENERGY][0], atol=_tol(model, 20), rtol=1e-6)
        torch.testing.assert_close(forces[k], single[FORCES], atol=_tol(model, 5), rtol=1e-4)


def check_invariances(model: AtomisticModel) -> None:
    """Energy invariant and forces covariant under rotation; invariant under translation, permutation of atoms
    and shifting an atom by a lattice vector."""
    atoms = pt_slab_o(displace=0.5)
    ref = _predict(model, atoms)
    e0, f0 = ref[ENERGY][0], ref[FORCES].double().numpy()
    etol, ftol = _tol(model, 20), 2e-3 if getattr(model, "dtype", torch.float32) == torch.float32 else 1e-6
    rot = atoms.copy()
    angle = np.deg2rad(37.0)
    rmat = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.0]])
    rmat = rmat @ np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    rot.positions = atoms.positions @ rmat.T
    rot.cell = atoms.cell[:] @ rmat.T
    out = _predict(model, rot)
    torch.testing.assert_close(out[ENERGY][0], e0, atol=etol, rtol=1e-6)
    np.testing.assert_allclose(out[FORCES].double().numpy(), f0 @ rmat.T, atol=ftol)
    moved = atoms.copy()
    moved.positions += [1.3, -0.7, 0.4]
    out = _predict(model, moved)
    torch.testing.assert_close(out[ENERGY][0], e0, atol=etol, rtol=1e-6)
    np.testing.assert_allclose(out[FORCES].double().numpy(), f0, atol=ftol)
    perm = np.random.default_rng(0).permutation(len(atoms))
    out = _predict(model, atoms[perm])
    torch.testing.assert_close(out[ENERGY][0], e0, atol=etol, rtol=1e-6)
    np.testing.assert_allclose(out[FORCES].double().numpy(), f0[perm], atol=ftol)
    shifted = atoms.copy()
    shifted.positions[3] += atoms.cell[0] - atoms.cell[1]
    out = _predict(model, shifted)
    torch.testing.assert_close(out[ENERGY][0], e0, atol=etol, rtol=1e-6)
    np.testing.assert_allclose(out[FORCES].double().numpy(), f0, atol=ftol)


def check_relaxation_converges(model: AtomisticModel, fmax: float = 0.05, steps: int = 200) -> None:
    """An ASE BFGS relaxation of Pt(111)+O (displaced O, bottom layer fixed) converges below `fmax` eV/Å."""
    atoms = pt_slab_o(displace=1.0)
    atoms.calc = ModelCalculator(model, device="cpu", dtype=getattr(model, "dtype", torch.float32))
    opt = BFGS(atoms, logfile=None)
    assert opt.run(fmax=fmax, steps=steps), "relaxation did not converge"
    assert np.abs(atoms.get_forces()).max() < fmax * 1.01
    fixed = atoms.constraints[0].get_indices()
    np.testing.assert_allclose(atoms.positions[fixed], pt_slab_o(displace=1.0).positions[fixed])


def check_ase_caching(model: AtomisticModel) -> None:
    """ASE's check_state caching: a second energy/forces request without changes does not call the model."""
    atoms = pt_slab_o()
    calc = ModelCalculator(model, device="cpu", dtype=getattr(model, "dtype", torch.float32))
    atoms.calc = calc
    e1 = atoms.get_potential_energy()
    atoms.get_forces()
    atoms.calc.get_property("energies", atoms)
    e2 = atoms.get_potential_energy()
    assert calc.model_calls == 1 and e1 == e2
    atoms.positions[-1, 2] += 0.05
    atoms.get_potential_energy()
    assert calc.model_calls == 2


# every check, for parametrised tests (relaxation last: it needs a sensible, conservative model)
ALL_CHECKS = [
    check_energy_forces_shapes,
    check_energy_only_matches,
    check_forces_are_gradient,
    check_batch_equals_single,
    check_invariances,
    check_ase_caching,
    check_relaxation_converges,
]
