"""Opt-in compiled network (`GemNetOC.compile_network`): the same energies and forces as eager, for new
geometries and batches without recompiling per call, eager wherever autograd or features are asked for, and a
warned fallback when compiling fails."""

from __future__ import annotations

import copy

import pytest
import torch
from gemnet_helpers import pt_slab_o, small_molecule_box, tiny_model

from calculators.batch import AtomsBatch
from calculators.keys import ATOM_ENERGIES, NODE_FEATURES

STUDENT_LIKE = dict(
    direct_forces=True, zero_net_force=True, num_blocks=2, quad_interaction=False, atom_edge_interaction=False,
    edge_atom_interaction=False, atom_interaction=False,
)  # fmt: skip


def _batch(*atoms_list):
    return AtomsBatch.from_atoms(list(atoms_list), dtype=torch.float32)


@pytest.fixture(scope="module")
def pair():
    eager = tiny_model(seed=5, dtype=torch.float32, **STUDENT_LIKE)
    compiled = copy.deepcopy(eager).compile_network()
    return eager, compiled


def _counting(model) -> list[int]:
    """Count calls of the model's compiled function (it would give eager's numbers too: count to tell)."""
    calls: list[int] = []
    inner = model._compiled

    def counted(*args):
        calls.append(1)
        return inner(*args)

    model._compiled = counted
    return calls


def test_compiled_network_matches_eager_on_new_geometries_and_batches(pair):
    eager, compiled = pair
    cases = [
        _batch(pt_slab_o()),
        _batch(pt_slab_o(rattle=0.2, seed=3)),  # other edge and triplet counts: dynamic shapes
        _batch(pt_slab_o(size=(3, 3, 3)), small_molecule_box()),  # a batch of two structures
    ]
    calls = _counting(compiled)
    for batch in cases:
        for forces in (True, False):
            ref = eager.predict(batch, forces=forces)
            out = compiled.predict(batch, forces=forces)
            torch.testing.assert_close(out["energy"], ref["energy"], rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(out[ATOM_ENERGIES], ref[ATOM_ENERGIES], rtol=1e-5, atol=1e-4)
            if forces:
                torch.testing.assert_close(out["forces"], ref["forces"], rtol=1e-4, atol=1e-4)
    assert compiled._compiled is not None, "compiling fell back to eager"
    assert len(calls) == 2 * len(cases)  # every call went through the compiled network


def test_features_and_autograd_stay_eager(pair):
    eager, compiled = pair
    batch = _batch(pt_slab_o())
    calls = _counting(compiled)
    out = compiled.predict(batch, features=True)
    assert out[NODE_FEATURES] is not None and len(out["h_blocks"]) == 3  # only the eager path returns these
    with torch.enable_grad():  # training-style call: gradients reach the weights through the eager network
        e = compiled(batch)["energy"].sum()
        e.backward()
    assert compiled.out_energy.linear.weight.grad is not None
    compiled.zero_grad()
    assert calls == []  # neither call used the compiled network
    compiled.predict(batch)
    assert calls == [1]
    twin = copy.deepcopy(compiled)  # a compiled function does not travel: the copy is eager, and equal
    assert twin._compiled is None
    torch.testing.assert_close(twin.predict(batch)["energy"], eager.predict(batch)["energy"], rtol=1e-5, atol=1e-4)


def test_failed_compilation_falls_back_to_eager_with_a_warning():
    model = tiny_model(seed=6, dtype=torch.float32, **STUDENT_LIKE)
    batch = _batch(pt_slab_o())
    ref = model.predict(batch)

    def broken(*args):
        raise RuntimeError("no C++ compiler")

    model._compiled = broken
    with pytest.warns(UserWarning, match="falling back to eager"):
        out = model.predict(batch)
    assert model._compiled is None
    torch.testing.assert_close(out["forces"], ref["forces"])
    assert model.compile_network(False)._compiled is None


def test_configs_with_atom_graph_interactions_refuse_to_compile():
    with pytest.raises(ValueError, match="quadruplet"):
        tiny_model(seed=7, dtype=torch.float32).compile_network()
