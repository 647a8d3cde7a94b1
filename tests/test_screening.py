"""Screening engine: ΔE assembly, metrics, funnel, reports, resumability and the `screen run/funnel/report` CLI."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from calculators.batched import atom_batches
from calculators.hashing import sha256_file, structure_key
from calculators.stats import spearman
from screening.cathub import load_dataset
from screening.evaluators import lookup_evaluator, resolve_student
from screening.funnel import recall_at_k, run_funnel, select
from screening.metrics import closer_share, grouped, mae
from screening.reactions import ScreenReaction, builtin_set, from_dataset, generated_set
from screening.report import write_report
from screening.results import load_results
from screening.runner import RunConfig, _relax_diagnostics, run_screening

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "cathub" / "pt111_raw.json"


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("pt111", data_file=FIXTURE)


@pytest.fixture(scope="module")
def screen_set(dataset):
    return from_dataset(dataset)


def dft_lookup(dataset, label: str = "dft", shift: dict[str, float] | None = None):
    """Evaluator returning each system's DFT energy (+ optional per-element-count shift for a fake model)."""
    table = {}
    for r in dataset.reactions:
        for s in r.systems.values():
            table[structure_key(s.atoms)] = s.energy + (shift or {}).get(s.name, 0.0)
    return lookup_evaluator(table, structure_key, label)


class CountingLookup:
    """Wraps an Evaluator to count structures evaluated."""

    def __init__(self, ev):
        self.ev = ev
        self.structures = 0
        inner = ev.energy_fn

        def fn(atoms_list):
            self.structures += len(atoms_list)
            return inner(atoms_list)

        ev.energy_fn = fn


@pytest.fixture(scope="module")
def tiny_ckpts(tmp_path_factory):
    """Two tiny random GemNet-OC checkpoints (teacher, student)."""
    from gemnet_helpers import tiny_model

    from calculators.gemnet.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("ckpt")
    paths = []
    for seed, name in ((0, "teacher.pt"), (1, "student.pt")):
        m = tiny_model(seed=seed, dtype=torch.float32, num_blocks=1, quad_interaction=False)
        paths.append(save_checkpoint(m, d / name, {"note": "tiny random test model"}))
    return paths


# ----------------------------------------------------------------------------- ΔE assembly
def test_delta_e_equals_dft_reaction_energy(dataset, screen_set, tmp_path):
    assert len(screen_set.reactions) == 7 and not screen_set.skipped
    dft = dft_lookup(dataset)
    energies = dft.energies([screen_set.atoms[k] for k in screen_set.atoms])
    by_key = dict(zip(screen_set.atoms, energies, strict=True))
    for r in screen_set.reactions:
        assert r.delta_e(by_key) == pytest.approx(r.reference, abs=1e-9)
    # the engine end to end: teacher = DFT lookup ⇒ zero error on every reaction
    res = run_screening(screen_set, dft, None, tmp_path / "run", student_absent_reason="test")
    assert res["reference"].startswith("DFT")
    assert max(abs(row["teacher_error"]) for row in res["reactions"]) < 1e-9
    assert res["metrics"]["all"]["mae_teacher"] < 1e-9


def test_sign_convention_negative_reactant_is_released():
    # OH* from H2O − ½H2: ΔE = E(OH*) − E(*) − E(H2O) + ½E(H2)
    r = ScreenReaction(
        "x", "H2O(g) - 0.5H2(g) + * -> OH*", {"star": 1, "H2Ogas": 1, "H2gas": -0.5}, {"OHstar": 1},
        {"star": "s", "H2Ogas": "w", "H2gas": "h", "OHstar": "a"},
        {"star": False, "H2Ogas": True, "H2gas": True, "OHstar": False},
    )  # fmt: skip
    e = {"s": -100.0, "w": -14.0, "h": -6.8, "a": -118.0}
    assert r.delta_e(e) == pytest.approx(-118.0 + 100.0 + 14.0 - 3.4)
    # gas energies from another model (teacher) replace only the gas species
    g = {"w": -15.0, "h": -7.0}
    assert r.delta_e(e, g) == pytest.approx(-118.0 + 100.0 + 15.0 - 3.5)


