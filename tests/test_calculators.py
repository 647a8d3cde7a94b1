"""Calculator contract tests on the pure-torch Morse test model (fast, no network)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.optimize import BFGS

import calculators
from calculators import (
    DistilledCalculator,
    ModelCalculator,
    NoDefaultStudentError,
    hessian_rows,
    infer_tags,
    predict_many,
    relax_many,
)
from calculators import testing as mc
from calculators.batch import AtomsBatch, StructureError
from calculators.model_api import AtomisticModel

torch.set_num_threads(1)


@pytest.fixture()
def morse() -> mc.MorsePairModel:
    return mc.MorsePairModel()


@pytest.fixture()
def morse64() -> mc.MorsePairModel:
    model = mc.MorsePairModel()
    model.dtype = torch.float64
    return model.to(torch.float64)


def test_contract_accepts_models_and_rejects_others(morse):
    assert isinstance(morse, AtomisticModel)
    assert not isinstance(object(), AtomisticModel)
    with pytest.raises(TypeError, match="must implement AtomisticModel"):
        ModelCalculator(object())


def test_parameters_follow_ase_conventions(morse64):
    atoms = mc.pt_slab_o()
    calc = ModelCalculator(morse64, device="cpu", dtype=torch.float64, skin=0.3)
    assert calc.parameters == {"device": "cpu", "dtype": "float64", "skin": 0.3}
    assert calc.todict() == {"device": "cpu", "dtype": "float64", "skin": 0.3}  # what differs from the defaults
    atoms.calc = calc
    e64 = atoms.get_potential_energy()
    assert calc.set(skin=0.3) == {}  # no change: results kept, no model call
    atoms.get_potential_energy()
    assert (calc.model_calls, calc.neighbor_builds) == (1, 1)
    assert calc.set(skin=0.6) == {"skin": 0.6} and calc.results == {} and calc.skin == 0.6
    atoms.get_potential_energy()
    assert (calc.model_calls, calc.neighbor_builds) == (2, 2)  # recomputed with new candidates
    calc.set(dtype="float32")
    assert morse64.r0.dtype == torch.float32 and calc.dtype == torch.float32
    assert atoms.get_potential_energy() == pytest.approx(e64, abs=1e-4)
    assert calc.todict() == {"device": "cpu", "skin": 0.6}
    with pytest.raises(ValueError, match="float32 or float64"):
        calc.set(dtype="float16")


@pytest.mark.parametrize(
    "check",
    mc.ALL_CHECKS,
    ids=lambda c: c.__name__,
)
def test_model_checks_morse(check, morse64):
    check(morse64)


def test_skin_reuses_neighbors_during_relaxation(morse):
    atoms = mc.pt_slab_o(displace=1.0)
    calc = ModelCalculator(morse, device="cpu", skin=1.0)
    atoms.calc = calc
    BFGS(atoms, logfile=None).run(fmax=0.05, steps=100)
    assert calc.model_calls > 5
    assert 1 <= calc.neighbor_builds < calc.model_calls / 2, (calc.neighbor_builds, calc.model_calls)
    assert morse.neighbor_searches == 0  # the model never searched itself
    # same energies as a fresh search every call
    fresh = mc.MorsePairModel()
    ref = AtomsBatch.from_atoms(atoms)
    assert abs(fresh.predict(ref)["energy"][0].item() - atoms.get_potential_energy()) < 1e-4


def test_skin_rebuilds_after_large_move_and_cell_change(morse):
    atoms = mc.pt_slab_o()
    calc = ModelCalculator(morse, device="cpu", skin=0.4)
    atoms.calc = calc
    atoms.get_potential_energy()
    atoms.positions[-1, 0] += 0.1
    atoms.get_potential_energy()
    assert calc.neighbor_builds == 1
    atoms.positions[-1, 0] += 0.3  # 0.4 Å in total > skin/2
    atoms.get_potential_energy()
    assert calc.neighbor_builds == 2
    atoms.set_cell(atoms.cell[:] * 1.01, scale_atoms=True)
    atoms.get_potential_energy()
    assert calc.neighbor_builds == 3
    calc0 = ModelCalculator(morse, device="cpu", skin=0.0)
    atoms.calc = calc0
    atoms.get_potential_energy()
    assert calc0.neighbor_builds == 0 and morse.neighbor_searches == 1


def test_calculator_results_and_dtype(morse):
    atoms = mc.pt_slab_o()
    before = torch.get_default_dtype()
    atoms.calc = ModelCalculator(morse, device="cpu", dtype="float64")
    assert torch.get_default_dtype() == before
    e = atoms.get_potential_energy()
    assert atoms.get_potential_energy(force_consistent=True) == e
    energies = atoms.calc.get_property("energies", atoms)
    assert energies.shape == (len(atoms),) and abs(energies.sum() - e) < 1e-8
    assert atoms.get_forces().shape == (len(atoms), 3)
    with pytest.raises(ValueError, match="float32 or float64"):
        ModelCalculator(morse, dtype=torch.float16)


def test_default_student_missing_is_clear(monkeypatch, tmp_path):
    monkeypatch.setattr(calculators.loading, "DEFAULT_STUDENT", tmp_path / "default_student.pt")
    with pytest.raises(NoDefaultStudentError, match="no default student is installed"):
        DistilledCalculator()


def test_calculator_factories_accept_model_instances(morse):
    atoms = mc.pt_slab_o()
    for calc in (DistilledCalculator(morse, device="cpu"), ModelCalculator.from_model_checkpoint(morse, skin=0.2)):
        assert type(calc) is ModelCalculator and calc.model is morse
        atoms.calc = calc
        direct = morse.predict(AtomsBatch.from_atoms(atoms))
        assert atoms.get_potential_energy() == pytest.approx(float(direct["energy"][0]), abs=1e-5)


def test_wrong_checkpoint_and_missing_file(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"model_state_dict": {}, "config": {"num_convolution_layer": 5}}, bad)
    with pytest.raises(calculators.CheckpointError, match="SevenNet checkpoint"):
        DistilledCalculator(str(bad), device="cpu")
    junk = tmp_path / "junk.pt"
    torch.save([1, 2, 3], junk)
    with pytest.raises(calculators.CheckpointError, match="not a GemNet-OC checkpoint"):
        DistilledCalculator(str(junk), device="cpu")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DistilledCalculator(str(tmp_path / "missing.pt"), device="cpu")
    with pytest.raises(KeyError, match="unknown model name"):
        DistilledCalculator("no-such-model", device="cpu")


def test_clear_structure_errors(morse):
    calc = ModelCalculator(morse, device="cpu")
    bad = Atoms("H2", positions=[[0, 0, 0], [0, 0, np.nan]])
    bad.calc = calc
    with pytest.raises(StructureError, match="non-finite"):
        bad.get_potential_energy()
    zero = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]], pbc=True)
    zero.calc = calc
    with pytest.raises(StructureError, match="zero or degenerate"):
        zero.get_potential_energy()
    heavy = Atoms("Og", positions=[[0, 0, 0]])
    heavy.calc = calc
    with pytest.raises(StructureError, match="unknown to this model"):
        heavy.get_potential_energy()
    with pytest.raises(StructureError, match="structure 1"):
        predict_many(morse, [mc.pt_slab_o(), Atoms()], progress=False)


def test_infer_tags():
    slab = mc.pt_slab_o()
    expected = slab.get_tags().copy()
    slab.set_tags(0)
    np.testing.assert_array_equal(infer_tags(slab), expected)
    assert (infer_tags(molecule("H2O")) == 2).all()
    from ase.build import bulk

    assert (infer_tags(bulk("Pt", "fcc", a=3.92, cubic=True)) == 0).all()


def test_ase_build_layer_tags_are_replaced_with_a_warning():
    from ase.build import add_adsorbate, fcc111

    from calculators.tags import tags_for

    slab = fcc111("Pt", (2, 2, 3), a=3.92, vacuum=6.0)
    add_adsorbate(slab, "O", 1.2, "fcc")
    with pytest.warns(UserWarning, match="not GemNet-OC tags"):
        tags = tags_for(slab)
    np.testing.assert_array_equal(tags, mc.pt_slab_o().get_tags())


def test_hessian_fd_for_direct_force_model(morse64):
    class Direct:  # a non-conservative view of the same model: hessian_rows must use finite differences
        cutoff, max_atomic_number, conservative = 5.0, 94, False

        def predict(self, batch, *, forces=True, features=False):
            return morse64.predict(batch, forces=forces, features=features)

    batch = AtomsBatch.from_atoms([mc.pt_slab_o(displace=0.5)], dtype=torch.float64)
    rows = torch.tensor([[3 * 12 + 2, 4]])
    with pytest.raises(ValueError, match="double backward"):
        hessian_rows(Direct(), batch, rows, method="autograd")
    torch.testing.assert_close(
        hessian_rows(Direct(), batch, rows, step=1e-4),
        hessian_rows(morse64, batch, rows),
        atol=1e-5,
        rtol=1e-4,
    )


def test_predict_many_matches_single_and_keeps_order(morse):
    structures = mc.sample_structures() * 3
    results = predict_many(morse, structures, batch_atoms=30, progress=False)
    assert len(results) == len(structures)
    for atoms, res in zip(structures, results, strict=True):
        single = morse.predict(AtomsBatch.from_atoms(atoms))
        assert abs(res["energy"] - single["energy"][0].item()) < 1e-4
        np.testing.assert_allclose(res["forces"], single["forces"].numpy(), atol=1e-4)
        assert res["energies"].shape == (len(atoms),)


def test_relax_many_converges_and_respects_fixatoms(morse64):
    structures = [mc.pt_slab_o(displace=d) for d in (0.0, 0.5, 1.0)]
    result = relax_many(morse64, structures, fmax=0.05, max_steps=300, batch_atoms=30)
    assert all(result.converged), result.steps
    for start, relaxed in zip(structures, result.atoms, strict=True):
        fixed = start.constraints[0].get_indices()
        np.testing.assert_array_equal(relaxed.positions[fixed], start.positions[fixed])
        assert np.abs(relaxed.get_forces()).max() < 0.05
    # matches an ASE relaxation of the same structure within 10 meV
    ref = mc.pt_slab_o(displace=1.0)
    ref.calc = ModelCalculator(morse64, device="cpu", dtype="float64")
    BFGS(ref, logfile=None).run(fmax=0.01, steps=300)
    assert abs(result.energies[2] - ref.get_potential_energy()) < 0.01
    unconverged = relax_many(morse64, structures[2:], fmax=1e-6, max_steps=3)
    assert unconverged.converged == [False] and unconverged.steps == [3]


def test_relax_many_snapshots_the_path_every_k_evaluations_and_the_relaxed_end(morse64):
    structures = [mc.pt_slab_o(displace=d) for d in (0.5, 1.0)]
    plain = relax_many(morse64, structures, fmax=0.05, max_steps=300, batch_atoms=30)
    result = relax_many(morse64, structures, fmax=0.05, max_steps=300, batch_atoms=30, snapshot_every=4)
    assert plain.snapshots is None
    for start, relaxed, snaps, evals, ref in zip(
        structures, result.atoms, result.snapshots, result.steps, plain.atoms, strict=True
    ):
        np.testing.assert_array_equal(relaxed.positions, ref.positions)  # snapshots change nothing
        steps = [k for k, _ in snaps]
        assert steps == sorted(set(range(0, evals, 4)) | {evals - 1}) and evals > 8
        np.testing.assert_allclose(snaps[0][1], start.positions)
        np.testing.assert_allclose(snaps[-1][1], relaxed.positions)
        assert all(not np.allclose(a, b) for (_, a), (_, b) in zip(snaps, snaps[1:], strict=False))  # it moves
    short = relax_many(morse64, structures[1:], fmax=1e-6, max_steps=3, snapshot_every=2)
    assert [k for k, _ in short.snapshots[0]] == [0, 2]  # the last evaluation is not kept twice
    with pytest.raises(ValueError, match="snapshot_every"):
        relax_many(morse64, structures, snapshot_every=0)


class _PoisonedForces(mc.MorsePairModel):
    """Morse, except that from its third call the forces on structures of `bad_natoms` atoms are NaN."""

    bad_natoms = 13

    def predict(self, batch, **kwargs):
        out = super().predict(batch, **kwargs)
        self.n_calls = getattr(self, "n_calls", 0) + 1
        if self.n_calls >= 3:
            bad = (batch.natoms == self.bad_natoms)[batch.batch]
            out["forces"] = torch.where(bad[:, None], torch.full_like(out["forces"], float("nan")), out["forces"])
        return out


def test_relax_many_stops_a_structure_with_non_finite_forces_and_relaxes_the_rest():
    model = _PoisonedForces().to(torch.float64)
    model.dtype = torch.float64
    good = mc.pt_slab_o(displace=0.5)
    bad = good + Atoms("H", positions=[good.positions[-1] + [0.0, 0.0, 1.0]])  # OH: one atom more
    model.bad_natoms = len(bad)
    result = relax_many(model, [good, bad], fmax=0.05, max_steps=300, snapshot_every=2)
    assert result.converged == [True, False] and result.steps[1] == 3
    assert np.isfinite(result.atoms[1].positions).all() and np.isfinite(result.atoms[0].positions).all()
    assert [k for k, _ in result.snapshots[1]] == [0, 2]  # stopped at its first non-finite evaluation


def test_hessian_rows_autograd_equals_fd(morse64):
    structures = [mc.pt_slab_o(displace=0.5), mc.sample_structures()[1]]
    batch = AtomsBatch.from_atoms(structures, dtype=torch.float64)
    rows = torch.tensor([[3 * 12 + 2, 0, 5], [1, 7, 3 * 3]])
    h_ad = hessian_rows(morse64, batch, rows, method="autograd")
    h_fd = hessian_rows(morse64, batch, rows, method="fd", step=1e-4)
    assert h_ad.shape == (2, 3, 3 * 13)
    torch.testing.assert_close(h_ad, h_fd, atol=1e-5, rtol=1e-4)
    assert (h_ad[1, :, 3 * 4 :] == 0).all()  # padding past the 4-atom bulk cell
    # symmetric: H[r, c] == H[c, r]
    single = AtomsBatch.from_atoms(structures[:1], dtype=torch.float64)
    full = hessian_rows(morse64, single, torch.arange(39)[None])
    torch.testing.assert_close(full[0], full[0].T, atol=1e-8, rtol=0)
    with pytest.raises(ValueError, match="flat coordinate"):
        hessian_rows(morse64, batch, torch.tensor([[0], [12]]))


def test_check_state_reports_what_ase_compare_atoms_reports(morse):
    from ase.calculators.calculator import all_changes, compare_atoms

    atoms = mc.pt_slab_o()
    calc = ModelCalculator(morse, device="cpu")
    atoms.calc = calc
    atoms.get_potential_energy()

    def edits():
        yield "same", lambda a: None
        yield "below tol", lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 1e-16)
        yield "moved", lambda a: a.positions.__setitem__((3, 2), a.positions[3, 2] + 1e-9)
        yield "nan", lambda a: a.positions.__setitem__((1, 1), np.nan)
        yield "numbers", lambda a: a.numbers.__setitem__(0, 29)
        yield "cell", lambda a: a.set_cell(a.cell[:] * 1.001)
        yield "pbc", lambda a: a.set_pbc([True, True, not a.pbc[2]])
        yield "new array", lambda a: a.set_initial_magnetic_moments(np.ones(len(a)))
        yield "fewer atoms", lambda a: a.pop()

    for name, edit in edits():
        other = atoms.copy()
        edit(other)
        expected = compare_atoms(calc.atoms, other, tol=1e-15, excluded_properties=set(calc.ignored_changes))
        assert sorted(calc.check_state(other)) == sorted(expected), name
    calc.ignored_changes = {"initial_magmoms"}
    other = atoms.copy()
    other.set_initial_magnetic_moments(np.ones(len(other)))
    assert calc.check_state(other) == []
    calc.reset()
    assert sorted(calc.check_state(atoms)) == sorted(all_changes)


def test_check_state_treats_equal_infinities_as_ase_does(morse):
    from ase.calculators.calculator import compare_atoms

    atoms = mc.pt_slab_o()
    atoms.set_initial_charges(np.full(len(atoms), np.inf))
    calc = ModelCalculator(morse, device="cpu")
    atoms.calc = calc
    atoms.get_potential_energy()
    other = atoms.copy()
    assert calc.check_state(other) == compare_atoms(calc.atoms, other) == []


def test_unreadable_checkpoints_say_why_in_one_line(tmp_path):
    """A directory, an empty file, a text file, a cut-short checkpoint and a training state each get their own
    one-line reason (they used to read 'does not exist', '', 'KeyError: 101', a paragraph, a fairchem error)."""
    from calculators.loading import DEFAULT_STUDENT

    (tmp_path / "dir.pt").mkdir()
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("hello world\n")
    (tmp_path / "cut.pt").write_bytes(DEFAULT_STUDENT.read_bytes()[:100_000])
    torch.save({"config": {}, "model": {}, "ema": {}, "optimizer": {}, "progress": {"step": 7}}, tmp_path / "s.pt")
    for name, reason in [
        ("dir.pt", "is a directory, not a checkpoint file"),
        ("empty.pt", "is empty"),
        ("text.pt", r"is not a torch file \(KeyError"),
        ("cut.pt", "is cut short or damaged"),
        ("s.pt", r"training state \(step 7\), not a model checkpoint: use student.pt or best.pt"),
    ]:
        with pytest.raises(calculators.CheckpointError, match=reason) as info:
            DistilledCalculator(str(tmp_path / name), device="cpu")
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("skin", [float("inf"), 1e6, -1.0, float("nan"), "wide"])
def test_skin_out_of_range_is_refused(morse, skin):
    with pytest.raises(ValueError, match=r"skin \(Å\) must be a finite number ≥ 0 and ≤ 5"):
        calculators.ModelCalculator(morse, device="cpu", skin=skin)


def test_dtype_refusal_names_what_was_asked(morse):
    with pytest.raises(ValueError, match="got 'float16'"):
        calculators.ModelCalculator(morse, device="cpu", dtype="float16")


def test_batched_calls_refuse_bad_sizes(morse):
    atoms = [molecule("H2O")]
    atoms[0].center(vacuum=4.0)
    with pytest.raises(ValueError, match="predict_many: batch_atoms must be an integer ≥ 1"):
        calculators.predict_many(morse, atoms, batch_atoms=0)
    with pytest.raises(ValueError, match="relax_many: max_steps must be an integer ≥ 0"):
        calculators.relax_many(morse, atoms, max_steps=-1)
    with pytest.raises(ValueError, match="relax_many: fmax must be a finite number > 0"):
        calculators.relax_many(morse, atoms, fmax=float("nan"))
