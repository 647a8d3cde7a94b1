"""Seeded sampling of the chemical space, perturbations, file output and `screen build`."""

from __future__ import annotations

import numpy as np
import pytest
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list
from typer.testing import CliRunner

from calculators.batch import fixed_mask, validate_atoms
from screening.structures import StructureBuildError, make_slab
from screening.structures.io import read_structures, write_structures
from screening.structures.perturb import random_strain, rattle, relaxation_snapshots
from screening.structures.sampling import ChemicalSpace

META = ("composition", "prototype", "facet", "strain", "site", "adsorbate", "layers", "size", "kind")


def _overlap_ratio(atoms) -> float:
    """Smallest d / allowed over all pairs (PBC), skipping bonds inside one adsorbate.

    allowed = 1.0 Å for pairs with H, else 0.7 x sum of covalent radii.
    """
    i, j, d, shift = neighbor_list("ijdS", atoms, 3.5)
    tags = atoms.get_tags()
    same_molecule = (tags[i] == 2) & (tags[j] == 2) & ~np.any(shift, axis=1)
    z = atoms.numbers
    allowed = np.where((z[i] == 1) | (z[j] == 1), 1.0, 0.7 * (covalent_radii[z[i]] + covalent_radii[z[j]]))
    ratio = d[~same_molecule] / allowed[~same_molecule]
    return float(ratio.min()) if len(ratio) else np.inf


@pytest.fixture(scope="module")
def space() -> ChemicalSpace:
    return ChemicalSpace(
        ["Pt", "Cu", "Au", "Ni"],
        adsorbates=["H", "O", "OH", "N", "C", "CH", "CO"],
        strains=[-3.0, 0.0, 3.0],
        clean_fraction=0.1,
    )


def test_500_samples_no_overlaps_and_consistent_metadata(space):
    structures = space.sample(500, seed=0)
    assert len(structures) == 500
    protos = {a.info["prototype"] for a in structures}
    assert protos == {"fcc", "bcc", "hcp", "L12", "B2", "L10", "D019", "A2B_hcp"}
    assert {a.info["adsorbate"] for a in structures} == {"none", "H", "O", "OH", "N", "C", "CH", "CO"}
    for atoms in structures:
        validate_atoms(atoms)
        assert _overlap_ratio(atoms) >= 1.0, atoms.info
        for key in META:
            assert key in atoms.info
        tags = atoms.get_tags()
        assert np.array_equal(fixed_mask(atoms), tags == 0)
        n_ads = int(np.sum(tags == 2))
        assert (n_ads == 0) == (atoms.info["adsorbate"] == "none")
        assert all(atoms.pbc) and atoms.info["strain"] in (-3.0, 0.0, 3.0)


def test_sampling_is_reproducible_and_prefix_stable(space):
    a = space.sample(12, seed=7)
    b = ChemicalSpace(**{k: getattr(space, k) for k in ("elements", "adsorbates", "strains", "clean_fraction")})
    b_list = b.sample(30, seed=7)
    for x, y in zip(a, b_list[:12], strict=True):
        assert x.get_chemical_symbols() == y.get_chemical_symbols()
        assert np.allclose(x.positions, y.positions) and x.info == y.info
    other = space.sample(12, seed=8)
    assert [x.info["site"] for x in a] != [x.info["site"] for x in other]


def test_perturbed_samples_are_reproducible_and_sane():
    space = ChemicalSpace(["Pt", "Cu"], adsorbates=["OH", "CO"], rattle=0.05, perturb_strain=1.0)
    a, b = space.sample(40, seed=3), space.sample(40, seed=3)
    plain = ChemicalSpace(["Pt", "Cu"], adsorbates=["OH", "CO"]).sample(40, seed=3)
    for x, y, p in zip(a, b, plain, strict=True):
        assert np.allclose(x.positions, y.positions) and np.allclose(x.cell, y.cell)
        assert not np.allclose(x.positions, p.positions)
        fixed = fixed_mask(x)
        assert np.allclose(x.positions[fixed, 2], p.positions[fixed, 2])  # in-plane strain, no rattle
        assert _overlap_ratio(x) >= 1.0


