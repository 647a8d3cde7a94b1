"""Adsorption sites, adsorbate placement, gas references and the adsorption-system helper."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ase.data import atomic_numbers, covalent_radii
from ase.geometry import find_mic

from screening.structures import (
    ADSORBATES,
    GAS_MOLECULES,
    StructureBuildError,
    add_adsorbate,
    find_sites,
    gas_coefficients,
    gas_molecule,
    get_site,
    make_slab,
)
from screening.structures.slabs import atomic_layers
from screening.structures.system import build_adsorption_system


def _lateral(slab, point, indices):
    vec = slab.positions[indices] - point
    vec[:, 2] = 0
    return find_mic(vec, slab.cell, pbc=[True, True, False])[1]


@pytest.mark.parametrize("size,strain", [((2, 2), 0.0), ((3, 3), 0.0), ((2, 2), 3.0)])
def test_pt111_has_exactly_four_distinct_sites(size, strain):
    slab = make_slab("Pt", "fcc", "111", layers=4, size=size, strain=strain)
    sites = find_sites(slab)
    n = size[0] * size[1]
    assert [(s.name, s.multiplicity) for s in sites] == [
        ("ontop", n),
        ("bridge", 3 * n),
        ("fcc", n),
        ("hcp", n),
    ]
    assert len(find_sites(slab, unique=False)) == 6 * n
    layer = atomic_layers(slab.positions[:, 2])
    top = layer.max()
    below = {k: np.where(layer == top - k)[0] for k in (1, 2)}
    by_name = {s.name: s for s in sites}
    # hcp hollow sits over a 2nd-layer atom, fcc hollow over a 3rd-layer atom
    assert _lateral(slab, by_name["hcp"].position, below[1]).min() < 1e-6
    assert _lateral(slab, by_name["fcc"].position, below[2]).min() < 1e-6
    assert _lateral(slab, by_name["fcc"].position, below[1]).min() > 1.0
    # site atoms are at the geometric distance the kind implies (d = in-plane NN distance)
    d = 3.92 / np.sqrt(2) * (1 + strain / 100)
    for s, expected in ((by_name["bridge"], d / 2), (by_name["fcc"], d / np.sqrt(3))):
        assert np.allclose(_lateral(slab, s.position, list(s.atoms)), expected)


def test_cu3au111_chemistry_labelled_sites():
    slab = make_slab("Cu3Au", "L12", "111", layers=4)
    sites = find_sites(slab)
    base = {s.base_name for s in sites}
    assert base == {"ontopA", "ontopB", "bridgeAA", "bridgeAB", "fccAAA", "fccAAB", "hcpAAA", "hcpAAB"}
    role = {"Cu": "A", "Au": "B"}
    for s in sites:
        assert "".join(sorted(role[x] for x in s.symbols)) == s.base_name[len(s.kind) :]
    # per cell (4 surface atoms: 3 Cu, 1 Au): 4 ontop, 12 bridges, 4 fcc, 4 hcp
    total = Counter()
    for s in sites:
        total[s.kind] += s.multiplicity
    assert total == {"ontop": 4, "bridge": 12, "fcc": 4, "hcp": 4}
    mult = {s.name: s.multiplicity for s in sites}
    assert mult["ontopA"] == 3 and mult["ontopB"] == 1 and mult["bridgeAB"] == 6
    assert mult["fccAAA"] == 1 and mult["fccAAB"] == 3 and mult["hcpAAA"] == 1 and mult["hcpAAB"] == 3
    assert get_site(slab, "ontopB").symbols == ("Au",)


@pytest.mark.parametrize(
    "comp,proto,facet,expected",
    [
        ("Pt", "fcc", "100", ["ontop", "bridge", "hollow"]),
        ("Fe", "bcc", "110", ["ontop", "shortbridge", "longbridge", "threefold"]),
        ("Ru", "hcp", "0001", ["ontop", "bridge", "fcc", "hcp"]),
    ],
)
def test_other_pure_facets(comp, proto, facet, expected):
    assert [s.name for s in find_sites(make_slab(comp, proto, facet))] == expected


def test_unknown_site_lists_available():
    slab = make_slab("Pt", "fcc", "111")
    with pytest.raises(StructureBuildError, match="ontop"):
        get_site(slab, "fccAAB")


@pytest.mark.parametrize("adsorbate", list(ADSORBATES))
def test_adsorbate_heights_and_orientation(adsorbate):
    slab = make_slab("Pt", "fcc", "111", layers=3)
    z_top = slab.positions[:, 2].max()
    r_pt = covalent_radii[atomic_numbers["Pt"]]
    for site in find_sites(slab):
        ads = add_adsorbate(slab, adsorbate, site)
        assert len(ads) == len(slab) + len(ADSORBATES[adsorbate])
        assert np.array_equal(ads.get_tags()[len(slab) :], [2] * len(ADSORBATES[adsorbate]))
        assert np.allclose(ads.positions[: len(slab)], slab.positions)
        bind = ads[len(slab)]
        bond = r_pt + covalent_radii[bind.number]
        d = ads.get_distances(len(slab), list(range(len(slab))), mic=True)
        assert d.min() >= bond - 1e-6 or ads.info["height"] == pytest.approx(0.5)
        assert bind.position[2] - z_top == pytest.approx(ads.info["height"])
        if site.kind == "ontop":
            assert ads.info["height"] == pytest.approx(bond)  # exactly the covalent bond
        else:
            assert np.allclose(d[list(site.atoms)], d[list(site.atoms)][0])  # equidistant site atoms
        # binding atom lowest; the rest of the adsorbate points up (OH/CH: H up, CO: O up)
        if len(ADSORBATES[adsorbate]) > 1:
            assert np.all(ads.positions[len(slab) + 1 :, 2] > bind.position[2] + 0.3)
    o_fcc = add_adsorbate(slab, "O", "fcc")
    assert 0.9 < o_fcc.info["height"] < 1.6  # DFT: ~1.2 Å for O in the fcc hollow of Pt(111)


def test_co_binds_through_carbon_and_oh_has_h_up():
    slab = make_slab("Pt", "fcc", "111", layers=3)
    co = add_adsorbate(slab, "CO", "ontop")
    assert co.get_chemical_symbols()[-2:] == ["C", "O"]
    assert co.positions[-1, 2] > co.positions[-2, 2]
    oh = add_adsorbate(slab, "OH", "fcc")
    assert np.allclose(oh.positions[-1, :2], oh.positions[-2, :2])
    assert oh.positions[-1, 2] - oh.positions[-2, 2] == pytest.approx(0.97)


@pytest.mark.parametrize("name", GAS_MOLECULES)
def test_gas_references_in_periodic_box(name):
    mol = gas_molecule(name)
    assert all(mol.pbc) and np.allclose(mol.cell.lengths(), 15.0)
    assert np.allclose(mol.positions.mean(axis=0), 7.5, atol=1.0)
    from ase.formula import Formula

    assert Formula(mol.get_chemical_formula()).count() == Formula(name).count()


@pytest.mark.parametrize("adsorbate", list(ADSORBATES))
def test_gas_coefficients_balance_elements(adsorbate):
    nu = gas_coefficients(adsorbate)
    balance = Counter()
    for gas, coeff in nu.items():
        for sym in gas_molecule(gas).get_chemical_symbols():
            balance[sym] += coeff
    target = Counter(s for s, _ in ADSORBATES[adsorbate])
    for sym in set(balance) | set(target):
        assert balance[sym] == pytest.approx(target[sym])
    assert gas_coefficients("OH") == {"H2O": 1.0, "H2": -0.5}


def test_adsorption_system_with_emt():
    from ase.calculators.emt import EMT

    system = build_adsorption_system("Cu3Au", "L12", "111", "O", site="fccAAA", strain=1.0, layers=3)
    assert system.site.name == "fccAAA"
    assert len(system.adslab) == len(system.slab) + 1
    assert np.allclose(system.adslab.positions[: len(system.slab)], system.slab.positions)
    assert set(system.gas) == {"H2O", "H2"}
    assert system.adsorption_energy(-10.0, -8.0, {"H2O": -3.0, "H2": -1.0}) == pytest.approx(-10 + 8 + 3 - 1)

    def energy(atoms):
        atoms = atoms.copy()
        atoms.calc = EMT()
        return atoms.get_potential_energy()

    e = system.evaluate(energy)
    gas = {name: energy(mol) for name, mol in system.gas.items()}
    assert e == pytest.approx(energy(system.adslab) - energy(system.slab) - gas["H2O"] + gas["H2"])
    with pytest.raises(StructureBuildError, match="valid adsorbates"):
        build_adsorption_system("Pt", "fcc", "111", "XeF")


def test_ooh_end_on_with_h_up_and_che_references():
    slab = make_slab("Pt", "fcc", "111", layers=3)
    ooh = add_adsorbate(slab, "OOH", "ontop")
    assert ooh.get_chemical_symbols()[-3:] == ["O", "O", "H"]
    assert ooh.get_distance(-3, -2) == pytest.approx(1.45, abs=0.01)
    assert ooh.get_distance(-2, -1) == pytest.approx(0.98, abs=0.01)
    assert 100 < ooh.get_angle(-3, -2, -1) < 120
    assert ooh.positions[-1, 2] > ooh.positions[-2, 2] > ooh.positions[-3, 2]
    # Nørskov 2004 reference scheme: OOH* relative to 2 H2O - 3/2 H2
    assert gas_coefficients("OOH") == {"H2O": 2.0, "H2": -1.5}
