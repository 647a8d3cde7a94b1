"""FORK (Lim, Choung, Han): contrastive distillation of relational vectors, and the instance-level variant.

For an edge k = (i, j) the relational vector is r_k = ẑ_i − ẑ_j with ẑ the L2-normalised atom embedding. The
student's r_S,k (after a projection head to the teacher's width) must be closer (cosine similarity / τ) to the
teacher's r_T,k than to the teacher's r_T,m of the other sampled edges m ≠ k (InfoNCE). Memory is O(K²) for K
sampled edges, so `max_edges` bounds it. Edges come from the student's graph; periodic images and the two
directions of a pair are merged: one candidate per unordered atom pair (i < j) per structure.

Pairs whose teacher relational vector is shorter than `min_norm` (symmetry-equivalent atoms: the teacher sees
them as the same, ẑ_i ≈ ẑ_j) are left out: their direction is float noise, not a relation to match.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def unique_pairs(
    edge_index: torch.Tensor, max_pairs: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(2, K) unordered atom pairs (i < j) of a directed graph with images, at most `max_pairs`, sampled uniformly.

    Self pairs (an atom and its own periodic image) have no relational vector and are dropped.
    """
    src, dst = edge_index
    lo, hi = torch.minimum(src, dst), torch.maximum(src, dst)
    keep = lo != hi
    lo, hi = lo[keep], hi[keep]
    if lo.numel() == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=edge_index.device)
    n = int(hi.max()) + 1
    keys = torch.unique(lo * n + hi)
    if max_pairs is not None and keys.numel() > max_pairs:
        perm = torch.randperm(keys.numel(), generator=generator, device="cpu")[:max_pairs].to(keys.device)
        keys = keys[perm]
    return torch.stack([keys // n, keys % n])


def relational_vectors(z: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """r_k = ẑ_i − ẑ_j (K, D) for pairs (2, K) of atom embeddings z (N, D)."""
    zn = F.normalize(z, dim=-1)
    return zn[pairs[0]] - zn[pairs[1]]


def info_nce(student: torch.Tensor, teacher: torch.Tensor, tau: float = 0.15) -> torch.Tensor:
    """InfoNCE of K student vectors against K teacher vectors (row k's positive is teacher row k).

    Similarities are cosines divided by `tau`; loss = mean_k [−log softmax_m(sim(s_k, t_m)/τ)_k]. With all
    similarities equal it is log K. The teacher is detached: no gradient ever reaches it.
    """
    if student.shape[0] == 0:
        return student.sum() * 0.0
    s = F.normalize(student, dim=-1)
    t = F.normalize(teacher.detach().to(student.dtype), dim=-1)
    logits = s @ t.T / tau
    labels = torch.arange(s.shape[0], device=s.device)
    return F.cross_entropy(logits, labels)


def fork_loss(
    student_z: torch.Tensor,
    teacher_z: torch.Tensor,
    edge_index: torch.Tensor,
    head: torch.nn.Module,
    *,
    tau: float = 0.15,
    max_edges: int | None = 512,
    generator: torch.Generator | None = None,
    min_norm: float = 1e-3,
) -> torch.Tensor:
    """FORK loss: student atom embeddings (N, Fs) → `head` → (N, Ft); teacher embeddings (N, Ft) of the same atoms.

    Pairs with ‖r_T‖ < `min_norm` (of at most 2, the embeddings being normalised) are dropped (module docstring);
    0 (with a gradient path) when no pair is left."""
    pairs = unique_pairs(edge_index, max_edges, generator)
    r_t = relational_vectors(teacher_z.detach().to(student_z.dtype), pairs)
    keep = r_t.norm(dim=-1) >= min_norm
    r_s = relational_vectors(head(student_z), pairs[:, keep])
    return info_nce(r_s, r_t[keep], tau)


def instance_contrastive_loss(
    student_z: torch.Tensor,
    teacher_z: torch.Tensor,
    head: torch.nn.Module,
    *,
    tau: float = 0.15,
    max_atoms: int | None = 512,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Instance-level ablation of FORK: InfoNCE on atom embeddings themselves (positive: the same atom)."""
    n = student_z.shape[0]
    idx = torch.arange(n, device=student_z.device)
    if max_atoms is not None and n > max_atoms:
        idx = torch.randperm(n, generator=generator)[:max_atoms].to(student_z.device)
    return info_nce(head(student_z[idx]), teacher_z[idx].detach(), tau)
