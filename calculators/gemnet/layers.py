"""GemNet-OC building layers. Attribute names follow the reference so state_dict keys match fairchem's."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from calculators.gemnet.index_ops import gather_padded, scatter_padded


def he_orthogonal_(weight: torch.Tensor) -> torch.Tensor:
    """Orthogonal init standardised to zero mean and variance 1/fan_in (GemNet's 'HeOrthogonal')."""
    nn.init.orthogonal_(weight)
    fan_in = weight.shape[:-1].numel() if weight.dim() == 3 else weight.shape[1]
    with torch.no_grad():
        dims = [0, 1] if weight.dim() == 3 else 1
        var, mean = torch.var_mean(weight, dim=dims, unbiased=True, keepdim=True)
        weight.copy_((weight - mean) / (var + 1e-6) ** 0.5 * (1.0 / fan_in) ** 0.5)
    return weight


_INV_0_6 = 1.0 / 0.6
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


_SCALARS: dict[tuple[float, torch.dtype, torch.device], torch.Tensor] = {}


def scalar_like(value: float, like: torch.Tensor) -> torch.Tensor:
    """`value` as a 0-dim tensor of `like`'s dtype and device, made once: torch converts a Python float operand
    to a tensor on every operation (~2-3 µs each, ~70 times per inference call of a student). A plain tensor
    (made outside inference mode), so autograd may save it too."""
    key = (value, like.dtype, like.device)
    out = _SCALARS.get(key)
    if out is None:
        with torch.inference_mode(False):
            out = _SCALARS[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
    return out


class ScaledSiLU(nn.Module):
    """SiLU(x) / 0.6, keeping activations at unit scale."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.silu(x) * _INV_0_6


class Dense(nn.Module):
    """Linear layer (He-orthogonal init) with an optional scaled SiLU."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False, activation: str | None = None):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        he_orthogonal_(self.linear.weight)
        if self.linear.bias is not None:
            nn.init.zeros_(self.linear.bias)
        if activation is None:
            self._activation: nn.Module = nn.Identity()
        elif activation.lower() in ("silu", "swish"):
            self._activation = ScaledSiLU()
        else:
            raise ValueError(f"unknown activation {activation!r} (GemNet-OC supports 'silu')")
        self._silu = activation is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # functional calls, not the submodules': at ~100 Dense calls per structure the module-call overhead shows
        return self.activate(torch.nn.functional.linear(x, self.linear.weight, self.linear.bias))

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        """This layer's activation applied to pre-activations `y` (in place when autograd is off)."""
        if not self._silu:
            return y
        if torch.is_grad_enabled():
            return torch.nn.functional.silu(y) * _INV_0_6
        return torch.nn.functional.silu(y, inplace=True).mul_(scalar_like(_INV_0_6, y))  # inference: in place


def dense_many(layers: Sequence[Dense], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """`layer(x)` for each of `layers` (the same input, the same activation) from one matrix product with the
    weights stacked: one call instead of len(layers) small ones. Outputs are column views of one buffer."""
    first = layers[0]
    if any(
        layer._silu != first._silu or (layer.linear.bias is None) != (first.linear.bias is None) for layer in layers
    ):
        raise ValueError("dense_many needs layers with the same activation and bias setting")
    weight = torch.cat([layer.linear.weight for layer in layers])
    bias = None if first.linear.bias is None else torch.cat([layer.linear.bias for layer in layers])
    y = first.activate(torch.nn.functional.linear(x, weight, bias))
    return y.split([layer.linear.out_features for layer in layers], dim=-1)


class ResidualLayer(nn.Module):
    """x + MLP(x), scaled by 1/√2."""

    def __init__(self, units: int, n_layers: int = 2, activation: str | None = None):
        super().__init__()
        self.dense_mlp = nn.Sequential(
            *[Dense(units, units, bias=False, activation=activation) for _ in range(n_layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() and len(self.dense_mlp) == 2 and all(d._silu for d in self.dense_mlp):
            # inference: SiLU(z)/0.6 -> Dense is SiLU(z) -> Dense with weight/0.6 (a pass over the small weight,
            # not over the activations; made each call, so it always follows the weight), and the last 1/0.6
            # joins the residual's 1/√2: the same function, two fewer passes over the activations
            first, second = self.dense_mlp
            y = torch.nn.functional.silu(
                torch.nn.functional.linear(x, first.linear.weight, first.linear.bias), inplace=True
            )
            weight = second.linear.weight
            y = torch.nn.functional.silu(
                torch.nn.functional.linear(y, weight * scalar_like(_INV_0_6, weight), second.linear.bias),
                inplace=True,
            )
            return y.mul_(scalar_like(_INV_0_6 * _INV_SQRT_2, y)).add_(x, alpha=_INV_SQRT_2)
        y = x
        for dense in self.dense_mlp:
            y = dense.forward(y)
        if torch.is_grad_enabled() or y is x:
            return (x + y) * _INV_SQRT_2
        return y.add_(x).mul_(_INV_SQRT_2)  # inference: y is this layer's own buffer


def residual_stack(units_in: int, units: int, n_hidden: int, activation: str | None) -> nn.ModuleList:
    """Optional Dense(units_in -> units) followed by `n_hidden` residual layers."""
    layers: list[nn.Module] = []
    if units_in != units:
        layers.append(Dense(units_in, units, bias=False, activation=activation))
    layers += [ResidualLayer(units, 2, activation) for _ in range(n_hidden)]
    return nn.ModuleList(layers)


class ScaleFactor(nn.Module):
    """A fitted constant that keeps a block's output variance near its input's (GemNet-OC's ScaleFactor).

    `scale_factor` is a non-trainable parameter so it travels in the state_dict under the reference key. A value
    of 0 means "not fitted": loading refuses such checkpoints, and `fit_scale_factors` sets them.
    """

    def __init__(self, value: float = 1.0):
        super().__init__()
        self.scale_factor = nn.Parameter(torch.tensor(float(value)), requires_grad=False)
        self.observer: list[tuple[float, float, int]] | None = None

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        if self.observer is not None:
            with torch.no_grad():
                var_in = float(torch.var(ref, dim=0).mean()) if ref is not None and ref.shape[0] > 1 else 1.0
                var_out = float(torch.var(x, dim=0).mean()) if x.shape[0] > 1 else 0.0
                self.observer.append((var_in, var_out, int(x.shape[0])))
            return x
        return x * self.scale_factor


class AtomEmbedding(nn.Module):
    """Learned embedding per element (Z = 1 is row 0)."""

    def __init__(self, emb_size: int, num_elements: int):
        super().__init__()
        self.emb_size = emb_size
        self.embeddings = nn.Embedding(num_elements, emb_size)
        nn.init.uniform_(self.embeddings.weight, -math.sqrt(3), math.sqrt(3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.embeddings(z - 1)


class EdgeEmbedding(nn.Module):
    """Edge features from [h_source, h_target, m] through one dense layer."""

    def __init__(self, atom_features: int, edge_features: int, out_features: int, activation: str | None):
        super().__init__()
        self.atom_features = atom_features
        self.dense = Dense(2 * atom_features + edge_features, out_features, bias=False, activation=activation)

    def forward(self, h: torch.Tensor, m: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Dense([h_s, h_t, m]) computed as (h·W_s)[s] + (h·W_t)[t] + m·W_m: the atom parts are projected once
        per atom, not once per edge (same weight, same result up to float rounding; E ≫ N makes it cheaper)."""
        a = self.atom_features
        w = self.dense.linear.weight  # (out, 2a + edge): columns [source | target | edge]
        out = w.shape[0]
        w_atoms = torch.cat([w[:, :a], w[:, a : 2 * a]], dim=0)  # (2·out, a)
        hw = torch.nn.functional.linear(h, w_atoms)  # (N, 2·out)
        # index_select of whole contiguous rows, then the column halves: several times cheaper than indexing the
        # strided halves
        x_s = hw.index_select(0, edge_index[0])[:, :out]
        x_t = hw.index_select(0, edge_index[1])[:, out:]
        x = x_s + x_t + torch.nn.functional.linear(m, w[:, 2 * a :])
        if self.dense.linear.bias is not None:
            x = x + self.dense.linear.bias
        return self.dense.activate(x)


class BasisEmbedding(nn.Module):
    """Projects a radial basis (optionally times a circular/spherical basis) to an intermediate size.

    Returns either the projected radial basis, or (rad_W1 (E, emb, S), sph (E, S, K)) for the efficient
    bilinear aggregation.
    """

    def __init__(self, num_radial: int, emb_size_interm: int, num_spherical: int | None = None):
        super().__init__()
        self.num_radial = num_radial
        self.num_spherical = num_spherical
        shape = (emb_size_interm, num_radial) if num_spherical is None else (num_radial, num_spherical, emb_size_interm)
        self.weight = nn.Parameter(torch.empty(shape))
        he_orthogonal_(self.weight)

    def forward(
        self,
        rad_basis: torch.Tensor,
        sph_basis: torch.Tensor | None = None,
        idx_rad_outer: torch.Tensor | None = None,
        idx_rad_inner: torch.Tensor | None = None,
        idx_sph_outer: torch.Tensor | None = None,
        idx_sph_inner: torch.Tensor | None = None,
        num_atoms: int | None = None,
        sph_index: torch.Tensor | None = None,
    ):
        """`sph_index`: a prebuilt `index_ops.padded_source_index` of the spherical basis rows (the layout
        `idx_sph_outer`/`idx_sph_inner` give, as one gather: no grid size read from the data)."""
        num_edges = rad_basis.shape[0]
        if self.num_spherical is not None:
            rad_w1 = (rad_basis @ self.weight.reshape(self.weight.shape[0], -1)).reshape(
                num_edges, self.weight.shape[-1], sph_basis.shape[-1]
            )
        else:
            rad_w1 = rad_basis @ self.weight.T
        if idx_rad_inner is not None:
            padded = scatter_padded(rad_w1, idx_rad_outer, idx_rad_inner, num_atoms).transpose(1, 2)
            rad_w1 = padded.reshape(num_atoms, rad_w1.shape[1], padded.shape[2:].numel())
        if sph_basis is None:
            return rad_w1
        if sph_index is not None:
            return rad_w1, gather_padded(sph_basis, sph_index, num_edges).transpose(1, 2)
        if idx_sph_inner is None:
            return (rad_w1[idx_sph_outer] @ sph_basis[:, :, None]).squeeze(-1)
        sph = scatter_padded(sph_basis, idx_sph_outer, idx_sph_inner, num_edges).transpose(1, 2)
        return rad_w1, sph


class EfficientInteractionBilinear(nn.Module):
    """Bilinear basis × message aggregation over triplets/quadruplets, as padded matrix products."""

    def __init__(self, emb_size_in: int, emb_size_interm: int, emb_size_out: int):
        super().__init__()
        self.emb_size_in = emb_size_in
        self.bilinear = Dense(emb_size_in * emb_size_interm, emb_size_out, bias=False, activation=None)

    def forward(
        self,
        basis: tuple[torch.Tensor, torch.Tensor],
        m_padded: torch.Tensor,
        idx_agg2_outer: torch.Tensor | None = None,
        idx_agg2_inner: torch.Tensor | None = None,
        agg2_out_size: int | None = None,
    ) -> torch.Tensor:
        """`m_padded` (E, K, C): the messages of each output edge's K triplet slots (zeros where empty), laid
        out like the spherical basis (`index_ops.scatter_padded`, or `gather_padded` with a prebuilt index)."""
        rad_w1, sph = basis
        if m_padded.shape[1] != sph.shape[2]:  # no triplets at all
            m_padded = m_padded.new_zeros((sph.shape[0], sph.shape[2], m_padded.shape[-1]))
        sph_m = sph @ m_padded  # (E, S, C)
        if idx_agg2_outer is not None:
            padded = scatter_padded(sph_m, idx_agg2_outer, idx_agg2_inner, agg2_out_size)
            sph_m = padded.reshape(agg2_out_size, padded.shape[1] * padded.shape[2], sph_m.shape[-1])
            if sph_m.shape[1] != rad_w1.shape[-1]:  # no edges into any atom: nothing to aggregate
                sph_m = sph_m.new_zeros((agg2_out_size, rad_w1.shape[-1], sph_m.shape[-1]))
        out = rad_w1 @ sph_m
        return self.bilinear(out.reshape(out.shape[0], out.shape[1] * out.shape[2]))  # explicit: 0 edges work
