"""GemNet-OC (Gasteiger et al. 2022) in plain PyTorch, implementing the project's `AtomisticModel` contract."""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from calculators.batch import AtomsBatch, StructureError
from calculators.gemnet import graph as G
from calculators.gemnet.basis import CircularBasisLayer, RadialBasis, SphericalBasisLayer
from calculators.gemnet.blocks import InteractionBlock, OutputBlock
from calculators.gemnet.config import GemNetOCConfig
from calculators.gemnet.index_ops import inner_index, padded_source_index, segment_sum
from calculators.gemnet.layers import (
    AtomEmbedding,
    BasisEmbedding,
    Dense,
    EdgeEmbedding,
    ResidualLayer,
    ScaleFactor,
    he_orthogonal_,
)
from calculators.model_api import ATOM_ENERGIES, EDGE_INDEX, ENERGY, FORCES, NODE_FEATURES, NeighborCandidates

# Bumped whenever any module registers a submodule, parameter or buffer (torch's global registration hooks): a
# traced network checks its model's structure again only after such an event (see `GemNetOC.trace_network`).
_REGISTRATIONS = [0]


def _count_registration(*_args) -> None:
    _REGISTRATIONS[0] += 1


torch.nn.modules.module.register_module_module_registration_hook(_count_registration)
torch.nn.modules.module.register_module_parameter_registration_hook(_count_registration)
torch.nn.modules.module.register_module_buffer_registration_hook(_count_registration)


# Tracing warns that `torch.jit.trace` is deprecated (torch 2.13) and, at the "has edges / has triplets" checks in
# this package's layers, that a shape turned into a Python bool: both are expected (`_traced_core` checks edges and
# triplets before every use of a trace). Narrow filters, set once: `warnings.catch_warnings` around each trace would
# swap the process-wide filter list, which is not thread-safe.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace(_method)?` is deprecated")
warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"calculators\.gemnet\.")
_TRACE_LOCK = threading.Lock()  # one trace at a time (two threads sharing a model trace a kind once)


_ANY_AUTOCAST = getattr(torch._C, "_is_any_autocast_enabled", torch.is_autocast_enabled)  # looked up once


def _autocast_enabled() -> bool:
    """True inside `torch.autocast` (any device): a trace would record its casts as ordinary operations."""
    return bool(_ANY_AUTOCAST())


def _global_module_hooks() -> bool:
    """True while global forward hooks (`torch.nn.modules.module.register_module_forward_hook`) are set: they
    expect to see every submodule call, which only the eager network makes."""
    mod = torch.nn.modules.module
    return bool(mod._global_forward_hooks or mod._global_forward_pre_hooks)


@dataclass
class _Traces:
    """A model's TorchScript traces by (direct forces?, dtype, device), its inference calls by the same key, and
    the structure (ids of modules, parameters, buffers) they were made for."""

    structure: tuple
    scale_factors: tuple
    hook_dicts: tuple
    registrations: int = -1
    calls: dict = field(default_factory=dict)  # eligible inference calls
    eager_seconds: dict = field(default_factory=dict)  # time eager calls took before the trace was made
    scripts: dict = field(default_factory=dict)  # the traces (False: tracing failed, stay eager)
    trace_seconds: dict = field(default_factory=dict)  # time making each trace took


