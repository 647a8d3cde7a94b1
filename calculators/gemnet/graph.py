"""Periodic radius graphs and GemNet-OC's interaction indices.

The topology (which edges, their order, reverse-edge and triplet indices) is integer bookkeeping built in numpy
on the host: for the tens to thousands of edges of a batch a numpy operation costs a few µs and a torch operation
several times that, and this was a third of a single-point call. Only the geometry (distances and unit vectors)
is computed in torch, differentiable in the positions; the functions take and return torch tensors (moved to the
host and back when the batch lives on a GPU).

Conventions (those of GemNet-OC): an edge (s, t) carries a message from source s to target t. Its
`cell_offset` o (integer lattice coordinates, float tensor) places the source image so that the edge vector is
    vector_st = (pos_t - pos_s + o @ cell) / distance_st       (unit vector pointing from the source to the target)
Edges of the radius graph come ordered by target, then source, then lattice image (lexicographic), which the
max-neighbour selection and the symmetrisation below rely on, exactly as in the reference implementation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import torch

from calculators.batch import AtomsBatch
from calculators.gemnet.index_ops import csr_gather, inner_index, segment_sum
from calculators.pair_search import find_pairs as search_pairs

log = logging.getLogger(__name__)


@dataclass
class PairCandidates:
    """All atom pairs within `radius` (Å) of each other, as found once and reused while atoms move < skin/2.

    target, source: (P,) int64 atom indices (ordered by target, source, image)
    image:          (P, 3) float lattice coordinates of the source image (pos_source + image @ cell)
    radius:         search radius, Å (cutoff + skin)
    """

    target: torch.Tensor
    source: torch.Tensor
    image: torch.Tensor
    radius: float

    @property
    def num_pairs(self) -> int:
        return int(self.target.numel())


@dataclass
class Graph:
    """One GemNet-OC graph (main, quadruplet, atom-edge or atom-atom).

    edge_index:    (2, E) int64 [source, target]
    cell_offset:   (E, 3) float, lattice coordinates (see module docstring)
    distance:      (E,) Å
    vector:        (E, 3) unit vectors source -> target
    num_neighbors: (B,) int64 edges per structure (None once no longer meaningful)
    """

    edge_index: torch.Tensor
    cell_offset: torch.Tensor
    distance: torch.Tensor
    vector: torch.Tensor
    num_neighbors: torch.Tensor | None

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def select(self, mask: torch.Tensor, num_neighbors: torch.Tensor | None) -> Graph:
        return Graph(
            edge_index=self.edge_index[:, mask],
            cell_offset=self.cell_offset[mask],
            distance=self.distance[mask],
            vector=self.vector[mask],
            num_neighbors=num_neighbors,
        )


# --------------------------------------------------------------------------------------------- radius graph


def find_pairs(batch: AtomsBatch, radius: float) -> PairCandidates:
    """All (target, source, image) pairs closer than `radius` Å, and possibly a few up to 1e-5 relative beyond
    (`calculators.pair_search.find_pairs`; `select_pairs` applies the exact cutoff)."""
    target, source, image = search_pairs(batch, radius)
    return PairCandidates(target, source, image, float(radius))


def max_neighbors_mask(
    natoms: torch.Tensor,
    index: torch.Tensor,
    distance: torch.Tensor,
    max_neighbors: int,
    strict: bool = True,
    tolerance: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep at most `max_neighbors` closest edges per target atom (`index` sorted).

    With `strict`, exactly that many; otherwise all edges within `tolerance` of the last kept distance.
    Exactly equal distances (always present for periodic self-images ±a) are broken by edge order (stable
    sort), so the choice never depends on the rest of the batch. fairchem sorts unstably here, and its choice
    among tied edges can change with the batch composition. Returns (edge mask, edges per structure).
    """
    mask, counts = _max_neighbors_mask(
        natoms.cpu().numpy(), _host(index), _host(distance), max_neighbors, strict, tolerance
    )
    return torch.from_numpy(mask).to(index.device), torch.from_numpy(counts).to(index.device)


