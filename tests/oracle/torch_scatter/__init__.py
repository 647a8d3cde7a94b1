"""Pure-torch stand-in for the parts of ``torch_scatter`` that fairchem's GemNet-OC uses.

Only importable inside the fairchem oracle subprocess (``tests/oracle`` is put on
``PYTHONPATH`` there).  Semantics follow torch_scatter 2.1:

* ``scatter(src, index, dim=-1, out=None, dim_size=None, reduce="sum")`` with
  reduce in {"sum", "add", "mean", "mul", "min", "max"}; ``index`` is broadcast
  against ``src`` like torch_scatter's ``broadcast`` helper; empty groups are 0.
* ``segment_coo(src, index, out=None, dim_size=None, reduce="sum")``: reduction
  over *sorted* ``index`` along the first ``index.dim()-1``-th dimension; here the
  same as ``scatter`` (sorting is only a precondition for speed in the original).
* ``segment_csr(src, indptr, out=None, reduce="sum")``: reduction over the
  contiguous slices ``src[indptr[i]:indptr[i+1]]`` along dim ``indptr.dim()-1``.
"""

from __future__ import annotations

import torch

__version__ = "2.1.2+oracle-standin"

__all__ = ["scatter", "scatter_sum", "scatter_add", "scatter_mean", "segment_coo", "segment_csr"]


def _broadcast(src: torch.Tensor, other: torch.Tensor, dim: int) -> torch.Tensor:
    # Same as torch_scatter.utils.broadcast.
    if dim < 0:
        dim = other.dim() + dim
    if src.dim() == 1:
        for _ in range(0, dim):
            src = src.unsqueeze(0)
    for _ in range(src.dim(), other.dim()):
        src = src.unsqueeze(-1)
    src = src.expand(other.size())
    return src


def _out_size(src, index, dim, dim_size):
    size = list(src.size())
    if dim_size is not None:
        size[dim] = dim_size
    elif index.numel() == 0:
        size[dim] = 0
    else:
        size[dim] = int(index.max()) + 1
    return size


def scatter_sum(src, index, dim=-1, out=None, dim_size=None):
    if dim < 0:
        dim = src.dim() + dim
    index = _broadcast(index, src, dim)
    if out is None:
        out = torch.zeros(_out_size(src, index, dim, dim_size), dtype=src.dtype, device=src.device)
    return out.scatter_add_(dim, index, src)


scatter_add = scatter_sum


def scatter_mean(src, index, dim=-1, out=None, dim_size=None):
    out = scatter_sum(src, index, dim, out, dim_size)
    dim_size = out.size(dim)
    index_dim = dim
    if index_dim < 0:
        index_dim = index_dim + src.dim()
    if index.dim() <= index_dim:
        index_dim = index.dim() - 1
    ones = torch.ones(index.size(), dtype=src.dtype, device=src.device)
    count = scatter_sum(ones, index, index_dim, None, dim_size)
    count[count < 1] = 1
    count = _broadcast(count, out, dim)
    if out.is_floating_point():
        out.true_divide_(count)
    else:
        out.div_(count, rounding_mode="floor")
    return out


def _scatter_reduce(src, index, dim, out, dim_size, reduce):
    if dim < 0:
        dim = src.dim() + dim
    index = _broadcast(index, src, dim)
    if out is None:
        out = torch.zeros(_out_size(src, index, dim, dim_size), dtype=src.dtype, device=src.device)
    # include_self=False: empty groups keep the initial 0 like torch_scatter.
    return out.scatter_reduce_(dim, index, src, reduce=reduce, include_self=False)


def scatter(src, index, dim=-1, out=None, dim_size=None, reduce="sum"):
    if reduce in ("sum", "add"):
        return scatter_sum(src, index, dim, out, dim_size)
    if reduce == "mean":
        return scatter_mean(src, index, dim, out, dim_size)
    if reduce == "mul":
        return _scatter_reduce(src, index, dim, out, dim_size, "prod")
    if reduce == "min":
        return _scatter_reduce(src, index, dim, out, dim_size, "amin")
    if reduce == "max":
        return _scatter_reduce(src, index, dim, out, dim_size, "amax")
    raise ValueError(f"unsupported reduce {reduce!r}")


def segment_coo(src, index, out=None, dim_size=None, reduce="sum"):
    dim = index.dim() - 1
    if reduce not in ("sum", "add", "mean", "min", "max"):
        raise ValueError(f"unsupported reduce {reduce!r}")
    return scatter(src, index, dim=dim, out=out, dim_size=dim_size, reduce=reduce)


def segment_csr(src, indptr, out=None, reduce="sum"):
    if indptr.dim() != 1:
        raise NotImplementedError("stand-in supports 1-D indptr only")
    counts = indptr[1:] - indptr[:-1]
    n = counts.numel()
    seg = torch.repeat_interleave(torch.arange(n, device=src.device), counts)
    start = int(indptr[0]) if indptr.numel() else 0
    part = src.narrow(0, start, seg.numel())
    return scatter(part, seg, dim=0, out=out, dim_size=n, reduce=reduce)
