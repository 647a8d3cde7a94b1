"""Reaction-aware funnel end to end: `screen funnel --reaction orr` on tiny generated sets with tiny random GemNet-OC
models (single point and relax), the DFT stage on the CatalysisHub fixture, and a binding reaction with its
reference surface."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from calculators.hashing import structure_key
from screening.cathub import load_dataset
from screening.descriptors import load_table, parse_stages
from screening.descriptors.surfaces import candidates_from_set, generate_candidates
from screening.evaluators import lookup_evaluator, model_evaluator
from screening.reaction_funnel import run_reaction_funnel
from screening.reactions import from_dataset
from screening.report import write_report
from screening.runner import RunConfig

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "cathub" / "pt111_raw.json"


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


def _invoke(args):
    from screening.cli import app

    res = CliRunner().invoke(app, args)
    return res, res.output


def test_cli_funnel_orr_generated(tiny_ckpts, tmp_path):
    teacher, student = map(str, tiny_ckpts)
    out = tmp_path / "orr"
    base = ["funnel", "--reaction", "orr", "--generate", "3", "--elements", "Pt,Cu", "--sites", "2", "--teacher",
            teacher, "--student", student, "--top-k", "2", "--out", str(out)]  # fmt: skip
    res, text = _invoke(base + ["--stages", "student:-100,teacher:-100"])
    assert res.exit_code == 0, text
    assert "orr: 3 surfaces (12 adsorbate–site candidates)" in text and "recall of the teacher's shortlist" in text
    rf = json.loads((out / "reaction_funnel.json").read_text())
    assert [(s["stage"], s["entered"], s["passed"]) for s in rf["stages"]] == [("student", 3, 3), ("teacher", 3, 3)]
    c = rf["comparison"]
    assert c["confusion_funnel"] == {**c["confusion_funnel"], "tp": 3, "fn": 0, "fp": 0, "tn": 0, "n": 3}
    assert c["recall_teacher_shortlist"] == 1.0 and len(c["teacher_top_k"]) == 2
    assert {a["adsorbate"] for a in c["adsorbates"]} == {"O", "OH"}
    for s in rf["surfaces"]:  # both models' values, each with its own site choice among the 2 computed sites
        for role in ("student", "teacher"):
            m = s["models"][role]
            assert set(m["sites"]) == {"O", "OH"} and m["origin"]["OOH"] == "scaling"
            assert m["U_L"] == pytest.approx(
                min(4.92 - m["G"]["OOH"], m["G"]["OOH"] - m["G"]["O"], m["G"]["O"] - m["G"]["OH"], m["G"]["OH"])
            )
            assert m["G"]["OH"] == pytest.approx(m["delta_e"]["OH"] + 0.35)
            assert m["eta"] == pytest.approx(1.23 - m["U_L"])
    ranked = [r["teacher_U_L"] for r in rf["shortlist"]]
    assert ranked == sorted(ranked, reverse=True) and "student_U_L" in rf["shortlist"][0]
    comp = rf["compute"]
    assert comp["teacher_all_measured"] and comp["funnel_structures"] == {"student": 15, "teacher": 15}
    assert comp["compute_saved_share"] == pytest.approx(1 - comp["funnel_seconds"] / comp["teacher_all_seconds"])
    for f in ("index.html", "volcano.png", "reaction_funnel.png", "confusion.png", "metric_parity.png",
              "reaction_shortlist.csv", "reaction_constants.csv", "reaction_surfaces.csv"):  # fmt: skip
        assert (out / f).is_file(), f
    summary = (out / "summary.md").read_text()
    assert "Site choice" in summary and "most stable" in summary and "ΔG_OOH = ΔG_OH + 3.2 eV" in summary
    with open(out / "reaction_constants.csv") as fh:
        consts = {r["quantity"]: float(r["value_eV"]) for r in csv.DictReader(fh)}
    assert consts["ΔZPE − TΔS of OH*"] == 0.35 and consts["scaling ΔG_OOH = ΔG_OH + c"] == 3.2
    # a real threshold: the student stage keeps fewer, the confusion matrix still covers all surfaces (verify)
    res, text = _invoke(base)  # the reaction's default stages: student:0.0,teacher:0.5
    assert res.exit_code == 0, text
    rf2 = json.loads((out / "reaction_funnel.json").read_text())
    assert [s["rule"] for s in rf2["stages"]] == ["U_L ≥ 0 V", "U_L ≥ 0.5 V"]
    st = rf2["comparison"]["confusion_funnel"]
    assert st["n"] == 3 and rf2["stages"][1]["entered"] == rf2["stages"][0]["passed"]
    passes = sum(s["models"]["student"]["U_L"] >= 0.0 for s in rf2["surfaces"])
    assert rf2["stages"][0]["passed"] == passes == st["tp"] + st["fp"]
    # resumed from the caches: the second run computed nothing new
    store = json.loads(next((out / "energies").glob("teacher-*.json")).read_text())
    assert len(store["entries"]) == 3 + 12 + 2  # slabs, adslabs, gas (H2, H2O)
    assert sum(b["structures"] for b in store["batches"]) == 3 + 12 + 2  # each computed once
    # the report is rebuilt from reaction_funnel.json alone
    (out / "volcano.png").unlink()
    res, text = _invoke(["report", str(out)])
    assert res.exit_code == 0, text
    assert (out / "volcano.png").is_file() and "ORR" in (out / "index.html").read_text()
    # without verify the teacher sees the survivors only: no confusion matrix, compute estimated
    res, text = _invoke(base[:-2] + ["--no-verify", "--out", str(tmp_path / "nv")])
    assert res.exit_code == 0, text
    nv = json.loads((tmp_path / "nv" / "reaction_funnel.json").read_text())
    assert "confusion_funnel" not in nv["comparison"] and "no-verify" in nv["comparison"]["note"]
    res, text = _invoke(["funnel", "--reaction", "xyz", "--generate", "1"])
    assert res.exit_code == 2 and "known" in text


def test_cli_funnel_orr_relax_slab_once_per_surface(tiny_ckpts, tmp_path):
    teacher, student = map(str, tiny_ckpts)
    out = tmp_path / "relax"
    res, text = _invoke(
        ["funnel", "--reaction", "orr", "--generate", "2", "--elements", "Pt", "--sites", "1", "--teacher", teacher,
         "--student", student, "--mode", "relax", "--fmax", "1e-9", "--max-steps", "2", "--out", str(out)]
    )  # fmt: skip
    assert res.exit_code == 0, text
    rf = json.loads((out / "reaction_funnel.json").read_text())
    assert rf["config"]["mode"] == "relax" and rf["anomalies"]["teacher"]["not converged"] == 4
    t_store = json.loads(next((out / "energies").glob("teacher-relax-*.json")).read_text())["entries"]
    slabs = [k for k, e in t_store.items() if not e["gas"] and e["natoms"] == 12]  # 2x2x3 Pt slabs
    assert len(slabs) == 2 and all(t_store[k]["steps"] == 2 for k in slabs)  # relaxed once each
    assert len(t_store) == 2 + 4 + 2 and all("positions" in t_store[k] for k in t_store)
    # the adslabs the teacher relaxed started from its relaxed slabs, not from the unrelaxed builder adslabs
    cs = generate_candidates(load_table().reaction("orr"), load_table(), ["Pt"], 2, sites=1)
    unrelaxed = {c.adslab_key for s in cs.surfaces for c in s.candidates}
    assert not unrelaxed & set(t_store)
    assert "relaxed once per model" in (out / "summary.md").read_text()


def test_dft_stage_on_catalysishub_set(tmp_path):
    """Teacher = the set's DFT energies: its U_L equals the DFT stage's where the set has comparable energies."""
    ds = load_dataset("pt111", data_file=FIXTURE)
    table = load_table()
    orr = table.reaction("orr")
    energies = {structure_key(s.atoms): s.energy for r in ds.reactions for s in r.systems.values()}
    teacher = lookup_evaluator(energies, structure_key, "dft-lookup")
    student = lookup_evaluator({k: v + 0.01 for k, v in energies.items()}, structure_key, "shifted")
    cs = candidates_from_set(from_dataset(ds), orr, table)
    rf = run_reaction_funnel(cs, orr, table, teacher, student, tmp_path,
                             stages=parse_stages("student:-10,teacher:-10,dft:-10"))  # fmt: skip
    assert [(s["stage"], s["entered"], s["complete"]) for s in rf["stages"]] == [
        ("student", 2, 2), ("teacher", 2, 2), ("dft", 2, 1)
    ]  # fmt: skip
    by = {s["surface"]: s for s in rf["surfaces"]}
    flat = by["Pt-fcc 111"]["models"]
    g_o, g_oh = -1.367575121815575 + 0.05, -0.6018259235603285 + 0.35
    u = min(4.92 - (g_oh + 3.2), g_oh + 3.2 - g_o, g_o - g_oh, g_oh)
    assert flat["dft"]["U_L"] == pytest.approx(u) and flat["teacher"]["U_L"] == pytest.approx(u)
    assert "O" in by["Pt-fcc 111+2%"]["models"]["dft"]["reason"]  # only O* vs ½O2 there: not comparable
    assert rf["comparison"]["teacher_vs_dft"]["mae_metric"] == pytest.approx(0.0, abs=1e-9)
    assert rf["shortlist"][0]["dft_U_L"] == pytest.approx(u)
    with pytest.raises(ValueError, match="DFT"):
        gen = generate_candidates(orr, table, ["Pt"], 1, sites=1)
        run_reaction_funnel(gen, orr, table, teacher, student, tmp_path / "x", stages=parse_stages("dft:0"))


def test_binding_reaction_uses_each_models_reference_surface(tmp_path):
    from gemnet_helpers import tiny_model

    table = load_table()
    co2rr = table.reaction("co2rr")
    t = model_evaluator(
        tiny_model(seed=0, dtype=torch.float32, num_blocks=1, quad_interaction=False), "t", {}, name="t"
    )
    s = model_evaluator(
        tiny_model(seed=1, dtype=torch.float32, num_blocks=1, quad_interaction=False), "s", {}, name="s"
    )
    cs = generate_candidates(co2rr, table, ["Pt"], 1, sites=1, prototypes=("fcc",), facets=("111",), strains=(0.0,))
    rf = run_reaction_funnel(cs, co2rr, table, t, s, tmp_path, stages=parse_stages("student:100,teacher:100"),
                             config=RunConfig())  # fmt: skip
    targets = rf["reference_surface"]["targets"]
    assert set(targets) == {"teacher", "student"} and rf["reference_surface"]["surface"].startswith("reference:Cu")
    m = rf["surfaces"][0]["models"]["teacher"]
    assert m["descriptor"] == pytest.approx(m["delta_e"]["CO"] - targets["teacher"])
    assert m["abs_dG"] == pytest.approx(abs(m["descriptor"])) and "C" in m["G"]  # C* reported, not required
    write_report(tmp_path)
    assert (tmp_path / "volcano.png").is_file()
