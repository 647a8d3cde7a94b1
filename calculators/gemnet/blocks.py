"""GemNet-OC message-passing blocks: triplet, quadruplet and pair interactions, atom update, output."""

from __future__ import annotations

import math

import torch
from torch import nn

from calculators.gemnet.index_ops import gather_padded, scatter_padded, segment_sum
from calculators.gemnet.layers import (
    Dense,
    EdgeEmbedding,
    EfficientInteractionBilinear,
    ResidualLayer,
    ScaleFactor,
    dense_many,
    residual_stack,
)

INV_SQRT_2 = 1.0 / math.sqrt(2.0)


class AtomUpdateBlock(nn.Module):
    """Sum radially weighted edge messages into their target atoms, then an MLP."""

    def __init__(self, emb_size_atom: int, emb_size_edge: int, emb_size_rbf: int, n_hidden: int, activation):
        super().__init__()
        self.dense_rbf = Dense(emb_size_rbf, emb_size_edge, activation=None, bias=False)
        self.scale_sum = ScaleFactor()
        self.layers = residual_stack(emb_size_edge, emb_size_atom, n_hidden, activation)

    def forward(self, h: torch.Tensor, m: torch.Tensor, basis_rad: torch.Tensor, idx_atom: torch.Tensor):
        x = segment_sum(m * self.dense_rbf(basis_rad), idx_atom, h.shape[0])
        x = self.scale_sum(x, ref=m)
        for layer in self.layers:
            x = layer(x)
        return x


class OutputBlock(AtomUpdateBlock):
    """Per-block output: atom features x_E (energy head input) and edge features x_F (direct-force input)."""

    def __init__(
        self,
        emb_size_atom: int,
        emb_size_edge: int,
        emb_size_rbf: int,
        n_hidden: int,
        n_hidden_afteratom: int,
        activation,
        direct_forces: bool,
    ):
        super().__init__(emb_size_atom, emb_size_edge, emb_size_rbf, n_hidden, activation)
        self.direct_forces = direct_forces
        self.seq_energy_pre = self.layers  # the reference registers this alias too (same parameters)
        self.seq_energy2 = (
            residual_stack(emb_size_atom, emb_size_atom, n_hidden_afteratom, activation)
            if n_hidden_afteratom >= 1
            else None
        )
        if direct_forces:
            self.scale_rbf_F = ScaleFactor()
            self.seq_forces = residual_stack(emb_size_edge, emb_size_edge, n_hidden, activation)
            self.dense_rbf_F = Dense(emb_size_rbf, emb_size_edge, activation=None, bias=False)

    def forward(
        self, h: torch.Tensor, m: torch.Tensor, basis_rad: torch.Tensor, idx_atom: torch.Tensor, forces: bool = True
    ):
        """(x_E (N, emb_atom), x_F (E, emb_edge) or None: without `direct_forces`, or when `forces` is False)."""
        want_f = self.direct_forces and forces
        if want_f:
            rbf_e, rbf_f = dense_many([self.dense_rbf, self.dense_rbf_F], basis_rad)
        else:
            rbf_e = self.dense_rbf(basis_rad)
        x_e = segment_sum(m * rbf_e, idx_atom, h.shape[0])
        x_e = self.scale_sum(x_e, ref=m)
        for layer in self.seq_energy_pre:
            x_e = layer(x_e)
        if self.seq_energy2 is not None:
            x_e = (x_e + h) * INV_SQRT_2
            for layer in self.seq_energy2:
                x_e = layer(x_e)
        x_f = None
        if want_f:
            x_f = m
            for layer in self.seq_forces:
                x_f = layer(x_f)
            x_f = self.scale_rbf_F(x_f * rbf_f, ref=x_f)
        return x_e, x_f


