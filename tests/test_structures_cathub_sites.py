"""CatalysisHub site names and parent-lattice surface cells on tiny slabs: every prototype/facet/site family, checked
against AlonsoStrain2023's own site tables (multiplicities, and the fractional positions of its B2(101) table)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from screening.structures import StructureBuildError, find_sites
from screening.structures.site_names import match_site, parse_site_name
from screening.structures.sites import _layers_from_top
from screening.structures.surface_cells import cell_for_count, make_slab_cell

# ----------------------------------------------------------------------------- surface cells
ALONSO_MULTIPLICITIES = {  # equivalent positions per site name in a 2×2 cell, from AlonsoStrain2023's site tables
    ("Ag", "fcc", "111"): {"ontop": 4, "fcc": 4, "hcp": 4, "bridge": 12},
    ("Ag3In", "L12", "111"): {"ontopA": 3, "ontopB": 1, "fccAAA": 1, "fccAAB": 3, "hcpAAA": 1, "hcpAAB": 3},
    ("Al3Pr", "D019", "0001"): {"ontopA": 3, "ontopB": 1, "fccAAA": 1, "fccAAB": 3, "hcpAAA": 1, "hcpAAB": 3},
    ("ScAg", "L10", "101"): {"ontopA": 2, "ontopB": 2, "fccAAB": 2, "fccABB": 2, "hcpAAB": 2, "hcpABB": 2},
    ("NdAg", "B2", "110"): dict(ontopA=2, ontopB=2, shortbridgeAB=8, longbridgeAA=2, longbridgeBB=2, threefoldAAB=4),
    ("Fe", "bcc", "110"): {"ontop": 4, "shortbridge": 8, "longbridge": 4, "threefold": 8},
    ("Sc", "hcp", "0001"): {"ontop": 4, "fcc": 4, "hcp": 4},
}


@pytest.mark.parametrize("key", list(ALONSO_MULTIPLICITIES))
def test_two_by_two_cells_and_site_families(key):
    comp, proto, facet = key
    shape = "rectangular" if proto == "B2" else "compact"
    assert cell_for_count(comp, proto, facet, 16, shape=shape) == (4, 4)
    slab = make_slab_cell(comp, proto, facet, 4, 4, shape=shape)
    assert len(slab) == 16 and len(np.unique(_layers_from_top(slab))) == 4
    assert (slab.get_tags() == 0).sum() == 8 and len(slab.constraints[0].index) == 8  # bottom 2 layers fixed
    got = {s.name: s.multiplicity for s in find_sites(slab)}
    for name, mult in ALONSO_MULTIPLICITIES[key].items():
        assert got.get(name) == mult, (name, got)


def test_b2_rectangular_cell_matches_alonso_site_table():
    # AlonsoStrain2023's AB bcc(101) table (fractional x, y; ontopA at (1/2, 0)): the built cell is the same
    slab = make_slab_cell("NdAg", "B2", "101", 4, 4, shape="rectangular")
    a, b, gamma = *slab.cell.lengths()[:2], slab.cell.angles()[2]
    assert gamma == pytest.approx(90) and b / a == pytest.approx(math.sqrt(2))  # √2a × 2a
    table = {"ontopA": [(0.5, 0)], "ontopB": [(0, 0.25)], "longbridgeAA": [(0.5, 0.25)], "longbridgeBB": [(0, 0)],
             "threefoldAAB": [(1 / 3, 0.25)], "threefoldABB": [(1 / 6, 0.5), (1 / 6, 0)],
             "shortbridgeAB": [(0.25, 0.125)]}  # fmt: skip
    sites = {s.name: s for s in find_sites(slab)}
    inv = np.linalg.inv(slab.cell[:2, :2])
    shift = sites["ontopA"].position[:2] @ inv - [0.5, 0.0]
    for name, wanted in table.items():
        fr = [(p[:2] @ inv - shift) % 1.0 for p in sites[name].equivalent_positions]
        for w in wanted:  # each published position is one of the site's equivalent positions (mirror y → −y too)
            assert any(np.allclose(f, w, atol=1e-3) or np.allclose(f, [w[0], -w[1] % 1], atol=1e-3) for f in fr), name


def test_a2b_needs_a_sqrt3_cell_and_strain_scales_the_cell():
    assert cell_for_count("Ti2Ag", "A2B_hcp", "0001", 12) == (3, 4)
    with pytest.raises(StructureBuildError, match="no surface cell"):
        cell_for_count("Ti2Ag", "A2B_hcp", "0001", 16)
    s0 = make_slab_cell("Ag", "fcc", "111", 4, 4, a=4.0)
    s5 = make_slab_cell("Ag", "fcc", "111", 4, 4, a=4.0, strain=-5)
    assert s0.cell.lengths()[0] == pytest.approx(2 * 4.0 / math.sqrt(2))
    assert s5.cell.lengths()[:2] == pytest.approx(0.95 * s0.cell.lengths()[:2])
    assert s5.cell.lengths()[2] == pytest.approx(s0.cell.lengths()[2]) and s5.info["strain"] == -5


# ----------------------------------------------------------------------------- site names
def test_parse_site_names():
    p = parse_site_name("longbridgeA")
    assert (p.kind, p.letters, p.variant, p.displaced) == ("longbridge", "AA", None, False)
    p = parse_site_name("hcpAAB-d")
    assert (p.kind, p.letters, p.displaced) == ("hcp", "AAB", True)
    assert parse_site_name("fccAAB_2").variant == "2" and parse_site_name("hcpAAA_B").variant == "B"
    assert parse_site_name("bridgeBA").letters == "AB" and parse_site_name("ontop").letters == ""
    for bad in ("top", "fccAB", "ontopC", "bridge-x"):
        with pytest.raises(StructureBuildError):
            parse_site_name(bad)


def test_match_site_rules():
    l12 = make_slab_cell("Ag3In", "L12", "111", 4, 4)
    m = match_site(l12, "ontopB-d")
    assert m.site.name == "ontopB" and m.site.symbols == ("In",) and "'-d'" in m.note
    assert match_site(l12, "fccAAB").site.symbols.count("In") == 1 and match_site(l12, "fccAAB").note is None
    m = match_site(l12, "bridgeAA")  # two distinct A–A bridges on L1₂(111): the first, said so
    assert m.site.name == "bridgeAA" and "2 distinct" in m.note
    assert match_site(l12, "bridgeAA_2").site.name == "bridgeAA_2"
    with pytest.raises(StructureBuildError, match="2 distinct"):
        match_site(l12, "bridgeAA_3")
    with pytest.raises(StructureBuildError, match="no site 'hollowAABB'"):
        match_site(l12, "hollowAABB")
    # _A/_B variants: the element in the 2nd layer below an hcp site (A2B_hcp(0001) has one of each)
    a2b = make_slab_cell("Ti2Ag", "A2B_hcp", "0001", 3, 4)
    assert match_site(a2b, "hcpAAB_B").site.name == "hcpAAB" and match_site(a2b, "hcpAAB_A").site.name == "hcpAAB_2"
    with pytest.raises(StructureBuildError, match="no site 'hcpAAA_A'"):  # its √3 order has no A–A–A hollow
        match_site(a2b, "hcpAAA_A")
    bcc = make_slab_cell("Fe", "bcc", "110", 4, 4)
    assert match_site(bcc, "hollow").site.kind == "threefold"  # Alonso's name for the bcc(110) threefold site
    assert match_site(bcc, "bridge").site.kind == "shortbridge"
    with pytest.raises(StructureBuildError, match="pure metal"):
        match_site(bcc, "ontopB")
    b2 = make_slab_cell("NdAg", "B2", "101", 4, 4, shape="rectangular")
    assert match_site(b2, "shortbridge").site.name == "shortbridgeAB"
    assert set(match_site(b2, "longbridgeA").site.symbols) == {"Nd"}
    assert set(match_site(b2, "longbridgeB").site.symbols) == {"Ag"}
    with pytest.raises(StructureBuildError, match="no chemistry"):
        match_site(b2, "ontop")