def test_each_distinct_system_evaluated_once(dataset, screen_set, tmp_path):
    # 7 reactions reference 24 species slots, but only 11 distinct structures (shared slabs and gases)
    slots = sum(len(r.systems) for r in screen_set.reactions)
    assert slots == 24 and len(screen_set.atoms) == 11
    t = CountingLookup(dft_lookup(dataset))
    s = CountingLookup(dft_lookup(dataset, "fake-student", {"Ostar": 0.1}))
    run_screening(screen_set, t.ev, s.ev, tmp_path, config=RunConfig(gas_energies="teacher"))
    gas = len(screen_set.gas_keys)
    assert gas == 3
    assert t.structures == 11 + 1  # + one untimed warm-up call on the smallest structure
    assert s.structures == 11 - gas + 1  # gas species use the teacher's energies


def test_fake_student_errors_and_gas_modes(dataset, screen_set, tmp_path):
    t = dft_lookup(dataset)
    s = dft_lookup(dataset, "fake", {"Ostar": 0.3, "H2Ogas": 1.0})
    res = run_screening(screen_set, t, s, tmp_path / "a", config=RunConfig(gas_energies="teacher"))
    err = {row["id"]: row["student_error"] for row in res["reactions"]}
    o_rows = [r.id for r in screen_set.reactions if "Ostar" in r.products]
    assert all(err[i] == pytest.approx(0.3) for i in o_rows)
    assert all(abs(e) < 1e-9 for i, e in err.items() if i not in o_rows)  # H2O shift ignored: teacher gas
    res = run_screening(screen_set, t, s, tmp_path / "b", config=RunConfig(gas_energies="self"))
    oh = [r.id for r in screen_set.reactions if r.adsorbate == "OH"]
    errs = {row["id"]: row["student_error"] for row in res["reactions"]}
    assert all(errs[i] == pytest.approx(-1.0) for i in oh)  # H2O is a reactant: ΔE shifts by −1 eV
    m = res["metrics"]["OH"]
    assert m["mae_student"] == pytest.approx(1.0) and m["delta_mae"] == pytest.approx(1.0)
    assert m["student_closer_share"] == 0.0