def _max_neighbors_mask(
    natoms: np.ndarray, index: np.ndarray, distance: np.ndarray, max_neighbors: int, strict: bool, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """`max_neighbors_mask` on host arrays (the graph's topology is built in numpy: a few µs per operation on the
    tens to thousands of edges of a batch, where each torch operation costs several times that)."""
    counts = np.bincount(index, minlength=int(natoms.sum()))
    bounds = np.cumsum(natoms)

    def per_structure(c: np.ndarray) -> np.ndarray:
        cs = np.concatenate([[0], np.cumsum(c)])
        return cs[bounds] - cs[bounds - natoms]

    if index.size == 0 or counts.max() <= max_neighbors or max_neighbors <= 0:
        return np.ones(index.size, dtype=bool), per_structure(np.minimum(counts, max_neighbors))
    start = np.cumsum(counts) - counts
    order = np.lexsort((distance, index))  # by target, then distance; ties keep edge order (stable)
    rank = np.arange(index.size) - start[index]  # rank of edge order[k] within its target: k − start
    mask = np.zeros(index.size, dtype=bool)
    if strict:
        mask[order[rank < max_neighbors]] = True
    else:
        # the (max_neighbors + 1)-th smallest distance of each atom that has more, plus the tolerance
        limit = np.full(counts.size, np.inf, dtype=distance.dtype)
        over = counts > max_neighbors
        limit[over] = distance[order[start[over] + max_neighbors]] + distance.dtype.type(tolerance)
        mask = distance <= limit[index]
    return mask, per_structure(np.bincount(index[mask], minlength=counts.size))


def select_pairs(
    batch: AtomsBatch,
    cutoff: float,
    max_neighbors: int,
    candidates: PairCandidates,
    strict: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which candidates form GemNet-OC's radius graph (≤ cutoff Å, ≤ max_neighbors per target): (indices into the
    candidates (E,), in candidate order; edges per structure (B,))."""
    index, num_neighbors = _select_pairs(batch, cutoff, max_neighbors, candidates, strict)
    device = candidates.target.device
    return torch.from_numpy(index).to(device), torch.from_numpy(num_neighbors).to(device)


def _select_pairs(
    batch: AtomsBatch, cutoff: float, max_neighbors: int, candidates: PairCandidates, strict: bool
) -> tuple[np.ndarray, np.ndarray]:
    if candidates.radius + 1e-9 < cutoff:
        raise ValueError(f"pair candidates of radius {candidates.radius} Å cannot serve a {cutoff} Å cutoff")
    pos, cell = _host(batch.positions), _host(batch.cell)
    target, source = _host(candidates.target), _host(candidates.source)
    struct = _host(batch.batch)[target]
    images = _host(candidates.image).astype(pos.dtype, copy=False)
    # squared distances the way the reference computes them for the neighbour search (cellᵀ @ image)
    shift = np.matmul(cell[struct].transpose(0, 2, 1), images[:, :, None])[:, :, 0]
    diff = pos[target] - (pos[source] + shift)
    d2 = (diff * diff).sum(axis=-1)
    within = np.flatnonzero((d2 <= pos.dtype.type(cutoff * cutoff)) & (d2 > pos.dtype.type(1e-4)))
    mask, num_neighbors = _max_neighbors_mask(
        _host(batch.natoms), target[within], d2[within], max_neighbors, strict, 0.01
    )
    return within[mask], num_neighbors


def _host(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as a numpy array (shared memory on CPU; never part of autograd)."""
    return t.detach().cpu().numpy()


def edge_geometry(
    batch: AtomsBatch, edge_index: torch.Tensor, cell_offset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance (E,) Å, unit vector (E, 3) source -> target) of edges [source, target] with lattice offsets
    (module docstring), differentiable in the positions. Raises ValueError for a zero distance."""
    source, target = edge_index
    cell = batch.cell.index_select(0, batch.batch.index_select(0, target))
    shift = torch.bmm(cell_offset.unsqueeze(1), cell).squeeze(1)
    vec = batch.positions.index_select(0, target) - batch.positions.index_select(0, source) + shift
    dist = torch.linalg.norm(vec, dim=-1)
    if not bool((dist != 0).all()):
        raise ValueError("two atoms sit on top of each other (zero distance)")
    return dist, vec / dist[:, None]


def radius_graph(
    batch: AtomsBatch,
    cutoff: float,
    max_neighbors: int,
    candidates: PairCandidates,
    strict: bool = True,
) -> Graph:
    """GemNet-OC's radius graph (≤ cutoff Å, ≤ max_neighbors per target) from precomputed pair candidates."""
    index, num_neighbors = _select_pairs(batch, cutoff, max_neighbors, candidates, strict)
    device, dtype = candidates.target.device, batch.positions.dtype
    edge_index = torch.from_numpy(np.stack([_host(candidates.source)[index], _host(candidates.target)[index]]))
    edge_index = edge_index.to(device)
    cell_offset = torch.from_numpy(-_host(candidates.image)[index]).to(device=device, dtype=dtype)
    distance, vector = edge_geometry(batch, edge_index, cell_offset)
    return Graph(edge_index, cell_offset, distance, vector, torch.from_numpy(num_neighbors).to(device))


def subselect(
    batch: AtomsBatch,
    graph: Graph,
    cutoff: float | None,
    max_neighbors: int | None,
    strict: bool = True,
) -> Graph:
    """A sub-graph with a smaller cutoff and/or fewer neighbours (None: keep)."""
    out = graph
    if cutoff is not None:
        keep = out.distance <= cutoff
        counts = _per_structure_counts(batch, out.edge_index[1], keep)
        out = out.select(keep, counts)
    if max_neighbors is not None:
        keep, counts = max_neighbors_mask(batch.natoms, out.edge_index[1], out.distance, max_neighbors, strict)
        out = out.select(keep, counts) if not bool(keep.all()) else replace(out, num_neighbors=counts)
    return out


def _per_structure_counts(batch: AtomsBatch, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return segment_sum(keep.long(), batch.batch[target], batch.num_structures)


def _canonical_direction(edge_index: np.ndarray, cell_offset: np.ndarray) -> np.ndarray:
    """True for the edge direction that symmetrisation keeps: s < t, or s == t with the 'earlier' image (the
    lattice offset lexicographically negative)."""
    s, t = edge_index
    # the offsets are small integers (|n| < 500: a cell vector longer than cutoff/500), so this weighted sum has
    # the sign of their lexicographic order, in float32 too (n1·1e3 + n2 is exact; n0·1e6 dominates when n0 ≠ 0)
    code = cell_offset @ np.array([1e6, 1e3, 1.0], dtype=cell_offset.dtype)
    return (s < t) | ((s == t) & (code < 0))


def pair_keys(first: np.ndarray, second: np.ndarray, images: np.ndarray) -> np.ndarray:
    """One int64 per (first atom, second atom, lattice image) (E,), increasing in that lexicographic order: the
    key that orders pair lists and finds an edge's reverse (`images`: (E, 3) integer-valued lattice offsets)."""
    img = np.asarray(images).round().astype(np.int64)
    span = int(np.abs(img).max()) + 1 if img.size else 1
    base = 2 * span + 1
    n_atoms = int(max(first.max(), second.max())) + 1 if first.size else 1
    image_code = ((img[:, 0] + span) * base + (img[:, 1] + span)) * base + (img[:, 2] + span)
    return (first * n_atoms + second) * base**3 + image_code


def _undirected_union(
    edge_index: np.ndarray, cell_offset: np.ndarray, mutual: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair connected in either direction (`mutual`: in both directions), once: (indices of the edges that
    represent them (U,), in order of first appearance; True where such an edge is already in canonical
    direction, False where it must be reversed)."""
    keep = _canonical_direction(edge_index, cell_offset)
    s, t = edge_index
    key = pair_keys(np.where(keep, s, t), np.where(keep, t, s), np.where(keep[:, None], cell_offset, -cell_offset))
    _, first, count = np.unique(key, return_index=True, return_counts=True)  # first occurrence of each key
    if mutual:  # a pair and its reverse share one canonical key: two occurrences = selected from both ends
        first = first[count >= 2]
    first = np.sort(first)
    return first, keep[first]


def symmetrize(
    graph: Graph, num_structures: int, edge_struct: torch.Tensor, union: bool | str = False
) -> tuple[Graph, torch.Tensor]:
    """Keep one direction of each edge and add its reverse, so every edge s->t has a partner t->s.

    Reference mode (`union=False`, fairchem's): keep the edges already in canonical direction (s < t) and mirror
    them; with max-neighbour truncation this depends on atom order. `union=True` keeps every pair selected in
    either direction, which is invariant to atom permutations; `union="mutual"` keeps only pairs selected from both
    ends (mutual nearest neighbours: also permutation invariant, and no hub atoms). Per structure the kept edges
    come first, then their reverses in the same order. Returns the new graph and `id_swap` (E,): the index of
    each edge's reverse.
    """
    edge_index, offset = _host(graph.edge_index), _host(graph.cell_offset)
    struct = _host(edge_struct)
    if union:
        kept, forward = _undirected_union(edge_index, offset, mutual=union == "mutual")
    else:
        kept = np.flatnonzero(_canonical_direction(edge_index, offset))
        forward = np.ones(kept.size, dtype=bool)
    struct = struct[kept]
    n_half = np.bincount(struct, minlength=num_structures)
    n_dir = kept.size
    # position of every output edge: per structure [kept..., reversed...]
    start_out = np.cumsum(2 * n_half) - 2 * n_half
    start_half = np.cumsum(n_half) - n_half
    pos_fwd = start_out[struct] + np.arange(n_dir) - start_half[struct]
    pos_rev = pos_fwd + n_half[struct]
    source = np.empty(2 * n_dir, dtype=np.int64)  # the input edge each output edge is made from
    source[pos_fwd] = kept
    source[pos_rev] = kept
    flip = np.empty(2 * n_dir, dtype=bool)  # output edge = that input edge reversed
    flip[pos_fwd] = ~forward
    flip[pos_rev] = forward
    new_index = np.where(flip, edge_index[::-1][:, source], edge_index[:, source])
    id_swap = np.empty(2 * n_dir, dtype=np.int64)
    id_swap[pos_fwd] = pos_rev
    id_swap[pos_rev] = pos_fwd
    device = graph.edge_index.device
    src = torch.from_numpy(source).to(device)
    sign = torch.from_numpy(np.where(flip, -1.0, 1.0)).to(device=device, dtype=graph.vector.dtype)[:, None]
    new = Graph(
        edge_index=torch.from_numpy(new_index).to(device),
        cell_offset=graph.cell_offset.index_select(0, src) * sign.to(graph.cell_offset.dtype),
        distance=graph.distance.index_select(0, src),
        vector=graph.vector.index_select(0, src) * sign,
        num_neighbors=torch.from_numpy(2 * n_half).to(device),
    )
    return new, torch.from_numpy(id_swap).to(device)


# ---------------------------------------------------------------------------------------- interaction indices


def triplets(graph: Graph, num_atoms: int) -> dict[str, torch.Tensor]:
    """Triplets b->a<-c of one graph: for each output edge c->a every other input edge b->a.

    in: (T,) input edge b->a; out: (T,) output edge c->a (sorted); out_agg: (T,) rank of the triplet within its
    output edge; pad_src, pad_trip: (E·K,) the gather indices (`index_ops.padded_source_index`, K = the most
    triplets of an output edge) laying out the input edges, and the triplets themselves, as the (E, K) grid of
    the triplet bilinear (empty slots: row E, row T).
    """
    s, t = _host(graph.edge_index)
    order = np.argsort(t * num_atoms + s, kind="stable")
    counts = np.bincount(t, minlength=num_atoms)
    ptr = np.cumsum(counts) - counts
    n_per_edge = counts[t]  # each output edge c->a meets every edge into a (itself included, removed below)
    out = np.repeat(np.arange(t.size), n_per_edge)
    edge_in = order[ptr[t][out] + _ragged_range(n_per_edge)]
    keep = edge_in != out
    out, edge_in = out[keep], edge_in[keep]
    out_agg = _ragged_range(np.bincount(out, minlength=t.size))
    k = int(out_agg.max()) + 1 if out_agg.size else 0
    slots = out * k + out_agg
    pad_src = np.full(t.size * k, t.size, dtype=np.int64)
    pad_src[slots] = edge_in
    pad_trip = np.full(t.size * k, out.size, dtype=np.int64)
    pad_trip[slots] = np.arange(out.size)
    device = graph.edge_index.device
    arrays = (("in", edge_in), ("out", out), ("out_agg", out_agg), ("pad_src", pad_src), ("pad_trip", pad_trip))
    return {name: torch.from_numpy(v).to(device) for name, v in arrays}


def _ragged_range(sizes: np.ndarray) -> np.ndarray:
    """Concatenated ranges (`index_ops.ragged_range` on host arrays): [1, 4, 2] -> [0, 0, 1, 2, 3, 0, 1]."""
    starts = np.cumsum(sizes) - sizes
    return np.arange(int(sizes.sum())) - np.repeat(starts, sizes)


def mixed_triplets(
    graph_in: Graph, graph_out: Graph, num_atoms: int, to_outedge: bool = False, agg_index: bool = False
) -> dict[str, torch.Tensor]:
    """Triplets whose input edges come from `graph_in` and output edges from `graph_out` (shared atoms).

    For each output edge c->a (or a->c with `to_outedge`), every input edge b->a of graph_in, excluding the
    one that is the same atom and image as the output edge's other end. Output edges come sorted.
    """
    s_out, t_out = graph_out.edge_index
    s_in, t_in = graph_in.edge_index
    order = torch.argsort(t_in * num_atoms + s_in, stable=True)
    queries = s_out if to_outedge else t_out
    out, edge_in = csr_gather(t_in, num_atoms, queries, order)
    if to_outedge:
        atom_out = t_out[out]
        offset_sum = graph_out.cell_offset[out] + graph_in.cell_offset[edge_in]
    else:
        atom_out = s_out[out]
        offset_sum = graph_out.cell_offset[out] - graph_in.cell_offset[edge_in]
    keep = (s_in[edge_in] != atom_out) | torch.any(offset_sum != 0, dim=-1)
    result = {"in": edge_in[keep], "out": out[keep]}
    if agg_index:
        result["out_agg"] = inner_index(result["out"], graph_out.num_edges)
    return result


def quadruplets(main: Graph, qint: Graph, num_atoms: int) -> dict:
    """Quadruplets d->b->a<-c: main-graph edges c->a and d->b joined by a quadruplet-graph edge b->a."""
    s_main = main.edge_index[0]
    trip_in = mixed_triplets(main, qint, num_atoms, to_outedge=True)  # d->b (in) for each b->a (out)
    trip_out = mixed_triplets(qint, main, num_atoms)  # b->a (in) for each c->a (out)
    # for every output triplet c->a<-b, every input triplet d->b->a sharing its b->a edge
    quad_from_out, trip_in_idx = csr_gather(trip_in["out"], qint.num_edges, trip_out["in"])
    out_edge = trip_out["out"][quad_from_out]
    qedge = trip_out["in"][quad_from_out]
    in_edge = trip_in["in"][trip_in_idx]
    offset_cd = main.cell_offset[in_edge] + qint.cell_offset[qedge] - main.cell_offset[out_edge]
    keep = (s_main[out_edge] != s_main[in_edge]) | torch.any(offset_cd != 0, dim=-1)
    out_edge = out_edge[keep]
    return {
        "triplet_in": trip_in,
        "triplet_out": trip_out,
        "out": out_edge,
        "trip_out_to_quad": quad_from_out[keep],
        "trip_in_to_quad": trip_in_idx[keep],
        "out_agg": inner_index(out_edge, main.num_edges),
    }


def keep_tags(graph: Graph, tags: torch.Tensor, allowed_tags: torch.Tensor) -> Graph:
    """Edges where the source or the target carries one of `allowed_tags` (quadruplet graph)."""
    s, t = graph.edge_index
    ok = torch.isin(tags[s], allowed_tags) | torch.isin(tags[t], allowed_tags)
    return graph.select(ok, None)
