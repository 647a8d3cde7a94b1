"""The student recipe: per-element reference energies, scale-factor fitting, data-parallel training (torchrun),
and the screening training-set generator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gemnet_helpers import pt_slab_o, tiny_model
from test_distill_labels import CountingTeacher

from calculators.batch import AtomsBatch
from calculators.gemnet import GemNetOC, load_project_checkpoint, preset, save_checkpoint
from distill.labels import LabelSettings, label_structures
from distill.references import composition_matrix, fit_element_references
from distill.scale_fit import fit_scale_factors, measure, scale_factors
from distill.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(
    num_spherical=3, num_radial=6, num_blocks=1, emb_size_atom=8, emb_size_edge=8, emb_size_trip_in=4,
    emb_size_trip_out=4, emb_size_rbf=4, emb_size_cbf=4, emb_size_sbf=4, num_atom=1, num_output_afteratom=1,
    num_atom_emb_layers=0, num_global_out_layers=1, cutoff=4.0, max_neighbors=8,
)  # fmt: skip


# ------------------------------------------------------------------------------------- reference energies
def test_reference_fit_recovers_known_references():
    rng = np.random.default_rng(0)
    true = {1: -3.4, 8: -7.1, 29: -4.0, 78: -6.05}
    numbers = [rng.choice(list(true), size=rng.integers(2, 30)) for _ in range(60)]
    energies = [sum(true[z] for z in nums) + rng.normal(scale=1e-3) for nums in numbers]
    refs = fit_element_references(numbers, energies, 83)
    for z, e in true.items():
        assert refs[z - 1] == pytest.approx(e, abs=2e-3)
    assert refs[5] == 0.0  # carbon never occurs: no reference


def test_reference_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="non-finite"):
        fit_element_references([[1, 1]], [float("nan")], 83)
    with pytest.raises(ValueError, match="outside"):
        composition_matrix([[0, 1]], 83)


def _student(refs=None, seed=0):
    torch.manual_seed(seed)
    over = dict(SMALL, neighbor_symmetrization="union", enforce_max_neighbors_strictly=False)
    if refs is not None:
        over["element_references"] = refs
    return GemNetOC(preset("gemnet-oc-student", **over)).double().eval()


def test_references_are_added_to_energy_and_atom_energies_and_permutation_invariant():
    atoms = pt_slab_o(size=(2, 2, 2))
    refs = [0.0] * 83
    refs[7], refs[77] = -7.0, -6.0
    plain, shifted = _student(), _student(refs)
    shifted.load_state_dict(plain.state_dict())
    b = AtomsBatch.from_atoms([atoms], dtype=torch.float64)
    e0, e1 = plain.predict(b), shifted.predict(b)
    expected = sum(refs[z - 1] for z in atoms.numbers)
    assert float(e1["energy"][0] - e0["energy"][0]) == pytest.approx(expected, abs=1e-9)
    torch.testing.assert_close(e1["atom_energies"].sum(), e1["energy"][0])
    torch.testing.assert_close(e1["forces"], e0["forces"])
    perm = np.random.default_rng(3).permutation(len(atoms))
    bp = AtomsBatch.from_atoms([atoms[perm]], dtype=torch.float64)
    assert float(shifted.predict(bp)["energy"][0]) == pytest.approx(float(e1["energy"][0]), abs=1e-8)


def test_references_travel_in_checkpoint_and_old_checkpoints_load(tmp_path):
    refs = [float(-i % 7) for i in range(83)]
    model = _student(refs)
    save_checkpoint(model, tmp_path / "s.pt")
    loaded, _ = load_project_checkpoint(tmp_path / "s.pt")
    assert loaded.config.element_references == refs
    # a checkpoint written before references existed has no such config key and loads without them
    ckpt = torch.load(tmp_path / "s.pt", weights_only=True)
    del ckpt["config"]["element_references"]
    torch.save(ckpt, tmp_path / "old.pt")
    old, _ = load_project_checkpoint(tmp_path / "old.pt")
    assert old.config.element_references is None and old.element_references is None
    shipped = ROOT / "calculators" / "weights" / "default_student.pt"
    if shipped.is_file():
        load_project_checkpoint(shipped)


# ------------------------------------------------------------------------------------------- scale factors
def test_scale_fit_changes_factors_and_makes_variances_match():
    model = tiny_model(seed=2, dtype=torch.float64, randomize_scales=False)
    batches = [AtomsBatch.from_atoms([pt_slab_o(size=(2, 2, 3), seed=s)], dtype=torch.float64) for s in range(3)]
    fitted = fit_scale_factors(model, batches)
    assert len(fitted) >= 8
    assert sum(abs(v - 1.0) > 0.05 for v in fitted.values()) >= len(fitted) // 2
    factors = scale_factors(model)
    for name in fitted:
        var_in, var_out = measure(factors[name], model, batches)
        scaled = var_out * float(factors[name].scale_factor) ** 2
        assert scaled == pytest.approx(var_in, rel=1e-6), name


def test_trainer_fits_references_and_scales_for_fresh_students(tmp_path):
    structures = [pt_slab_o(size=(1, 1, 2), seed=i) for i in range(6)]
    recs = label_structures(structures, CountingTeacher(), tmp_path / "c", LabelSettings(chunk_size=3)).records()
    cfg = TrainConfig(student_overrides=SMALL, max_steps=2, batch_size=2, progress=False, scale_fit_batches=2)
    train(cfg, recs, tmp_path / "out")
    model, meta = load_project_checkpoint(tmp_path / "out" / "student.pt")
    refs = model.config.element_references
    assert refs is not None and refs[77] != 0.0 and refs[7] != 0.0
    assert any(abs(v - 1.0) > 1e-3 for v in meta["fitted_scale_factors"].values())
    for name, value in meta["fitted_scale_factors"].items():
        assert float(dict(model.named_parameters())[name + ".scale_factor"]) == pytest.approx(value)


# -------------------------------------------------------------------------------------------------- DDP
def test_torchrun_two_processes_match_one_process(tmp_path):
    """`torchrun --nproc_per_node 2` (gloo) gives the weights of one process on the same global batches."""
    structures = [pt_slab_o(size=(1, 1, 2), seed=i) for i in range(8)]  # equal sizes: equal loss normalisation
    cache = tmp_path / "cache"
    label_structures(structures, CountingTeacher(), cache, LabelSettings(chunk_size=4, hessian_rows=0))
    cfg = tmp_path / "recipe.json"
    import json

    cfg.write_text(
        json.dumps(
            dict(student_overrides=SMALL, max_steps=3, batch_size=4, warmup_steps=1, val_fraction=0.0,
                 progress=False, scale_fit_batches=1, losses={"energy": 1.0, "forces": 10.0, "n2n": 1.0})
        )
    )  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    base = ["-m", "distill.cli", "train", str(cache), "--config", str(cfg)]
    one = subprocess.run([sys.executable, *base, "-o", str(tmp_path / "one")], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *base,
         "-o", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a = torch.load(tmp_path / "one" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "state.pt", weights_only=True)
    assert a["progress"]["step"] == b["progress"]["step"] == 3
    start = _student().state_dict()  # weights moved away from any init: the comparison is not vacuous
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    moved = [k for k, v in a["model"].items() if k in start and v.shape == start[k].shape]
    assert moved
    meta = torch.load(tmp_path / "two" / "student.pt", weights_only=True)["metadata"]
    assert meta["data_parallel_processes"] == 2


DIVERGING_WORKER = """
import json, os, sys
import torch
import distill.train as T
from distill.labels import LabelCache

