"""Periodic radius graphs and GemNet-OC's interaction indices, in plain torch.

Conventions (those of GemNet-OC): an edge (s, t) carries a message from source s to target t. Its
`cell_offset` o (integer lattice coordinates, float tensor) places the source image so that the edge vector is
    vector_st = (pos_t - pos_s + o @ cell) / distance_st       (unit vector pointing from the source to the target)
Edges of the radius graph come ordered by target, then source, then lattice image (lexicographic), which the
max-neighbour selection and the symmetrisation below rely on, exactly as in the reference implementation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

from calculators.batch import AtomsBatch
from calculators.gemnet.index_ops import count_per_index, csr_gather, inner_index, segment_sum
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
    """All (target, source, image) pairs closer than `radius` Å (`calculators.pair_search.find_pairs`)."""
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
    device = index.device
    num_atoms = int(natoms.sum())
    counts = count_per_index(index, num_atoms)
    bounds = torch.cumsum(natoms, 0)
    per_struct_start = bounds - natoms

    def per_structure(c: torch.Tensor) -> torch.Tensor:
        cs = torch.cat([c.new_zeros(1), torch.cumsum(c, 0)])
        return cs[bounds] - cs[per_struct_start]

    max_count = int(counts.max()) if counts.numel() else 0
    if max_count <= max_neighbors or max_neighbors <= 0:
        return torch.ones_like(index, dtype=torch.bool), per_structure(counts.clamp(max=max_neighbors))
    start = torch.cumsum(counts, 0) - counts
    slot = index * max_count + torch.arange(index.numel(), device=device) - torch.repeat_interleave(start, counts)
    padded = torch.full((num_atoms * max_count,), float("inf"), device=device, dtype=distance.dtype)
    padded.index_copy_(0, slot, distance)
    padded = padded.view(num_atoms, max_count)
    padded, order = torch.sort(padded, dim=1, stable=True)
    if strict:
        padded = padded[:, :max_neighbors]
        order = order[:, :max_neighbors]
        kept_counts = counts.clamp(max=max_neighbors)
    else:
        limit = padded[:, max_neighbors] + tolerance
        included = padded <= limit[:, None]
        padded = torch.where(included, padded, torch.full_like(padded, float("inf")))
        n_incl = included.sum(dim=1)
        width = int(n_incl.max())
        padded, order = padded[:, :width], order[:, :width]
        kept_counts = torch.minimum(counts, n_incl)
    order = order + start[:, None]
    keep = order[torch.isfinite(padded)]
    mask = torch.zeros(index.numel(), dtype=torch.bool, device=device)
    mask[keep] = True
    return mask, per_structure(kept_counts)


def select_pairs(
    batch: AtomsBatch,
    cutoff: float,
    max_neighbors: int,
    candidates: PairCandidates,
    strict: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which candidates form GemNet-OC's radius graph (≤ cutoff Å, ≤ max_neighbors per target): (indices into the
    candidates (E,), in candidate order; edges per structure (B,))."""
    if candidates.radius + 1e-9 < cutoff:
        raise ValueError(f"pair candidates of radius {candidates.radius} Å cannot serve a {cutoff} Å cutoff")
    pos, cell = batch.positions, batch.cell
    struct = batch.batch[candidates.target]
    images = candidates.image.to(pos.dtype)
    # squared distances the way the reference computes them for the neighbour search (cellᵀ @ image)
    shift = torch.bmm(cell[struct].transpose(1, 2), images.unsqueeze(-1)).squeeze(-1)
    d2 = torch.sum((pos[candidates.target] - (pos[candidates.source] + shift)) ** 2, dim=-1)
    within = torch.nonzero((d2 <= cutoff * cutoff) & (d2 > 1e-4)).squeeze(1)
    mask, num_neighbors = max_neighbors_mask(batch.natoms, candidates.target[within], d2[within], max_neighbors, strict)
    if not bool(mask.all()):
        within = within[mask]
    return within, num_neighbors


