"""GemNet-OC layers: the inference fast paths (in-place activations without autograd, the edge embedding's
per-atom projections) compute what the plain definitions compute, and training still gets gradients."""

from __future__ import annotations

import math

import pytest
import torch

from calculators.gemnet.index_ops import gather_padded, padded_source_index, scatter_padded
from calculators.gemnet.layers import Dense, EdgeEmbedding, ResidualLayer, dense_many


def _scaled_silu(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.silu(x) / 0.6


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_dense_matches_its_definition_with_and_without_autograd(gen):
    layer = Dense(24, 16, activation="silu")
    x = torch.randn(50, 24, generator=gen)
    expected = _scaled_silu(x @ layer.linear.weight.T)
    with torch.no_grad():
        fast = layer(x)
    slow = layer(x)
    assert slow.requires_grad
    torch.testing.assert_close(fast, expected.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(slow.detach(), fast, rtol=0, atol=0)
    plain = Dense(24, 16, activation=None)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), x @ plain.linear.weight.T, rtol=1e-6, atol=1e-6)


def test_residual_layer_leaves_its_input_untouched_and_matches_definition(gen):
    layer = ResidualLayer(16, 2, "silu")
    x = torch.randn(40, 16, generator=gen)
    x_before = x.clone()
    d0, d1 = layer.dense_mlp
    expected = (x + _scaled_silu(_scaled_silu(x @ d0.linear.weight.T) @ d1.linear.weight.T)) / math.sqrt(2.0)
    with torch.no_grad():
        fast = layer(x)
    assert torch.equal(x, x_before), "the in-place inference path must not write into its input"
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-6)
    # autograd path: the plain definition (inference folds 1/0.6 into the second weight: rounding differs)
    torch.testing.assert_close(layer(x).detach(), fast, rtol=1e-5, atol=1e-6)
    # the folded weight follows the layer's weight, however it is changed (a fused optimiser step, a write
    # through .data, a load): an update is seen at the next call
    with torch.no_grad():
        d1.linear.weight.data.mul_(2.0)
        doubled = layer(x)
    expected = (x + _scaled_silu(_scaled_silu(x @ d0.linear.weight.T) @ d1.linear.weight.T)) / math.sqrt(2.0)
    torch.testing.assert_close(doubled, expected, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), doubled, rtol=0, atol=0)


def test_edge_embedding_equals_dense_of_concatenation_and_its_gradients(gen):
    emb = EdgeEmbedding(atom_features=12, edge_features=8, out_features=10, activation="silu")
    h = torch.randn(7, 12, generator=gen, requires_grad=True)
    m = torch.randn(30, 8, generator=gen, requires_grad=True)
    edge_index = torch.randint(0, 7, (2, 30), generator=gen)
    reference = emb.dense(torch.cat([h[edge_index[0]], h[edge_index[1]], m], dim=-1))
    out = emb(h, m, edge_index)
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6)
    g_ref = torch.autograd.grad(reference.square().sum(), [h, m, emb.dense.linear.weight])
    g_out = torch.autograd.grad(out.square().sum(), [h, m, emb.dense.linear.weight])
    for a, b in zip(g_out, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(emb(h, m, edge_index), reference.detach(), rtol=1e-5, atol=1e-6)


def test_dense_many_equals_each_layer_and_refuses_mixed_activations(gen):
    layers = [Dense(24, 16, activation="silu"), Dense(24, 8, activation="silu"), Dense(24, 4, activation="silu")]
    x = torch.randn(30, 24, generator=gen, requires_grad=True)
    outs = dense_many(layers, x)
    assert [o.shape for o in outs] == [(30, 16), (30, 8), (30, 4)]
    for layer, out in zip(layers, outs, strict=True):
        torch.testing.assert_close(out, layer(x), rtol=1e-5, atol=1e-6)
    sum(o.sum() for o in outs).backward()  # gradients reach every stacked weight
    assert all(layer.linear.weight.grad is not None and layer.linear.weight.grad.abs().sum() > 0 for layer in layers)
    with torch.no_grad():  # in-place activation path
        for layer, out in zip(layers, dense_many(layers, x), strict=True):
            torch.testing.assert_close(out, layer(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="same activation"):
        dense_many([Dense(24, 16, activation="silu"), Dense(24, 16, activation=None)], x)


def test_padded_gather_equals_gather_then_pad(gen):
    """The prebuilt gather index lays input rows out exactly as gathering per triplet and scattering would,
    including empty slots (zeros), output edges without triplets and no triplets at all."""
    n_in, n_out = 9, 6
    out = torch.tensor([0, 0, 0, 2, 2, 5])  # sorted output edges; 1, 3, 4 have no triplets
    inner = torch.tensor([0, 1, 2, 0, 1, 0])
    source = torch.tensor([3, 8, 1, 0, 0, 7])  # input rows, repeats allowed
    x = torch.randn(n_in, 4, generator=gen, requires_grad=True)
    index = padded_source_index(source, out, inner, n_out, n_in)
    fast = gather_padded(x, index, n_out)
    slow = scatter_padded(x[source], out, inner, n_out)
    assert fast.shape == (n_out, 3, 4)
    torch.testing.assert_close(fast, slow, rtol=0, atol=0)
    (g_fast,) = torch.autograd.grad((fast * fast).sum(), x)
    (g_slow,) = torch.autograd.grad((slow * slow).sum(), x)
    torch.testing.assert_close(g_fast, g_slow)
    empty = torch.zeros(0, dtype=torch.long)
    none = gather_padded(x, padded_source_index(empty, empty, empty, n_out, n_in), n_out)
    assert none.shape == (n_out, 0, 4)
