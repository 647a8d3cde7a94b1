"""Throughput of batched prediction and relaxation (structures per minute) with a teacher on this machine.

Run: ``python benchmarks/predict_throughput.py [--teacher sevennet-0] [--n 32] [--batch-atoms N]``
Structures: Pt(111) 3x3x4 + O (37 atoms), O rattled; compares `predict_many` with a one-by-one ASE loop and
times `relax_many` (FIRE, fmax 0.05 eV/Å).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from ase.build import add_adsorbate, fcc111
from ase.constraints import FixAtoms

from calculators import TeacherCalculator, predict_many, relax_many


def slabs(n: int, seed: int = 0) -> list:
    """`n` Pt(111) 3x3x4 + O slabs, O displaced randomly by up to 0.3 Å, bottom two layers fixed."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        slab = fcc111("Pt", (3, 3, 4), a=3.98, vacuum=8.0)
        add_adsorbate(slab, "O", 1.2, "fcc")
        slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag > 2]))
        slab.positions[-1] += rng.uniform(-0.3, 0.3, 3)
        out.append(slab)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="sevennet-0")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch-atoms", type=int, default=None)
    parser.add_argument("--relax", type=int, default=8, help="structures to relax (0: skip)")
    args = parser.parse_args()
    calc = TeacherCalculator(args.teacher, device="cpu")
    model = calc.model
    structures = slabs(args.n)
    t = time.perf_counter()
    for atoms in structures:
        atoms.calc = calc
        atoms.get_forces()
    loop_s = time.perf_counter() - t
    t = time.perf_counter()
    predict_many(model, structures, batch_atoms=args.batch_atoms, progress=False)
    batched_s = time.perf_counter() - t
    report = {
        "teacher": args.teacher,
        "structures": args.n,
        "atoms_each": len(structures[0]),
        "torch_threads": torch.get_num_threads(),
        "ase_loop_per_minute": round(60 * args.n / loop_s, 1),
        "predict_many_per_minute": round(60 * args.n / batched_s, 1),
    }
    if args.relax:
        t = time.perf_counter()
        res = relax_many(model, structures[: args.relax], fmax=0.05, max_steps=200, batch_atoms=args.batch_atoms)
        report["relax_many_seconds"] = round(time.perf_counter() - t, 1)
        report["relax_many_converged"] = f"{sum(res.converged)}/{args.relax}"
        report["relax_many_steps"] = res.steps
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