def edge_geometry(
    batch: AtomsBatch, edge_index: torch.Tensor, cell_offset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance (E,) Å, unit vector (E, 3) source -> target) of edges [source, target] with lattice offsets
    (module docstring), differentiable in the positions. Raises ValueError for a zero distance."""
    source, target = edge_index
    shift = torch.bmm(cell_offset.unsqueeze(1), batch.cell[batch.batch[target]]).squeeze(1)
    vec = batch.positions[target] - batch.positions[source] + shift
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
    index, num_neighbors = select_pairs(batch, cutoff, max_neighbors, candidates, strict)
    edge_index = torch.stack([candidates.source[index], candidates.target[index]])
    cell_offset = -candidates.image[index].to(batch.positions.dtype)
    distance, vector = edge_geometry(batch, edge_index, cell_offset)
    return Graph(edge_index, cell_offset, distance, vector, num_neighbors)


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


def _canonical_direction(graph: Graph) -> torch.Tensor:
    """True for the edge direction that symmetrisation keeps: s < t, or s == t with the 'earlier' image (the
    lattice offset lexicographically negative)."""
    s, t = graph.edge_index
    off = graph.cell_offset
    # the offsets are small integers (|n| < 500: a cell vector longer than cutoff/500), so this weighted sum has
    # the sign of their lexicographic order, in float32 too (n1·1e3 + n2 is exact; n0·1e6 dominates when n0 ≠ 0)
    code = off @ torch.tensor([1e6, 1e3, 1.0], dtype=off.dtype, device=off.device)
    return (s < t) | ((s == t) & (code < 0))


def _undirected_union(graph: Graph, edge_struct: torch.Tensor, mutual: bool = False) -> tuple[Graph, torch.Tensor]:
    """Every pair connected in either direction (`mutual`: in both directions), once, in its canonical direction
    (order of first appearance)."""
    keep = _canonical_direction(graph)
    s, t = graph.edge_index
    cs, ct = torch.where(keep, s, t), torch.where(keep, t, s)
    co = torch.where(keep[:, None], graph.cell_offset, -graph.cell_offset)
    img = co.round().long()
    span = int(img.abs().max()) + 1 if img.numel() else 1
    base = 2 * span + 1
    n_atoms = int(torch.maximum(cs.max(), ct.max())) + 1 if cs.numel() else 1
    image_code = ((img[:, 0] + span) * base + (img[:, 1] + span)) * base + (img[:, 2] + span)
    key = (cs * n_atoms + ct) * base**3 + image_code  # one int64 per (source, target, image); atoms are global
    _, inverse = torch.unique(key, return_inverse=True)
    n_unique = int(inverse.max()) + 1 if inverse.numel() else 0
    first = torch.full((n_unique,), inverse.numel(), dtype=torch.long, device=inverse.device)
    positions = torch.arange(inverse.numel(), device=inverse.device)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    if mutual:  # a pair and its reverse share one canonical key: two occurrences = selected from both ends
        first = first[torch.bincount(inverse, minlength=n_unique) >= 2]
    first = torch.sort(first).values
    canon = Graph(
        edge_index=torch.stack([cs, ct])[:, first],
        cell_offset=co[first],
        distance=graph.distance[first],
        vector=torch.where(keep[:, None], graph.vector, -graph.vector)[first],
        num_neighbors=None,
    )
    return canon, edge_struct[first]


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
    if union:
        graph, edge_struct = _undirected_union(graph, edge_struct, mutual=union == "mutual")
    s, t = graph.edge_index
    off = graph.cell_offset
    kept = torch.nonzero(_canonical_direction(graph)).squeeze(1)  # one search serves every field below
    struct = edge_struct.index_select(0, kept)
    n_half = count_per_index(struct, num_structures)
    n_dir = int(kept.numel())
    # position of every output edge: per structure [kept..., reversed...]
    start_out = torch.cumsum(2 * n_half, 0) - 2 * n_half
    start_half = torch.cumsum(n_half, 0) - n_half
    local = torch.arange(n_dir, device=s.device) - start_half[struct]
    pos_fwd = start_out[struct] + local
    pos_rev = pos_fwd + n_half[struct]
    edge_index = torch.empty((2, 2 * n_dir), dtype=s.dtype, device=s.device)
    kept_index = graph.edge_index.index_select(1, kept)
    edge_index[:, pos_fwd] = kept_index
    edge_index[:, pos_rev] = kept_index.flip(0)

    def place(values: torch.Tensor, sign: float) -> torch.Tensor:
        out = values.new_empty((2 * n_dir, *values.shape[1:]))
        kept_values = values.index_select(0, kept)
        out[pos_fwd] = kept_values
        out[pos_rev] = sign * kept_values
        return out

    id_swap = torch.empty(2 * n_dir, dtype=torch.long, device=s.device)
    id_swap[pos_fwd] = pos_rev
    id_swap[pos_rev] = pos_fwd
    new = Graph(
        edge_index=edge_index,
        cell_offset=place(off, -1.0),
        distance=place(graph.distance, 1.0),
        vector=place(graph.vector, -1.0),
        num_neighbors=2 * n_half,
    )
    return new, id_swap


# ---------------------------------------------------------------------------------------- interaction indices


def triplets(graph: Graph, num_atoms: int) -> dict[str, torch.Tensor]:
    """Triplets b->a<-c of one graph: for each output edge c->a every other input edge b->a.

    in: (T,) input edge b->a; out: (T,) output edge c->a (sorted); out_agg: (T,) rank of the triplet within its
    output edge.
    """
    s, t = graph.edge_index
    order = torch.argsort(t * num_atoms + s, stable=True)
    out, edge_in = csr_gather(t, num_atoms, t, order)
    keep = edge_in != out
    out, edge_in = out[keep], edge_in[keep]
    return {"in": edge_in, "out": out, "out_agg": inner_index(out, graph.num_edges)}


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
