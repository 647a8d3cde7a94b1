"""Student benchmark pipeline (benchmarks/student_benchmark.py, distill/heldout.py) on a tiny held-out set with tiny
random GemNet-OC models as teacher and student (no SevenNet): reaction energies by hand, identical student = zero
error, teacher cache reuse, anomaly classes, non-finite energies counted and never averaged."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gemnet_helpers import tiny_model

from distill.heldout import heldout_reactions

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_benchmark", ROOT / "benchmarks" / "student_benchmark.py")
sb = importlib.util.module_from_spec(_spec)
sys.modules["student_benchmark"] = sb
_spec.loader.exec_module(sb)

# a fast conservative tiny GemNet-OC (no quadruplet / atom-edge / edge-atom / atom-atom interactions)
CHEAP = dict(
    direct_forces=False, num_blocks=1, quad_interaction=False, atom_edge_interaction=False,
    edge_atom_interaction=False, atom_interaction=False,
)  # fmt: skip
ELEMENTS = ("Pt", "Cu", "Ag", "Ni")
ADSORBATES = ("H", "O", "OH")
# ν by hand (CatalysisHub references: H = ½H2, O = H2O − H2)
NU = {"H": {"H2": 0.5}, "O": {"H2O": 1.0, "H2": -1.0}, "OH": {"H2O": 1.0, "H2": -0.5}}


class Counting(torch.nn.Module):
    """Wraps a model; counts predict calls and structures; optionally returns NaN energies (forces kept) for
    structures containing atomic number `nan_z`."""

    def __init__(self, model: torch.nn.Module, nan_z: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.nan_z = nan_z
        self.calls = 0
        self.structures = 0

    cutoff = property(lambda self: self.model.cutoff)
    max_atomic_number = property(lambda self: self.model.max_atomic_number)
    conservative = property(lambda self: self.model.conservative)

    def predict(self, batch, *, forces=True, features=False):
        self.calls += 1
        self.structures += batch.num_structures
        out = self.model.predict(batch, forces=forces, features=features)
        if self.nan_z is not None:
            hit = torch.zeros(batch.num_structures, dtype=torch.bool)
            hit.index_fill_(0, batch.batch[batch.atomic_numbers == self.nan_z].unique(), True)
            out = dict(out)
            out["energy"] = torch.where(hit, torch.full_like(out["energy"], math.nan), out["energy"])
        return out


def _config(**kw) -> sb.BenchmarkConfig:
    base = dict(n_reactions=6, per_surface=3, elements=ELEMENTS, adsorbates=ADSORBATES, max_steps=3,
                teacher_batch=5, n_labels=4, skip=frozenset({"speed"}))  # fmt: skip
    base.update(kw)
    return sb.BenchmarkConfig(**base)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    torch.set_num_threads(1)
    net = tiny_model(seed=0, dtype=torch.float32, **CHEAP)
    teacher, student = Counting(net), Counting(net)  # a student identical to the teacher
    work, out = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("out")
    m = sb.run_benchmark(student, teacher, teacher_name="tiny", config=_config(), work_dir=work, out_dir=out)
    return {"net": net, "teacher": teacher, "metrics": m, "work": work, "out": out}


def test_heldout_set_shares_slabs_and_covers_adsorbates():
    h = heldout_reactions(14, 9000)
    assert len(h.reactions) == 14 and len(h.slabs) == 5  # ceil(14 / 3) clean slabs, shared by their adsorbates
    assert {r.adsorbate for r in h.reactions} == {"H", "O", "OH", "N", "C", "CH", "CO"}
    for sid in h.slabs:
        ads = [r.adsorbate for r in h.reactions if r.surface == sid]
        assert len(ads) == len(set(ads)) >= 1
    r = h.reactions[0]
    slab, adslab = h.slabs[r.surface], h.adslabs[r.id]
    assert len(adslab) == len(slab) + int((adslab.get_tags() == 2).sum()) and (adslab.get_tags() == 2).any()
    np.testing.assert_allclose(adslab.positions[: len(slab)], slab.positions)
    assert -8.0 <= r.strain <= 8.0 and h.key == heldout_reactions(14, 9000).key
    with pytest.raises(ValueError, match="9000"):
        heldout_reactions(6, 1000)


def test_reaction_energies_by_hand_and_identical_student(shared):
    m, rows = shared["metrics"], shared["metrics"]["_rows"]
    assert len(rows) == 6 and {r["adsorbate"] for r in rows} == set(ADSORBATES)
    h = heldout_reactions(6, 9000, per_surface=3, elements=ELEMENTS, adsorbates=ADSORBATES)
    calls = shared["teacher"].calls
    cache = next((shared["work"] / "tiny").glob("heldout-*"))
    rel = sb.cached_relaxations(
        shared["teacher"], h.structures(), cache, teacher_name="tiny", params=h.params, max_steps=3, batch_size=5
    )
    assert shared["teacher"].calls == calls  # read back from the cache, no teacher call
    for row, r in zip(rows, h.reactions, strict=True):
        e = {k: v.energy for k, v in rel.items()}
        hand = e[f"ads/{r.id}"] - e[f"slab/{r.surface}"] - sum(nu * e[f"gas/{g}"] for g, nu in NU[r.adsorbate].items())
        assert row["dE_teacher_eV"] == pytest.approx(hand, abs=1e-9)
        assert math.isfinite(hand)
    sp = m["single_point"]
    assert sp["overall"]["n"] == 6 and sp["overall"]["mae"] < 1e-4 and sp["overall"]["n_nonfinite"] == 0
    for a in ADSORBATES:
        assert sp["per_adsorbate"][a]["mae"] < 1e-4
        assert sp["per_adsorbate"][a]["spearman"] == pytest.approx(1.0)
    assert m["relax"]["overall"]["mae"] < 1e-3  # same model, same FIRE from the same structures
    protos = sp["per_prototype"]
    assert protos["pure"]["n"] + protos["binary"]["n"] == 6
    assert sum(b["n"] for p, b in protos.items() if p not in ("pure", "binary")) == 6
    assert all(b["mae"] < 1e-4 for b in protos.values() if b["n"])
    assert m["gas"]["student_minus_teacher"]["water_energy"] == pytest.approx(0.0, abs=1e-3)
    status = {t["name"]: t["status"] for t in m["targets"]}
    assert status["single point: ΔE MAE, all reactions"] == "PASS"
    assert status["speed: student single point (E+F)"] == "not run"
    out = shared["out"]
    for name in ("report.md", "metrics.json", "reactions.csv", "per_adsorbate.csv", "per_prototype.csv",
                 "targets.csv", "gas.csv",
                 "parity_single_point.png", "parity_relax.png"):  # fmt: skip
        assert (out / name).is_file(), name
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text and json.loads(text)["heldout_set"]["n_reactions"] == 6
    report = (out / "report.md").read_text()
    assert "PASS" in report and f"Teacher / reference: **{m['teacher']}**" in report


def test_teacher_cache_reused_on_second_run(shared, tmp_path):
    teacher = shared["teacher"]
    calls = teacher.calls
    assert calls > 0
    student = Counting(tiny_model(seed=1, dtype=torch.float32, **CHEAP))
    m = sb.run_benchmark(
        student, teacher, teacher_name="tiny", config=_config(skip=frozenset({"speed", "relax"})),
        work_dir=shared["work"], out_dir=None,
    )  # fmt: skip
    assert teacher.calls == calls  # relaxations and labels both read from --work
    assert student.calls > 0 and m["single_point"]["overall"]["mae"] > 0
    assert m["heldout_labels"]["overall"]["n"] == 4
    from distill.evaluate import evaluate_records
    from distill.labels import LabelCache

    records = LabelCache(next((shared["work"] / "tiny").glob("labels-*"))).records()
    ref = evaluate_records(student.model, records)
    got = m["heldout_labels"]["overall"]
    assert got["energy_mae_per_atom"] == pytest.approx(ref["energy_mae_per_atom"], rel=1e-5)
    assert got["force_mae"] == pytest.approx(ref["force_mae"], rel=1e-5)


def test_nonfinite_student_energy_counted_not_averaged(shared, tmp_path):
    student = Counting(tiny_model(seed=1, dtype=torch.float32, **CHEAP), nan_z=8)  # NaN for anything with O
    m = sb.run_benchmark(
        student, shared["teacher"], teacher_name="tiny", config=_config(skip=frozenset({"speed", "labels"})),
        work_dir=shared["work"], out_dir=tmp_path,
    )  # fmt: skip
    rows = m["_rows"]
    o_ids = sorted(r["id"] for r in rows if r["adsorbate"] in ("O", "OH"))
    sp = m["single_point"]["overall"]
    assert sp["n_nonfinite"] == 4 and sorted(sp["nonfinite_ids"]) == o_ids and sp["n"] == 2
    finite = [abs(r["dE_student_sp_eV"] - r["dE_teacher_eV"]) for r in rows if r["adsorbate"] == "H"]
    assert math.isfinite(sp["mae"]) and sp["mae"] == pytest.approx(float(np.mean(finite)))
    for proto, b in m["single_point"]["per_prototype"].items():  # NaN rows left out of every group, by hand
        ids = [r["id"] for r in rows if proto in (r["prototype"], "pure" if r["prototype"] in ("fcc", "hcp", "bcc")
                                                   else "binary") and r["adsorbate"] == "H"]  # fmt: skip
        errs = [abs(r["dE_student_sp_eV"] - r["dE_teacher_eV"]) for r in rows if r["id"] in ids]
        assert b["n"] == len(ids) and (not ids or b["mae"] == pytest.approx(float(np.mean(errs))))
    assert m["single_point"]["per_adsorbate"]["O"]["n"] == 0 and math.isnan(
        m["single_point"]["per_adsorbate"]["O"]["mae"]
    )
    rel = m["relax"]
    assert rel["overall"]["n_nonfinite"] == 4 and rel["anomalies"]["counts"]["nonfinite"] == 4
    assert math.isfinite(rel["overall"]["mae"])
    status = {t["name"]: t["status"] for t in m["targets"]}
    assert status["single point: non-finite student ΔE"] == "MISS"
    assert status["single point: ΔE MAE, O"] == "MISS"  # no finite value: a miss, not a pass
    assert "NaN" not in (tmp_path / "metrics.json").read_text()


def test_anomaly_classifier():
    h = heldout_reactions(3, 9000, per_surface=3, elements=("Pt",), adsorbates=("O", "OH", "H"))
    oh = next(r for r in h.reactions if r.adsorbate == "OH")
    init = h.adslabs[oh.id]
    ok = sb.structure_anomalies(init, init.copy())
    assert not (ok["desorbed"] or ok["dissociated"] or ok["reconstructed"])
    up = init.copy()
    up.positions[up.get_tags() == 2] += [0.0, 0.0, 5.0]  # whole OH 5 Å higher: desorbed, not dissociated
    res = sb.structure_anomalies(init, up)
    assert res["desorbed"] and not res["dissociated"] and not res["reconstructed"]
    split = init.copy()
    split.positions[-1] += [0.0, 0.0, 1.0]  # H 1 Å farther from O (0.97 Å bond): dissociated
    res = sb.structure_anomalies(init, split)
    assert res["dissociated"] and not res["desorbed"]
    moved = init.copy()
    top = int(np.flatnonzero(moved.get_tags() == 1)[0])
    moved.positions[top] += [0.6, 0.0, 0.0]
    assert sb.structure_anomalies(init, moved)["reconstructed"]
    # per reaction: the desorbed adslab is flagged, together with a > 1 eV energy miss
    structures = h.structures()
    relaxed = {k: sb.Relaxed(a.copy(), 0.0, True, 1) for k, a in structures.items()}
    relaxed[f"ads/{oh.id}"] = sb.Relaxed(up, 0.0, True, 1)
    de = {r.id: 0.0 for r in h.reactions}
    ref = dict(de, **{oh.id: 1.5})
    classes = sb.reaction_anomalies(h, relaxed, de, ref)
    assert classes[oh.id]["classes"] == ["desorbed", "energy_outlier"]
    assert all(not classes[r.id]["classes"] for r in h.reactions if r.id != oh.id)
    # against a reference relaxation: a surface that relaxed far from the initial structure is no anomaly when
    # the reference relaxed it the same way; ending > 0.5 Å from the reference's positions is "diverged"
    other = next(r for r in h.reactions if r.id != oh.id)
    far = structures[f"ads/{other.id}"].copy()
    far.positions[top] += [0.9, 0.0, 0.0]  # the same surface atom, 0.9 Å from the initial structure
    relaxed[f"ads/{other.id}"] = sb.Relaxed(far, 0.0, True, 1)
    alone = sb.reaction_anomalies(h, relaxed, de, ref)
    assert alone[other.id]["classes"] == ["reconstructed"]  # without a reference: judged from the initial one
    reference = dict(relaxed)
    assert sb.reaction_anomalies(h, relaxed, de, ref, reference_relaxed=reference)[other.id]["classes"] == []
    near = far.copy()
    near.positions[top] += [0.3, 0.0, 0.0]  # 0.3 Å from the reference's position: the same minimum
    went = far.copy()
    went.positions[-1] += [0.0, 0.6, 0.0]  # the adsorbate's last atom 0.6 Å from the reference's: diverged
    for atoms, expected in ((near, []), (went, ["diverged"])):
        relaxed[f"ads/{other.id}"] = sb.Relaxed(atoms, 0.0, True, 1)
        got = sb.reaction_anomalies(h, relaxed, de, ref, reference_relaxed=reference)[other.id]
        assert got["classes"] == expected
        assert got["max_divergence"] == pytest.approx(0.3 if not expected else 0.6, abs=1e-9)


def test_speed_section_runs_with_tiny_models():
    net = tiny_model(seed=2, dtype=torch.float32, **CHEAP).trace_network(after_seconds=0.05)
    s = sb.speed_metrics(net, net, repeats=1, relax_steps=2)
    assert len(sb.pt111_o_slab()) == 37
    assert s["student"]["single_point_ms"] > 0 and s["teacher"]["relax_force_calls"] >= 2
    assert s["ratio_single_point"] > 0 and s["ratio_relax"] > 0
    assert s["student_untraced"]["single_point_ms"] > 0 and s["student_untraced"]["ratio_energy_only"] > 0
    # the default policy traced the network in the warm-up (here after 0.05 s of eager calls); conservative forces
    # need autograd, so only energy-only calls are traced
    w = s["student_trace_warmup"]
    assert set(w["trace_seconds"]) == {"energy_only"} and w["calls"] >= 1 and w["trace_after_seconds"] == 0.05


def test_teacher_relaxations_resume_after_kill(tmp_path):
    h = heldout_reactions(3, 9000, per_surface=3, elements=("Cu",), adsorbates=ADSORBATES)
    structures = h.structures()  # 3 gases + 1 slab + 3 adslabs = 7 structures, batches of 3
    teacher = Counting(tiny_model(seed=3, dtype=torch.float32, **CHEAP))
    kw = dict(teacher_name="tiny", params=h.params, max_steps=2, batch_size=3)

    def boom(k):
        if k == 0:
            raise KeyboardInterrupt("killed after batch 0")

    with pytest.raises(KeyboardInterrupt):
        sb.cached_relaxations(teacher, structures, tmp_path, on_batch=boom, **kw)
    assert teacher.structures == 3 * 2  # 3 structures x 2 force calls
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch_00000.json", "manifest.json"]
    first = sb.cached_relaxations(teacher, structures, tmp_path, **kw)
    assert teacher.structures == 7 * 2  # only the 4 missing structures were relaxed
    again = sb.cached_relaxations(teacher, structures, tmp_path, **kw)
    assert teacher.structures == 7 * 2 and list(again) == list(structures)
    for k in structures:
        np.testing.assert_array_equal(again[k].atoms.positions, first[k].atoms.positions)
        assert again[k].energy == first[k].energy
    other = Counting(tiny_model(seed=4, dtype=torch.float32, **CHEAP))
    with pytest.raises(sb.CacheMismatchError, match="teacher"):
        sb.cached_relaxations(other, structures, tmp_path, **kw)


def test_committed_reference_seeds_a_missing_cache_only_when_it_fits(tmp_path, monkeypatch):
    h = heldout_reactions(3, 9000, per_surface=3, elements=("Cu",), adsorbates=ADSORBATES)
    structures = h.structures()
    teacher = Counting(tiny_model(seed=3, dtype=torch.float32, **CHEAP))
    kw = dict(teacher_name="tiny", params=h.params, max_steps=2, batch_size=3)
    reference = tmp_path / "reference" / "heldout"
    made = sb.cached_relaxations(teacher, structures, reference, **kw)
    calls = teacher.structures

    def run(cache, model):
        return sb.seeded_cache(cache, reference, lambda: sb.cached_relaxations(model, structures, cache, **kw))

    # a missing cache is copied from the reference and nothing is relaxed again
    seeded = run(tmp_path / "work" / "heldout", teacher)
    assert teacher.structures == calls and (tmp_path / "work" / "heldout" / "manifest.json").is_file()
    assert all(seeded[k].energy == made[k].energy for k in structures)
    # a reference of another teacher is removed again and the cache computed with this one
    other = Counting(tiny_model(seed=4, dtype=torch.float32, **CHEAP))
    fresh = run(tmp_path / "work2" / "heldout", other)
    assert other.structures == len(structures) * 2
    manifest = json.loads((tmp_path / "work2" / "heldout" / "manifest.json").read_text())
    assert manifest["teacher"] != json.loads((reference / "manifest.json").read_text())["teacher"]
    assert any(fresh[k].energy != made[k].energy for k in structures)
    # an existing cache is never replaced: its own mismatch is the user's to resolve
    with pytest.raises(sb.CacheMismatchError, match="teacher"):
        run(tmp_path / "work" / "heldout", other)

    # a copy that cannot be put in place (another run made the folder meanwhile) leaves no temporary folder and
    # the cache to `build()`
    def taken(src, dst):
        raise FileExistsError(dst)

    monkeypatch.setattr(sb.os, "rename", taken)
    calls = teacher.structures
    run(tmp_path / "work3" / "heldout", teacher)
    assert teacher.structures == calls + len(structures) * 2
    assert [p.name for p in (tmp_path / "work3").iterdir()] == ["heldout"]


def test_committed_reference_caches_fit_the_default_benchmark():
    """The committed SevenNet-0 caches (benchmarks/reference/) carry the names and hashes of the default held-out
    sets as this checkout generates them, so a fresh machine skips ~1 CPU-hour of teacher relaxations."""
    from calculators.hashing import structures_sha256
    from distill.heldout import heldout_label_structures

    config = sb.BenchmarkConfig()
    hset = heldout_reactions(
        config.n_reactions, config.seed, per_surface=config.per_surface, elements=config.elements,
        adsorbates=config.adsorbates,
    )  # fmt: skip
    base = sb.REFERENCE_DIR / "sevennet-0"
    relax = json.loads(
        (base / f"heldout-n{config.n_reactions}-seed{config.seed}-{hset.key}" / "manifest.json").read_text()
    )
    structures = hset.structures()
    assert relax["structures_sha256"] == structures_sha256([structures[k] for k in structures], sb.HASH_DECIMALS)
    assert relax["params"] == json.loads(json.dumps(hset.params))
    structs, _ = heldout_label_structures(config.n_labels, config.label_seed)
    label_hash = structures_sha256(structs, sb.HASH_DECIMALS)
    label_dir = base / f"labels-n{config.n_labels}-seed{config.label_seed}-{label_hash[:12]}"
    labels = json.loads((label_dir / "manifest.json").read_text())
    assert labels["structures_sha256"] == label_hash
    assert labels["num_structures"] == len(structs) and len(labels["chunks"]) == -(-len(structs) // 8)


def test_student_description_names_the_weights_and_shipping_checks_them(tmp_path):
    """The benchmark records the weights' sha256 (state_dict), which a metadata rewrite keeps and the file sha256
    does not; the ship script refuses benchmark numbers of other weights."""
    from calculators.gemnet.checkpoint import load_project_checkpoint, save_checkpoint

    spec = importlib.util.spec_from_file_location(
        "ship_default_student", ROOT / "benchmarks" / "ship_default_student.py"
    )
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)

    model = tiny_model(dtype=torch.float32, **CHEAP)
    save_checkpoint(model, tmp_path / "a.pt", {"note": "first"})
    save_checkpoint(model, tmp_path / "b.pt", {"note": "metadata rewritten"})
    a = sb.student_description(tmp_path / "a.pt", load_project_checkpoint(tmp_path / "a.pt")[0])
    b = sb.student_description(tmp_path / "b.pt", load_project_checkpoint(tmp_path / "b.pt")[0])
    assert a["sha256"] != b["sha256"] and a["weights_sha256"] == b["weights_sha256"]
    ship.check_benchmark_weights({"student": a}, load_project_checkpoint(tmp_path / "b.pt")[0])  # same weights
    other = tiny_model(seed=3, dtype=torch.float32, **CHEAP)
    with pytest.raises(ValueError, match="not the weights being shipped"):
        ship.check_benchmark_weights({"student": a}, other)
    with pytest.raises(ValueError, match="not recorded"):
        ship.check_benchmark_weights({"student": {"sha256": a["sha256"]}}, model)


def test_reshipping_a_shipped_file_keeps_its_training_history():
    """Re-benchmarking the shipped file with new code and shipping it again (no earlier rounds at hand) keeps the
    rounds, preset and scale factors it carries; a first shipment builds them from the rounds' checkpoints."""
    spec = importlib.util.spec_from_file_location(
        "ship_default_student", ROOT / "benchmarks" / "ship_default_student.py"
    )
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    model = tiny_model(dtype=torch.float32, **CHEAP)
    round0 = {"recipe": {"student": "gemnet-oc-student"}, "step": 10, "fitted_scale_factors": {"a": 1.5}}
    round1 = {"recipe": {"student": "runs/r0/student.pt"}, "step": 20}
    rounds, preset, scales = ship.training_history(model, round1, [round0])
    assert [r["step"] for r in rounds] == [10, 20] and scales == {"a": 1.5}
    assert preset.startswith("gemnet-oc-student")
    shipped = {**round1, "rounds": rounds, "preset": preset, "fitted_scale_factors": scales}
    assert ship.training_history(model, shipped, []) == (rounds, preset, scales)
    # a fine-tune of the shipped file, shipped with it as its earlier round: the record goes on from it
    round2 = {"recipe": {"student": "runs/shipped.pt"}, "step": 30}
    assert ship.training_history(model, round2, [shipped]) == (rounds + [{**round2, **dict.fromkeys(
        ("validation", "label_caches", "training_records", "paired_records"))}], preset, scales)  # fmt: skip
    # the label caches are gone by then: their recorded sizes and settings stay in the data description
    shipped["label_caches"] = [{"path": "/nowhere/labels-v1", "structures": 9}]
    shipped["data"] = {"caches": [{"path": "/nowhere/labels-v1", "structures": 9, "settings": {"seed": 1000}}]}
    assert ship.data_description(shipped)["caches"] == shipped["data"]["caches"]


