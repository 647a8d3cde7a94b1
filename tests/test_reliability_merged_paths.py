"""Issue 13's reliability on the paths of issues 15 and 11: the reaction-aware funnel (`screen funnel --reaction`),
the per-adsorbate raw-ΔE funnel and screening from rebuilt structures get the same option checks, NaN exclusion,
unphysical-structure skips, one-bad-structure retries, cache quarantine, run lock and stale-table cleanup."""

from __future__ import annotations

import csv
import fcntl
import json
import math

import pytest
from test_cli_errors import NO_MODEL, _refused
from test_rebuild import dummy, meta_file  # noqa: F401 - meta_file is a fixture
from test_screening import FIXTURE, dft_lookup

from calculators.files import CacheRecoveredWarning, LockedError
from calculators.hashing import structure_key
from screening.cathub import load_dataset
from screening.cli import app as screen_app
from screening.descriptors import load_table, parse_stages
from screening.descriptors.surfaces import candidates_from_set
from screening.evaluators import Evaluator, lookup_evaluator
from screening.funnel import funnel_and_report
from screening.reaction_funnel import run_reaction_funnel
from screening.reactions import from_dataset
from screening.rebuild import LatticeCache, model_lattice, prerelax_slabs, rebuild_screen_set, run_rebuilt_and_report
from screening.report import write_report
from screening.results import load_results
from screening.runner import RunConfig, run_and_report, run_screening

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _no_nan(path) -> dict:
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {path.name}"))


def _hold_lock(folder):
    """Another process's lock on a run folder (an open file with the flock held)."""
    folder.mkdir(parents=True, exist_ok=True)
    other = open(folder / ".lock", "a+")  # noqa: SIM115 - closed by the caller
    fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    other.write("pid 12345")
    other.flush()
    return other


# ----------------------------------------------------------------------------- options of the new paths
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["funnel", "--reaction", "orr", "--generate", "0", *NO_MODEL], ["--generate"]),
        (["funnel", "--reaction", "orr", "--generate", "2", "--sites", "0", *NO_MODEL], ["--sites"]),
        (["funnel", "--reaction", "orr", "--generate", "2", "--fmax", "nan", *NO_MODEL], ["--fmax", "nan"]),
        (["funnel", "--reaction", "orr", "--generate", "2", "--max-steps", "0", *NO_MODEL], ["--max-steps"]),
        (["funnel", "--reaction", "orr", "--generate", "2", "--mode", "bogus", *NO_MODEL], ["--mode"]),
        (["funnel", "--reaction", "orr", "--generate", "2", "--stages", "student:nan", *NO_MODEL],
         ["student:nan", "not a finite number"]),
        (["funnel", "--reaction", "orr", "--generate", "2", "--strains", "0,inf", *NO_MODEL], ["--strains"]),
        (["funnel", "--reaction", "orr", "--reaction-table", "missing.json", *NO_MODEL],
         ["--reaction-table", "does not exist"]),
        (["funnel", "--reaction", "orr", "--generate", "2", "--top-k", "0", *NO_MODEL], ["--top-k"]),
        (["run", "--structures", "bogus", *NO_MODEL], ["--structures", "bogus"]),
        (["run", "--lattice", "bogus", *NO_MODEL], ["--lattice", "bogus"]),
    ],
)  # fmt: skip
def test_new_options_are_checked_before_any_work(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(screen_app, args, *expected)
    assert not any(tmp_path.iterdir())  # nothing written


def test_lattice_cache_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "a_file").write_text("x")
    _refused(screen_app, ["run", "--lattice-cache", tmp_path / "a_file", *NO_MODEL], "is a file, not a folder")


def test_bad_reaction_table_is_named(tmp_path):
    bad = tmp_path / "table.yaml"
    bad.write_text("reactions: [unclosed\n")
    text = _refused(screen_app, ["funnel", "--reaction", "orr", "--reaction-table", bad, "--generate", "1", *NO_MODEL])
    assert str(bad) in text and "not valid YAML" in text


# ----------------------------------------------------------------------------- reaction-aware funnel
@pytest.fixture
def orr_set():
    ds = load_dataset("pt111", data_file=FIXTURE)
    table = load_table()
    orr = table.reaction("orr")
    energies = {structure_key(s.atoms): s.energy for r in ds.reactions for s in r.systems.values()}
    return ds, table, orr, energies


