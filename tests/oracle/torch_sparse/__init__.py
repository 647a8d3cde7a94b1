"""Pure-torch stand-in for the parts of ``torch_sparse`` that fairchem's GemNet-OC uses.

Only importable inside the fairchem oracle subprocess.  Implements a COO/CSR
``SparseTensor`` that (like torch_sparse 0.6) keeps duplicate (row, col) entries:

* ``SparseTensor(row=, col=, value=, sparse_sizes=)`` -- entries are sorted by
  ``row * ncols + col`` only if not already non-decreasing (torch_sparse uses
  ``argsort``; we use a *stable* argsort, so duplicate entries keep their input
  order; torch_sparse's unstable sort may order duplicates differently, which
  only changes float summation order downstream);
* ``adj[idx]`` with a 1-D LongTensor: row selection (``index_select`` dim 0),
  output row ``i`` holds the entries of input row ``idx[i]`` in storage order;
  ``adj[mask]`` with a bool tensor: row mask;
* ``.storage.row()/.col()/.value()/.rowptr()/.rowcount()``, ``.coo()``,
  ``.csr()``, ``.sparse_sizes()``, ``.sparse_size(dim)``, ``.nnz()``,
  ``.set_value_(value, layout="coo"|"csr")``, ``.set_value(...)``.
"""

from __future__ import annotations

import torch

__version__ = "0.6.18+oracle-standin"

__all__ = ["SparseStorage", "SparseTensor"]


class SparseStorage:
    def __init__(self, row, col, value, sparse_sizes, rowcount=None):
        self._row = row
        self._col = col
        self._value = value
        self._sparse_sizes = (int(sparse_sizes[0]), int(sparse_sizes[1]))
        self._rowcount = rowcount

    def row(self):
        return self._row

    def col(self):
        return self._col

    def value(self):
        return self._value

    def has_value(self):
        return self._value is not None

    def sparse_sizes(self):
        return self._sparse_sizes

    def sparse_size(self, dim):
        return self._sparse_sizes[dim]

    def rowcount(self):
        if self._rowcount is None:
            self._rowcount = torch.bincount(self._row, minlength=self._sparse_sizes[0])
        return self._rowcount

    def rowptr(self):
        rc = self.rowcount()
        out = rc.new_zeros(rc.numel() + 1)
        torch.cumsum(rc, 0, out=out[1:])
        return out

    def set_value_(self, value, layout=None):
        # Storage is always in row-major (CSR == COO) order, so both layouts agree.
        if value is not None:
            if layout not in (None, "coo", "csr"):
                raise ValueError(layout)
            if value.size(0) != self._col.numel():
                raise ValueError("value has wrong number of entries")
        self._value = value
        return self


class SparseTensor:
    def __init__(
        self,
        row=None,
        rowptr=None,
        col=None,
        value=None,
        sparse_sizes=None,
        is_sorted=False,
        trust_data=False,
    ):
        if col is None:
            raise ValueError("col is required")
        if row is None:
            if rowptr is None:
                raise ValueError("row or rowptr is required")
            row = torch.repeat_interleave(torch.arange(rowptr.numel() - 1, device=col.device), rowptr[1:] - rowptr[:-1])
        if sparse_sizes is None or sparse_sizes[0] is None or sparse_sizes[1] is None:
            m = int(row.max()) + 1 if row.numel() else 0
            n = int(col.max()) + 1 if col.numel() else 0
            sparse_sizes = (
                m if sparse_sizes is None or sparse_sizes[0] is None else sparse_sizes[0],
                n if sparse_sizes is None or sparse_sizes[1] is None else sparse_sizes[1],
            )
        row = row.long() if row.dtype != torch.long else row
        col = col.long() if col.dtype != torch.long else col
        if not is_sorted and row.numel() > 1:
            key = row * int(sparse_sizes[1]) + col
            if bool((key[1:] < key[:-1]).any()):
                perm = torch.argsort(key, stable=True)
                row = row[perm]
                col = col[perm]
                if value is not None:
                    value = value[perm]
        self.storage = SparseStorage(row, col, value, sparse_sizes)

    @classmethod
    def from_storage(cls, storage):
        out = cls.__new__(cls)
        out.storage = storage
        return out

    # accessors -------------------------------------------------------------
    def coo(self):
        s = self.storage
        return s.row(), s.col(), s.value()

    def csr(self):
        s = self.storage
        return s.rowptr(), s.col(), s.value()

    def sparse_sizes(self):
        return self.storage.sparse_sizes()

    def sparse_size(self, dim):
        return self.storage.sparse_size(dim)

    def sizes(self):
        return list(self.storage.sparse_sizes())

    def size(self, dim):
        return self.storage.sparse_size(dim)

    def nnz(self):
        return self.storage.col().numel()

    def has_value(self):
        return self.storage.has_value()

    def set_value_(self, value, layout=None):
        self.storage.set_value_(value, layout)
        return self

    def set_value(self, value, layout=None):
        s = self.storage
        new = SparseStorage(s.row(), s.col(), None, s.sparse_sizes(), s._rowcount)
        new.set_value_(value, layout)
        return SparseTensor.from_storage(new)

    # row selection ---------------------------------------------------------
    def index_select_rows(self, idx):
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        idx = idx.long()
        old_rowptr, col, value = self.csr()
        rowcount = self.storage.rowcount()[idx]
        new_rowptr = col.new_zeros(idx.numel() + 1)
        torch.cumsum(rowcount, 0, out=new_rowptr[1:])
        row = torch.arange(idx.numel(), device=col.device).repeat_interleave(rowcount)
        perm = torch.arange(row.numel(), device=col.device)
        perm = perm + torch.repeat_interleave(old_rowptr[idx] - new_rowptr[:-1], rowcount)
        col = col[perm]
        if value is not None:
            value = value[perm]
        storage = SparseStorage(row, col, value, (idx.numel(), self.sparse_size(1)), rowcount=rowcount)
        return SparseTensor.from_storage(storage)

    def __getitem__(self, index):
        if isinstance(index, tuple):
            if len(index) != 1:
                raise NotImplementedError("stand-in supports row indexing only")
            index = index[0]
        if torch.is_tensor(index) and index.dim() == 1 and index.dtype in (torch.long, torch.int, torch.bool):
            return self.index_select_rows(index)
        raise NotImplementedError(f"stand-in does not support index {type(index)}")

    def __repr__(self):
        return f"SparseTensor(sizes={self.sparse_sizes()}, nnz={self.nnz()}) [oracle stand-in]"
