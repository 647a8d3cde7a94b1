"""Relaxations that cannot break a run: `robust_evaluator(ev)` wraps an `Evaluator` so that a relaxation which
raises or ends with a non-finite energy or position (a model far outside its training data can do both) comes
back as *not converged* at its starting geometry with the starting single-point energy — the screening runner then
counts it as a "not converged" anomaly (CatBench class: unphysical relaxation) instead of stopping or writing NaN.

The number of steps stays capped by the run's ``--max-steps``; FIRE's 0.2 Å step limit bounds every move.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from ase import Atoms

from calculators.batch import StructureError
from screening.evaluators import Evaluator, RelaxOutcome

_FAILURES = (StructureError, RuntimeError, FloatingPointError, ValueError, OverflowError)


def _finite(outcome: RelaxOutcome) -> bool:
    return math.isfinite(outcome.energy) and bool(np.all(np.isfinite(np.asarray(outcome.positions, dtype=float))))


def robust_evaluator(ev: Evaluator) -> Evaluator:
    """A copy of `ev` whose relaxations never raise nor return non-finite results (see module docstring);
    `description["relax_failures"]` counts the structures that fell back to their starting point; `ev.calls` keeps
    counting the calls."""
    if ev.relax_fn is None:
        return ev
    base_relax, base_energy = ev.relax_fn, ev.energy_fn
    description = dict(ev.description)
    description.setdefault("relax_failures", 0)

    def fallback(atoms: Atoms, steps: int, why: str) -> RelaxOutcome:
        description["relax_failures"] += 1
        print(f"warning: relaxation of {atoms.get_chemical_formula()} failed ({why}); counted as not converged",
              file=sys.stderr)  # fmt: skip
        try:
            energy = float(base_energy([atoms])[0])
        except _FAILURES:
            energy = math.nan
        return RelaxOutcome(energy, False, steps, atoms.positions.copy())

    def relax(atoms_list: Sequence[Atoms], fmax: float, max_steps: int) -> list[RelaxOutcome]:
        atoms_list = list(atoms_list)
        ev.calls += 1  # the wrapped evaluator counts these calls too (what `screen run` prints)
        try:
            with np.errstate(over="raise", invalid="raise"):
                outs = base_relax(atoms_list, fmax, max_steps)
        except _FAILURES as err:
            if len(atoms_list) > 1:  # find the culprit: one at a time
                return [o for a in atoms_list for o in relax([a], fmax, max_steps)]
            return [fallback(atoms_list[0], max_steps, f"{type(err).__name__}: {err}")]
        pairs = zip(atoms_list, outs, strict=True)
        return [o if _finite(o) else fallback(a, o.steps, "non-finite result") for a, o in pairs]

    return replace(ev, relax_fn=relax, description=description, calls=0)