def test_reaction_funnel_nan_and_failed_energies_are_excluded_with_reasons(orr_set, tmp_path):
    ds, table, orr, energies = orr_set
    cs = candidates_from_set(from_dataset(ds), orr, table)
    flat_o = next(c for c in cs.surfaces[0].candidates if c.adsorbate == "O")  # Pt-fcc 111
    strained_oh = next(c for c in cs.surfaces[1].candidates if c.adsorbate == "OH")  # Pt-fcc 111+2%
    # the teacher cannot evaluate one adslab (it raises), the student gives NaN for another
    teacher = lookup_evaluator({k: v for k, v in energies.items() if k != strained_oh.adslab_key}, structure_key, "t")
    student = lookup_evaluator({**energies, flat_o.adslab_key: math.nan}, structure_key, "s")
    rf = run_reaction_funnel(cs, orr, table, teacher, student, tmp_path,
                             stages=parse_stages("student:-10,teacher:-10"))  # fmt: skip
    excluded = {e["id"]: e["reason"] for e in rf["excluded"]}
    assert set(excluded) == {flat_o.id, strained_oh.id}
    assert "student energy of the adslab" in excluded[flat_o.id] and "is nan" in excluded[flat_o.id]
    assert (
        "teacher could not evaluate the adslab" in excluded[strained_oh.id] and "KeyError" in excluded[strained_oh.id]
    )
    assert rf["anomalies"] == {"student": {"non-finite energy": 1}, "teacher": {"evaluation failed": 1}}
    assert rf["dataset"]["candidates_excluded"] == 2
    assert {s["id"] for s in rf["dataset"]["skipped"]} >= {flat_o.id, strained_oh.id}
    by = {s["surface"]: s["models"] for s in rf["surfaces"]}
    assert "excluded" in by["Pt-fcc 111"]["student"]["reason"] and by["Pt-fcc 111"]["teacher"]["U_L"] is not None
    assert "excluded" in by["Pt-fcc 111+2%"]["teacher"]["reason"] and by["Pt-fcc 111+2%"]["student"]["U_L"] is not None
    assert [(s["entered"], s["complete"]) for s in rf["stages"]] == [(2, 1), (1, 0)]
    # no energy or metric is NaN (statistics over fewer than 2 surfaces are undefined and may be)
    saved = json.loads((tmp_path / "reaction_funnel.json").read_text())
    json.dumps([saved["surfaces"], saved["shortlist"], saved["stages"]], allow_nan=False)
    write_report(tmp_path)
    skipped = (tmp_path / "reaction_skipped.csv").read_text()
    assert flat_o.id in skipped and strained_oh.id in skipped
    assert "non-finite energy" in (tmp_path / "reaction_anomalies.csv").read_text()
    summary = (tmp_path / "summary.md").read_text()
    assert "Excluded: 2 adsorbate–site candidate(s)" in summary and "Relaxation anomalies" not in summary


def test_reaction_funnel_skips_unphysical_structures_before_any_model(orr_set, tmp_path):
    ds, table, orr, energies = orr_set
    cs = candidates_from_set(from_dataset(ds), orr, table)
    flat_o = next(c for c in cs.surfaces[0].candidates if c.adsorbate == "O")
    bad = cs.atoms[flat_o.adslab_key].copy()
    bad.positions[-1] = bad.positions[0] + [0.01, 0.0, 0.0]  # O placed on a Pt atom
    cs.atoms = {**cs.atoms, flat_o.adslab_key: bad}
    seen: list[str] = []
    t = lookup_evaluator(energies, structure_key, "t")
    inner = t.energy_fn
    t.energy_fn = lambda al: (seen.extend(structure_key(a) for a in al), inner(al))[1]
    rf = run_reaction_funnel(cs, orr, table, t, lookup_evaluator(energies, structure_key, "s"), tmp_path,
                             stages=parse_stages("student:-10,teacher:-10"))  # fmt: skip
    skipped = {s["id"]: s["reason"] for s in rf["dataset"]["skipped"]}
    assert "0.010 Å apart" in skipped[flat_o.reaction_id] and "adslab" in skipped[flat_o.reaction_id]
    assert structure_key(bad) not in seen and flat_o.adslab_key not in seen  # never evaluated
    flat = next(s for s in rf["surfaces"] if s["surface"] == "Pt-fcc 111")
    assert "no O* energy" in flat["models"]["teacher"]["reason"]  # its other candidate (OH*) was screened


