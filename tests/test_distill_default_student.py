"""The shipped default student: a plain project checkpoint with its recipe and held-out numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gemnet_helpers import pt_slab_o

from calculators.batch import AtomsBatch

PATH = Path(__file__).resolve().parents[1] / "calculators" / "weights" / "default_student.pt"


@pytest.mark.skipif(not PATH.is_file(), reason="no default student shipped")
def test_default_student_checkpoint():
    from calculators.gemnet.checkpoint import load_project_checkpoint

    raw = torch.load(PATH, weights_only=True)
    meta = raw["metadata"]
    assert {"recipe", "validation", "teacher", "heldout"} <= set(meta)
    assert meta["heldout"]["force_mae_meV_per_A"] < meta["task_only_heldout"]["force_mae_meV_per_A"] or (
        meta["heldout"]["energy_mae_meV_per_atom"] < meta["task_only_heldout"]["energy_mae_meV_per_atom"]
    )
    model, _ = load_project_checkpoint(PATH)
    assert 0.9e6 < model.num_parameters() < 1.2e6
    assert not model.config.enforce_max_neighbors_strictly  # rotation-invariant neighbour cut (see metadata)
    shipped = meta["heldout_shipped_config"]
    assert shipped["force_mae_meV_per_A"] < meta["task_only_heldout"]["force_mae_meV_per_A"]
    out = model.predict(AtomsBatch.from_atoms([pt_slab_o()]))
    assert torch.isfinite(out["energy"]).all()
    assert -9.0 < float(out["energy"][0]) / 13 < -2.0  # SevenNet-0 scale total energies (eV/atom)


@pytest.mark.skipif(not PATH.is_file(), reason="no default student shipped")
def test_distilled_calculator_with_no_arguments_uses_the_shipped_student():
    from calculators import DistilledCalculator
    from calculators.gemnet.checkpoint import load_project_checkpoint

    atoms = pt_slab_o()
    atoms.calc = DistilledCalculator(device="cpu")
    energy = atoms.get_potential_energy()
    model, _ = load_project_checkpoint(PATH)
    direct = model.predict(AtomsBatch.from_atoms([atoms], tags=[atoms.get_tags()]))["energy"]
    assert energy == pytest.approx(float(direct[0]), abs=1e-4)
    assert atoms.get_forces().shape == (len(atoms), 3)


@pytest.mark.skipif(not PATH.is_file(), reason="no default student shipped")
@pytest.mark.parametrize(
    "check", ["check_energy_forces_shapes", "check_batch_equals_single", "check_invariances", "check_ase_caching"]
)
def test_shipped_student_model_checks(check):
    from calculators import testing as mc
    from calculators.gemnet.checkpoint import load_project_checkpoint

    model, _ = load_project_checkpoint(PATH)
    getattr(mc, check)(model.eval())