# ----------------------------------------------------------------------------- metrics
def test_metrics_hand_computed():
    ref = [1.0, 2.0, 3.0, 4.0]
    assert mae([1.5, 2.0, 2.0, 4.5], ref) == pytest.approx((0.5 + 0 + 1 + 0.5) / 4)
    assert mae([1.0, None, float("nan")], [2.0, 1.0, 1.0]) == pytest.approx(1.0)  # missing pairs dropped
    # ties: ranks x = [1, 2.5, 2.5, 4], y = [1, 2, 3, 4]; ρ = Σdxdy / sqrt(Σdx² Σdy²) = 4.5 / sqrt(4.5·5)
    assert spearman([10, 20, 20, 30], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert spearman([1, None, 2, 3, float("nan")], [1, 5, 2, 3, 4]) == pytest.approx(1.0)  # missing pairs dropped
    # closer share: student strictly closer in reactions 0 and 2; tie (1) and worse (3) do not count
    assert closer_share([1.1, 2.5, 3.0, 5.0], [1.5, 1.5, 3.5, 4.2], ref) == pytest.approx(0.5)
    rows = [
        {"adsorbate": "H", "reference": 0.0, "teacher": 0.2, "student": 0.1},
        {"adsorbate": "H", "reference": 1.0, "teacher": 1.0, "student": 1.4},
        {"adsorbate": "O", "reference": 2.0, "teacher": 1.0, "student": 2.5},
    ]
    g = grouped(rows, "adsorbate", True)
    assert g["H"]["n"] == 2 and g["H"]["mae_teacher"] == pytest.approx(0.1)
    assert g["H"]["mae_student"] == pytest.approx(0.25) and g["H"]["delta_mae"] == pytest.approx(0.15)
    assert g["all"]["student_closer_share"] == pytest.approx(2 / 3)
    assert grouped(rows, "adsorbate", False)["all"]["mae_student"] is None


def test_atom_batches_respect_atom_budget():
    sizes = (5, 5, 12, 3, 3)
    assert atom_batches(sizes, 10, largest_first=False) == [[0, 1], [2], [3, 4]]  # screening: input order
    assert atom_batches(sizes, 10) == [[2], [0, 1], [3, 4]]  # prediction: largest first


# ----------------------------------------------------------------------------- funnel
def test_funnel_selection_and_recall():
    scores = {"a": -1.0, "b": 0.05, "c": 0.3, "d": -0.15, "e": 2.0}
    assert select(scores, fraction=0.4) == ["a", "d"]  # lowest ΔE first, ceil(0.4·5) = 2
    assert select(scores, fraction=0.01) == ["a"]
    assert select(scores, target=0.0, window=0.2) == ["b", "d"]  # |ΔE| ≤ 0.2, closest first
    with pytest.raises(ValueError):
        select(scores, window=0.2)
    assert recall_at_k(["a", "b", "c"], ["a", "c", "x"], 2) == pytest.approx(0.5)
    assert recall_at_k(["a", "b"], ["b", "a"], 2) == 1.0


def test_funnel_on_dataset(dataset, screen_set, tmp_path):
    t = CountingLookup(dft_lookup(dataset))
    s = dft_lookup(dataset, "fake", {"Hstar": 0.5})
    res = run_funnel(screen_set, t.ev, s, tmp_path, fraction=0.3, top_k=2, verify=False)
    # the fraction is taken within each adsorbate: ceil(0.3·3) O* + ceil(0.3·2) H* + ceil(0.3·2) OH*
    assert res["re_evaluated"] == 3 and res["ranking"] == "per adsorbate"
    assert {r["adsorbate"] for r in res["final_ranking"]} == {"O", "H", "OH"}  # never all H* (lowest ΔE)
    assert "recall_at_k" not in res
    assert res["teacher_structures_funnel"] < res["teacher_structures_all"] == 8
    assert 0 < res["structures_saved_share"] < 1
    res = run_funnel(screen_set, t.ev, s, tmp_path, fraction=1.0, top_k=2, verify=True)
    for a in ("O", "H", "OH"):  # ranks restart per adsorbate, teacher ΔE ascending within each
        rows = [r for r in res["final_ranking"] if r["adsorbate"] == a]
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        assert [r["teacher"] for r in rows] == sorted(r["teacher"] for r in rows)
    assert res["recall_at_k"] == 1.0 and set(res["recall_at_k_by_adsorbate"]) == {"O", "H", "OH"}
    res = run_funnel(screen_set, t.ev, s, tmp_path, fraction=0.3, top_k=2, verify=True)
    # one per adsorbate re-evaluated, the student ranks each adsorbate like the teacher: 1 of each top-2 kept
    assert res["recall_at_k"] == pytest.approx(0.5)
    assert res["recall_at_k_by_adsorbate"] == {"O": 0.5, "H": 0.5, "OH": 0.5}
    assert {a: ids[0] for a, ids in res["teacher_top_k"].items()} == {
        r["adsorbate"]: r["id"] for r in res["final_ranking"] if r["rank"] == 1
    }
    write_report(tmp_path)  # funnel-only directory renders
    assert (tmp_path / "funnel.md").is_file() and (tmp_path / "funnel.png").is_file()
    assert "per adsorbate" in (tmp_path / "funnel.md").read_text()


# ----------------------------------------------------------------------------- report + resume
def test_report_files_and_index_links(dataset, screen_set, tmp_path):
    t = dft_lookup(dataset, "teacher-fake", {"Hstar": 0.2, "OHstar": -0.1})
    s = dft_lookup(dataset, "student-fake", {"Hstar": 0.3, "Ostar": 0.1})
    run_screening(screen_set, t, s, tmp_path)
    files = write_report(tmp_path, formats=("png", "svg"))
    for name in ("parity", "parity_connected", "error_difference", "cumulative_error", "abs_error_hist",
                 "parity_by_adsorbate"):  # fmt: skip
        png = tmp_path / f"{name}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / f"{name}.svg").is_file()
    for f in files:
        assert (tmp_path / f).is_file(), f
    html = (tmp_path / "index.html").read_text()
    links = re.findall(r"(?:src|href)='([^']+)'", html)
    assert links and all((tmp_path / link).is_file() for link in links)
    assert "http" not in html and "<script" not in html
    assert "Reference: DFT" in html and "sha256" not in html  # lookup models have no files
    table = (tmp_path / "per_adsorbate.csv").read_text().splitlines()
    assert table[0].startswith("adsorbate,n,MAE_teacher_eV") and len(table) == 1 + 3 + 1
    md = (tmp_path / "reactions.md").read_text()
    assert md.count("\n") == 2 + 7


def test_resume_does_not_recompute(dataset, screen_set, tmp_path):
    t1 = CountingLookup(dft_lookup(dataset))
    s1 = CountingLookup(dft_lookup(dataset, "fake", {"Hstar": 0.2}))
    first = run_screening(screen_set, t1.ev, s1.ev, tmp_path)
    assert t1.ev.calls > 0 and s1.ev.calls > 0
    t2 = CountingLookup(dft_lookup(dataset))
    s2 = CountingLookup(dft_lookup(dataset, "fake", {"Hstar": 0.2}))
    second = run_screening(screen_set, t2.ev, s2.ev, tmp_path)
    assert t2.ev.calls == 0 and s2.ev.calls == 0
    assert [r["student"] for r in first["reactions"]] == [r["student"] for r in second["reactions"]]
    assert second["timing"] == first["timing"]  # timings measured in the run that computed them
    # drop two cached teacher entries: only those two are recomputed (+ warm-up)
    store = next((tmp_path / "energies").glob("teacher-*.json"))
    data = json.loads(store.read_text())
    for k in list(data["entries"])[:2]:
        del data["entries"][k]
    store.write_text(json.dumps(data))
    t3 = CountingLookup(dft_lookup(dataset))
    run_screening(screen_set, t3.ev, s2.ev, tmp_path)
    assert t3.structures == 2 + 1
    # a different model (fingerprint) does not reuse the cache
    s4 = CountingLookup(dft_lookup(dataset, "fake", {"Hstar": 0.4}))
    run_screening(screen_set, t3.ev, s4.ev, tmp_path)
    assert s4.structures == 8 + 1


def test_relax_diagnostics():
    from screening.structures import build_adsorption_system

    sys_ = build_adsorption_system("Pt", "fcc", "111", "O", site="fcc", layers=3)
    a = sys_.adslab
    pos = a.positions.copy()
    d = _relax_diagnostics(a, pos, gas=False)
    assert d == {"slab_shift": 0.0, "ads_shift": 0.0, "desorbed": False}
    pos[0] += [0.0, 0.0, 0.7]
    ads = np.flatnonzero(a.get_tags() == 2)
    pos[ads] += [1.2, 0.0, 0.0]
    d = _relax_diagnostics(a, pos, gas=False)
    assert d["slab_shift"] == pytest.approx(0.7) and d["ads_shift"] == pytest.approx(1.2)
    pos[ads, 2] += 5.0
    assert _relax_diagnostics(a, pos, gas=False)["desorbed"]


def test_builtin_set_keys_are_stable():
    # screening energy caches are keyed by these content hashes: the built-in set must keep producing them
    keys = sorted(builtin_set().atoms)
    assert len(keys) == 50
    assert keys[:5] == [
        "0c76ada06ce8d0a6",
        "0db4c3e6034bddff",
        "11061953e653cc9e",
        "228c959c5af174d5",
        "24a636215f38030c",
    ]


def test_structure_keys_ignore_the_sign_of_zero_and_float_noise():
    """An atom on a cell edge sits at ±2e-16 Å depending on the numerical libraries; its structure must get one
    key everywhere (the built-in set's keys once changed with the installed scipy/numpy through this)."""
    from ase import Atoms

    from calculators.hashing import structure_key, structures_sha256

    def atoms(y: float) -> Atoms:
        return Atoms("PtH", positions=[[0.0, 0.0, 0.0], [1.0, y, 2.0]], cell=[3.0, 3.0, 10.0], pbc=True)

    assert structure_key(atoms(-2.2e-16)) == structure_key(atoms(0.0)) == structure_key(atoms(2.2e-16))
    assert structures_sha256([atoms(-2.2e-16)]) == structures_sha256([atoms(2.2e-16)])
    assert structure_key(atoms(1e-4)) != structure_key(atoms(0.0))  # a real displacement still counts


def test_builtin_and_generated_sets_share_systems():
    b = builtin_set(surfaces=[("Pt", "fcc", "111"), ("Cu3Au", "L12", "111")], adsorbates=("H", "OH"))
    assert [r.adsorbate for r in b.reactions] == ["H", "OH", "H", "OH"]
    assert b.reference_kind == "teacher"
    assert len(b.atoms) == 2 * 3 + 2  # per surface: slab + 2 adslabs; gases H2, H2O shared
    r = b.reactions[1]
    assert r.reactants == {"star": 1.0, "H2Ogas": 1.0, "H2gas": -0.5} and r.products == {"OHstar": 1.0}
    assert len(b.limit(3).reactions) == 3
    from ase.formula import Formula

    g = generated_set(["Pt", "Cu"], 4, seed=3)
    assert len(g.reactions) == 4
    for r in g.reactions:
        slab, adslab = g.atoms[r.systems["star"]], g.atoms[r.systems[f"{r.adsorbate}star"]]
        assert len(adslab) - len(slab) == len(Formula(r.adsorbate))  # the clean slab is the adslab minus adsorbate
        assert np.allclose(adslab.positions[: len(slab)], slab.positions)


def test_default_student_used_when_installed(monkeypatch, tiny_ckpts):
    import calculators.loading as cc
    from calculators.hashing import sha256_file

    monkeypatch.setattr(cc, "DEFAULT_STUDENT", tiny_ckpts[1])
    s, reason = resolve_student(None)
    assert reason is None and s.label == "student (default)"
    assert s.description["sha256"] == sha256_file(tiny_ckpts[1])
    assert len(s.energies(builtin_set(surfaces=[("Pt", "fcc", "111")], adsorbates=("H",)).atoms.values())) == 3


def test_student_absent_is_reported(monkeypatch, tmp_path):
    import calculators.loading as cc

    monkeypatch.setattr(cc, "DEFAULT_STUDENT", tmp_path / "missing.pt")
    s, reason = resolve_student(None)
    assert s is None and "no default student" in reason
    assert resolve_student("none") == (None, "teacher-only run requested (--student none)")


# ----------------------------------------------------------------------------- CLI
def _invoke(args):
    from screening.cli import app

    res = CliRunner().invoke(app, args)
    return res, res.output + (res.stderr if hasattr(res, "stderr") and res.stderr_bytes is not None else "")


def test_cli_run_report_funnel(tiny_ckpts, tmp_path):
    teacher, student = map(str, tiny_ckpts)
    out = tmp_path / "run"
    args = ["run", "--data-file", str(FIXTURE), "--teacher", teacher, "--student", student, "--out", str(out)]
    res, text = _invoke(args)
    assert res.exit_code == 0, text
    assert "reference: DFT" in text and "model calls: teacher" in text
    results = load_results(out)
    assert results["dataset"]["reactions_screened"] == 7
    assert results["models"]["student"]["sha256"] == sha256_file(student)
    assert results["timing"]["speedup"] > 0
    for r in results["reactions"]:  # student columns are the student's own ΔE, not the teacher's
        assert r["student_error"] == pytest.approx(r["student"] - r["reference"], abs=1e-12)
    assert max(abs(r["student"] - r["teacher"]) for r in results["reactions"]) > 1e-3
    # re-run: everything cached, no model call
    res, text = _invoke(args)
    assert res.exit_code == 0 and "model calls: teacher 0, student 0" in text
    # report from saved results only
    (out / "parity.png").unlink()
    (out / "index.html").unlink()
    res, text = _invoke(["report", str(out)])
    assert res.exit_code == 0, text
    assert (out / "parity.png").is_file() and (out / "index.html").is_file()
    # funnel on the dataset, window around a target
    fout = tmp_path / "funnel"
    res, text = _invoke(
        ["funnel", "--data-file", str(FIXTURE), "--teacher", teacher, "--student", student, "--target", "0",
         "--window", "100", "--top-k", "3", "--out", str(fout)]
    )  # fmt: skip
    assert res.exit_code == 0, text
    f = json.loads((fout / "funnel.json").read_text())
    assert f["re_evaluated"] == 7 and f["recall_at_k"] == 1.0  # window covers all: the teacher ranks everything
    assert (fout / "index.html").is_file() and (fout / "funnel.csv").is_file()


def test_cli_teacher_only_when_no_student(tiny_ckpts, tmp_path):
    teacher = str(tiny_ckpts[0])
    out = tmp_path / "t"
    res, text = _invoke(["run", "--data-file", str(FIXTURE), "--teacher", teacher, "--student", "none", "--limit",
                         "3", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, text
    r = load_results(out)
    assert "student" not in r["models"] and r["student_absent_reason"]
    assert len(r["reactions"]) == 3 and r["dataset"]["counts"]["beyond_limit"] == 4
    assert not r["dataset"]["skipped"]  # not screened beyond --limit, but not skipped/invalid either
    assert "skipped/invalid: 0" in (out / "summary.md").read_text()
    assert "teacher-only run" in (out / "index.html").read_text()
    assert not (out / "parity_connected.png").exists()


def test_cli_funnel_generated_candidates(tiny_ckpts, tmp_path):
    teacher, student = map(str, tiny_ckpts)
    out = tmp_path / "g"
    res, text = _invoke(["funnel", "--generate", "6", "--elements", "Pt,Cu", "--teacher", teacher, "--student",
                         student, "--fraction", "0.5", "--top-k", "2", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, text
    f = json.loads((out / "funnel.json").read_text())
    per_ads = Counter(r.adsorbate for r in generated_set(["Pt", "Cu"], 6).reactions)
    assert f["candidates"] == 6 and f["re_evaluated"] == sum(math.ceil(0.5 * n) for n in per_ads.values())
    assert 0.0 <= f["recall_at_k"] <= 1.0 and set(f["recall_at_k_by_adsorbate"]) == set(per_ads)
    assert "teacher" in load_results(out)["reference"]


def test_cli_offline_dataset_message(tmp_path, monkeypatch):
    monkeypatch.delenv("CATHUB_API_KEY", raising=False)
    res, text = _invoke(["run", "--dataset", "alonso", "--cache-dir", str(tmp_path / "empty"), "--out",
                         str(tmp_path / "x")])  # fmt: skip
    assert res.exit_code == 2
    assert "screen fetch" in text and "--data-file" in text
    assert "Traceback" not in text
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_mptrj_u_caveat():
    from screening.runner import mp_u_caveat

    assert mp_u_caveat({"Ni", "O", "H"}) is not None and "Ni" in mp_u_caveat({"Ni", "O"})
    assert mp_u_caveat({"Ni", "H"}) is None and mp_u_caveat({"Pt", "O"}) is None


def test_cli_relax_mode_anomalies(tiny_ckpts, tmp_path):
    teacher, student = map(str, tiny_ckpts)
    out = tmp_path / "relax"
    res, text = _invoke(["run", "--data-file", str(FIXTURE), "--teacher", teacher, "--student", student, "--mode",
                         "relax", "--fmax", "1e-9", "--max-steps", "2", "--limit", "3", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, text
    r = load_results(out)
    assert all("not converged" in row["teacher_anomalies"] for row in r["reactions"])  # fmax 1e-9 in 2 steps
    assert r["anomalies"]["teacher"]["not converged"] == 3
    assert r["anomalies"]["teacher"]["reactions without anomaly"] == 0
    assert (out / "anomalies.csv").is_file()
    entries = json.loads(next((out / "energies").glob("teacher-relax-*.json")).read_text())["entries"]
    assert all(e["steps"] == 2 and not e["converged"] for e in entries.values())
    assert r["timing"]["teacher"]["model_calls_per_structure"] == 2.0
    assert r["timing"]["speedup_per_model_call"] > 0
    assert "speedup_per_model_call" in (out / "speed.csv").read_text()


def test_real_alonso_metadata_page_is_skipped_with_reasons(shared_dir, tmp_path):
    from screening.cathub.model import reaction_from_node
    from screening.cathub.sources import build_dataset, nodes_from_raw

    raw = shared_dir / "cathub" / "AlonsoStrain2023.page1.metadata.json"
    nodes = nodes_from_raw(json.loads(raw.read_text()))
    ds = build_dataset([reaction_from_node(n) for n in nodes], name="alonso", pub_id="AlonsoStrain2023", source="x")
    sset = from_dataset(ds)
    assert not sset.reactions and len(sset.skipped) == 200
    assert all(why.startswith("no structure for") for _, why in sset.skipped)
    args = ["run", "--dataset", "alonso", "--data-file", str(raw), "--structures", "cathub", "--out", str(tmp_path)]
    res, text = _invoke(args)  # the DFT structures asked for explicitly; by default the run rebuilds them
    assert res.exit_code == 2 and "no reactions to screen (200 skipped" in text and "--structures rebuild" in text