def test_reaction_funnel_quarantines_a_broken_cache_and_refuses_a_locked_folder(orr_set, tmp_path):
    ds, table, orr, energies = orr_set
    cs = candidates_from_set(from_dataset(ds), orr, table)
    t, s = lookup_evaluator(energies, structure_key, "t"), lookup_evaluator(energies, structure_key, "s")
    kw = dict(stages=parse_stages("student:-10,teacher:-10"))
    clean = run_reaction_funnel(cs, orr, table, t, s, tmp_path, **kw)
    cache = next((tmp_path / "energies").glob("teacher-*.json"))
    cache.write_text(cache.read_text()[:40])  # truncated
    with pytest.warns(CacheRecoveredWarning, match="energy cache .* not valid JSON"):
        again = run_reaction_funnel(cs, orr, table, t, s, tmp_path, **kw)
    assert list((tmp_path / "energies" / "quarantine").iterdir())
    assert any("energy cache" in n for n in again["recovered_caches"])
    assert [x["models"] for x in again["surfaces"]] == [x["models"] for x in clean["surfaces"]]
    assert all(e["seconds"] >= 0 for e in json.loads(cache.read_text())["entries"].values())  # recomputed, timed
    other = _hold_lock(tmp_path / "locked")
    try:
        t.calls = 0
        with pytest.raises(LockedError, match="pid 12345"):
            run_reaction_funnel(cs, orr, table, t, s, tmp_path / "locked", **kw)
        assert t.calls == 0
    finally:
        other.close()


# ----------------------------------------------------------------------------- raw-ΔE funnel, per adsorbate
def test_raw_funnel_per_adsorbate_leaves_nan_out_of_every_ranking(tmp_path):
    ds = load_dataset("pt111", data_file=FIXTURE)
    sset = from_dataset(ds)
    ostar = next(r for r in sset.reactions if "Ostar" in r.products)
    bad_key = ostar.systems["Ostar"]
    users = {r.id for r in sset.reactions if bad_key in r.systems.values()}
    student = dft_lookup(ds, "fake-student", {"Hstar": 0.2})
    inner = student.energy_fn
    student.energy_fn = lambda al: [
        math.nan if structure_key(a) == bad_key else e for a, e in zip(al, inner(al), strict=True)
    ]
    res = funnel_and_report(sset, dft_lookup(ds), student, tmp_path, fraction=1.0, top_k=2, verify=True)
    assert {e["id"] for e in res["excluded"]} == users
    ranked = {row["id"] for row in res["final_ranking"]}
    assert not ranked & users and ranked == {r.id for r in sset.reactions} - users
    assert not users & set(res["student_scores"])  # the teacher's own ΔE of them is fine, but ranks nowhere
    assert all(not users & set(ids) for ids in res["teacher_top_k"].values())
    assert set(res["recall_at_k_by_adsorbate"]) == {r.adsorbate for r in sset.reactions}
    _no_nan(tmp_path / "funnel.json")
    with open(tmp_path / "funnel.csv") as fh:
        rows = {r["metric"]: r["value"] for r in csv.DictReader(fh)}
    assert all(i in rows["excluded (failed or non-finite ΔE)"] for i in users)
    assert load_results(tmp_path)["dataset"]["reactions_excluded"] == len(users)


# ----------------------------------------------------------------------------- per-role (rebuilt) structures
def test_unphysical_student_structure_of_a_per_role_set_is_skipped(tmp_path):
    ds = load_dataset("pt111", data_file=FIXTURE)
    sset = from_dataset(ds)
    ostar = next(r for r in sset.reactions if "Ostar" in r.products)
    key = ostar.systems["Ostar"]
    student_atoms = dict(sset.atoms)
    bad = sset.atoms[key].copy()
    bad.positions[-1] = bad.positions[0] + [0.01, 0.0, 0.0]
    student_atoms[key] = bad
    sset.role_atoms = {"student": student_atoms}
    sset.structures, sset.structures_info = "rebuild", {"note": "test"}
    clean = sset.without_unphysical()
    users = {r.id for r in sset.reactions if key in r.systems.values()}
    skipped = dict(clean.skipped)
    assert users <= set(skipped) and all(skipped[i].startswith("Ostar: student structure: unphysical") for i in users)
    assert key not in clean.atoms and key not in clean.atoms_for("student")
    assert set(clean.atoms_for("student")) == set(clean.atoms)
    assert (clean.structures, clean.structures_info) == ("rebuild", {"note": "test"})
    res = run_screening(sset, dft_lookup(ds), dft_lookup(ds, "fake-student"), tmp_path)
    assert res["metrics"]["all"]["n"] == len(sset.reactions) - len(users)
    assert res["dataset"]["structures"] == "rebuild"


