"""The reusable model checks (calculators/testing.py) and calculator behaviour on GemNet-OC models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.optimize import BFGS
from gemnet_helpers import tiny_model

from calculators import testing as mc
from calculators.ase_calculator import ModelCalculator
from calculators.batch import AtomsBatch
from calculators.gemnet import GemNetOC, preset
from calculators.hessian import hessian_rows
from calculators.model_api import AtomisticModel
from calculators.neighbors import build_neighbors


def _student(name: str, dtype=torch.float64) -> GemNetOC:
    torch.manual_seed(0)
    return GemNetOC(preset(name)).to(dtype).eval()


MODELS = {
    "student": lambda: _student("gemnet-oc-student"),
    "student-conservative": lambda: _student("gemnet-oc-student-conservative"),
    "student-fast": lambda: _student("gemnet-oc-student-fast"),  # mutual 5 Å / 12-neighbour graph
    "tiny-all-interactions": lambda: tiny_model(),
}
# random-weight direct-force models have no reason to relax: the relaxation check runs on the conservative one
CHECKS = [c for c in mc.ALL_CHECKS if c is not mc.check_relaxation_converges]


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
    return MODELS[request.param]()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_model_checks_gemnet(check, model):
    assert isinstance(model, AtomisticModel)
    check(model)


def test_relaxation_converges_conservative_student():
    mc.check_relaxation_converges(_student("gemnet-oc-student-conservative"))


def test_calculator_reuses_graph_within_skin():
    model = _student("gemnet-oc-student-conservative")
    atoms = mc.pt_slab_o(displace=0.5)
    calc = ModelCalculator(model, device="cpu", dtype=torch.float64, skin=1.0)
    atoms.calc = calc
    opt = BFGS(atoms, logfile=None)
    opt.run(fmax=0.05, steps=25)
    assert calc.model_calls >= 5
    assert calc.neighbor_builds < calc.model_calls / 2
    # the reused candidates give exactly what a fresh search gives
    fresh = model.predict(AtomsBatch.from_atoms(atoms, dtype=torch.float64))
    assert atoms.get_potential_energy() == pytest.approx(float(fresh["energy"][0]), abs=1e-8)


def test_external_neighbor_lists_equal_own_search():
    model = tiny_model()
    structures = mc.sample_structures()
    batch = AtomsBatch.from_atoms(structures, dtype=torch.float64)
    own = model.predict(batch)
    shared = model.predict(batch, neighbors=build_neighbors(batch, model.search_radius + 0.7))
    torch.testing.assert_close(own["energy"], shared["energy"], atol=1e-10, rtol=0)
    torch.testing.assert_close(own["forces"], shared["forces"], atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="too short"):
        model.predict(batch, neighbors=build_neighbors(batch, model.search_radius - 1.0))


def test_hessian_rows_by_double_backward_match_finite_differences():
    model = _student("gemnet-oc-student-conservative")
    batch = AtomsBatch.from_atoms([mc.pt_slab_o(displace=0.5)], dtype=torch.float64)
    rows = torch.tensor([[3 * 12 + 2, 5]])
    h_ad = hessian_rows(model, batch, rows, method="autograd")
    h_fd = hessian_rows(model, batch, rows, method="fd", step=1e-4)
    np.testing.assert_allclose(h_ad.numpy(), h_fd.numpy(), atol=2e-4)


def test_calculators_load_gemnet_checkpoints(tmp_path):
    from test_gemnet_checkpoint import fairchem_style

    from calculators import DistilledCalculator, TeacherCalculator
    from calculators.gemnet import load_checkpoint, save_checkpoint

    student = _student("gemnet-oc-student", torch.float32)
    path = save_checkpoint(student, tmp_path / "student.pt", {"note": "random"})
    teacher_file = tmp_path / "teacher_fairchem.pt"
    torch.save(fairchem_style(tiny_model(dtype=torch.float32)), teacher_file)
    atoms = mc.pt_slab_o(displace=0.5)
    for calc, ref in (
        (DistilledCalculator(str(path), device="cpu"), student),
        (TeacherCalculator(str(teacher_file), device="cpu"), load_checkpoint(teacher_file)),
    ):
        atoms.calc = calc
        direct = ref.predict(AtomsBatch.from_atoms(atoms, tags=[atoms.get_tags()]))
        assert atoms.get_potential_energy() == pytest.approx(float(direct["energy"][0]), abs=1e-4)
        np.testing.assert_allclose(atoms.get_forces(apply_constraint=False), direct["forces"].numpy(), atol=1e-4)


def test_zero_net_force_projects_direct_forces():
    """`zero_net_force`: each structure's forces sum to zero, energies unchanged, forces differ from the plain
    direct ones only by that structure's mean force (a batch of two checks the per-structure split)."""
    from gemnet_helpers import pt_slab_o

    torch.manual_seed(0)
    plain = GemNetOC(preset("gemnet-oc-student-fast", zero_net_force=False)).to(torch.float64).eval()
    zeroed = _student("gemnet-oc-student-fast")  # the direct-force presets have it on
    assert zeroed.config.zero_net_force
    zeroed.load_state_dict(plain.state_dict())
    structures = [pt_slab_o(size=(2, 2, 2), seed=1), pt_slab_o(size=(1, 1, 3), seed=2)]
    batch = AtomsBatch.from_atoms(structures, dtype=torch.float64, tags=[a.get_tags() for a in structures])
    a, b = plain.predict(batch), zeroed.predict(batch)
    torch.testing.assert_close(a["energy"], b["energy"])
    assert not torch.allclose(a["forces"], b["forces"])  # random direct forces carry a net force
    for s in range(2):
        m = batch.batch == s
        torch.testing.assert_close(b["forces"][m].sum(0), torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)
        torch.testing.assert_close(b["forces"][m], a["forces"][m] - a["forces"][m].mean(0))


def test_direct_predict_runs_without_autograd_and_returns_plain_tensors():
    """A direct-force model predicts without autograd (inference mode inside `predict`), gives exactly what the
    forward pass gives, and hands back ordinary tensors: a caller may still use them in autograd."""
    from gemnet_helpers import pt_slab_o

    model = _student("gemnet-oc-student-fast")
    atoms = pt_slab_o(size=(2, 2, 2), seed=3)
    batch = AtomsBatch.from_atoms(atoms, dtype=torch.float64, tags=[atoms.get_tags()])
    modes: list[bool] = []

    def record_mode(m: GemNetOC) -> None:
        forward = m.forward

        def recording_forward(*args, **kwargs):
            modes.append(torch.is_inference_mode_enabled())
            return forward(*args, **kwargs)

        m.forward = recording_forward

    conservative = _student("gemnet-oc-student-conservative")
    record_mode(model)
    record_mode(conservative)
    out = model.predict(batch, forces=True, features=True)
    model.predict(batch, forces=False)
    with torch.no_grad():  # forces of a conservative model still need autograd
        conservative.predict(batch, forces=True)
    assert modes == [True, True, False]
    del model.forward
    with torch.no_grad():
        ref = model(batch, forces=True)
    torch.testing.assert_close(out["energy"], ref["energy"])
    torch.testing.assert_close(out["forces"], ref["forces"])
    for v in [out["energy"], out["forces"], out["node_features"], *out["h_blocks"], *out["m_blocks"]]:
        assert not v.is_inference() and not v.requires_grad
    w = torch.ones(1, dtype=torch.float64, requires_grad=True)
    (w * out["energy"] * out["forces"].square().sum()).sum().backward()  # multiplications save their inputs
    assert w.grad is not None and torch.isfinite(w.grad).all()
