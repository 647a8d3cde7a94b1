"""The force-head disagreement flag (calculators/disagreement.py): against a by-hand autograd computation, free
atoms only, invariant under rotation, translation and atom order, batched == single, refused for a model with one
force estimate; and its summary in the student benchmark (benchmarks/student_benchmark.py)."""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.constraints import FixAtoms
from gemnet_helpers import pt_slab_o, tiny_model

from calculators.batch import AtomsBatch
from calculators.disagreement import force_disagreement, supports_disagreement
from calculators.tags import tags_for
from distill.heldout import heldout_reactions


@pytest.fixture(scope="module")
def direct():
    torch.set_num_threads(1)
    return tiny_model(seed=3, dtype=torch.float64)  # direct forces, every interaction on


def _by_hand(model, atoms) -> np.ndarray:
    """|F_direct − (−∂E/∂x)| per atom (eV/Å), computed here from two separate model calls."""
    batch = AtomsBatch.from_atoms([atoms], dtype=torch.float64, tags=[tags_for(atoms)])
    f_direct = model.predict(batch, forces=True)["forces"]
    pos = batch.positions.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        energy = model(replace(batch, positions=pos), forces=False)["energy"]
        (grad,) = torch.autograd.grad(energy.sum(), pos)
    return (f_direct + grad).norm(dim=1).numpy()


def test_matches_by_hand_over_free_atoms_only(direct):
    atoms = pt_slab_o(rattle=0.1)
    z = atoms.positions[:, 2]
    held = [i for i in range(len(atoms)) if z[i] < np.sort(z)[8]]  # the two bottom layers of 2×2
    atoms.set_constraint(FixAtoms(indices=held))
    gap = _by_hand(direct, atoms)
    free = np.ones(len(atoms), bool)
    free[held] = False
    (value,) = force_disagreement(direct, [atoms])
    assert value > 0
    # torch's median of an even count is the lower middle value
    assert value == pytest.approx(float(torch.tensor(gap[free]).median()), rel=1e-9)
    assert value != pytest.approx(float(torch.tensor(gap).median()), rel=1e-6)  # the held atoms are left out
    every = pt_slab_o(rattle=0.1)
    every.set_constraint(FixAtoms(indices=range(len(every))))
    assert force_disagreement(direct, [every])[0] == pytest.approx(float(torch.tensor(gap).median()), rel=1e-9)


def test_invariant_under_rotation_translation_and_order(direct):
    atoms = pt_slab_o(rattle=0.1)
    (ref,) = force_disagreement(direct, [atoms])
    moved = atoms.copy()
    moved.rotate(37, "z", rotate_cell=True)
    moved.translate([0.3, -1.1, 0.2])
    order = np.random.default_rng(0).permutation(len(atoms))
    shuffled = atoms[order]
    shuffled.set_tags(atoms.get_tags()[order])
    values = force_disagreement(direct, [moved, shuffled])
    assert values == pytest.approx([ref, ref], rel=1e-7)


def test_batched_equals_single(direct):
    structs = [pt_slab_o(seed=s, rattle=0.1) for s in range(3)]
    single = [force_disagreement(direct, [a])[0] for a in structs]
    assert force_disagreement(direct, structs) == pytest.approx(single, rel=1e-9)
    assert force_disagreement(direct, structs, batch_atoms=len(structs[0])) == pytest.approx(single, rel=1e-9)
    assert len(set(np.round(single, 9))) == 3  # different structures, different values


def test_refused_for_one_force_estimate():
    conservative = tiny_model(seed=0, direct_forces=False)
    assert not supports_disagreement(conservative)
    with pytest.raises(ValueError, match="direct-force"):
        force_disagreement(conservative, [pt_slab_o()])
    with pytest.raises(ValueError, match="batch_atoms"):
        force_disagreement(tiny_model(seed=0), [pt_slab_o()], batch_atoms=0)


def _benchmark():
    """benchmarks/student_benchmark.py as a module (loaded once per process)."""
    if "student_benchmark" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "student_benchmark", Path(__file__).resolve().parents[1] / "benchmarks" / "student_benchmark.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["student_benchmark"] = module
        spec.loader.exec_module(module)
    return sys.modules["student_benchmark"]


def test_benchmark_summary_ranks_reactions_by_their_larger_structure():
    sb = _benchmark()
    hset = heldout_reactions(10, 9000, per_surface=2, elements=("Pt", "Cu"), adsorbates=("H", "O"))
    ids = [r.id for r in hset.reactions]
    ref = dict.fromkeys(ids, 0.0)
    # error grows with the reaction's index; the flag follows the error through the adslab for half the
    # reactions and through a large clean-slab value for one (max over the two)
    pred = {i: 0.1 * (n + 1) for n, i in enumerate(ids)}
    flag = {f"ads/{i}": float(n) for n, i in enumerate(ids)}
    flag |= {f"slab/{r.surface}": -1.0 for r in hset.reactions}
    pred[ids[-1]] = math.nan  # a non-finite ΔE is left out, not averaged
    f = sb.disagreement_flag(hset, flag, pred, ref)
    assert f["n"] == len(ids) - 1 and f["n_left_out"] == 1
    assert f["spearman_with_abs_error"] == pytest.approx(1.0)
    errs = sorted((0.1 * (n + 1) for n in range(len(ids) - 1)), reverse=True)
    top = f["shares"]["0.1"]
    assert top["flagged"] == 1
    assert top["mae_flagged"] == pytest.approx(errs[0])
    assert top["mae_rest"] == pytest.approx(np.mean(errs[1:]))
    assert top["mae_teacher_on_flagged"] == pytest.approx(sum(errs[1:]) / len(errs))
    assert f["mae_all"] == pytest.approx(np.mean(errs))
    # a clean slab that disagrees more than every adslab flags all of its reactions first
    first = hset.reactions[0]
    flag[f"slab/{first.surface}"] = 100.0
    g = sb.disagreement_flag(hset, flag, pred, ref)
    assert g["spearman_with_abs_error"] < 1.0


def test_benchmark_funnel_rows_route_the_flagged_to_the_teacher(monkeypatch):
    sb = _benchmark()
    monkeypatch.setattr(sb, "FLAG_TOP_K", 1)
    monkeypatch.setattr(sb, "FLAG_FUNNELS", ((0.2, 0.0), (0.1, 0.1)))
    hset = heldout_reactions(20, 9000, per_surface=2, elements=("Pt", "Cu"), adsorbates=("H", "O"))
    by_ads = hset.by_adsorbate()
    ref, pred, flag = {}, {}, {}
    for rs in by_ads.values():
        for n, r in enumerate(rs):
            ref[r.id] = float(n)  # the teacher's best is the first of each adsorbate
            pred[r.id] = 100.0 if n == 0 else float(n)  # the student puts it last
            flag[r.id] = 5.0 if n == 0 else 0.1  # and flags it
    plain, routed = sb._flag_funnels(hset, flag, pred, ref)
    assert plain["recall_at_k"] == 0.0 and routed["recall_at_k"] == 1.0
    n = len(ref)
    sizes = [len(rs) for rs in by_ads.values()]
    assert plain["teacher_share"] == pytest.approx(sum(math.ceil(0.2 * s) for s in sizes) / n)
    assert routed["teacher_share"] == pytest.approx(sum(2 * math.ceil(0.1 * s) for s in sizes) / n)
