"""The structures of the loss ablation's label cache: `--per-cache` random structures of each given label cache
(tags and constraints kept), written as one extxyz for `distill label --hessian-rows 2` and `distill pairs`.

    PYTHONPATH=. python benchmarks/ablation_subset.py runs/labels-v6/long_relax runs/labels-v9/onpolicy2 \
        runs/labels-v8/all -o runs/abl/mix.extxyz --per-cache 600 --seed 0
    distill label runs/abl/mix.extxyz -c runs/abl/mix --hessian-rows 2 --threads 1
    distill pairs runs/abl/mix --threads 1
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase.io import write

from distill.labels import LabelCache
from distill.pairs import record_atoms


def subset(caches: Sequence[str], per_cache: int, seed: int) -> list:
    """`per_cache` structures drawn without replacement from each cache (in cache order), one generator."""
    rng = np.random.default_rng(seed)
    out = []
    for cache in caches:
        records = LabelCache(cache).records()
        if per_cache > len(records):
            raise ValueError(f"{cache} holds {len(records)} structures, fewer than --per-cache {per_cache}")
        out += [record_atoms(records[i]) for i in sorted(rng.choice(len(records), per_cache, replace=False))]
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("caches", nargs="+", help="label caches to draw from")
    parser.add_argument("-o", "--out", required=True, help="extxyz to write")
    parser.add_argument("--per-cache", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    structures = subset(args.caches, args.per_cache, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write(args.out, structures)
    print(f"{len(structures)} structures -> {args.out}")


if __name__ == "__main__":
    main()
