"""Perturbations for distillation data: rattles, small random strains, snapshots along a relaxation."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator

from screening.structures.strain import apply_inplane_strain


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def rattle(atoms: Atoms, stdev: float, seed: int | np.random.Generator | None = 0) -> Atoms:
    """Copy with Gaussian displacements of `stdev` Å on every atom that its constraints let move (FixAtoms atoms
    stay in place)."""
    out = atoms.copy()
    out.rattle(stdev, rng=_rng(seed))
    out.info["rattle"] = float(stdev)
    return out


def random_strain(atoms: Atoms, max_percent: float, seed: int | np.random.Generator | None = 0) -> Atoms:
    """Copy of a slab under a random symmetric in-plane strain, components uniform in ±`max_percent` %."""
    rng = _rng(seed)
    e = rng.uniform(-max_percent, max_percent, size=3) / 100.0
    eps = np.array([[e[0], e[2]], [e[2], e[1]]])
    out = apply_inplane_strain(atoms, eps)
    out.info["perturb_strain"] = f"{e[0]:.5f},{e[1]:.5f},{e[2]:.5f}"
    return out


def relaxation_snapshots(
    atoms: Atoms,
    calc: BaseCalculator,
    steps: int = 20,
    fmax: float = 0.05,
    every: int = 1,
    optimizer: str = "BFGS",
) -> list[Atoms]:
    """Snapshots every `every` steps along a relaxation with `calc` (up to `steps` steps, fmax eV/Å).

    Each snapshot carries the calculator's energy (eV) and forces (eV/Å) as a SinglePointCalculator and
    info['relax_step'].
    """
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.optimize import BFGS, FIRE

    opt_cls = {"BFGS": BFGS, "FIRE": FIRE}[optimizer]
    work = atoms.copy()
    work.calc = calc
    snaps: list[Atoms] = []
    opt = opt_cls(work, logfile=None)

    def grab() -> None:
        if opt.nsteps % every:
            return
        snap = work.copy()
        snap.calc = SinglePointCalculator(
            snap, energy=work.get_potential_energy(), forces=work.get_forces(apply_constraint=False)
        )
        snap.info["relax_step"] = int(opt.nsteps)
        snaps.append(snap)

    opt.attach(grab, interval=1)
    opt.run(fmax=fmax, steps=steps)
    return snaps
