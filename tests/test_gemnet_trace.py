"""The traced network of `predict` (`GemNetOC.trace_network`, on by default): the same energies and forces as the
eager network for new geometries, sizes and batches, made once per kind after eager calls of that kind have taken
`after_seconds`, and eager wherever a trace would not compute the same (autograd, features, scale fitting, hooks,
graphs without triplets, replaced parameters)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from ase.build import molecule
from gemnet_helpers import pt_slab_o, small_molecule_box, tiny_model

from calculators.batch import AtomsBatch
from calculators.keys import ATOM_ENERGIES, NODE_FEATURES

STUDENT_LIKE = dict(
    direct_forces=True, zero_net_force=True, num_blocks=2, quad_interaction=False, atom_edge_interaction=False,
    edge_atom_interaction=False, atom_interaction=False,
)  # fmt: skip


def _batch(*atoms_list, dtype=torch.float32):
    return AtomsBatch.from_atoms(list(atoms_list), dtype=dtype)


def _pair(seed: int = 5, dtype=torch.float32, **overrides):
    """(a model tracing from its first call on, an eager copy)."""
    traced = tiny_model(seed=seed, dtype=dtype, **{**STUDENT_LIKE, **overrides}).trace_network(after_seconds=0.0)
    eager = copy.deepcopy(traced).trace_network(False)
    return traced, eager


def _scripts(model) -> dict:
    return {} if model._traces is None else dict(model._traces.scripts)


def _assert_same(out, ref, forces: bool):
    # the same kernels in the same order: equal to float rounding (bitwise in practice)
    torch.testing.assert_close(out["energy"], ref["energy"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out[ATOM_ENERGIES], ref[ATOM_ENERGIES], rtol=1e-6, atol=1e-6)
    if forces:
        torch.testing.assert_close(out["forces"], ref["forces"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_traced_predict_matches_eager_on_new_geometries_and_batches(dtype):
    traced, eager = _pair(dtype=dtype)
    cases = [
        _batch(pt_slab_o(), dtype=dtype),  # the first call of each kind makes the trace
        _batch(pt_slab_o(rattle=0.2, seed=3), dtype=dtype),  # other edge and triplet counts than the traced call
        _batch(pt_slab_o(size=(3, 3, 3)), small_molecule_box(), dtype=dtype),  # a batch of two structures
    ]
    for batch in cases:
        for forces in (True, False):
            _assert_same(traced.predict(batch, forces=forces), eager.predict(batch, forces=forces), forces)
    assert all(_scripts(traced).values()) and _scripts(eager) == {}
    assert traced._traces.calls == dict.fromkeys(_scripts(traced), len(cases))
    assert set(_scripts(traced)) == {(True, dtype, torch.device("cpu")), (False, dtype, torch.device("cpu"))}


def test_a_trace_is_made_once_eager_calls_have_taken_long_enough():
    """Short jobs never pay for tracing: the trace of a kind comes once its eager calls have taken
    `after_seconds` (2 s by default), and the time it took is recorded."""
    model = tiny_model(seed=5, dtype=torch.float32, **STUDENT_LIKE)
    batch = _batch(pt_slab_o())
    for _ in range(3):
        model.predict(batch)
    assert model.trace_after_seconds == 2.0 and not _scripts(model)  # three calls of a tiny model: ~0.03 s
    model.trace_network(after_seconds=0.05)
    n_eager = 0
    while not _scripts(model):
        spent = model._traces.eager_seconds.get((True, torch.float32, torch.device("cpu")), 0.0) if n_eager else 0.0
        model.predict(batch)
        n_eager += 1
        assert n_eager < 1000
    assert n_eager >= 2 and spent >= 0.05  # eager until the threshold, traced on the call after it
    assert set(model.trace_seconds()) == {(True, torch.float32, torch.device("cpu"))}
    assert 0 < model.trace_seconds()[(True, torch.float32, torch.device("cpu"))] < 60
    with pytest.raises(ValueError, match="after_seconds"):
        model.trace_network(after_seconds=-1.0)


def test_the_trace_is_used_once_made():
    traced, _ = _pair()
    batch = _batch(pt_slab_o())
    traced.predict(batch)
    key = (True, torch.float32, torch.device("cpu"))
    calls = []
    script = traced._traces.scripts[key]

    def counted(*args):
        calls.append(1)
        return script(*args)

    traced._traces.scripts[key] = counted
    traced.predict(_batch(pt_slab_o(rattle=0.1, seed=9)))
    assert calls == [1]


def test_features_autograd_training_and_no_triplets_stay_eager():
    traced, eager = _pair()
    batch = _batch(pt_slab_o())
    for _ in range(3):
        traced.predict(batch)
    calls_before = dict(traced._traces.calls)
    out = traced.predict(batch, features=True)
    assert out[NODE_FEATURES] is not None and len(out["h_blocks"]) == 3  # only the eager path returns these
    with torch.enable_grad():  # training-style call: gradients reach the weights through the eager network
        traced(batch)["energy"].sum().backward()
    assert traced.out_energy.linear.weight.grad is not None
    traced.zero_grad()
    traced.train()
    with torch.no_grad():
        traced(batch, traced=True)
    traced.eval()
    co = molecule("CO")
    co.center(vacuum=5.0)
    gas = _batch(co)  # two atoms: edges but no triplets
    for _ in range(3):
        _assert_same(traced.predict(gas), eager.predict(gas), True)
    assert traced._traces.calls == calls_before  # none of these calls reached the trace


def test_scale_factor_fitting_sees_every_call():
    from distill.scale_fit import fit_scale_factors

    traced, eager = _pair()
    batch = _batch(pt_slab_o(), pt_slab_o(rattle=0.1, seed=4))
    for _ in range(3):
        traced.predict(batch)
    fitted = fit_scale_factors(traced, [batch])  # observers record each factor's input and output in a forward
    assert fitted == pytest.approx(fit_scale_factors(eager, [batch]))


def test_weights_changed_in_place_reach_the_trace_and_conversions_retrace():
    traced, eager = _pair()
    batch = _batch(pt_slab_o())
    for _ in range(2):
        traced.predict(batch)
    with torch.no_grad():  # an optimiser step or load_state_dict: in place
        for model in (traced, eager):
            for p in model.parameters():
                p.mul_(1.01)
    _assert_same(traced.predict(batch), eager.predict(batch), True)
    traced.to("cpu")  # a calculator's .to() of a model already there: the trace stays
    assert _scripts(traced)
    traced.double()
    eager.double()
    assert not _scripts(traced)
    b64 = _batch(pt_slab_o(), dtype=torch.float64)
    for _ in range(3):
        _assert_same(traced.predict(b64), eager.predict(b64), True)
    assert set(_scripts(traced)) == {(True, torch.float64, torch.device("cpu"))}


def test_a_replaced_submodule_or_parameter_makes_a_new_trace():
    traced, eager = _pair()
    batch = _batch(pt_slab_o())
    for _ in range(2):
        traced.predict(batch)
    old = _scripts(traced)[(True, torch.float32, torch.device("cpu"))]
    new_head = copy.deepcopy(traced.out_energy)
    with torch.no_grad():
        new_head.linear.weight.mul_(-2.0)
    for model in (traced, eager):
        model.out_energy = copy.deepcopy(new_head)
        model.int_blocks[0].dense_ca.linear.weight = torch.nn.Parameter(
            model.int_blocks[0].dense_ca.linear.weight.detach() * 0.5, requires_grad=False
        )
    for _ in range(3):
        _assert_same(traced.predict(batch), eager.predict(batch), True)
    assert _scripts(traced)[(True, torch.float32, torch.device("cpu"))] is not old


def test_forward_hooks_see_eager_calls():
    traced, _ = _pair()
    batch = _batch(pt_slab_o())
    seen: list[int] = []
    for _ in range(2):
        traced.predict(batch)  # traced
    handle = traced.out_blocks[1].register_forward_hook(lambda *_: seen.append(1))
    for _ in range(3):
        traced.predict(batch)
    assert seen == [1, 1, 1]
    handle.remove()
    global_seen: list[int] = []
    for _ in range(2):
        traced.predict(batch)  # traced now
    assert _scripts(traced)
    global_handle = torch.nn.modules.module.register_module_forward_hook(lambda *_: global_seen.append(1))
    try:
        traced.predict(batch)
    finally:
        global_handle.remove()
    assert global_seen  # the eager network ran under the global hook


def test_copies_and_pickles_trace_again_and_tracing_can_be_switched_off():
    traced, eager = _pair()
    batch = _batch(pt_slab_o())
    for _ in range(2):
        traced.predict(batch)
    for twin in (copy.deepcopy(traced), pickle.loads(pickle.dumps(traced))):
        assert twin._traces is None
        for _ in range(2):
            _assert_same(twin.predict(batch), eager.predict(batch), True)
        assert _scripts(twin)
    traced.trace_network(False)
    for _ in range(3):
        traced.predict(batch)
    assert traced._traces is None


def test_failed_tracing_warns_once_and_stays_eager(monkeypatch):
    traced, eager = _pair()
    batch = _batch(pt_slab_o())

    def broken(*args, **kwargs):
        raise RuntimeError("tracer says no")

    monkeypatch.setattr(torch.jit, "trace", broken)
    with pytest.warns(UserWarning, match="staying eager"):
        out = traced.predict(batch)
    _assert_same(out, eager.predict(batch), True)
    traced.predict(batch)  # no second attempt, no second warning (pytest would fail on an unexpected one below)
    assert _scripts(traced)[(True, torch.float32, torch.device("cpu"))] is False


def test_configs_with_atom_graph_interactions_stay_eager():
    model = tiny_model(seed=7, dtype=torch.float32)  # quadruplets and atom-graph interactions
    batch = _batch(pt_slab_o())
    for _ in range(3):
        model.predict(batch)
    assert not _scripts(model)


def test_host_built_grid_indices_lay_out_the_triplets_as_the_scatter_does():
    """`graph.triplets` builds both gather indices of the (output edge, K) grid in numpy: they equal the torch
    `padded_source_index`, and the angular basis gathered with one equals the scattered grid."""
    from calculators.gemnet.index_ops import gather_padded, padded_source_index, scatter_padded

    model = tiny_model(seed=8, dtype=torch.float64, **STUDENT_LIKE)
    for atoms in (pt_slab_o(rattle=0.15, seed=2), small_molecule_box()):
        g = model.build_graphs(_batch(atoms, dtype=torch.float64))
        t, n_edges = g.trip_e2e, g.main.num_edges
        n_trip = t["in"].numel()
        assert torch.equal(t["pad_src"], padded_source_index(t["in"], t["out"], t["out_agg"], n_edges, n_edges))
        assert torch.equal(
            t["pad_trip"], padded_source_index(torch.arange(n_trip), t["out"], t["out_agg"], n_edges, n_trip)
        )
        values = torch.randn(n_trip, 5, dtype=torch.float64)
        assert torch.equal(
            gather_padded(values, t["pad_trip"], n_edges), scatter_padded(values, t["out"], t["out_agg"], n_edges)
        )


def test_autocast_calls_stay_eager_and_leave_no_low_precision_trace():
    traced, eager = _pair()
    batch = _batch(pt_slab_o())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = traced.predict(batch)
        ref = eager.predict(batch)
    assert torch.equal(out["energy"], ref["energy"]) and not _scripts(traced)  # eager under autocast, no trace made
    out = traced.predict(batch)  # the trace made now records float32 operations only
    assert out["energy"].dtype == torch.float32
    _assert_same(out, eager.predict(batch), True)


def test_threads_sharing_a_model_trace_each_kind_once_and_keep_the_warning_filters():
    import threading
    import warnings

    traced, eager = _pair()
    batch = _batch(pt_slab_o())
    filters_before = list(warnings.filters)
    barrier = threading.Barrier(2)
    outs: dict[bool, dict] = {}

    def run(forces: bool) -> None:
        barrier.wait()
        outs[forces] = traced.predict(batch, forces=forces)

    threads = [threading.Thread(target=run, args=(f,)) for f in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert warnings.filters == filters_before  # tracing swaps no process-wide filter list
    assert len(_scripts(traced)) == 2 and all(_scripts(traced).values())
    for forces, out in outs.items():
        _assert_same(out, eager.predict(batch, forces=forces), forces)
