"""The Gaussian radial basis: the plain definition, without denormal numbers."""

from __future__ import annotations

import math

import pytest
import torch

from calculators.gemnet.basis import GaussianBasis


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_basis_is_exp_definition_without_denormals(dtype):
    basis = GaussianBasis(0.0, 1.0, 32).to(dtype)
    x = torch.linspace(0.0, 1.0, 400, dtype=dtype)
    plain = torch.exp(basis.coeff * (x[:, None] - basis.offset[None, :]) ** 2)
    tiny = torch.finfo(dtype).tiny
    assert bool(((plain > 0) & (plain < tiny)).any()) or dtype == torch.float64  # float32 has denormals here
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            y = basis(x)
        # values far out in the tails become exactly 0 instead of denormals; everything else is exp() itself
        assert torch.equal(y[plain >= math.e**2 * tiny * 1.01], plain[plain >= math.e**2 * tiny * 1.01])
        assert float((y - plain).abs().max()) <= math.e**2 * tiny
        assert not bool(((y > 0) & (y < tiny)).any())
    # gradients of the autograd path: the definition's, up to the same negligible tails
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(basis(xg).sum(), xg)
    xp = x.clone().requires_grad_(True)
    (gp,) = torch.autograd.grad(torch.exp(basis.coeff * (xp[:, None] - basis.offset[None, :]) ** 2).sum(), xp)
    torch.testing.assert_close(g, gp, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=1e-30)
