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
    """Recipe, data description, teacher and benchmark numbers travel with the weights; the model is the fast
    preset with element references and fitted scale factors."""
    from calculators.gemnet.checkpoint import load_project_checkpoint

    raw = torch.load(PATH, weights_only=True)
    meta = raw["metadata"]
    assert {"recipe", "validation", "teacher", "data", "benchmark", "remake"} <= set(meta)
    assert meta["teacher"]["name"] == "sevennet-0"
    assert meta["data"]["training_records"] > 5000  # order 10^4 labelled structures, not 10^2
    names = {t["name"] for t in meta["benchmark"]["targets"]}
    assert any("single point" in n for n in names) and any("ms" in t["unit"] for t in meta["benchmark"]["targets"])
    model, _ = load_project_checkpoint(PATH)
    assert 0.5e6 < model.num_parameters() < 2.5e6  # the fast preset, widened by `distill widen` (1.9 M)
    assert model.config.zero_net_force or model.conservative  # direct forces ship net-force free
    assert model.config.neighbor_symmetrization == "mutual"  # permutation invariant, few triplets
    assert not model.config.enforce_max_neighbors_strictly  # rotation-invariant neighbour cut
    refs = model.config.element_references
    assert refs is not None and refs[7] < -1.0 and refs[77] < -1.0  # O and Pt references, eV
    scales = [float(v) for k, v in model.state_dict().items() if k.endswith("scale_factor")]
    assert sum(abs(v - 1.0) > 1e-3 for v in scales) >= len(scales) // 2  # fitted, not left at 1.0
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


@pytest.mark.skipif(not PATH.is_file(), reason="no default student shipped")
def test_shipped_student_relaxes_a_free_water_molecule():
    """A free H2O (ase.build.molecule in a box) relaxes with ASE BFGS to fmax 0.02 eV/Å and its forces sum to
    zero: before `zero_net_force` the direct forces kept a net force that BFGS could not remove."""
    import numpy as np
    from ase.build import molecule
    from ase.optimize import BFGS

    from calculators import DistilledCalculator

    h2o = molecule("H2O")
    h2o.center(vacuum=7.5)
    h2o.calc = DistilledCalculator(device="cpu")
    assert np.abs(h2o.get_forces().sum(axis=0)).max() < 1e-4
    assert BFGS(h2o, logfile=None).run(fmax=0.02, steps=200)
    assert 0.95 < h2o.get_distance(0, 1) < 0.99  # O-H, Å (SevenNet-0: 0.971)
