"""O on Pt(111): what each available teacher predicts for the fcc-hollow adsorption energy.

Run: ``python benchmarks/teacher_adsorption.py [--teacher sevennet-0] [--size 3] [--layers 4]``

Protocol (all with the teacher itself, ASE BFGS, fmax 0.02 eV/Å): the fcc lattice constant minimising the
teacher's bulk Pt energy (parabola fit over ±3 %), a Pt(111) (size x size x layers) slab with 12 Å vacuum
and the bottom half fixed, O in the fcc hollow (1/size² ML), gas molecules O2, H2O and H2 relaxed in vacuum
(no spin: the potentials have none). Reported:
    E_ads(½O2)      = E(slab+O) − E(slab) − ½ E(O2)
    E_ads(H2O−H2)   = E(slab+O) − E(slab) − [E(H2O) − E(H2)]
Literature DFT (GGA) for O/Pt(111) fcc at 1/4–1/9 ML: about −0.9 to −1.3 eV vs ½O2.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111, molecule
from ase.constraints import FixAtoms
from ase.optimize import BFGS

from calculators import TeacherCalculator

_UNCONVERGED: list[str] = []


def _energy(atoms: Atoms, calc, fmax: float | None = 0.02, steps: int = 500) -> float:
    atoms.calc = calc
    if fmax is not None and not BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps):
        _UNCONVERGED.append(atoms.get_chemical_formula())
    return float(atoms.get_potential_energy())


def lattice_constant(calc, guess: float = 3.92) -> float:
    """fcc Pt lattice constant (Å) minimising the teacher's bulk energy (parabola through ±3 %)."""
    scales = np.linspace(0.97, 1.03, 7)
    energies = [_energy(bulk("Pt", "fcc", a=guess * s, cubic=True), calc, fmax=None) for s in scales]
    c2, c1, _ = np.polyfit(scales, energies, 2)
    return float(guess * -c1 / (2 * c2))


def o_on_pt111(
    teacher: str = "sevennet-0", size: int = 3, layers: int = 4, fmax: float = 0.02, a: float | None = None
) -> dict:
    """Adsorption energies (eV) of O in the Pt(111) fcc hollow for `teacher` (registry name or path); `a` (Å)
    fixes the Pt lattice constant instead of the teacher's own."""
    calc = TeacherCalculator(teacher, device="cpu")
    _UNCONVERGED.clear()
    t0 = time.perf_counter()
    a = a or lattice_constant(calc)
    slab = fcc111("Pt", (size, size, layers), a=a, vacuum=12.0)
    slab.set_constraint(FixAtoms(indices=[at.index for at in slab if at.tag > layers // 2]))
    layer = slab.get_tags().copy()  # ase.build numbers layers 1 (top) ... layers
    slab.set_tags(np.where(layer == 1, 1, 0))  # GemNet-OC tags: 1 surface, 0 below
    e_slab = _energy(slab.copy(), calc, fmax)
    ads = slab.copy()
    add_adsorbate(ads, "O", 1.2, "fcc")
    ads.set_constraint(FixAtoms(indices=list(slab.constraints[0].get_indices())))
    ads[-1].tag = 2
    e_ads = _energy(ads, calc, fmax)
    top = [at.index for at in ads if at.tag == 1]
    gas, mols = {}, {}
    for name in ("O2", "H2O", "H2"):
        mols[name] = mol = molecule(name)
        mol.center(vacuum=8.0)
        gas[name] = _energy(mol, calc, fmax)
    o2 = mols["O2"]
    t_single = time.perf_counter()
    calc.reset()
    ads.calc = calc
    ads.get_potential_energy()
    t_one = time.perf_counter() - t_single
    return {
        "teacher": str(teacher),
        "lattice_constant_A": round(a, 4),
        "slab": f"Pt(111) {size}x{size}x{layers}, O fcc hollow, coverage 1/{size * size} ML",
        "natoms": len(ads),
        "E_ads_vs_half_O2_eV": round(e_ads - e_slab - 0.5 * gas["O2"], 3),
        "E_ads_vs_H2O_minus_H2_eV": round(e_ads - e_slab - (gas["H2O"] - gas["H2"]), 3),
        "O_height_above_top_layer_A": round(float(ads.positions[-1, 2] - ads.positions[top, 2].mean()), 3),
        "O2_bond_A": round(float(o2.get_distance(0, 1)), 3),
        "unconverged": list(_UNCONVERGED),
        "seconds_total": round(time.perf_counter() - t0, 1),
        "seconds_per_call_37_atoms" if len(ads) == 37 else "seconds_per_call": round(t_one, 3),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", action="append", help="registry name or checkpoint (repeatable)")
    parser.add_argument("--size", type=int, default=3)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--a", type=float, default=None, help="fixed Pt lattice constant, Å")
    args = parser.parse_args()
    for teacher in args.teacher or ["sevennet-0"]:
        print(json.dumps(o_on_pt111(teacher, args.size, args.layers, a=args.a), indent=1))


if __name__ == "__main__":
    main()
