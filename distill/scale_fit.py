"""Fit GemNet-OC's ScaleFactor layers of a fresh model, one at a time in execution order (as fairchem does).

Each factor is set to sqrt(Var[input reference] / Var[output]) measured over a few batches with every earlier
factor already fitted, so activations keep about unit variance through the network. The fitted values live in
the state_dict (key `...scale_factor`), so they travel in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from calculators.batch import AtomsBatch
from calculators.gemnet.layers import ScaleFactor


def scale_factors(model: nn.Module) -> dict[str, ScaleFactor]:
    """Name -> ScaleFactor module of `model`."""
    return {name: m for name, m in model.named_modules() if isinstance(m, ScaleFactor)}


def _run(model: nn.Module, batches: Sequence[AtomsBatch]) -> None:
    conservative = bool(getattr(model, "conservative", False))
    with torch.no_grad():
        for b in batches:
            model(b, forces=not conservative)


def execution_order(model: nn.Module, batch: AtomsBatch) -> list[str]:
    """Names of the ScaleFactors in the order a forward pass first calls them (unused ones left out)."""
    order: list[str] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args, name=name: order.append(name) if name not in order else None)
        for name, m in scale_factors(model).items()
    ]
    try:
        _run(model, [batch])
    finally:
        for h in hooks:
            h.remove()
    return order


def measure(factor: ScaleFactor, model: nn.Module, batches: Sequence[AtomsBatch]) -> tuple[float, float]:
    """(mean Var[input reference], mean Var[raw output]) of one factor over `batches` (weighted by rows)."""
    factor.observer = []
    try:
        _run(model, batches)
        obs = factor.observer
    finally:
        factor.observer = None
    if not obs:
        raise RuntimeError("scale factor was not called by the forward pass")
    w = torch.tensor([n for _, _, n in obs], dtype=torch.float64)
    var_in = float((torch.tensor([v for v, _, _ in obs], dtype=torch.float64) * w).sum() / w.sum())
    var_out = float((torch.tensor([v for _, v, _ in obs], dtype=torch.float64) * w).sum() / w.sum())
    return var_in, var_out


def fit_scale_factors(model: nn.Module, batches: Sequence[AtomsBatch]) -> dict[str, float]:
    """Fit every ScaleFactor of `model` on `batches` (a few batches of representative structures); returns the
    fitted values by name. Factors whose output has zero variance keep their value."""
    if not batches:
        raise ValueError("fit_scale_factors needs at least one batch")
    was_training = model.training
    model.eval()
    factors = scale_factors(model)
    fitted: dict[str, float] = {}
    try:
        for name in execution_order(model, batches[0]):
            var_in, var_out = measure(factors[name], model, batches)
            if var_out > 0 and var_in > 0:
                value = (var_in / var_out) ** 0.5
                factors[name].scale_factor.data.fill_(value)
            fitted[name] = float(factors[name].scale_factor)
    finally:
        model.train(was_training)
    return fitted