def test_rebuilt_run_excludes_nan_keeps_its_title_and_takes_the_lock(meta_file, tmp_path):  # noqa: F811
    ds = load_dataset("TestRebuild", data_file=meta_file)
    sset = rebuild_screen_set(ds, {"teacher": dummy()}, lattice="default")
    r1 = next(r for r in sset.reactions if r.id == "r1")
    bad = structure_key(sset.atoms[r1.systems["Hstar"]])
    ev = Evaluator(
        "nan-model", "nan-fp", {}, lambda al: [math.nan if structure_key(a) == bad else -float(len(a)) for a in al]
    )
    other = _hold_lock(tmp_path / "locked")
    try:
        with pytest.raises(LockedError):
            run_rebuilt_and_report(sset, ev, None, tmp_path / "locked", student_absent_reason="test")
        assert ev.calls == 0
    finally:
        other.close()
    res = run_rebuilt_and_report(sset, ev, None, tmp_path / "run", student_absent_reason="test")
    users = {r.id for r in sset.reactions if r1.systems["Hstar"] in r.systems.values()}
    assert {row["id"] for row in res["reactions"] if "excluded" in row} == users
    assert res["dataset"]["reactions_excluded"] == len(users) and res["dataset"]["structures"] == "rebuild"
    assert res["metrics"]["all"]["n"] == len(sset.reactions) - len(users)
    assert res["anomalies"]["teacher"]["non-finite energy"] == len(users)
    summary = (tmp_path / "run" / "summary.md").read_text().splitlines()
    assert "rebuilt from metadata" in summary[0] and "Anomalies (failed or non-finite energies)" in "\n".join(summary)
    assert not (tmp_path / "run" / "anomaly_classes.csv").exists()  # single points: no CatBench classes
    _no_nan(tmp_path / "run" / "results.json")


def test_broken_lattice_and_prerelax_caches_are_quarantined(meta_file, tmp_path):  # noqa: F811
    from test_rebuild import analytic

    ev = analytic("t", 18.0)
    cache = LatticeCache(tmp_path / "lat", ev.fingerprint, ev.label)
    first = model_lattice(ev.energies, cache, "Ag", "fcc")
    cache.path.write_text(cache.path.read_text()[:30])
    with pytest.warns(CacheRecoveredWarning, match="lattice cache .* not valid JSON"):
        again = model_lattice(ev.energies, LatticeCache(tmp_path / "lat", ev.fingerprint), "Ag", "fcc")
    assert again["source"] == "fit" and again["a"] == pytest.approx(first["a"])
    assert list((tmp_path / "lat" / "quarantine").iterdir())

    from screening.evaluators import RelaxOutcome

    def relax(atoms_list, fmax, max_steps):
        return [RelaxOutcome(-1.0, True, 1, a.positions.copy()) for a in atoms_list]

    rev = Evaluator("r", "r-fp", {}, lambda al: [0.0] * len(al), relax)
    sset = rebuild_screen_set(load_dataset("TestRebuild", data_file=meta_file), {"teacher": rev}, lattice="default")
    prerelax_slabs(sset, {"teacher": rev}, tmp_path / "run", max_steps=5)
    path = next((tmp_path / "run" / "rebuild").glob("slabs-*.json"))
    path.write_text(path.read_text()[:30])
    rev.calls = 0
    with pytest.warns(CacheRecoveredWarning, match="slab pre-relaxation cache .* not valid JSON"):
        pre = prerelax_slabs(sset, {"teacher": rev}, tmp_path / "run", max_steps=5)
    assert rev.calls > 0 and pre.structures_info["slab_prerelax"]["teacher"]["slabs"] == 5


# ----------------------------------------------------------------------------- no stale tables
def test_tables_of_a_reaction_funnel_or_rebuild_do_not_survive_a_plain_run(tmp_path):
    ds = load_dataset("pt111", data_file=FIXTURE)
    stale = ("reaction_stages", "reaction_skipped", "rebuild_cells", "anomaly_classes", "agreement")
    for name in stale:
        for ext in ("csv", "md"):
            (tmp_path / f"{name}.{ext}").write_text("stale")
    run_and_report(from_dataset(ds), dft_lookup(ds), None, tmp_path, config=RunConfig())
    assert not [p.name for p in tmp_path.iterdir() if p.stem in stale]