def test_report_shows_the_compiled_student_beside_the_judged_one():
    """The opt-in compiled student's rows appear in the report when it was timed, a reason when it was not,
    nothing when it was not asked for; the judged targets never read it."""
    times = {"single_point_ms": 10.0, "energy_only_ms": 8.0, "relax_ms_per_force_call": 9.0}
    speed = {"teacher": {k: 100.0 for k in times}}
    compiled = {**times, "compile_seconds": 12.0, "ratio_single_point": 10.0, "ratio_energy_only": 12.5,
                "ratio_relax": 11.1}  # fmt: skip
    rows = sb._compiled_rows({**speed, "student_compiled": compiled})
    assert len([r for r in rows if "not judged" in r]) == 3 and any("12.0 s" in r for r in rows)
    why = sb._compiled_rows({**speed, "student_compiled": {"unavailable": "compiling failed; it ran eager"}})
    assert any("compiling failed" in r for r in why)
    assert sb._compiled_rows(speed) == []
    untraced = {**times, "ratio_single_point": 8.0, "ratio_energy_only": 9.0, "ratio_relax": 8.5}
    rows = sb._untraced_rows({**speed, "student_untraced": untraced})
    assert len([r for r in rows if "untraced" in r and "not judged" in r]) == 3 and sb._untraced_rows(speed) == []
    both = sb.speed_rows({**speed, "student": times, "ratio_single_point": 10.0, "ratio_energy_only": 12.5,
                          "ratio_relax": 11.1, "student_untraced": untraced})  # fmt: skip
    assert [r["model"] for r in both].count("student, untraced network (not judged)") == 3
    csv_rows = sb.speed_rows({**speed, "student": times, "ratio_single_point": 10.0, "ratio_energy_only": 12.5,
                              "ratio_relax": 11.1, "student_compiled": compiled})  # fmt: skip
    assert [r["model"] for r in csv_rows].count("student, opt-in compiled (not judged)") == 3
    metrics = {
        "single_point": {"overall": {"mae": 0.1, "n_nonfinite": 0}, "per_adsorbate": {}},
        "speed": {"student": dict(times), **speed, "student_compiled": {**compiled, "single_point_ms": 1.0}},
    }
    judged = sb.targets(metrics)
    sp = next(t for t in judged if t["name"] == "speed: student single point (E+F)")
    assert sp["value"] == 10.0  # the eager student, not the compiled one


