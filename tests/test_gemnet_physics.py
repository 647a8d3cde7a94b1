"""Physics checks of the plain-torch GemNet-OC on random weights (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gemnet_helpers import pt_slab_o, small_molecule_box, tiny_model
from scipy.spatial.transform import Rotation

from calculators.batch import AtomsBatch


def run(model, atoms_list):
    out = model.predict(AtomsBatch.from_atoms(atoms_list, dtype=torch.float64))
    return out["energy"].numpy(), out["forces"].numpy(), out["atom_energies"].numpy()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def conservative_model():
    return tiny_model(seed=3, direct_forces=False)


def test_graphs_have_every_interaction(model):
    g = model.build_graphs(AtomsBatch.from_atoms([pt_slab_o()], dtype=torch.float64))
    assert g.main.num_edges > 0 and g.trip_e2e["in"].numel() > 0
    assert g.quad_idx["out"].numel() > 0, "no quadruplets: the quadruplet path is untested"
    assert g.trip_a2e["in"].numel() > 0 and g.trip_e2a["in"].numel() > 0 and g.a2a.num_edges > 0
    # symmetrised main graph: every edge's reverse exists with the opposite vector
    s, t = g.main.edge_index
    assert torch.equal(s[g.id_swap], t) and torch.equal(t[g.id_swap], s)
    assert torch.allclose(g.main.vector[g.id_swap], -g.main.vector)
    assert torch.equal(g.id_swap[g.id_swap], torch.arange(g.main.num_edges))


def test_rotation_and_translation_invariance(model):
    atoms = pt_slab_o()
    e0, f0, _ = run(model, [atoms])
    rot = Rotation.from_euler("zyx", [31.0, 17.0, -44.0], degrees=True).as_matrix()
    moved = atoms.copy()
    moved.set_cell(atoms.cell[:] @ rot.T, scale_atoms=False)
    moved.positions = atoms.positions @ rot.T + np.array([0.7, -1.3, 2.1])
    e1, f1, _ = run(model, [moved])
    assert e1 == pytest.approx(e0, abs=1e-9)
    np.testing.assert_allclose(f1, f0 @ rot.T, atol=1e-9)


def test_permutation_equivariance(model):
    atoms = pt_slab_o()
    perm = np.random.default_rng(0).permutation(len(atoms))
    e0, f0, a0 = run(model, [atoms])
    e1, f1, a1 = run(model, [atoms[perm]])
    assert e1 == pytest.approx(e0, abs=1e-9)
    np.testing.assert_allclose(f1, f0[perm], atol=1e-9)
    np.testing.assert_allclose(a1, a0[perm], atol=1e-9)


def test_reference_symmetrization_is_permutation_invariant_without_truncation():
    # fairchem's symmetrisation keeps s<t edges; it is order-independent when no neighbour limit bites
    model = tiny_model(seed=5, neighbor_symmetrization="reference", max_neighbors=200, max_neighbors_aeaint=200,
                       max_neighbors_qint=200, max_neighbors_aint=400)  # fmt: skip
    atoms = pt_slab_o()
    perm = np.random.default_rng(1).permutation(len(atoms))
    e0, f0, _ = run(model, [atoms])
    e1, f1, _ = run(model, [atoms[perm]])
    assert e1 == pytest.approx(e0, abs=1e-9)
    np.testing.assert_allclose(f1, f0[perm], atol=1e-9)


def test_lattice_vector_shift_invariance(model):
    atoms = pt_slab_o()
    shifted = atoms.copy()
    shifted.positions[3] += atoms.cell[0] - 2 * atoms.cell[1]
    shifted.positions[-1] += atoms.cell[1]
    e0, f0, _ = run(model, [atoms])
    e1, f1, _ = run(model, [shifted])
    assert e1 == pytest.approx(e0, abs=1e-9)
    np.testing.assert_allclose(f1, f0, atol=1e-9)


def test_batched_equals_single(model):
    structures = [
        pt_slab_o(),
        pt_slab_o((3, 3, 2), seed=4),
        small_molecule_box(),
        pt_slab_o((2, 2, 4), seed=7),
    ]
    e_b, f_b, _ = run(model, structures)
    f_single = []
    for i, atoms in enumerate(structures):
        e, f, _ = run(model, [atoms])
        assert e_b[i] == pytest.approx(e[0], abs=1e-9)
        f_single.append(f)
    np.testing.assert_allclose(f_b, np.concatenate(f_single), atol=1e-9)


def test_batched_equals_single_with_exactly_tied_neighbours():
    # an ideal slab has many equal distances at the max_neighbors rank: ties must not depend on the batch
    model = tiny_model(seed=2, neighbor_symmetrization="reference")
    ideal = pt_slab_o((3, 3, 3), rattle=0.0)
    e_single, f_single, _ = run(model, [ideal])
    e_b, f_b, _ = run(model, [pt_slab_o((2, 2, 5), seed=9), ideal, small_molecule_box()])
    assert e_b[1] == pytest.approx(e_single[0], abs=1e-9)
    np.testing.assert_allclose(f_b[21 : 21 + len(ideal)], f_single, atol=1e-9)


def test_energy_is_extensive_on_a_doubled_cell(model):
    atoms = pt_slab_o()
    e1, _, a1 = run(model, [atoms])
    e2, _, a2 = run(model, [atoms.repeat((2, 1, 1))])
    assert e2[0] == pytest.approx(2 * e1[0], rel=1e-9, abs=1e-8)
    n = len(atoms)
    np.testing.assert_allclose(a2.reshape(2, n), np.stack([a1, a1]), atol=1e-9)


def test_energy_sums_per_atom_energies(model):
    e, _, a = run(model, [pt_slab_o(), small_molecule_box()])
    assert e[0] == pytest.approx(a[:13].sum(), abs=1e-10)
    assert e[1] == pytest.approx(a[13:].sum(), abs=1e-10)


def test_conservative_forces_are_minus_energy_gradient(conservative_model):
    atoms = pt_slab_o((2, 2, 2))
    _, f, _ = run(conservative_model, [atoms])
    h = 1e-5
    rng = np.random.default_rng(0)
    for i, k in [(len(atoms) - 1, 2), (0, 0), (int(rng.integers(len(atoms))), 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        ep, _, _ = run(conservative_model, [plus])
        em, _, _ = run(conservative_model, [minus])
        assert f[i, k] == pytest.approx(-(ep[0] - em[0]) / (2 * h), abs=1e-6)
    assert np.abs(f.sum(axis=0)).max() < 1e-8  # conservative: no net force


def test_direct_forces_differ_from_conservative_mode(model):
    out = model.predict(AtomsBatch.from_atoms([pt_slab_o()], dtype=torch.float64), features=True)
    assert out["forces"].shape == (13, 3)
    assert out["node_features"].shape == (13, 16)
    assert len(out["h_blocks"]) == 3 and len(out["m_blocks"]) == 3
    assert out["edge_index"].shape[0] == 2 and out["edge_features"].shape[1] == 24


def test_float32_matches_float64():
    m64 = tiny_model()
    m32 = tiny_model().to(torch.float32)
    atoms = pt_slab_o()
    e64 = m64.predict(AtomsBatch.from_atoms([atoms], dtype=torch.float64))["energy"]
    e32 = m32.predict(AtomsBatch.from_atoms([atoms], dtype=torch.float32))["energy"]
    assert float(e32) == pytest.approx(float(e64), rel=1e-4)
    assert torch.get_default_dtype() == torch.float32


def test_skin_candidates_give_identical_results(model):
    atoms = pt_slab_o()
    batch = AtomsBatch.from_atoms([atoms], dtype=torch.float64)
    cands = model.neighbor_candidates(batch, skin=1.0)
    moved = atoms.copy()
    moved.positions += np.random.default_rng(3).normal(scale=0.1, size=moved.positions.shape)
    mb = AtomsBatch.from_atoms([moved], dtype=torch.float64)
    ref = model.predict(mb)
    reused = model.predict(mb, candidates=cands)
    assert torch.allclose(ref["energy"], reused["energy"], atol=1e-10)
    assert torch.allclose(ref["forces"], reused["forces"], atol=1e-10)