cache, out, recipe = sys.argv[1:4]
rank, built, models = int(os.environ["RANK"]), T.build_student, []
T.build_student = lambda *a, **k: models.append(built(*a, **k)) or models[-1]


def poison(step):  # only process 1's weights turn NaN after step 2: process 0's loss stays finite
    if step == 2 and rank == 1:
        with torch.no_grad():
            next(p for n, p in models[0].named_parameters() if "weight" in n).fill_(float("nan"))


try:
    T.train(T.TrainConfig.from_dict(json.load(open(recipe))), LabelCache(cache).records(), out, on_step=poison)
except T.NonFiniteTrainingError as err:
    print(f"process {rank} stopped: {err}", flush=True)
    sys.exit(3)
print(f"process {rank} finished", flush=True)
"""


def test_torchrun_processes_stop_together_when_one_diverges(tmp_path):
    """Under `torchrun --nproc_per_node 2`, a non-finite loss in one process stops both at the same step (the
    flag is reduced with the gradients): no process trains on or waits forever, no student.pt is written, and
    state.pt keeps the last finite step."""
    import json

    structures = [pt_slab_o(size=(1, 1, 2), seed=i) for i in range(8)]
    cache = tmp_path / "cache"
    label_structures(structures, CountingTeacher(), cache, LabelSettings(chunk_size=4, hessian_rows=0))
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            dict(
                student_overrides=SMALL,
                max_steps=6,
                batch_size=4,
                warmup_steps=1,
                val_fraction=0.0,
                progress=False,
                scale_fit_batches=1,
                checkpoint_every=2,
            )
        )
    )
    worker = tmp_path / "worker.py"
    worker.write_text(DIVERGING_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
         str(cache), str(tmp_path / "out"), str(recipe)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode != 0, run.stdout[-2000:]
    for rank in (0, 1):
        assert f"process {rank} stopped: training diverged at step 3: non-finite loss" in run.stdout, run.stdout
    assert "finished" not in run.stdout
    assert not (tmp_path / "out" / "student.pt").exists()
    saved = torch.load(tmp_path / "out" / "state.pt", weights_only=True)
    assert saved["progress"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


# ------------------------------------------------------------------------------ screening data and pipeline
def test_screening_data_is_deterministic_and_covers_the_recipe():
    from distill.screening_data import SCREENING_GAS, gas_structures, surface_structures

    a = surface_structures(12, 5)
    b = surface_structures(12, 5)
    assert [x.get_chemical_formula() for x in a] == [x.get_chemical_formula() for x in b]
    assert all(np.allclose(x.positions, y.positions) for x, y in zip(a, b, strict=True))
    for atoms in a:
        assert atoms.info["kind"] in ("slab", "adslab") and atoms.pbc.all()
        assert 8 <= len(atoms) <= 20  # 2x2-like surface cells, 4 layers, at most 2 adsorbate atoms
    gas = gas_structures(3, 0)
    assert sorted({g.info["gas"] for g in gas}) == sorted(SCREENING_GAS)
    o2 = [g for g in gas if g.info["gas"] == "O2"]
    assert len({round(g.get_distance(0, 1), 3) for g in o2}) == 3  # ideal + two stretched/compressed bonds


def test_make_student_pipeline_runs_every_stage_and_resumes(tmp_path, monkeypatch):
    """All stages with a tiny GemNet-OC checkpoint as teacher: labels, round 0, one on-policy round; a rerun
    reuses the caches and checkpoints (no new teacher trajectories)."""
    import json

    from distill import screening_data
    from distill.pipeline import PipelineConfig, make_student

    teacher_path = tmp_path / "teacher.pt"
    save_checkpoint(CountingTeacher().model.float(), teacher_path)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            dict(student="gemnet-oc-student-fast", student_overrides=SMALL, max_steps=3, batch_size=2,
                 warmup_steps=1, eval_every=3, progress=False, scale_fit_batches=1,
                 losses={"energy": 1.0, "forces": 10.0, "pair": 1.0})
        )
    )  # fmt: skip
    cfg = PipelineConfig(
        teacher=str(teacher_path), recipe=str(recipe), n_surfaces=4, n_relax=1, n_md=1, n_gas_per_molecule=1,
        n_bulk_strains=0, n_bulk_alloys=1, n_long_relax=1, long_relax_steps=2, onpolicy_rounds=1, n_onpolicy=1,
        onpolicy_steps=2,
    )  # fmt: skip
    final = make_student(tmp_path / "run", cfg)
    model, meta = load_project_checkpoint(final)
    assert meta["round"] == 1 and meta["step"] == 2
    assert model.config.element_references is not None  # inherited from round 0
    assert (tmp_path / "run" / "labels" / "onpolicy1" / "manifest.json").is_file()
    long_relax = list((tmp_path / "run" / "labels" / "work" / "long_relax").glob("*.extxyz"))
    assert len(long_relax) == 1 and (tmp_path / "run" / "labels" / "long_relax" / "manifest.json").is_file()
    assert meta["training_records"] > 0
    for cache in ("static", "trajectories", "long_relax", "onpolicy1"):  # adsorbate-removal pairs of every cache
        assert (tmp_path / "run" / "labels" / f"{cache}-pairs" / "pairs.json").is_file()
    assert 0 < meta["paired_records"] < meta["training_records"]
    calls = []
    original = screening_data._trajectory
    monkeypatch.setattr(screening_data, "_trajectory", lambda *a, **k: calls.append(1) or original(*a, **k))
    make_student(tmp_path / "run", cfg)
    assert calls == []


def test_filter_records_drops_large_and_non_finite_forces():
    from distill.train import filter_records

    def rec(fmax, energy=0.0):
        return {"energy": torch.tensor(energy), "forces": torch.tensor([[fmax, 0.0, 0.0], [0.1, 0.0, 0.0]])}

    kept, dropped = filter_records([rec(1.0), rec(25.0), rec(float("nan")), rec(2.0, float("inf"))], 20.0)
    assert dropped == 3 and len(kept) == 1 and float(kept[0]["forces"][0, 0]) == 1.0
    kept, dropped = filter_records([rec(1.0), rec(25.0)], None)
    assert dropped == 0 and len(kept) == 2


def test_label_surfaces_labels_only_the_given_metals(tmp_path):
    """A further sampled set restricted to some metals (e.g. those whose builder volumes changed) is labelled by
    the teacher into its own cache, and is deterministic in its seed."""
    from distill.labels import LabelCache
    from distill.screening_data import label_surfaces, surface_structures

    teacher_path = tmp_path / "teacher.pt"
    save_checkpoint(CountingTeacher().model.float(), teacher_path)
    cache = label_surfaces(
        tmp_path / "labels", teacher=str(teacher_path), seed=5, n_surfaces=3, elements=["Cu", "Ag"], tag="cuag",
        features=False, progress=False,
    )  # fmt: skip
    records = list(LabelCache(cache).records())
    assert cache.name == "cuag" and len(records) == 3
    metals = {int(z) for r in records for z in r["numbers"]} - {1, 6, 7, 8}
    assert metals and metals <= {29, 47}  # Cu, Ag only
    again = surface_structures(3, 5, elements=["Cu", "Ag"])
    assert [sorted(r["numbers"].tolist()) for r in records] == [sorted(a.numbers.tolist()) for a in again]


def test_label_paths_teacher_and_on_policy_paths_with_pairs(tmp_path):
    """`label_paths` (and its `paths` command) labels snapshots of relaxation paths, final ones included, plus the
    adsorbate-free partners; with `student` the student relaxes (on-policy) and the teacher still labels."""
    from ase.io import read

    from distill.labels import LabelCache
    from distill.pairs import pair_dir
    from distill.screening_data import label_paths, main

    teacher_path = tmp_path / "teacher.pt"
    save_checkpoint(CountingTeacher().model.float(), teacher_path)
    student_path = tmp_path / "student.pt"
    save_checkpoint(CountingTeacher(seed=3).model.float(), student_path)
    common = dict(seed=11, n_starts=2, teacher=str(teacher_path), elements=["Cu", "Pt"], relax_steps=4, every=2,
                  clean_fraction=0.0, features=False, progress=False)  # fmt: skip
    cache = label_paths(tmp_path / "labels", tag="relax", **common)
    onpolicy = main(["paths", str(tmp_path / "labels"), "onpolicy", "11", "2", "--teacher", str(teacher_path),
                               "--student", str(student_path), "--elements", "Cu,Pt", "--steps", "4", "--every", "2",
                               "--clean-fraction", "0"])  # fmt: skip
    for c, tag in ((cache, "relax"), (onpolicy, "onpolicy")):
        snaps = [a for f in sorted((tmp_path / "labels" / "work" / tag).glob("*.extxyz")) for a in read(f, ":")]
        assert len(LabelCache(c).records()) == len(snaps) >= 4  # start (step 0) and final of both paths at least
        assert all(a.info["trajectory"] == "relax" for a in snaps)
        assert len(LabelCache(pair_dir(c)).records()) == len(snaps)  # no clean slabs: every snapshot has a partner
    # same starts (seed), different relaxing model: the paths part after the first step
    ref = read(tmp_path / "labels" / "work" / "relax" / "00000.extxyz", ":")
    pol = read(tmp_path / "labels" / "work" / "onpolicy" / "00000.extxyz", ":")
    assert np.allclose(ref[0].positions, pol[0].positions)
    assert not np.allclose(ref[-1].positions, pol[-1].positions, atol=1e-6)
    # the same tag with another relaxing model would silently reuse the old paths: refused
    with pytest.raises(ValueError, match="relaxed_by differ"):
        label_paths(tmp_path / "labels", tag="relax", **{**common, "student": str(student_path)})
    assert label_paths(tmp_path / "labels", tag="relax", **common) == cache  # same settings: resumes


def test_label_paths_batched_relaxes_the_starts_together_and_stops_at_its_time_budget(tmp_path):
    """`--batched` (for a GPU): batched FIRE paths of the same starts, snapshots every `every` force evaluations
    and the last, labelled with their partners; a time budget labels the starts relaxed so far."""
    from ase.io import read

    from distill.labels import LabelCache
    from distill.pairs import pair_dir
    from distill.screening_data import label_paths, main

    teacher_path = tmp_path / "teacher.pt"
    save_checkpoint(CountingTeacher().model.float(), teacher_path)
    args = ["paths", str(tmp_path / "labels"), "fire", "11", "3", "--teacher", str(teacher_path), "--elements",
            "Cu,Pt", "--steps", "6", "--every", "2", "--clean-fraction", "0", "--batched",
            "--chunk-size", "4"]  # fmt: skip
    cache = main(args)
    files = sorted((tmp_path / "labels" / "work" / "fire").glob("*.extxyz"))
    assert len(files) == 3
    for f in files:
        path = read(f, ":")
        steps = [a.info["traj_step"] for a in path]
        assert steps[:2] == [0, 2] and steps == sorted(set(steps)) and steps[-1] <= 6
        assert len(path[0]) == len(path[-1]) and not np.allclose(path[0].positions, path[-1].positions)
    n = sum(len(read(f, ":")) for f in files)
    assert len(LabelCache(cache).records()) == len(LabelCache(pair_dir(cache)).records()) == n
    # the optimizer is part of the paths' settings: BFGS paths under the same tag are refused
    with pytest.raises(ValueError, match="optimizer differ"):
        label_paths(tmp_path / "labels", tag="fire", seed=11, n_starts=3, teacher=str(teacher_path),
                    elements=["Cu", "Pt"], relax_steps=6, every=2, clean_fraction=0.0, progress=False)  # fmt: skip
    budget = label_paths(
        tmp_path / "budget", tag="fire", seed=11, n_starts=3, teacher=str(teacher_path), elements=["Cu", "Pt"],
        relax_steps=6, every=2, clean_fraction=0.0, features=False, batched=True, time_budget_s=0.0,
        progress=False,
    )  # fmt: skip
    assert len(LabelCache(budget).records()) == n  # the first group (256 starts at most) always runs
    from calculators import load_model
    from distill.screening_data import batched_trajectories, surface_structures

    starts = surface_structures(3, 11, rattle=(0.0, 0.05), clean_fraction=0.0, elements=["Cu", "Pt"])
    snaps = batched_trajectories(
        starts, load_model(str(teacher_path)), tmp_path / "work", relax_steps=6, every=2, group=1, time_budget_s=0.0,
        progress=False,
    )  # fmt: skip
    assert {a.info["traj_start"] for a in snaps} == {0}  # one start per group: none after the first
    assert len(list((tmp_path / "work" / "relax").glob("*.extxyz"))) == 1
    again = batched_trajectories(  # a rerun without the budget keeps the set the budget cut (its label cache resumes)
        starts, load_model(str(teacher_path)), tmp_path / "work", relax_steps=6, every=2, group=1, progress=False
    )
    assert len(again) == len(snaps) and len(list((tmp_path / "work" / "relax").glob("*.extxyz"))) == 1
    with pytest.raises(ValueError, match="batched relaxations only"):
        label_paths(tmp_path / "bfgs", tag="t", seed=11, n_starts=3, teacher=str(teacher_path), time_budget_s=5.0)

    class FailsOn:  # the teacher, except that any batch holding start 1 (by its atom count) raises
        def __init__(self, model, natoms):
            self.model, self.natoms = model, natoms

        def __getattr__(self, name):
            return getattr(self.model, name)

        def predict(self, batch, **kwargs):
            if bool((batch.natoms == self.natoms).any()):
                raise RuntimeError("teacher failed")
            return self.model.predict(batch, **kwargs)

    sizes = [len(a) for a in starts]
    (bad, *_) = [k for k in range(3) if sizes.count(sizes[k]) == 1]  # a start told apart by its atom count
    flaky = FailsOn(load_model(str(teacher_path)), sizes[bad])
    paths = batched_trajectories(starts, flaky, tmp_path / "flaky", relax_steps=6, every=2, progress=False)
    by_start = {k: [a.info["traj_step"] for a in paths if a.info["traj_start"] == k] for k in range(3)}
    assert by_start.pop(bad) == [0] and all(len(v) > 1 for v in by_start.values())  # one bad start loses its path


@pytest.mark.parametrize("argv", [["--help"], [], ["path", "out"], ["paths", "out", "tag", "not-a-seed", "3"]])
def test_screening_data_command_refuses_bad_input_before_writing(argv, tmp_path, monkeypatch, capsys):
    """`python -m distill.screening_data --help` once took `--help` for an output folder and started labelling."""
    from distill.screening_data import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == (0 if argv == ["--help"] else 2)
    out = capsys.readouterr()
    assert ("usage: python -m distill.screening_data" in out.out + out.err) and "paths" in out.out + out.err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_screening_data_command_passes_only_the_sizes_given(monkeypatch):
    """Sizes left out keep the labelling functions' own defaults (not a second copy of them in the parser)."""
    from distill import screening_data

    calls = []
    monkeypatch.setattr(screening_data, "label_relaxations", lambda out, **kw: calls.append((out, kw)))
    monkeypatch.setattr(screening_data, "label_screening_set", lambda out, **kw: calls.append((out, kw)))
    screening_data.main(["relax", "out", "7"])
    screening_data.main(["set", "out2", "10", "2", "3", "4"])
    assert calls == [
        ("out", {"seed": 7}),
        ("out2", {"n_surfaces": 10, "n_relax": 2, "n_md": 3, "n_gas_per_molecule": 4}),
    ]