def test_speed_probes_are_interleaved_call_by_call():
    """Student and teacher calls alternate in blocks (ABBA), so a load change during the run hits both: the call
    log of two counting models shows the blocks in the promised order."""
    log: list[str] = []

    class Logged(Counting):
        def __init__(self, model, name):
            super().__init__(model)
            self.name = name

        def predict(self, batch, *, forces=True, features=False, **kw):
            log.append(self.name)
            return super().predict(batch, forces=forces, features=features)

    a = Logged(tiny_model(seed=2, dtype=torch.float32, **CHEAP), "a")
    b = Logged(tiny_model(seed=3, dtype=torch.float32, **CHEAP), "b")
    from calculators.ase_calculator import ModelCalculator

    probes = {n: sb.SpeedProbe(m, ModelCalculator, relax_steps=2) for n, m in (("a", a), ("b", b))}
    out = sb.interleaved_speed(probes, repeats=4, relax_repeats=2, warmup=0, block=1)
    timed = log[: 4 * 2 * 2]  # 4 repeats x (single point, energy only) x 2 models, before the relaxations
    assert timed == ["a", "b", "a", "b", "b", "a", "b", "a", "a", "b", "a", "b", "b", "a", "b", "a"]
    log.clear()
    sb.interleaved_speed(probes, repeats=5, relax_repeats=1, warmup=0, block=2)  # blocks of 2, the last of 1
    assert log[:20] == list("aabbaabb" + "bbaabbaa" + "abab")
    for name in ("a", "b"):
        assert len(out[name]["single_point_ms_all"]) == 4 and out[name]["single_point_ms"] > 0
        assert len(out[name]["relax_ms_per_force_call_all"]) == 2 and out[name]["relax_force_calls"] >= 2