@dataclass
class GraphSet:
    """Everything GemNet-OC derives from geometry for one batch: graphs, interaction indices and bases."""

    main: G.Graph
    id_swap: torch.Tensor
    trip_e2e: dict
    a2a: G.Graph | None = None
    a2ee2a: G.Graph | None = None
    qint: G.Graph | None = None
    trip_a2e: dict = field(default_factory=dict)
    trip_e2a: dict = field(default_factory=dict)
    quad_idx: dict = field(default_factory=dict)
    a2ee2a_inner: torch.Tensor | None = None
    a2a_inner: torch.Tensor | None = None
    # bases, filled by GemNetOC.compute_bases
    basis_rad_raw: torch.Tensor | None = None
    basis_atom_update: torch.Tensor | None = None
    basis_output: torch.Tensor | None = None
    bases_qint: dict = field(default_factory=dict)
    bases_e2e: dict = field(default_factory=dict)
    bases_a2e: dict = field(default_factory=dict)
    bases_e2a: dict = field(default_factory=dict)
    basis_a2a_rad: torch.Tensor | None = None


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine between unit vectors. Not clamped to [-1, 1] (the reference clamps): the bases are polynomials in
    cos, and a clamp zeroes the second derivative of collinear triplets (cos = -1 - 1e-16), corrupting Hessians."""
    return torch.sum(a * b, dim=-1)


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    x = torch.sum(a * b, dim=-1)
    y = torch.linalg.cross(a, b).norm(dim=-1).clamp(min=1e-9)
    return torch.atan2(y, x)


class GemNetOC(nn.Module):
    """GemNet-OC energy/force model. Energies in eV, forces in eV/Å, positions in Å.

    Module and parameter names follow fairchem 1.x so its checkpoints load strictly (see `checkpoint.py`).
    """

    def __init__(self, config: GemNetOCConfig):
        super().__init__()
        c = config
        self.config = c
        self.num_blocks = c.num_blocks
        self.direct_forces = c.direct_forces
        self.regress_forces = c.regress_forces
        self.extensive = c.extensive
        self.forces_coupled = c.forces_coupled
        self.zero_net_force = c.zero_net_force
        self.cutoff, self.cutoff_qint, self.cutoff_aeaint, self.cutoff_aint = c.resolved_cutoffs()
        (
            self.max_neighbors,
            self.max_neighbors_qint,
            self.max_neighbors_aeaint,
            self.max_neighbors_aint,
        ) = c.resolved_max_neighbors()
        self.register_buffer("qint_tags", torch.tensor(c.qint_tags, dtype=torch.long), persistent=False)
        refs = c.element_references
        if refs is not None and len(refs) != c.num_elements:
            raise ValueError(f"element_references has {len(refs)} entries; expected num_elements={c.num_elements}")
        # E_ref(Z) (eV), index Z-1; rebuilt from the config, so not a state_dict entry (fairchem keys unchanged)
        self.register_buffer(
            "element_references", None if refs is None else torch.tensor(refs, dtype=torch.float32), persistent=False
        )
        rbf_sph = c.rbf_spherical or c.rbf
        act = c.activation

        def radial(cutoff: float, rbf: dict) -> RadialBasis:
            return RadialBasis(c.num_radial, cutoff, rbf, c.envelope, c.scale_basis)

        # basis functions (some radial bases are shared between layers, as in the reference)
        self.radial_basis = radial(self.cutoff, c.rbf)
        radial_spherical = radial(self.cutoff, rbf_sph)
        if c.quad_interaction:
            self.cbf_basis_qint = CircularBasisLayer(
                c.num_spherical, radial(self.cutoff_qint, rbf_sph), c.cbf, c.scale_basis
            )
            self.sbf_basis_qint = SphericalBasisLayer(c.num_spherical, radial_spherical, c.sbf, c.scale_basis)
        if c.atom_edge_interaction:
            self.radial_basis_aeaint = radial(self.cutoff_aeaint, c.rbf)
            self.cbf_basis_aeint = CircularBasisLayer(c.num_spherical, radial_spherical, c.cbf, c.scale_basis)
        if c.edge_atom_interaction:
            self.radial_basis_aeaint = radial(self.cutoff_aeaint, c.rbf)
            self.cbf_basis_eaint = CircularBasisLayer(
                c.num_spherical, radial(self.cutoff_aeaint, rbf_sph), c.cbf, c.scale_basis
            )
        if c.atom_interaction:
            self.radial_basis_aint = radial(self.cutoff_aint, c.rbf)
        self.cbf_basis_tint = CircularBasisLayer(c.num_spherical, radial_spherical, c.cbf, c.scale_basis)
        # the triplet basis's radial part equals the main radial basis when both are the same parameter-free
        # function of the same distances: computed once then
        self._tint_radial_is_main = (
            (c.rbf_spherical is None or c.rbf_spherical == c.rbf)
            and not c.scale_basis
            and not any(True for _ in radial_spherical.parameters())
        )

        # basis down-projections shared by all interaction blocks
        if c.quad_interaction:
            self.mlp_rbf_qint = Dense(c.num_radial, c.emb_size_rbf, activation=None, bias=False)
            self.mlp_cbf_qint = BasisEmbedding(c.num_radial, c.emb_size_cbf, c.num_spherical)
            self.mlp_sbf_qint = BasisEmbedding(c.num_radial, c.emb_size_sbf, c.num_spherical**2)
        if c.atom_edge_interaction:
            self.mlp_rbf_aeint = Dense(c.num_radial, c.emb_size_rbf, activation=None, bias=False)
            self.mlp_cbf_aeint = BasisEmbedding(c.num_radial, c.emb_size_cbf, c.num_spherical)
        if c.edge_atom_interaction:
            self.mlp_rbf_eaint = Dense(c.num_radial, c.emb_size_rbf, activation=None, bias=False)
            self.mlp_cbf_eaint = BasisEmbedding(c.num_radial, c.emb_size_cbf, c.num_spherical)
        if c.atom_interaction:
            self.mlp_rbf_aint = BasisEmbedding(c.num_radial, c.emb_size_rbf)
        self.mlp_rbf_tint = Dense(c.num_radial, c.emb_size_rbf, activation=None, bias=False)
        self.mlp_cbf_tint = BasisEmbedding(c.num_radial, c.emb_size_cbf, c.num_spherical)
        self.mlp_rbf_h = Dense(c.num_radial, c.emb_size_rbf, activation=None, bias=False)
        self.mlp_rbf_out = Dense(c.num_radial, c.emb_size_rbf, activation=None, bias=False)

        self.atom_emb = AtomEmbedding(c.emb_size_atom, c.num_elements)
        self.edge_emb = EdgeEmbedding(c.emb_size_atom, c.num_radial, c.emb_size_edge, activation=act)
        self.int_blocks = nn.ModuleList(
            [
                InteractionBlock(
                    emb_size_atom=c.emb_size_atom,
                    emb_size_edge=c.emb_size_edge,
                    emb_size_trip_in=c.emb_size_trip_in,
                    emb_size_trip_out=c.emb_size_trip_out,
                    emb_size_quad_in=c.emb_size_quad_in,
                    emb_size_quad_out=c.emb_size_quad_out,
                    emb_size_a2a_in=c.emb_size_aint_in,
                    emb_size_a2a_out=c.emb_size_aint_out,
                    emb_size_rbf=c.emb_size_rbf,
                    emb_size_cbf=c.emb_size_cbf,
                    emb_size_sbf=c.emb_size_sbf,
                    num_before_skip=c.num_before_skip,
                    num_after_skip=c.num_after_skip,
                    num_concat=c.num_concat,
                    num_atom=c.num_atom,
                    num_atom_emb_layers=c.num_atom_emb_layers,
                    quad_interaction=c.quad_interaction,
                    atom_edge_interaction=c.atom_edge_interaction,
                    edge_atom_interaction=c.edge_atom_interaction,
                    atom_interaction=c.atom_interaction,
                    activation=act,
                )  # fmt: skip
                for _ in range(c.num_blocks)
            ]
        )
        self.out_blocks = nn.ModuleList(
            [
                OutputBlock(
                    c.emb_size_atom,
                    c.emb_size_edge,
                    c.emb_size_rbf,
                    c.num_atom,
                    c.num_output_afteratom,
                    act,
                    c.direct_forces,
                )  # fmt: skip
                for _ in range(c.num_blocks + 1)
            ]
        )
        self.out_mlp_E = nn.Sequential(
            Dense(c.emb_size_atom * (c.num_blocks + 1), c.emb_size_atom, activation=act),
            *[ResidualLayer(c.emb_size_atom, 2, act) for _ in range(c.num_global_out_layers)],
        )
        self.out_energy = Dense(c.emb_size_atom, 1, bias=False, activation=None)
        if c.direct_forces:
            self.out_mlp_F = nn.Sequential(
                Dense(c.emb_size_edge * (c.num_blocks + 1), c.emb_size_edge, activation=act),
                *[ResidualLayer(c.emb_size_edge, 2, act) for _ in range(c.num_global_out_layers)],
            )
            self.out_forces = Dense(c.emb_size_edge, 1, bias=False, activation=None)
        init = c.output_init.lower()
        for head in [self.out_energy] + ([self.out_forces] if c.direct_forces else []):
            if init == "heorthogonal":
                he_orthogonal_(head.linear.weight)
            elif init == "zeros":
                nn.init.zeros_(head.linear.weight)
            else:
                raise ValueError(f"unsupported output_init {c.output_init!r}")

    # --------------------------------------------------------------------------------- contract attributes
    @property
    def max_atomic_number(self) -> int:
        return self.config.num_elements

    @property
    def conservative(self) -> bool:
        return not self.direct_forces

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the weights (inputs should match)."""
        return self.out_energy.linear.weight.dtype

    @property
    def search_radius(self) -> float:
        """Radius of the largest graph, Å."""
        return self.cutoff_aint if self.config.uses_atom_graph else self.cutoff

    def num_parameters(self) -> int:
        """Unique trainable and fixed parameters (shared modules counted once)."""
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------------------------------- graphs
    def neighbor_candidates(self, batch: AtomsBatch, skin: float = 0.0) -> G.PairCandidates:
        """All pairs within the largest cutoff + `skin` Å; reusable while no atom moves more than skin/2."""
        with torch.no_grad():
            return G.find_pairs(batch, self.search_radius + skin)

    def build_graphs(self, batch: AtomsBatch, candidates: G.PairCandidates | None = None) -> GraphSet:
        """Graphs and interaction indices of a batch (distances and vectors stay differentiable)."""
        c = self.config
        strict = c.enforce_max_neighbors_strictly
        n = batch.num_atoms
        if candidates is None:
            candidates = self.neighbor_candidates(batch)
        if c.uses_atom_graph:
            a2a = G.radius_graph(batch, self.cutoff_aint, self.max_neighbors_aint, candidates, strict)
            main = self._sub(batch, a2a, self.cutoff, self.max_neighbors, self.cutoff_aint, self.max_neighbors_aint)
            a2ee2a = self._sub(
                batch,
                a2a,
                self.cutoff_aeaint,
                self.max_neighbors_aeaint,
                self.cutoff_aint,
                self.max_neighbors_aint,
            )
        else:
            main = G.radius_graph(batch, self.cutoff, self.max_neighbors, candidates, strict)
            a2a = a2ee2a = None
        qint = None
        if c.quad_interaction:
            if c.uses_atom_graph:
                qint = self._sub(
                    batch,
                    a2a,
                    self.cutoff_qint,
                    self.max_neighbors_qint,
                    self.cutoff_aint,
                    self.max_neighbors_aint,
                )
            else:
                qint = self._sub(
                    batch, main, self.cutoff_qint, self.max_neighbors_qint, self.cutoff, self.max_neighbors
                )
            qint = G.keep_tags(qint, batch.tags, self.qint_tags)
        main, id_swap = G.symmetrize(
            main,
            batch.num_structures,
            batch.batch.index_select(0, main.edge_index[1]),
            {"reference": False, "union": True, "mutual": "mutual"}[c.neighbor_symmetrization],
        )
        gs = GraphSet(
            main=main, id_swap=id_swap, trip_e2e=G.triplets(main, n), a2a=a2a, a2ee2a=a2ee2a,
            qint=qint,
        )  # fmt: skip
        if c.quad_interaction:
            gs.quad_idx = G.quadruplets(main, qint, n)
        if c.atom_edge_interaction:
            gs.trip_a2e = _padded(G.mixed_triplets(a2ee2a, main, n, agg_index=True), a2ee2a, main)
        if c.edge_atom_interaction:
            gs.trip_e2a = _padded(G.mixed_triplets(main, a2ee2a, n, agg_index=True), main, a2ee2a)
            gs.a2ee2a_inner = inner_index(a2ee2a.edge_index[1], n)
        if c.atom_interaction:
            gs.a2a_inner = inner_index(a2a.edge_index[1], n)
        return gs

    def _sub(self, batch, graph, cutoff, max_nb, cutoff_orig, max_nb_orig) -> G.Graph:
        sel_cutoff = None if abs(cutoff - cutoff_orig) <= 1e-8 + 1e-5 * abs(cutoff_orig) else cutoff
        sel_nb = None if max_nb == max_nb_orig else max_nb
        return G.subselect(batch, graph, sel_cutoff, sel_nb, self.config.enforce_max_neighbors_strictly)

    def compute_bases(self, g: GraphSet, num_atoms: int) -> None:
        """Radial/circular/spherical bases and their shared projections, stored on `g`."""
        c = self.config
        main = g.main
        rad_main = self.radial_basis(main.distance)
        cos_e2e = _cos(main.vector.index_select(0, g.trip_e2e["out"]), main.vector.index_select(0, g.trip_e2e["in"]))
        rad_cir_e2e, cir_e2e = self.cbf_basis_tint(
            main.distance, cos_e2e, radial=rad_main if self._tint_radial_is_main else None
        )
        if c.quad_interaction:
            q = g.quad_idx
            v_ba = g.qint.vector[q["triplet_in"]["out"]]
            v_db = main.vector[q["triplet_in"]["in"]]
            cos_abd = _cos(v_ba, v_db)
            v_db_cross = torch.linalg.cross(v_db, v_ba)[q["trip_in_to_quad"]]
            v_ca = main.vector[q["triplet_out"]["out"]]
            v_ba2 = g.qint.vector[q["triplet_out"]["in"]]
            cos_cab = _cos(v_ca, v_ba2)
            v_ca_cross = torch.linalg.cross(v_ca, v_ba2)[q["trip_out_to_quad"]]
            dihedral = _angle(v_ca_cross, v_db_cross)
            rad_cir_q, cir_q = self.cbf_basis_qint(g.qint.distance, cos_abd)
            rad_sph_q, sph_q = self.sbf_basis_qint(main.distance, cos_cab[q["trip_out_to_quad"]], dihedral)
            g.bases_qint = {
                "rad": self.mlp_rbf_qint(rad_main),
                "cir": self.mlp_cbf_qint(rad_cir_q, cir_q, idx_sph_outer=q["triplet_in"]["out"]),
                "sph": self.mlp_sbf_qint(rad_sph_q, sph_q, idx_sph_outer=q["out"], idx_sph_inner=q["out_agg"]),
            }
        if c.atom_edge_interaction:
            t = g.trip_a2e
            rad_a2ee2a = self.radial_basis_aeaint(g.a2ee2a.distance)
            cos_a2e = _cos(main.vector[t["out"]], g.a2ee2a.vector[t["in"]])
            rad_cir, cir = self.cbf_basis_aeint(main.distance, cos_a2e)
            g.bases_a2e = {
                "rad": self.mlp_rbf_aeint(rad_a2ee2a),
                "cir": self.mlp_cbf_aeint(rad_cir, cir, idx_sph_outer=t["out"], idx_sph_inner=t["out_agg"]),
            }
        if c.edge_atom_interaction:
            t = g.trip_e2a
            cos_e2a = _cos(g.a2ee2a.vector[t["out"]], main.vector[t["in"]])
            rad_cir, cir = self.cbf_basis_eaint(g.a2ee2a.distance, cos_e2a)
            g.bases_e2a = {
                "rad": self.mlp_rbf_eaint(rad_main),
                "cir": self.mlp_cbf_eaint(
                    rad_cir,
                    cir,
                    idx_rad_outer=g.a2ee2a.edge_index[1],
                    idx_rad_inner=g.a2ee2a_inner,
                    idx_sph_outer=t["out"],
                    idx_sph_inner=t["out_agg"],
                    num_atoms=num_atoms,
                ),  # fmt: skip
            }
        if c.atom_interaction:
            rad_a2a = self.radial_basis_aint(g.a2a.distance)
            g.basis_a2a_rad = self.mlp_rbf_aint(
                rad_a2a, idx_rad_outer=g.a2a.edge_index[1], idx_rad_inner=g.a2a_inner, num_atoms=num_atoms
            )
        g.bases_e2e = {
            "rad": self.mlp_rbf_tint(rad_main),
            "cir": self.mlp_cbf_tint(rad_cir_e2e, cir_e2e, sph_index=g.trip_e2e["pad_trip"]),
        }
        g.basis_rad_raw = rad_main
        g.basis_atom_update = self.mlp_rbf_h(rad_main)
        g.basis_output = self.mlp_rbf_out(rad_main)

    # ------------------------------------------------------------------------------------------ forward
    def forward(
        self,
        batch: AtomsBatch,
        *,
        forces: bool = True,
        features: bool = False,
        candidates: G.PairCandidates | None = None,
        create_graph: bool | None = None,
        traced: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Energies (B,) eV, per-atom energies (N,), forces (N, 3) eV/Å; with `features` also the per-block
        atom/edge embeddings (`h_blocks`, `m_blocks`), x_E/x_F (`node_features`, `edge_features`), `edge_index`.

        Conservative forces use autograd (graph kept for training when `create_graph`, default: self.training).
        `traced`: the network may run as its TorchScript trace where that computes the same (`predict` asks for
        it; see `trace_network`).
        """
        self._check(batch)
        pos = batch.positions
        need_grad = forces and self.conservative
        if need_grad and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
            batch = _with_positions(batch, pos)
        with torch.set_grad_enabled(torch.is_grad_enabled() or need_grad):
            g = self.build_graphs(batch, candidates)
            idx_t = g.main.edge_index[1]
            # the direct-force head's edge features only when forces are asked for (energy-only calls skip them)
            want_f = forces and self.regress_forces
            direct_f = want_f and self.direct_forces
            node_feat = edge_feat = hs = ms = None
            script, key = self._traced_core(batch, g, direct_f) if traced and not features else (None, None)
            if script is not None:  # bases, embeddings and network in one TorchScript call
                atom_e, f_st = self._run_traced(script, batch, g, direct_f)
            else:
                t_eager = time.perf_counter()
                self.compute_bases(g, batch.num_atoms)
                h = self.atom_emb(batch.atomic_numbers)
                m = self.edge_emb(h, g.basis_rad_raw, g.main.edge_index)
                if self._compiled is not None and not features and not torch.is_grad_enabled():
                    atom_e, f_st = self._run_compiled(h, m, g, direct_f)
                else:
                    node_feat, atom_e, edge_feat, f_st, hs, ms = self._network(h, m, g, want_f, direct_f)
                state = self._traces  # (another thread may have reset it meanwhile)
                if key is not None and state is not None:  # eligible: what eager calls of this kind have cost
                    state.eager_seconds[key] = state.eager_seconds.get(key, 0.0) + time.perf_counter() - t_eager
            # an atom with no neighbour in any graph (a lone atom in a box, H2 pulled 10 Å apart) is in its
            # reference state: it contributes its element reference energy (0 without references), force 0
            atom_e = torch.where(self._isolated(g, batch.num_atoms), torch.zeros_like(atom_e), atom_e)
            if self.element_references is not None:
                atom_e = atom_e + self.element_references.to(atom_e.dtype).index_select(0, batch.atomic_numbers - 1)
            energy = segment_sum(atom_e, batch.batch, batch.num_structures)
            if not self.extensive:
                energy = energy / batch.natoms.to(energy.dtype)
                atom_e = atom_e / batch.natoms[batch.batch].to(energy.dtype)
            out = {ENERGY: energy, ATOM_ENERGIES: atom_e}
            if want_f:
                if self.direct_forces:
                    if self.forces_coupled:
                        f_st = self._couple(f_st, g)
                    f = segment_sum(f_st * g.main.vector, idx_t, batch.num_atoms)
                    if self.zero_net_force:
                        mean = segment_sum(f, batch.batch, batch.num_structures) / batch.natoms[:, None].to(f.dtype)
                        f = f - mean.index_select(0, batch.batch)
                    out[FORCES] = f
                else:
                    keep = self.training if create_graph is None else create_graph
                    (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=keep, retain_graph=keep or features)
                    out[FORCES] = -grad
        if features:
            out.update(
                {
                    NODE_FEATURES: node_feat,
                    EDGE_INDEX: g.main.edge_index,
                    "h_blocks": hs,
                    "m_blocks": ms,
                    "edge_features": edge_feat,
                    "edge_vector": g.main.vector,
                    "edge_distance": g.main.distance,
                }
            )
        return out

    def _network(self, h: torch.Tensor, m: torch.Tensor, g: GraphSet, want_f: bool, direct_f: bool) -> tuple:
        """Interaction and output blocks and both heads: (node features (N, A), per-atom network energies (N,) eV,
        edge features (E, C) or None, edge force magnitudes (E, 1) eV/Å or None, per-block h and m)."""
        idx_t = g.main.edge_index[1]
        x_e, x_f = self.out_blocks[0](h, m, g.basis_output, idx_t, want_f)
        xs_e, xs_f, hs, ms = [x_e], [x_f], [h], [m]
        for i, block in enumerate(self.int_blocks):
            h, m = block(h, m, g)
            x_e, x_f = self.out_blocks[i + 1](h, m, g.basis_output, idx_t, want_f)
            xs_e.append(x_e)
            xs_f.append(x_f)
            hs.append(h)
            ms.append(m)
        node_feat = self.out_mlp_E(torch.cat(xs_e, dim=-1))
        atom_e = self.out_energy(node_feat).squeeze(-1)
        edge_feat = f_st = None
        if direct_f:
            edge_feat = self.out_mlp_F(torch.cat(xs_f, dim=-1))
            f_st = self.out_forces(edge_feat)
        return node_feat, atom_e, edge_feat, f_st, hs, ms

    # ------------------------------------------------------------------------------------ compiled network
    _compiled = None  # torch.compile'd `_flat_network` once `compile_network()` is on

    @property
    def compilable(self) -> bool:
        """True for configs whose blocks read only the main graph and its triplets (the student presets)."""
        c = self.config
        return not (c.quad_interaction or c.atom_edge_interaction or c.edge_atom_interaction or c.atom_interaction)

    def compile_network(self, enabled: bool = True) -> GemNetOC:
        """Opt-in: run the interaction/output blocks and heads through `torch.compile(dynamic=True)` in inference
        (no autograd, no `features`); graphs and bases stay eager. The first call of each kind (forces, energy
        only) compiles for ~30 s (needs a C++ compiler); later calls skip most of the per-op Python and dispatch
        overhead (block stack 13.5 -> 9.7 ms on the shipped student, 37 atoms, 1 thread). Falls back to eager, with
        a warning, when compiling fails. Configs with quadruplet or atom-graph interactions stay eager."""
        if not enabled:
            self._compiled = None
        elif not self.compilable:
            raise ValueError("compile_network supports GemNet-OC configs without quadruplet/atom-graph interactions")
        else:
            self._compiled = torch.compile(self._flat_network, dynamic=True)
        return self

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        # a compiled function or a TorchScript trace does not pickle (Dask workers, deepcopy): made again there
        state.pop("_compiled", None)
        state.pop("_traces", None)
        return state

    def _flat_network(self, h, m, rad, rad_w1, sph, pad_src, trip_in, id_swap, basis_atom_update, basis_output,
                      edge_index, direct_f: bool):  # fmt: skip
        """`_network` on plain tensors (what `torch.compile` traces: no dataclass guards on every call)."""
        g = GraphSet(
            main=G.Graph(edge_index, None, None, None, None), id_swap=id_swap,
            trip_e2e={"pad_src": pad_src, "in": trip_in}, bases_e2e={"rad": rad, "cir": (rad_w1, sph)},
            basis_atom_update=basis_atom_update, basis_output=basis_output,
        )  # fmt: skip
        _, atom_e, _, f_st, _, _ = self._network(h, m, g, direct_f, direct_f)
        return atom_e, f_st

    def _run_compiled(self, h: torch.Tensor, m: torch.Tensor, g: GraphSet, direct_f: bool):
        rad_w1, sph = g.bases_e2e["cir"]
        args = (h, m, g.bases_e2e["rad"], rad_w1, sph, g.trip_e2e["pad_src"], g.trip_e2e["in"], g.id_swap,
                g.basis_atom_update, g.basis_output, g.main.edge_index, direct_f)  # fmt: skip
        try:
            return self._compiled(*args)
        except Exception as exc:  # no compiler, an unsupported op: the eager network computes the same
            warnings.warn(f"compile_network: falling back to eager ({type(exc).__name__}: {exc})", stacklevel=3)
            self._compiled = None
            return self._flat_network(*args)

    # ------------------------------------------------------------------------------------- traced network
    trace_inference = True  # `predict` runs the network as a TorchScript trace (`trace_network`)
    # the trace of a kind is made once eager calls of that kind have taken this long (s): making it costs
    # ~0.5-0.8 s, which short jobs would not win back (`trace_network(after_seconds=0)`: on the next call)
    trace_after_seconds = 2.0
    _traces: _Traces | None = None

    def trace_network(self, enabled: bool = True, *, after_seconds: float | None = None) -> GemNetOC:
        """Run the bases, embeddings, interaction/output blocks and heads of `predict` calls as one TorchScript
        trace (on by default; the graph topology stays in numpy).

        This part is the same sequence of tensor operations for every structure (no control flow that depends on
        the data once the graph has edges and triplets; the triplet grid is laid out by prebuilt gather indices),
        so `torch.jit.trace` of it is exact for other geometries, sizes and batches; what it removes is the Python
        cost of ~650 operations and ~100 module calls per call (shipped student, 37 atoms, 1 thread: a calculator
        call ~1.2× faster), with the same numbers bit for bit (the same kernels in the same order). No compiler is
        needed. Making a trace takes ~0.5-0.8 s, so it is made only once eager calls of the same kind (forces or
        energy only; dtype; device) have taken `after_seconds` in all (default `trace_after_seconds`, 2 s: a
        long relaxation, a screening run, MD; one-off calls stay eager); `after_seconds=0` makes it on the next
        call. The seconds each trace took are in `trace_seconds()`. A trace shares this model's parameters
        (in-place updates and `load_state_dict` reach it). Eager runs instead wherever the trace would not
        compute the same: autograd, `features`, training mode, scale-factor fitting, graphs without edges or
        triplets, configs with quadruplet or atom-graph interactions, while any submodule has forward hooks (or
        global ones are set), inside `torch.autocast`, and after a submodule or parameter is replaced (the trace is
        then made again). Edits that register nothing (deleting a layer from a ModuleList, changing a plain
        attribute such as a cutoff or a scale constant) are not seen: call `trace_network()` after such surgery.
        If tracing fails, it warns once and stays eager."""
        self.trace_inference = enabled
        if after_seconds is not None:
            if not after_seconds >= 0:
                raise ValueError(f"after_seconds must be >= 0, got {after_seconds!r}")
            self.trace_after_seconds = float(after_seconds)
        self._traces = None
        return self

    def trace_seconds(self) -> dict[tuple, float]:
        """Seconds each trace of this model took to make, by (direct forces?, dtype, device); {} when none."""
        return {} if self._traces is None else dict(self._traces.trace_seconds)

    def _apply(self, fn, recurse=True):
        """`.to()`, `.double()`, `.cuda()`: traces are dropped when the parameters change dtype, device or storage
        (a calculator's `.to()` of a model already there keeps them)."""
        before = self._parameter_fingerprint()
        out = super()._apply(fn, recurse)
        if self._parameter_fingerprint() != before:
            self._traces = None
        return out

    def _parameter_fingerprint(self) -> tuple:
        return tuple((p.dtype, p.device, p.data_ptr()) for p in self.parameters())

    def _traced_core(self, batch: AtomsBatch, g: GraphSet, direct_f: bool) -> tuple:
        """(the TorchScript trace for this call or None, this call's trace key or None): no key where the eager
        network must run; a key without a trace while eager calls of that kind are not yet worth tracing (see
        `trace_network`)."""
        if (
            not self.trace_inference
            or self._compiled is not None
            or self.training
            or torch.is_grad_enabled()
            or not self.compilable
            or g.main.num_edges == 0
            or g.trip_e2e["in"].numel() == 0
            or _global_module_hooks()
            or _autocast_enabled()
        ):
            return None, None
        state = self._traces
        if state is None or state.registrations != _REGISTRATIONS[0]:
            with _TRACE_LOCK:  # two threads' first calls would each install their own bookkeeping, one lost
                state = self._traces
                if state is None or state.registrations != _REGISTRATIONS[0]:
                    state = self._refresh_traces(state)
        if any(state.hook_dicts) or any(sf.observer is not None for sf in state.scale_factors):
            return None, None
        key = (direct_f, g.main.distance.dtype, g.main.distance.device)
        state.calls[key] = state.calls.get(key, 0) + 1
        script = state.scripts.get(key)
        if script is None and state.eager_seconds.get(key, 0.0) >= self.trace_after_seconds:
            with _TRACE_LOCK:
                script = state.scripts.get(key)
                if script is None:  # not made by another thread meanwhile
                    t0 = time.perf_counter()
                    script = state.scripts[key] = self._make_trace(self._core_args(batch, g), direct_f)
                    state.trace_seconds[key] = time.perf_counter() - t0
        return (script or None), key

    def _refresh_traces(self, state: _Traces | None) -> _Traces:
        """Trace bookkeeping for the model's current submodules and parameters: kept when a module registered
        somewhere since was not one of this model's (the same structure), new (traces dropped) otherwise."""
        modules = tuple(self.modules())
        structure = (tuple(map(id, modules)), tuple(map(id, self.parameters())), tuple(map(id, self.buffers())))
        if state is None or state.structure != structure:
            state = _Traces(
                structure=structure,
                scale_factors=tuple(mod for mod in modules if isinstance(mod, ScaleFactor)),
                # each module's hook dicts (hooks are added to and removed from these same dicts): ~10 µs a call
                hook_dicts=tuple(d for mod in modules for d in (mod._forward_hooks, mod._forward_pre_hooks)),
            )
        state.registrations = _REGISTRATIONS[0]
        self._traces = state
        return state

    def _make_trace(self, example: tuple, direct_f: bool):
        """Trace the network on this call's inputs; False (and one warning) when tracing fails."""
        try:
            return torch.jit.trace(_FlatCore(self, direct_f), example, check_trace=False)
        except Exception as exc:  # an op the tracer cannot record: the eager network computes the same
            warnings.warn(f"trace_network: staying eager ({type(exc).__name__}: {exc})", stacklevel=4)
            return False

    @staticmethod
    def _core_args(batch: AtomsBatch, g: GraphSet) -> tuple:
        t = g.trip_e2e
        return (batch.atomic_numbers, g.main.distance, g.main.vector, g.main.edge_index, g.id_swap, t["in"],
                t["out"], t["pad_src"], t["pad_trip"])  # fmt: skip

    def _flat_core(self, z, distance, vector, edge_index, id_swap, trip_in, trip_out, pad_src, pad_trip,
                   direct_f: bool):  # fmt: skip
        """Bases, embeddings and `_network` on plain tensors (what `torch.jit.trace` records): the atoms' network
        energies (N,) eV and the edges' direct force magnitudes (E, 1) eV/Å (None without `direct_f`)."""
        g = GraphSet(
            main=G.Graph(edge_index, None, distance, vector, None), id_swap=id_swap,
            trip_e2e={"in": trip_in, "out": trip_out, "pad_src": pad_src, "pad_trip": pad_trip},
        )  # fmt: skip
        self.compute_bases(g, z.shape[0])
        h = self.atom_emb(z)
        m = self.edge_emb(h, g.basis_rad_raw, edge_index)
        _, atom_e, _, f_st, _, _ = self._network(h, m, g, direct_f, direct_f)
        return atom_e, f_st

    def _run_traced(self, script, batch: AtomsBatch, g: GraphSet, direct_f: bool):
        with torch.jit.optimized_execution(False):  # no per-shape profiling and re-optimising passes
            out = script(*self._core_args(batch, g))
        return out[0], (out[1] if direct_f else None)

    def _isolated(self, g: GraphSet, num_atoms: int) -> torch.Tensor:
        """(N,) bool: atoms that no edge of the widest graph reaches (the main graph, or the atom-atom graph)."""
        widest = g.a2a if g.a2a is not None else g.main
        degree = torch.zeros(num_atoms, dtype=torch.long, device=widest.edge_index.device)
        degree.index_add_(0, widest.edge_index[1], torch.ones_like(widest.edge_index[1]))
        if g.a2a is not None:
            degree.index_add_(0, g.main.edge_index[1], torch.ones_like(g.main.edge_index[1]))
        return degree == 0

    def _couple(self, f_st: torch.Tensor, g: GraphSet) -> torch.Tensor:
        """Average each edge's force magnitude with its reverse edge's (F_st = F_ts)."""
        return 0.5 * (f_st + f_st[g.id_swap])

    def _check(self, batch: AtomsBatch) -> None:
        z = batch.atomic_numbers
        if z.numel() == 0:
            raise StructureError("empty batch: no atoms")
        if int(z.max()) > self.max_atomic_number or int(z.min()) < 1:
            bad = sorted({int(v) for v in z.tolist() if v > self.max_atomic_number or v < 1})
            raise StructureError(
                f"atomic numbers {bad} are outside this model's embedding table (1..{self.max_atomic_number})"
            )
        if not bool(torch.isfinite(batch.positions).all()):
            raise StructureError("non-finite atomic positions")

    supports_neighbors = True  # predict(..., neighbors=NeighborCandidates) reuses a cutoff+skin pair list
    supports_create_graph = True  # conservative mode: predict(..., create_graph=True) keeps forces differentiable

    def predict(
        self,
        batch: AtomsBatch,
        *,
        forces: bool = True,
        features: bool = False,
        neighbors: NeighborCandidates | None = None,
        candidates: G.PairCandidates | None = None,
        create_graph: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Inference (the `AtomisticModel` contract): outputs detached unless `create_graph` (conservative
        mode, positions requiring grad: forces stay differentiable for Hessian rows).

        `neighbors` (calculators' skin lists) or `candidates` (this model's own) replace the pair search.
        """
        if neighbors is not None:
            if neighbors.radius + 1e-9 < self.search_radius:
                raise ValueError(
                    f"neighbour candidates of radius {neighbors.radius} Å are too short for this model "
                    f"({self.search_radius} Å)"
                )
            candidates = pair_candidates_from(neighbors)
        keep_graph = bool(create_graph and self.conservative and batch.positions.requires_grad)
        needs_grad = keep_graph or (forces and self.conservative)
        # without autograd, inference mode also skips version counters and view tracking (~5 % per call)
        with torch.enable_grad() if needs_grad else torch.inference_mode():
            out = self.forward(
                batch, forces=forces, features=features, candidates=candidates, create_graph=keep_graph, traced=True
            )
        return out if keep_graph else {k: _detach(v) for k, v in out.items()}


def pair_candidates_from(neighbors: NeighborCandidates) -> G.PairCandidates:
    """Convert the calculators' `NeighborCandidates` ([i, j], vector pos_j + S·cell − pos_i) to pair candidates
    (target i, source j, image S), in the order this model's own search produces (target, source, image): the
    order `calculators.neighbors` lists from the brute-force search already have (then nothing moves), and
    ASE's binned list is sorted into."""
    i, j = (x.cpu().numpy() for x in neighbors.edge_index)
    key = G.pair_keys(i, j, neighbors.cell_offsets.detach().cpu().numpy())
    if bool((key[1:] >= key[:-1]).all()):
        return G.PairCandidates(
            target=neighbors.edge_index[0], source=neighbors.edge_index[1], image=neighbors.cell_offsets,
            radius=neighbors.radius,
        )  # fmt: skip
    order = torch.from_numpy(np.argsort(key, kind="stable")).to(neighbors.edge_index.device)
    return G.PairCandidates(
        target=neighbors.edge_index[0].index_select(0, order),
        source=neighbors.edge_index[1].index_select(0, order),
        image=neighbors.cell_offsets.index_select(0, order),
        radius=neighbors.radius,
    )


def count_parameters(config: GemNetOCConfig) -> tuple[int, int]:
    """(parameters, state_dict entries) of a config, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = GemNetOC(config)
    return model.num_parameters(), len(model.state_dict())


def _detach(v):
    """Detached tensors (or lists of them); those made in inference mode are cloned out of it, so callers may
    still use them in autograd."""
    if isinstance(v, torch.Tensor):
        v = v.detach()
        return v.clone() if v.is_inference() else v
    if isinstance(v, list):
        return [_detach(x) for x in v]
    return v


def _padded(trip: dict, graph_in: G.Graph, graph_out: G.Graph) -> dict:
    """A mixed-triplet dict with `pad_src`: the gather index laying input-edge rows out as the (output edges, K)
    grid of the triplet bilinear (`index_ops.padded_source_index`; `graph.triplets` builds it, and `pad_trip`, on
    the host for the main graph's own triplets)."""
    trip["pad_src"] = padded_source_index(
        trip["in"], trip["out"], trip["out_agg"], graph_out.num_edges, graph_in.num_edges
    )
    return trip


def _with_positions(batch: AtomsBatch, pos: torch.Tensor) -> AtomsBatch:
    from dataclasses import replace

    return replace(batch, positions=pos)


class _FlatCore(nn.Module):
    """`GemNetOC._flat_core` as a module with tensor-only outputs (what `torch.jit.trace` records):
    (per-atom network energies (N,),) or (those, edge force magnitudes (E, 1))."""

    def __init__(self, model: GemNetOC, direct_f: bool):
        super().__init__()
        self.model = model
        self.direct_f = direct_f

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        atom_e, f_st = self.model._flat_core(*args, self.direct_f)
        return (atom_e, f_st) if self.direct_f else (atom_e,)