def test_filter_records_always_drops_absurd_labels():
    """Overlapping atoms gave the teacher −9e12 eV and 1e14 eV/Å; such a record is left out even without
    max_force, so it cannot poison the element-reference fit."""
    from distill.train import ABSURD_ENERGY_PER_ATOM, ABSURD_FORCE, filter_records

    def rec(fmax, energy=-10.0):
        return {"energy": torch.tensor(energy), "forces": torch.tensor([[fmax, 0.0, 0.0], [0.1, 0.0, 0.0]])}

    records = [rec(1.0), rec(1.2e14, -9.3e12), rec(2 * ABSURD_FORCE), rec(1.0, -3 * ABSURD_ENERGY_PER_ATOM)]
    kept, dropped = filter_records(records, None)
    assert dropped == 3 and len(kept) == 1 and float(kept[0]["forces"][0, 0]) == 1.0
    kept, dropped = filter_records([rec(50.0), rec(0.5 * ABSURD_FORCE)], None)
    assert dropped == 0


def test_make_student_checks_recipe_and_teacher_before_labelling(tmp_path):
    """A bad recipe or teacher name fails at once, before any structure is labelled (it used to fail after
    all the labelling)."""
    from distill.pipeline import PipelineConfig, make_student

    bad = tmp_path / "bad.json"
    bad.write_text('{"batch_size": 0}')
    for cfg, message in [
        (PipelineConfig(recipe=str(tmp_path / "missing.yaml")), r"recipe .*missing\.yaml does not exist"),
        (PipelineConfig(recipe=str(bad)), r"bad\.json: training settings: batch_size must be an integer ≥ 1"),
        (PipelineConfig(teacher="sevennet-o"), r"unknown model name 'sevennet-o'"),
    ]:
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            make_student(tmp_path / "run", cfg)
    assert not (tmp_path / "run").exists()