def test_space_validation():
    only_pt = ChemicalSpace(["Pt"])
    assert set(only_pt.prototype_facets) == {"fcc", "bcc", "hcp"}
    assert {s.info["composition"] for s in only_pt.sample(10, 0)} == {"Pt"}
    facets = ChemicalSpace(["Pt", "Cu"], facets=["111"]).prototype_facets
    assert facets == {"fcc": ["111"], "L12": ["111"]}
    with pytest.raises(StructureBuildError, match="valid"):
        ChemicalSpace(["Pt"], facets=["987"])
    with pytest.raises(StructureBuildError, match="valid adsorbates"):
        ChemicalSpace(["Pt"], adsorbates=["Q"])
    with pytest.raises(StructureBuildError, match="valid prototypes"):
        ChemicalSpace(["Pt"], prototypes=["L12"])


def test_perturbations():
    slab = make_slab("Cu", "fcc", "111", layers=3)
    fixed = fixed_mask(slab)
    r = rattle(slab, 0.05, seed=1)
    moved = np.linalg.norm(r.positions - slab.positions, axis=1)
    assert np.all(moved[fixed] == 0) and np.all(moved[~fixed] > 0)
    assert np.allclose(rattle(slab, 0.05, seed=1).positions, r.positions)
    s = random_strain(slab, 2.0, seed=3)
    ratio = s.cell.lengths()[:2] / slab.cell.lengths()[:2]
    assert np.all(np.abs(ratio - 1) <= 0.04) and not np.allclose(ratio, 1)
    assert np.allclose(s.positions[:, 2], slab.positions[:, 2])

    from ase.calculators.emt import EMT

    snaps = relaxation_snapshots(rattle(slab, 0.1, seed=0), EMT(), steps=6, fmax=0.01)
    energies = [x.get_potential_energy() for x in snaps]
    assert len(snaps) >= 3 and energies[-1] < energies[0]
    assert [x.info["relax_step"] for x in snaps] == list(range(len(snaps)))
    for x in snaps:
        assert np.allclose(x.positions[fixed], snaps[0].positions[fixed])


@pytest.mark.parametrize("suffix", [".extxyz", ".db"])
def test_write_read_roundtrip(tmp_path, suffix, space):
    structures = space.sample(6, seed=2)
    path = write_structures(tmp_path / f"s{suffix}", structures)
    back = read_structures(path)
    assert len(back) == 6
    for x, y in zip(structures, back, strict=True):
        assert np.allclose(x.positions, y.positions)
        assert np.array_equal(x.get_tags(), y.get_tags())
        assert np.array_equal(fixed_mask(x), fixed_mask(y))
        for key in META:
            assert y.info[key] == x.info[key], key
        assert isinstance(y.info["facet"], str)


def test_screen_build_command(tmp_path):
    from screening.cli import app

    out = tmp_path / "structures.extxyz"
    args = ["build", "--elements", "Pt,Cu,Au", "--adsorbates", "H,O,OH", "-n", "12", "--seed", "0"]
    result = CliRunner().invoke(app, [*args, "--strains", "-2,0,2", "--gas", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 14 structures" in result.output
    back = read_structures(out)
    slabs = [a for a in back if a.info.get("kind") != "gas"]
    gases = sorted(a.info["gas"] for a in back if a.info.get("kind") == "gas")
    assert len(slabs) == 12 and gases == ["H2", "H2O"]
    assert {a.info["adsorbate"] for a in slabs} <= {"H", "O", "OH"}
    assert all(a.info["strain"] in (-2.0, 0.0, 2.0) for a in slabs)
    assert all(set(a.get_chemical_symbols()) - {"H", "O"} <= {"Pt", "Cu", "Au"} for a in slabs)
    assert all(fixed_mask(a).any() for a in slabs)

    bad = CliRunner().invoke(app, ["build", "--elements", "Pt", "--prototypes", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "valid prototypes" in bad.output
