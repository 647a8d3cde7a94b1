"""Issue 13, silent wrong numbers and crashes on odd inputs: NaN energies, unphysical structures, lone atoms,
low-dimensional cells, huge coordinates, a structure the model cannot evaluate."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import fcc111
from gemnet_helpers import pt_slab_o, tiny_model
from test_screening import FIXTURE, dft_lookup

from calculators import ModelCalculator, StructureError, predict_many
from calculators.hashing import structure_key
from screening.cathub import load_dataset
from screening.evaluators import Evaluator, model_evaluator
from screening.reactions import builtin_set, from_dataset
from screening.report import write_report
from screening.runner import RunConfig, run_screening

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHEAP = dict(num_blocks=1, quad_interaction=False, atom_edge_interaction=False, edge_atom_interaction=False)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("pt111", data_file=FIXTURE)


@pytest.fixture
def screen_set(dataset):
    sset = from_dataset(dataset)
    sset.atoms = {k: a.copy() for k, a in sset.atoms.items()}  # tests edit structures: keep the dataset intact
    return sset


def _with_nan(ev: Evaluator, bad_key: str) -> Evaluator:
    """The evaluator, but NaN for one system (a teacher NaN for O placed on a Pt atom)."""
    inner = ev.energy_fn
    ev.energy_fn = lambda atoms_list: [
        math.nan if structure_key(a) == bad_key else e for a, e in zip(atoms_list, inner(atoms_list), strict=True)
    ]
    return ev


# ----------------------------------------------------------------------------- NaN energies
def test_nan_energy_is_an_anomaly_excluded_and_counted(dataset, screen_set, tmp_path):
    ostar = next(r for r in screen_set.reactions if "Ostar" in r.products)
    bad_key = ostar.systems["Ostar"]
    users = [r.id for r in screen_set.reactions if bad_key in r.systems.values()]
    teacher = dft_lookup(dataset)
    student = _with_nan(dft_lookup(dataset, "fake-student", {"Hstar": 0.2, "OHstar": -0.1}), bad_key)
    res = run_screening(screen_set, teacher, student, tmp_path, config=RunConfig())
    m = res["metrics"]["all"]
    assert m["n"] == 7 - len(users)  # n counts only the reactions every metric uses
    ok = [row for row in res["reactions"] if "excluded" not in row]
    assert m["mae_student"] == pytest.approx(np.mean([abs(row["student_error"]) for row in ok]))
    assert m["mae_teacher"] == pytest.approx(0.0, abs=1e-9)
    bad_rows = [row for row in res["reactions"] if "excluded" in row]
    assert sorted(row["id"] for row in bad_rows) == sorted(users)
    assert all(row["student"] is None and "student energy of Ostar is nan" in row["excluded"] for row in bad_rows)
    skipped = {s["id"]: s["reason"] for s in res["dataset"]["skipped"]}
    assert all("excluded from the metrics" in skipped[i] and "nan" in skipped[i] for i in users)
    assert res["anomalies"]["student"]["non-finite energy"] == len(users) and "teacher" not in res["anomalies"]
    assert res["dataset"]["reactions_excluded"] == len(users)
    write_report(tmp_path)
    assert all(i in (tmp_path / "skipped.csv").read_text() for i in users)
    assert "non-finite energy" in (tmp_path / "anomalies.csv").read_text()
    assert "excluded from the metrics" in (tmp_path / "summary.md").read_text()
    json.loads((tmp_path / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in results"))


def test_nan_edited_into_the_energy_cache_is_excluded_too(dataset, screen_set, tmp_path):
    teacher, student = dft_lookup(dataset), dft_lookup(dataset, "fake-student", {"Hstar": 0.2})
    clean = run_screening(screen_set, teacher, student, tmp_path, config=RunConfig())
    assert clean["metrics"]["all"]["n"] == 7
    path = next((tmp_path / "energies").glob("student-*.json"))
    cache = json.loads(path.read_text())
    key = next(k for k, e in cache["entries"].items() if not e["gas"])
    cache["entries"][key]["energy"] = float("nan")
    path.write_text(json.dumps(cache))
    res = run_screening(screen_set, teacher, student, tmp_path, config=RunConfig())
    users = {r.id for r in screen_set.reactions if key in r.systems.values()}
    assert res["metrics"]["all"]["n"] == 7 - len(users)
    assert {row["id"] for row in res["reactions"] if "excluded" in row} == users


# ----------------------------------------------------------------------------- unphysical inputs
def test_unphysical_structures_are_flagged_before_screening(dataset, screen_set, tmp_path):
    ostar = next(r for r in screen_set.reactions if "Ostar" in r.products)
    ohstar = next(r for r in screen_set.reactions if "OHstar" in r.products)
    close = screen_set.atoms[ostar.systems["Ostar"]]
    close.positions[-1] = close.positions[0] + [0.01, 0.0, 0.0]  # O placed on a Pt atom
    far = screen_set.atoms[ohstar.systems["OHstar"]]
    far.positions[-1, 2] = 1e12  # an adsorbate atom at z = 1e12 Å
    calls: list[str] = []
    teacher = dft_lookup(dataset)
    inner = teacher.energy_fn
    teacher.energy_fn = lambda al: (calls.extend(structure_key(a) for a in al), inner(al))[1]
    res = run_screening(screen_set, teacher, None, tmp_path, student_absent_reason="test")
    skipped = {s["id"]: s["reason"] for s in res["dataset"]["skipped"]}
    assert "0.010 Å apart" in skipped[ostar.id] and "covalent radii" in skipped[ostar.id]
    assert "beyond any plausible cell" in skipped[ohstar.id]
    assert ostar.systems["Ostar"] not in calls and ohstar.systems["OHstar"] not in calls  # never evaluated
    assert res["metrics"]["all"]["n"] == res["dataset"]["reactions_screened"] == 7 - len(skipped)


def test_calculators_warn_on_overlapping_atoms():
    from calculators import UnphysicalStructureWarning

    model = tiny_model(**CHEAP)
    atoms = pt_slab_o()
    atoms.positions[-1] = atoms.positions[-2] + [0.01, 0.0, 0.0]
    with pytest.warns(UnphysicalStructureWarning, match="structure 0: unphysical .* 0.010 Å apart"):
        predict_many(model, [atoms], progress=False)
    atoms.calc = ModelCalculator(model, device="cpu", dtype="float64")
    with pytest.warns(UnphysicalStructureWarning, match="0.010 Å apart"):
        atoms.get_potential_energy()
    atoms.positions[-1] += [0.002, 0.0, 0.0]  # the next step of a relaxation: no second warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnphysicalStructureWarning)
        atoms.get_potential_energy()
    ok = pt_slab_o()
    ok.calc = ModelCalculator(model, device="cpu", dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnphysicalStructureWarning)
        ok.get_potential_energy()
        predict_many(model, [ok], progress=False)


def test_huge_coordinates_fail_the_same_way_in_calculator_and_predict_many():
    model = tiny_model(**CHEAP)
    for axis, value in ((0, 1e15), (2, 1e12), (1, 2e4)):
        atoms = pt_slab_o()
        atoms.positions[-1, axis] = value
        with pytest.raises(StructureError, match="beyond any plausible cell"):
            predict_many(model, [atoms], progress=False)
        atoms.calc = ModelCalculator(model, device="cpu", dtype="float64")
        with pytest.raises(StructureError, match="beyond any plausible cell"):
            atoms.get_potential_energy()


# ----------------------------------------------------------------------------- lone atoms, low-dimensional cells
def _lone_structures() -> list[Atoms]:
    return [
        Atoms("O", positions=[[5, 5, 5]], cell=[10, 10, 10], pbc=True),
        Atoms("H2", positions=[[0, 0, 0], [10, 0, 0]], cell=[30, 30, 30], pbc=True),
        Atoms("H2", positions=[[0, 0, 0], [10, 0, 0]]),
    ]


@pytest.mark.parametrize("direct", [True, False])
def test_structures_without_neighbours_give_element_references(direct):
    base = tiny_model(**CHEAP, direct_forces=direct)
    refs = [-0.1 * z for z in range(1, base.config.num_elements + 1)]
    model = tiny_model(**CHEAP, direct_forces=direct, element_references=refs)
    slab = pt_slab_o()
    for atoms in _lone_structures():
        expected = sum(refs[z - 1] for z in atoms.numbers)
        alone = predict_many(model, [atoms], progress=False)[0]
        mixed = predict_many(model, [atoms, slab], progress=False, batch_atoms=10_000)[0]
        # references are a float32 buffer: equal to 1e-6 eV
        assert alone["energy"] == pytest.approx(expected, abs=1e-6) and mixed["energy"] == pytest.approx(expected)
        assert np.abs(alone["forces"]).max() == 0.0
        atoms.calc = ModelCalculator(model, device="cpu", dtype="float64")
        assert atoms.get_potential_energy() == pytest.approx(expected) and np.abs(atoms.get_forces()).max() == 0
    # without references: 0 eV, and the shipped student works on them too
    assert predict_many(base, _lone_structures()[:1], progress=False)[0]["energy"] == 0.0
    from calculators import load_model

    student = load_model("default-student")
    assert all(math.isfinite(r["energy"]) for r in predict_many(student, _lone_structures(), progress=False))


def test_gas_energies_self_with_a_one_atom_species(tmp_path):
    sset = builtin_set(surfaces=[("Pt", "fcc", "111")], adsorbates=["H"], layers=2)
    key = next(iter(sset.gas_keys))
    sset.atoms[key] = Atoms("H", positions=[[7.5, 7.5, 7.5]], cell=[15, 15, 15], pbc=True, tags=[2])
    t = model_evaluator(tiny_model(**CHEAP), "teacher", {"kind": "tiny"})
    s = model_evaluator(tiny_model(seed=1, **CHEAP), "student", {"kind": "tiny"})
    res = run_screening(sset, t, s, tmp_path, config=RunConfig(gas_energies="self"))
    assert res["metrics"]["all"]["n"] == 1 and not res["dataset"]["skipped"]


def _two_d(vacuum_vector: bool) -> Atoms:
    slab = fcc111("Pt", (2, 2, 2), vacuum=None, periodic=True)
    slab.rattle(0.02, seed=3)
    slab.pbc = (True, True, False)
    if not vacuum_vector:
        slab.cell[2] = 0.0
    return slab


def test_low_dimensional_cells_with_zero_vectors_are_accepted():
    model = tiny_model(**CHEAP)
    wire = Atoms("Pt3", positions=[[0, 0, 0], [2.8, 0.1, 0], [5.6, 0, 0.1]], cell=[8.4, 0, 0], pbc=(True, False, False))
    wire_box = wire.copy()
    wire_box.cell = [[8.4, 0, 0], [0, 20, 0], [0, 0, 20]]
    for zero, ref in ((_two_d(False), _two_d(True)), (wire, wire_box)):
        e0 = predict_many(model, [zero], progress=False)[0]
        e1 = predict_many(model, [ref], progress=False)[0]
        assert e0["energy"] == pytest.approx(e1["energy"], abs=1e-9)
        np.testing.assert_allclose(e0["forces"], e1["forces"], atol=1e-9)
        zero.calc = ModelCalculator(model, device="cpu", dtype="float64")
        assert zero.get_potential_energy() == pytest.approx(e1["energy"], abs=1e-9)
    bad = _two_d(False)
    bad.pbc = True  # periodic along a zero vector: still refused
    with pytest.raises(StructureError, match="zero or degenerate"):
        predict_many(model, [bad], progress=False)


# ----------------------------------------------------------------------------- one bad structure
def test_one_bad_structure_does_not_abort_the_run(tmp_path):
    sset = builtin_set(surfaces=[("Pt", "fcc", "111")], adsorbates=["H", "O"], layers=2)
    o_reaction = next(r for r in sset.reactions if r.adsorbate == "O")
    adslab = sset.atoms[o_reaction.systems["Ostar"]]
    adslab.numbers[-1] = 92  # U: the tiny models embed Z ≤ 83
    t = model_evaluator(tiny_model(**CHEAP), "teacher", {"kind": "tiny"})
    s = model_evaluator(tiny_model(seed=1, **CHEAP), "student", {"kind": "tiny"})
    res = run_screening(sset, t, s, tmp_path, config=RunConfig(batch_atoms=10_000))  # one batch holds every system
    rows = {row["id"]: row for row in res["reactions"]}
    assert (
        "'U'" in rows[o_reaction.id]["excluded"]
        and "teacher could not evaluate Ostar" in rows[o_reaction.id]["excluded"]
    )
    good = [row for row in res["reactions"] if row["id"] != o_reaction.id]
    assert good and all(row["teacher"] is not None and row["student"] is not None for row in good)
    assert res["metrics"]["all"]["n"] == len(good)
    assert res["anomalies"]["teacher"]["evaluation failed"] == 1
