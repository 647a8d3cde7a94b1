"""Brute-force checks of the torch_scatter / torch_sparse stand-ins.

Run in the oracle environment (PYTHONPATH = private site + tests/oracle)::

    python tests/oracle/check_standins.py

Checks the stand-ins' primitives against explicit loops and fairchem's
GemNet-OC index builders (get_triplets, get_mixed_triplets, get_quadruplets),
which are the only users of SparseTensor, against a brute-force enumeration on
random multigraphs with duplicate (source, target) pairs (periodic images).
Exits non-zero on the first mismatch.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))

import torch  # noqa: E402


def _check_primitives(gen):
    from torch_scatter import scatter, segment_coo, segment_csr
    from torch_sparse import SparseTensor

    idx = torch.sort(torch.randint(0, 7, (40,), generator=gen)).values
    src = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    ref = torch.zeros(9, 3, dtype=torch.float64)
    cnt = torch.zeros(9, dtype=torch.float64)
    for i, j in enumerate(idx.tolist()):
        ref[j] += src[i]
        cnt[j] += 1
    torch.testing.assert_close(scatter(src, idx, dim=0, dim_size=9, reduce="sum"), ref)
    torch.testing.assert_close(scatter(src, idx, dim=0, dim_size=9, reduce="add"), ref)
    mean = ref / cnt.clamp(min=1)[:, None]
    torch.testing.assert_close(scatter(src, idx, dim=0, dim_size=9, reduce="mean"), mean)
    torch.testing.assert_close(scatter(src[:, :, None], idx, dim=0, dim_size=9, reduce="add")[:, :, 0], ref)
    ones = idx.new_ones(1).expand_as(idx)
    assert segment_coo(ones, idx, dim_size=9).tolist() == cnt.long().tolist()
    assert segment_coo(ones, idx).numel() == int(idx.max()) + 1
    indptr = torch.tensor([0, 0, 5, 9, 9, 20, 40])
    vals = torch.randint(0, 5, (40,), generator=gen)
    exp = [int(vals[a:b].sum()) for a, b in zip(indptr[:-1].tolist(), indptr[1:].tolist(), strict=True)]
    assert segment_csr(vals, indptr, reduce="sum").tolist() == exp
    assert segment_csr(vals[:9], indptr[:4]).tolist() == exp[:3]

    row = torch.randint(0, 5, (30,), generator=gen)
    col = torch.randint(0, 5, (30,), generator=gen)
    val = torch.arange(30)
    adj = SparseTensor(row=row, col=col, value=val, sparse_sizes=(5, 5))
    r, c, v = adj.coo()
    entries = sorted(zip(row.tolist(), col.tolist(), val.tolist(), strict=True))
    assert list(zip(r.tolist(), c.tolist(), v.tolist(), strict=True)) == entries  # duplicates kept
    sel = torch.tensor([3, 0, 3, 4])
    sub = adj[sel]
    got = list(zip(sub.storage.row().tolist(), sub.storage.col().tolist(), sub.storage.value().tolist(), strict=True))
    exp = [(i, cc, vv) for i, s in enumerate(sel.tolist()) for (rr, cc, vv) in entries if rr == s]
    assert got == exp and sub.sparse_sizes() == (4, 5)


def _random_graph(gen, num_atoms, num_edges):
    s = torch.randint(0, num_atoms, (num_edges,), generator=gen)
    t = torch.randint(0, num_atoms, (num_edges,), generator=gen)
    off = torch.randint(-1, 2, (num_edges, 3), generator=gen)
    off[(s == t) & (off == 0).all(1)] = torch.tensor([1, 0, 0])
    # drop exact duplicates (same s, t, offset)
    seen, keep = set(), []
    for i, key in enumerate(zip(s.tolist(), t.tolist(), map(tuple, off.tolist()), strict=True)):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    keep = torch.tensor(keep)
    return {"edge_index": torch.stack([s[keep], t[keep]]), "cell_offset": off[keep].float()}


def _check_indices(gen):
    from fairchem.core.models.gemnet_oc.interaction_indices import (
        get_mixed_triplets,
        get_quadruplets,
        get_triplets,
    )

    n = 6
    for _ in range(3):
        g = _random_graph(gen, n, 50)
        q = _random_graph(gen, n, 25)
        s, t = g["edge_index"].tolist()
        co = g["cell_offset"].long().tolist()
        qs, qt = q["edge_index"].tolist()
        qco = q["cell_offset"].long().tolist()
        ne = len(s)

        # triplets b->a<-c: same target, different edge; out ascending, in by (source, id)
        idx = get_triplets(g, n)
        exp = [
            (ei, eo)
            for eo in range(ne)
            for ei in sorted((e for e in range(ne) if t[e] == t[eo]), key=lambda e: (s[e], e))
            if ei != eo
        ]
        assert list(zip(idx["in"].tolist(), idx["out"].tolist(), strict=True)) == exp, "get_triplets"

        # mixed triplets, both directions
        for to_out in (False, True):
            idx = get_mixed_triplets(q, g, n, to_outedge=to_out, return_agg_idx=True)
            exp = []
            for eo in range(ne):
                row = s[eo] if to_out else t[eo]
                atom_out = t[eo] if to_out else s[eo]
                for ei in sorted((e for e in range(len(qs)) if qt[e] == row), key=lambda e: (qs[e], e)):
                    sign = 1 if to_out else -1
                    csum = [a + sign * b for a, b in zip(co[eo], qco[ei], strict=True)]
                    if qs[ei] != atom_out or any(csum):
                        exp.append((ei, eo))
            got = list(zip(idx["in"].tolist(), idx["out"].tolist(), strict=True))
            assert got == exp, f"get_mixed_triplets(to_outedge={to_out})"
            agg = idx["out_agg"].tolist()
            exp_agg, last, k = [], None, 0
            for _, eo in exp:
                k = k + 1 if eo == last else 0
                last = eo
                exp_agg.append(k)
            assert agg == exp_agg, "out_agg"

        # quadruplets d->b->a<-c (d->b, c->a main; b->a qint)
        idx = get_quadruplets(g, q, n)
        e_db = idx["triplet_in"]["in"][idx["trip_in_to_quad"]].tolist()
        e_ba = idx["triplet_out"]["in"][idx["trip_out_to_quad"]].tolist()
        got = Counter(zip(idx["out"].tolist(), e_ba, e_db, strict=True))
        exp = Counter()
        for ca in range(ne):
            for ba in range(len(qs)):
                if qt[ba] != t[ca]:
                    continue
                if qs[ba] == s[ca] and not any(a - b for a, b in zip(co[ca], qco[ba], strict=True)):
                    continue
                for db in range(ne):
                    if t[db] != qs[ba]:
                        continue
                    if s[db] == qt[ba] and not any(a + b for a, b in zip(co[db], qco[ba], strict=True)):
                        continue
                    cd = [a + b - c for a, b, c in zip(co[db], qco[ba], co[ca], strict=True)]
                    if s[db] == s[ca] and not any(cd):
                        continue
                    exp[(ca, ba, db)] += 1
        assert got == exp, "get_quadruplets"
        assert idx["out"].tolist() == sorted(idx["out"].tolist())


def main() -> int:
    gen = torch.Generator().manual_seed(0)
    _check_primitives(gen)
    _check_indices(gen)
    print("stand-in checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
