"""Small index utilities in plain torch (what torch_scatter / torch_sparse provided to GemNet-OC)."""

from __future__ import annotations

import torch


def count_per_index(index: torch.Tensor, size: int) -> torch.Tensor:
    """Number of occurrences of each value in `index` (int64, shape (size,))."""
    return torch.bincount(index, minlength=size)[:size] if index.numel() else index.new_zeros(size)


def ragged_range(sizes: torch.Tensor) -> torch.Tensor:
    """Concatenated ranges: sizes [1, 4, 2] -> [0, 0, 1, 2, 3, 0, 1]."""
    total = int(sizes.sum())
    if total == 0:
        return sizes.new_zeros(0)
    starts = torch.cumsum(sizes, 0) - sizes
    return torch.arange(total, device=sizes.device) - torch.repeat_interleave(starts, sizes)


def inner_index(sorted_index: torch.Tensor, size: int) -> torch.Tensor:
    """Position of each element within its group of equal values; `sorted_index` must be sorted.

    [0, 0, 0, 1, 1, 2] -> [0, 1, 2, 0, 1, 0].
    """
    return ragged_range(count_per_index(sorted_index, size))


def segment_sum(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Sum rows of `values` (E, ...) into `size` groups given by `index` (E,)."""
    out = values.new_zeros((size, *values.shape[1:]))
    return out.index_add_(0, index, values)


def csr_gather(
    group_of_item: torch.Tensor, num_groups: int, queries: torch.Tensor, order: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query group q, all items of group q (a CSR row selection, duplicates kept).

    Items are grouped by `group_of_item` (M,); within a group they keep the order given by `order`
    (a permutation of the items, default: stable sort by group). Returns (query position, item index), each of
    length Σ_q count[q], ordered by query then by item order.
    """
    if order is None:
        order = torch.argsort(group_of_item, stable=True)
    counts = count_per_index(group_of_item, num_groups)
    ptr = torch.cumsum(counts, 0) - counts
    n_per_query = counts[queries]
    query_pos = torch.repeat_interleave(torch.arange(queries.numel(), device=queries.device), n_per_query)
    item_pos = ptr[queries][query_pos] + ragged_range(n_per_query)
    return query_pos, order[item_pos]


def _grid_slots(outer: torch.Tensor, inner: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Flat slot of each [outer, inner] in an (n_outer, K) grid, K = max(inner) + 1 (0 when empty)."""
    k = int(inner.max()) + 1 if inner.numel() else 0
    return outer * k + inner, k


def scatter_padded(values: torch.Tensor, outer: torch.Tensor, inner: torch.Tensor, n_outer: int) -> torch.Tensor:
    """Rows of `values` (T, ...) in a zero-padded (n_outer, K, ...) grid at [outer, inner]."""
    slots, k = _grid_slots(outer, inner)
    out = values.new_zeros((n_outer * k, *values.shape[1:]))
    out[slots] = values  # one flat index: cheaper than the pair [outer, inner]
    return out.view(n_outer, k, *values.shape[1:])


def padded_source_index(
    source: torch.Tensor, outer: torch.Tensor, inner: torch.Tensor, n_outer: int, n_source: int
) -> torch.Tensor:
    """Flat gather index (n_outer·K,) that lays out rows `source` (T,) of an (n_source, ...) tensor as
    `scatter_padded` would; empty slots point at row `n_source` (the zero row `gather_padded` appends). Built once
    per graph, it replaces a gather, a zero fill and a scatter per use with one `index_select`.
    """
    slots, k = _grid_slots(outer, inner)
    index = source.new_full((n_outer * k,), n_source)
    index[slots] = source
    return index


def gather_padded(values: torch.Tensor, index: torch.Tensor, n_outer: int) -> torch.Tensor:
    """`values` (n_source, ...) laid out by a `padded_source_index`: (n_outer, K, ...), zeros in empty slots."""
    k = index.numel() // n_outer if n_outer else 0
    rows = torch.cat([values, values.new_zeros((1, *values.shape[1:]))]).index_select(0, index)
    return rows.view(n_outer, k, *values.shape[1:])
