"""Reaction table, computational-hydrogen-electrode arithmetic, limiting potentials, site choice, stages and
confusion counts, on hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from screening.descriptors import (
    ReactionTableError,
    activity,
    confusion,
    limiting_potential,
    load_table,
    orr_limiting_potential,
    overpotential,
    parse_stages,
    recall_of,
    stricter_stages,
    volcano_curve,
)
from screening.descriptors.surfaces import (
    SiteCandidate,
    Surface,
    adslab_on_relaxed_slab,
    assess,
    candidates_from_set,
    choose_sites,
    generate_candidates,
    order_sites,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "cathub" / "pt111_raw.json"


@pytest.fixture(scope="module")
def table():
    return load_table()


# ----------------------------------------------------------------------------- constants
def test_shipped_constants_and_sources(table):
    c = {a: table.adsorbate(a).correction for a in ("H", "O", "OH", "OOH")}
    assert c == {"H": 0.24, "O": 0.05, "OH": 0.35, "OOH": 0.40}
    assert table.adsorbate("O").reference == {"H2O": 1.0, "H2": -1.0}
    assert table.adsorbate("OH").reference == {"H2O": 1.0, "H2": -0.5}
    assert table.adsorbate("OOH").reference == {"H2O": 2.0, "H2": -1.5}
    assert table.adsorbate("H").reference == {"H2": 0.5}
    assert "17886" in table.sources[table.adsorbate("OH").source]  # Nørskov 2004, J. Phys. Chem. B 108, 17886
    assert "J23" in table.sources[table.adsorbate("H").source]  # Nørskov 2005, J. Electrochem. Soc. 152, J23
    orr = table.reaction("ORR")
    assert orr.scaling == {"OOH": ("OH", 3.2)} and orr.required == ("O", "OH")
    assert orr.equilibrium_potential == 1.23 and orr.levels[0] == 4.92
    assert parse_stages(orr.stages)[0].role == "student"
    rows = table.constants(orr)
    assert {r["value_eV"] for r in rows} >= {0.05, 0.35, 0.40, 3.2, 1.23}
    assert all(r["source"] for r in rows)
    assert set(table.reactions) >= {"orr", "oer", "her", "co2rr", "nrr"}


# ----------------------------------------------------------------------------- CHE arithmetic
def test_orr_pt111_like_limiting_potential(table):
    """ΔE_O = 1.55, ΔE_OH = 0.45 eV (vs H2O/H2, Pt(111)-like): ΔG_O = 1.60, ΔG_OH = 0.80, ΔG_OOH = 0.80 + 3.2 = 4.00;
    steps 4.92 − 4.00 = 0.92, 4.00 − 1.60 = 2.40, 1.60 − 0.80 = 0.80, 0.80 → U_L = 0.80 V, η = 0.43 V."""
    a = activity({"O": 1.55, "OH": 0.45}, table.reaction("orr"), table)
    assert a.free_energies == pytest.approx({"O": 1.60, "OH": 0.80, "OOH": 4.00})
    assert a.origin == {"O": "computed", "OH": "computed", "OOH": "scaling"}
    assert a.steps == pytest.approx([-0.92, -2.40, -0.80, -0.80])  # reduction direction, at 0 V
    assert pytest.approx(0.80) == a.U_L and a.eta == pytest.approx(0.43)
    assert a.metric == a.U_L and a.descriptor == pytest.approx(0.80)
    # computed OOH* replaces the scaling: ΔG_OOH = 3.80 + 0.40 = 4.20 → first step limits, U_L = 0.72 V
    b = activity({"O": 1.55, "OH": 0.45, "OOH": 3.80}, table.reaction("orr"), table)
    assert b.origin["OOH"] == "computed" and pytest.approx(0.72) == b.U_L and b.limiting_step == 0
    c = activity({"O": 1.55, "OH": 0.45, "OOH": 3.80}, table.reaction("orr"), table, force_scaling=True)
    assert pytest.approx(0.80) == c.U_L


def test_orr_formula_and_overpotential_match_the_issue(table):
    rng = np.random.default_rng(0)
    orr = table.reaction("orr")
    for _ in range(50):
        e_o, e_oh, e_ooh = rng.uniform(-1, 3), rng.uniform(-1, 2), rng.uniform(2, 5)
        a = activity({"O": e_o, "OH": e_oh, "OOH": e_ooh}, orr, table)
        g_o, g_oh, g_ooh = e_o + 0.05, e_oh + 0.35, e_ooh + 0.40
        u = min(4.92 - g_ooh, g_ooh - g_o, g_o - g_oh, g_oh)
        assert a.U_L == pytest.approx(u) == pytest.approx(orr_limiting_potential(g_o, g_oh, g_ooh))
        assert a.eta == pytest.approx(1.23 - u)
    assert limiting_potential([0.0, 0.5, 0.2], "oxidation") == (pytest.approx(0.5), 0)
    assert overpotential(0.8, 1.23, "reduction") == pytest.approx(0.43)
    assert overpotential(1.6, 1.23, "oxidation") == pytest.approx(0.37)
    with pytest.raises(ValueError):
        limiting_potential([0.0, 1.0], "sideways")


def test_her_textbook_cases(table):
    """ΔG_H* = ΔE_H + 0.24 eV (Nørskov 2005). Pt-like ΔE_H = −0.27 eV → ΔG_H = −0.03 eV, η = 0.03 V;
    Au-like ΔE_H = +0.20 eV → ΔG_H = +0.44 eV, U_L = −0.44 V."""
    her = table.reaction("her")
    pt = activity({"H": -0.27}, her, table)
    assert pt.free_energies["H"] == pytest.approx(-0.03)
    assert pt.abs_dG == pytest.approx(0.03) == pt.metric
    assert pytest.approx(-0.03) == pt.U_L and pt.eta == pytest.approx(0.03)
    au = activity({"H": 0.20}, her, table)
    assert pytest.approx(-0.44) == au.U_L and au.eta == pytest.approx(0.44)
    assert her.passes(pt.metric, 0.2) and not her.passes(au.metric, 0.2)


def test_oer_limiting_potential_and_universal_scaling_limit(table):
    oer = table.reaction("oer")
    a = activity({"O": 1.55, "OH": 0.45}, oer, table)  # steps 0.80, 0.80, 2.40, 0.92
    assert pytest.approx(2.40) == a.U_L and a.eta == pytest.approx(1.17) and a.limiting_step == 2
    # on the OOH/OH scaling line the best possible is ΔG_O − ΔG_OH = 1.6 eV: η = (3.2 − 2·1.23)/2 = 0.37 V
    best = activity({"OH": 0.8 - 0.35, "O": 2.4 - 0.05}, oer, table)
    assert pytest.approx(1.60) == best.U_L and best.eta == pytest.approx(0.37)
    assert best.descriptor == pytest.approx(1.6)
    assert volcano_curve(oer, [1.6])[0] == pytest.approx(1.6)
    assert volcano_curve(table.reaction("orr"), [0.86, 0.0]) == pytest.approx([0.86, 0.0])


def test_binding_descriptor_relative_to_target(table):
    co2rr = table.reaction("co2rr")
    assert co2rr.target_surface == ("Cu", "fcc", "111")
    a = activity({"CO": -0.9}, co2rr, table, target=-0.6)
    assert a.descriptor == pytest.approx(-0.3) and a.abs_dG == pytest.approx(0.3) == a.metric and a.U_L is None
    with pytest.raises(ValueError, match="target"):
        activity({"CO": -0.9}, co2rr, table)


def test_user_table_overrides_and_errors(tmp_path, table):
    user = tmp_path / "mine.yaml"
    user.write_text(
        "adsorbates:\n  OH: {reference: {H2O: 1, H2: -0.5}, correction_eV: 0.30, source: me}\n"
        "sources: {me: 'my DFT, 2024'}\n"
        "reactions:\n  orr2:\n    kind: electrochemical\n    direction: reduction\n    electrons: 4\n"
        "    equilibrium_potential_V: 1.23\n    levels: [4.92, OOH, O, OH, 0]\n    adsorbates: [O, OH, OOH]\n"
        "    scaling: {OOH: {from: OH, offset_eV: 3.0}}\n    descriptor: {terms: {OH: 1}}\n"
        "    metric: U_L\n    better: higher\n    stages: 'student:0.1,teacher:0.6'\n"
    )
    t = load_table(user)
    assert t.adsorbate("OH").correction == 0.30 and t.adsorbate("O").correction == 0.05
    assert t.reaction("orr2").scaling["OOH"] == ("OH", 3.0) and "orr" in t.reactions
    assert t.origin[-1].startswith("user table")
    a = activity({"O": 1.55, "OH": 0.45}, t.reaction("orr"), t)  # OH 0.75, OOH 3.95
    assert pytest.approx(0.75) == a.U_L
    with pytest.raises(ReactionTableError, match="known"):
        table.reaction("xyz")
    bad = tmp_path / "bad.json"
    bad.write_text('{"reactions": {"x": {"kind": "binding", "adsorbates": ["Q"]}}}')
    with pytest.raises(ReactionTableError, match="Q"):
        load_table(bad)
    with pytest.raises(FileNotFoundError):
        load_table(tmp_path / "none.json")


# ----------------------------------------------------------------------------- stages, confusion
def test_stages_and_confusion_counts():
    st = parse_stages("student:0.0, teacher:0.5")
    assert [(s.role, s.threshold) for s in st] == [("student", 0.0), ("teacher", 0.5)]
    for bad in ("student", "teacher:x", "gpu:0.1", "student:0,student:1", ""):
        with pytest.raises(ValueError):
            parse_stages(bad)
    assert stricter_stages(st, "higher") == []  # the student at 0.0 keeps more than the teacher at 0.5
    (note,) = stricter_stages(st, "lower")  # on a lower-passes metric the student at 0.0 is the stricter one
    assert "student stage (≤ 0) is stricter than the teacher stage (≤ 0.5)" in note
    three = parse_stages("student:0.4,teacher:0.2,dft:0.3")
    assert [n.split(" is ")[0] for n in stricter_stages(three, "lower")] == ["the teacher stage (≤ 0.2)"]
    assert stricter_stages(parse_stages("student:0.2,teacher:0.2"), "lower") == []  # equal is not stricter
    student = {"a": 0.9, "b": 0.6, "c": 0.2, "d": -0.1, "e": 0.7, "f": None, "g": 0.3}
    teacher = {"a": 0.8, "b": 0.3, "c": 0.6, "d": 0.7, "e": 0.55, "f": 0.9, "g": 0.1}
    c = confusion(student, teacher, lambda v: v >= 0.0, lambda v: v >= 0.5)
    # f has no student value: not counted. passes: student a b c e g (d fails); teacher a c d e
    assert (c.tp, c.fn, c.fp, c.tn) == (3, 1, 2, 0) and c.n == 6
    assert c.recall == pytest.approx(0.75) and c.precision == pytest.approx(0.6)
    same = confusion(student, teacher, lambda v: v >= 0.5, lambda v: v >= 0.5)
    assert (same.tp, same.fn, same.fp, same.tn) == (2, 2, 1, 1)
    assert recall_of(["a", "c", "d", "e"], ["a", "b", "c", "e", "g"]) == pytest.approx(0.75)
    assert math.isnan(recall_of([], ["a"]))


# ----------------------------------------------------------------------------- site choice
def _surface():
    s = Surface("S", "Pt", "fcc(111)", 0.0)
    for ads, site in (("O", "fcc"), ("O", "hcp"), ("OH", "ontop"), ("OH", "bridge")):
        s.candidates.append(SiteCandidate(f"S|{ads}@{site}", "S", ads, site, "slab", f"{ads}{site}"))
    return s


def test_site_choice_is_per_model(table):
    s = _surface()
    student = {"S|O@fcc": 1.2, "S|O@hcp": 1.5, "S|OH@ontop": 0.6, "S|OH@bridge": 0.4}
    teacher = {"S|O@fcc": 1.7, "S|O@hcp": 1.55, "S|OH@ontop": 0.45, "S|OH@bridge": 0.9}
    assert choose_sites(s, student) == {"O": ("S|O@fcc", 1.2), "OH": ("S|OH@bridge", 0.4)}
    assert choose_sites(s, teacher) == {"O": ("S|O@hcp", 1.55), "OH": ("S|OH@ontop", 0.45)}
    # a desorbed candidate is not a site; missing values are skipped
    assert choose_sites(s, student, excluded=["S|OH@bridge"])["OH"] == ("S|OH@ontop", 0.6)
    assert choose_sites(s, {"S|O@fcc": math.nan, "S|O@hcp": 1.0}) == {"O": ("S|O@hcp", 1.0)}
    orr = table.reaction("orr")
    r = assess(s, teacher, orr, table)
    assert pytest.approx(0.80) == r.activity.U_L  # teacher's best sites: O 1.55 (hcp), OH 0.45 (ontop)
    r = assess(s, {"S|O@fcc": 1.0}, orr, table)
    assert r.activity is None and "OH" in r.reason


def test_site_order_and_generated_candidates(table):
    from screening.structures import find_sites, make_slab

    sites = find_sites(make_slab("Pt", "fcc", "111", layers=3))
    assert [s.kind for s in order_sites(sites, "O")][:2] == ["fcc", "hcp"]
    assert order_sites(sites, "OH")[0].kind == "ontop"
    orr = table.reaction("orr")
    cs = generate_candidates(orr, table, ["Pt", "Cu"], 3, seed=0, sites=2)
    assert len(cs.surfaces) == 3 and len({s.id for s in cs.surfaces}) == 3
    for s in cs.surfaces:
        assert sorted(c.adsorbate for c in s.candidates) == ["O", "O", "OH", "OH"]
        assert len({c.slab_key for c in s.candidates}) == 1  # one clean slab per surface
    assert set(cs.gas) == {"H2", "H2O"} and cs.reference_surface is None
    assert generate_candidates(orr, table, ["Pt", "Cu"], 3, seed=0, sites=2).surfaces[2].id == cs.surfaces[2].id
    co = generate_candidates(table.reaction("co2rr"), table, ["Pt"], 1, sites=1)
    assert co.reference_surface is not None and co.reference_surface.composition == "Cu"
    assert {c.adsorbate for c in co.surfaces[0].candidates} == {"CO", "C"}


def test_candidates_from_catalysishub_set_keep_comparable_dft(table):
    from screening.cathub import load_dataset
    from screening.reactions import from_dataset

    sset = from_dataset(load_dataset("pt111", data_file=FIXTURE))
    cs = candidates_from_set(sset, table.reaction("orr"), table)
    assert sorted(s.id for s in cs.surfaces) == ["Pt-fcc 111", "Pt-fcc 111+2%"]
    flat = {s.id: {c.adsorbate: c for c in s.candidates} for s in cs.surfaces}
    # O* vs ½O2 and vs H2O − H2 share their structures: one candidate, DFT from the H2O − H2 reaction
    assert len([c for c in cs.surfaces[0].candidates if c.adsorbate == "O"]) == 1
    assert flat["Pt-fcc 111"]["O"].dft == pytest.approx(-1.367575121815575)
    assert flat["Pt-fcc 111"]["OH"].dft == pytest.approx(-0.6018259235603285)
    assert flat["Pt-fcc 111+2%"]["O"].dft is None  # only vs ½O2 there: not the table's reference
    assert any("not used by orr" in why for _, why in cs.skipped)  # H* reactions
    assert cs.has_dft and cs.reference_kind == "dft"


def test_adslab_restarts_on_the_relaxed_slab():
    from screening.structures import add_adsorbate, make_slab

    slab = make_slab("Pt", "fcc", "111", layers=3)
    ads = add_adsorbate(slab, "OH", "ontop")
    relaxed = slab.positions.copy()
    relaxed[slab.get_tags() == 1, 2] -= 0.1  # top layer moves down 0.1 Å
    start = adslab_on_relaxed_slab(ads, slab, relaxed)
    assert np.allclose(start.positions[: len(slab)], relaxed)
    assert np.allclose(start.positions[len(slab) :, 2], ads.positions[len(slab) :, 2] - 0.1, atol=1e-6)
    assert adslab_on_relaxed_slab(ads[::-1], slab, relaxed) is None  # atoms not in slab order