def test_label_errors_by_composition_and_teacher_force():
    """Held-out label errors split by distinct metals and by the teacher's largest force: every structure lands in
    one class and one bin, and each split's MAE is the mean over its structures (checked by hand)."""
    from ase.build import fcc111, molecule

    from distill.labels import collate

    torch.set_num_threads(1)
    model = tiny_model(seed=1, dtype=torch.float32, **CHEAP)
    pure = fcc111("Pt", (2, 2, 2), vacuum=6.0)
    binary = pure.copy()
    binary.numbers[[0, 3]] = 29  # Cu
    gas = molecule("H2O")
    gas.cell, gas.pbc = [8.0, 8.0, 8.0], True
    records = []
    for k, (atoms, fmax) in enumerate([(pure, 0.5), (binary, 2.0), (gas, 12.0), (binary, 0.2)]):
        n = len(atoms)
        forces = torch.zeros(n, 3)
        forces[0, 2] = fmax
        records.append({
            "numbers": torch.tensor(atoms.numbers), "positions": torch.tensor(atoms.positions, dtype=torch.float32),
            "cell": torch.tensor(np.asarray(atoms.cell), dtype=torch.float32), "pbc": torch.tensor(atoms.pbc),
            "tags": torch.zeros(n, dtype=torch.long), "fixed": torch.zeros(n, dtype=torch.bool),
            "energy": torch.tensor(-1.5 * n + 0.1 * k), "forces": forces,
        })  # fmt: skip
    kinds = ["surface", "surface", "gas", "surface"]
    out = sb.label_errors(model, records, kinds, batch_size=3)
    batch, _ = collate(records)
    e = model.predict(batch, forces=False)["energy"].double()
    per_atom = [abs(float(e[i]) - float(r["energy"])) / len(r["numbers"]) for i, r in enumerate(records)]
    comp = out["per_composition"]
    assert list(comp) == ["no metal", "one metal", "two metals"]
    assert [comp[c]["n"] for c in comp] == [1, 1, 2]
    assert comp["two metals"]["energy_mae_per_atom"] == pytest.approx((per_atom[1] + per_atom[3]) / 2, rel=1e-5)
    bins = out["per_teacher_fmax"]
    assert {k: b["n"] for k, b in bins.items()} == {"0-1": 2, "1-3": 1, ">=10": 1}
    assert bins[">=10"]["energy_mae_per_atom"] == pytest.approx(per_atom[2], rel=1e-5)
    assert sum(b["n"] for b in bins.values()) == out["overall"]["n"] == 4