class TripletInteraction(nn.Module):
    """Messages b->a modulated by the angle c-a-b, aggregated into edge c->a (or atom a)."""

    def __init__(
        self,
        emb_size_in: int,
        emb_size_out: int,
        emb_size_trip_in: int,
        emb_size_trip_out: int,
        emb_size_rbf: int,
        emb_size_cbf: int,
        symmetric_mp: bool = True,
        swap_output: bool = True,
        activation=None,
    ):
        super().__init__()
        self.symmetric_mp = symmetric_mp
        self.swap_output = swap_output
        self.dense_ba = Dense(emb_size_in, emb_size_in, activation=activation, bias=False)
        self.mlp_rbf = Dense(emb_size_rbf, emb_size_in, activation=None, bias=False)
        self.scale_rbf = ScaleFactor()
        self.mlp_cbf = EfficientInteractionBilinear(emb_size_trip_in, emb_size_cbf, emb_size_trip_out)
        self.scale_cbf_sum = ScaleFactor()
        self.down_projection = Dense(emb_size_in, emb_size_trip_in, activation=activation, bias=False)
        self.up_projection_ca = Dense(emb_size_trip_out, emb_size_out, activation=activation, bias=False)
        if symmetric_mp:
            self.up_projection_ac = Dense(emb_size_trip_out, emb_size_out, activation=activation, bias=False)

    def forward(
        self,
        m: torch.Tensor,
        bases: dict,
        idx: dict,
        id_swap: torch.Tensor,
        expand_idx: torch.Tensor | None = None,
        idx_agg2: torch.Tensor | None = None,
        idx_agg2_inner: torch.Tensor | None = None,
        agg2_out_size: int | None = None,
        x_ba: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`idx`: a triplet dict with `pad_src` (`GemNetOC.build_graphs`); `x_ba`: `dense_ba(m)` when the caller
        computed it already (fused with its own projection of m)."""
        if x_ba is None:
            x_ba = self.dense_ba(m)
        if expand_idx is not None:
            x_ba = x_ba[expand_idx]
        x_ba = self.scale_rbf(x_ba * self.mlp_rbf(bases["rad"]), ref=x_ba)
        x_ba = self.down_projection(x_ba)  # (input edges, C): each triplet reads its input edge's row
        rad_w1, sph = bases["cir"]
        m_padded = gather_padded(x_ba, idx["pad_src"], sph.shape[0])
        x = self.mlp_cbf(bases["cir"], m_padded, idx_agg2, idx_agg2_inner, agg2_out_size)
        observed = self.scale_cbf_sum.observer is not None  # scale fitting compares with the per-triplet input
        x = self.scale_cbf_sum(x, ref=x_ba[idx["in"]] if observed else None)
        if self.symmetric_mp:
            x_ca, x_ac = dense_many([self.up_projection_ca, self.up_projection_ac], x)
            return (x_ca + x_ac.index_select(0, id_swap)) * INV_SQRT_2
        if self.swap_output:
            x = x[id_swap]
        return self.up_projection_ca(x)


class QuadrupletInteraction(nn.Module):
    """Messages d->b, through the dihedral d-b-a-c, aggregated into edge c->a."""

    def __init__(
        self,
        emb_size_edge: int,
        emb_size_quad_in: int,
        emb_size_quad_out: int,
        emb_size_rbf: int,
        emb_size_cbf: int,
        emb_size_sbf: int,
        symmetric_mp: bool = True,
        activation=None,
    ):
        super().__init__()
        self.symmetric_mp = symmetric_mp
        self.dense_db = Dense(emb_size_edge, emb_size_edge, activation=activation, bias=False)
        self.mlp_rbf = Dense(emb_size_rbf, emb_size_edge, activation=None, bias=False)
        self.scale_rbf = ScaleFactor()
        self.mlp_cbf = Dense(emb_size_cbf, emb_size_quad_in, activation=None, bias=False)
        self.scale_cbf = ScaleFactor()
        self.mlp_sbf = EfficientInteractionBilinear(emb_size_quad_in, emb_size_sbf, emb_size_quad_out)
        self.scale_sbf_sum = ScaleFactor()
        self.down_projection = Dense(emb_size_edge, emb_size_quad_in, activation=activation, bias=False)
        self.up_projection_ca = Dense(emb_size_quad_out, emb_size_edge, activation=activation, bias=False)
        if symmetric_mp:
            self.up_projection_ac = Dense(emb_size_quad_out, emb_size_edge, activation=activation, bias=False)

    def forward(self, m: torch.Tensor, bases: dict, idx: dict, id_swap: torch.Tensor) -> torch.Tensor:
        x_db = self.dense_db(m)
        x_db = self.scale_rbf(x_db * self.mlp_rbf(bases["rad"]), ref=x_db)
        x_db = self.down_projection(x_db)[idx["triplet_in"]["in"]]
        x_db = self.scale_cbf(x_db * self.mlp_cbf(bases["cir"]), ref=x_db)
        x_db = x_db[idx["trip_in_to_quad"]]
        x = self.mlp_sbf(bases["sph"], scatter_padded(x_db, idx["out"], idx["out_agg"], bases["sph"][1].shape[0]))
        x = self.scale_sbf_sum(x, ref=x_db)
        if self.symmetric_mp:
            x_ca, x_ac = dense_many([self.up_projection_ca, self.up_projection_ac], x)
            return (x_ca + x_ac.index_select(0, id_swap)) * INV_SQRT_2
        return self.up_projection_ca(x)


class PairInteraction(nn.Module):
    """Atom-to-atom messages weighted by a radial basis (long-range atom interaction)."""

    def __init__(
        self, emb_size_atom: int, emb_size_pair_in: int, emb_size_pair_out: int, emb_size_rbf: int, activation
    ):
        super().__init__()
        self.bilinear = Dense(emb_size_rbf * emb_size_pair_in, emb_size_pair_out, activation=None, bias=False)
        self.scale_rbf_sum = ScaleFactor()
        self.down_projection = Dense(emb_size_atom, emb_size_pair_in, activation=activation, bias=False)
        self.up_projection = Dense(emb_size_pair_out, emb_size_atom, activation=activation, bias=False)

    def forward(
        self,
        h: torch.Tensor,
        rad_basis: torch.Tensor,
        edge_index: torch.Tensor,
        target_neighbor_idx: torch.Tensor,
    ) -> torch.Tensor:
        n = h.shape[0]
        x_ba = self.down_projection(h)[edge_index[0]]
        k = int(target_neighbor_idx.max()) + 1 if target_neighbor_idx.numel() else 0
        padded = x_ba.new_zeros((n, k, x_ba.shape[-1]))
        padded[edge_index[1], target_neighbor_idx] = x_ba
        if rad_basis.shape[-1] != k:
            rad_basis = rad_basis.new_zeros((n, rad_basis.shape[1], k))
        h_out = self.bilinear((rad_basis @ padded).reshape(n, -1))
        h_out = self.scale_rbf_sum(h_out, ref=x_ba)
        return self.up_projection(h_out)


class InteractionBlock(nn.Module):
    """One GemNet-OC interaction: edge update from triplets (+ quadruplets, atom->edge), atom update (+ edge->atom,
    atom->atom), then residual stacks."""

    def __init__(
        self,
        emb_size_atom: int,
        emb_size_edge: int,
        emb_size_trip_in: int,
        emb_size_trip_out: int,
        emb_size_quad_in: int,
        emb_size_quad_out: int,
        emb_size_a2a_in: int,
        emb_size_a2a_out: int,
        emb_size_rbf: int,
        emb_size_cbf: int,
        emb_size_sbf: int,
        num_before_skip: int,
        num_after_skip: int,
        num_concat: int,
        num_atom: int,
        num_atom_emb_layers: int = 0,
        quad_interaction: bool = False,
        atom_edge_interaction: bool = False,
        edge_atom_interaction: bool = False,
        atom_interaction: bool = False,
        activation=None,
    ):
        super().__init__()
        act = activation
        self.dense_ca = Dense(emb_size_edge, emb_size_edge, activation=act, bias=False)
        self.trip_interaction = TripletInteraction(
            emb_size_edge, emb_size_edge, emb_size_trip_in, emb_size_trip_out, emb_size_rbf, emb_size_cbf,
            symmetric_mp=True, swap_output=True, activation=act,
        )  # fmt: skip
        self.quad_interaction = (
            QuadrupletInteraction(
                emb_size_edge,
                emb_size_quad_in,
                emb_size_quad_out,
                emb_size_rbf,
                emb_size_cbf,
                emb_size_sbf,
                symmetric_mp=True,
                activation=act,
            )  # fmt: skip
            if quad_interaction
            else None
        )
        self.atom_edge_interaction = (
            TripletInteraction(
                emb_size_atom,
                emb_size_edge,
                emb_size_trip_in,
                emb_size_trip_out,
                emb_size_rbf,
                emb_size_cbf,
                symmetric_mp=True,
                swap_output=True,
                activation=act,
            )  # fmt: skip
            if atom_edge_interaction
            else None
        )
        self.edge_atom_interaction = (
            TripletInteraction(
                emb_size_edge,
                emb_size_atom,
                emb_size_trip_in,
                emb_size_trip_out,
                emb_size_rbf,
                emb_size_cbf,
                symmetric_mp=False,
                swap_output=False,
                activation=act,
            )  # fmt: skip
            if edge_atom_interaction
            else None
        )
        self.atom_interaction = (
            PairInteraction(emb_size_atom, emb_size_a2a_in, emb_size_a2a_out, emb_size_rbf, act)
            if atom_interaction
            else None
        )
        self.layers_before_skip = nn.ModuleList([ResidualLayer(emb_size_edge, 2, act) for _ in range(num_before_skip)])
        self.layers_after_skip = nn.ModuleList([ResidualLayer(emb_size_edge, 2, act) for _ in range(num_after_skip)])
        self.atom_emb_layers = nn.ModuleList([ResidualLayer(emb_size_atom, 2, act) for _ in range(num_atom_emb_layers)])
        self.atom_update = AtomUpdateBlock(emb_size_atom, emb_size_edge, emb_size_rbf, num_atom, act)
        self.concat_layer = EdgeEmbedding(emb_size_atom, emb_size_edge, emb_size_edge, activation=act)
        self.residual_m = nn.ModuleList([ResidualLayer(emb_size_edge, 2, act) for _ in range(num_concat)])
        self.inv_sqrt_num_eint = 1.0 / math.sqrt(2.0 + quad_interaction + atom_edge_interaction)
        self.inv_sqrt_num_aint = 1.0 / math.sqrt(1.0 + edge_atom_interaction + atom_interaction)

    def forward(self, h: torch.Tensor, m: torch.Tensor, g) -> tuple[torch.Tensor, torch.Tensor]:
        """`g` is the prepared `GraphSet` (graphs, indices, bases) of the batch."""
        num_atoms = h.shape[0]
        x_ca, x_ba = dense_many([self.dense_ca, self.trip_interaction.dense_ba], m)  # both read m: one product
        x = x_ca + self.trip_interaction(m, g.bases_e2e, g.trip_e2e, g.id_swap, x_ba=x_ba)
        if self.quad_interaction is not None:
            x = x + self.quad_interaction(m, g.bases_qint, g.quad_idx, g.id_swap)
        if self.atom_edge_interaction is not None:
            x = x + self.atom_edge_interaction(h, g.bases_a2e, g.trip_a2e, g.id_swap, expand_idx=g.a2ee2a.edge_index[0])
        x = x * self.inv_sqrt_num_eint
        h_new = h
        if self.edge_atom_interaction is not None:
            h_new = h_new + self.edge_atom_interaction(
                m, g.bases_e2a, g.trip_e2a, g.id_swap,
                idx_agg2=g.a2ee2a.edge_index[1], idx_agg2_inner=g.a2ee2a_inner, agg2_out_size=num_atoms,
            )  # fmt: skip
        if self.atom_interaction is not None:  # reads the atom embeddings from before this block's updates
            h_new = h_new + self.atom_interaction(h, g.basis_a2a_rad, g.a2a.edge_index, g.a2a_inner)
        h = h_new * self.inv_sqrt_num_aint
        for layer in self.layers_before_skip:
            x = layer(x)
        m = (m + x) * INV_SQRT_2
        for layer in self.layers_after_skip:
            m = layer(m)
        for layer in self.atom_emb_layers:
            h = layer(h)
        h = (h + self.atom_update(h, m, g.basis_atom_update, g.main.edge_index[1])) * INV_SQRT_2
        m2 = self.concat_layer(h, m, g.main.edge_index)
        for layer in self.residual_m:
            m2 = layer(m2)
        return h, (m + m2) * INV_SQRT_2
