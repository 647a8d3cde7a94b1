"""Adsorbate-removal pairs: the teacher's interaction energies, and the `pair` loss that teaches them.

An adsorption energy is a difference, E(adslab) − E(slab) − Σ gas, so a student whose total-energy errors on an
adslab and on its slab do not cancel ranks sites badly even at a small per-atom error. For every adslab record of
a label cache (a structure with atoms tagged 2 and at least one atom not tagged 2) the *stripped* structure (the
same cell and positions without the tag-2 atoms) is labelled by the same teacher into a second cache; its energy
and forces are attached to the adslab record as `PAIR_ENERGY` / `PAIR_FORCES` at load time. In training
(`LossConfig.pair` > 0) every such record brings its stripped partner into the batch: the partner takes the usual
energy/force losses, and the pair loss is the MAE (eV) of the interaction energy E(adslab) − E(stripped slab)
against the teacher's.

Layout: the pair cache is an ordinary label cache (verified chunks, resumable, locked) plus `pairs.json`, written
atomically, naming the source cache's `structures_sha256`, its size and the source index of each pair structure;
`attach_pairs` refuses a pair cache made from other structures or by another teacher.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.constraints import FixAtoms

from calculators.files import atomic_write_json, read_json
from calculators.keys import (
    ATOM_ENERGIES,
    CELL,
    ENERGY,
    FIXED,
    FORCES,
    HESSIAN_INDEX,
    HESSIAN_ROWS,
    LABELLED_STRUCTURES,
    NODE_FEATURES,
    NUMBERS,
    PAIR_ENERGY,
    PAIR_FORCES,
    PAIR_INDEX,
    PBC,
    POSITIONS,
    TAGS,
)

PAIRS_FILE = "pairs.json"
PAIRS_VERSION = 1
ADSORBATE_TAG = 2


def has_partner(record: dict[str, torch.Tensor]) -> bool:
    """True for a record with adsorbate (tag-2) atoms and at least one other atom (an adslab, not a molecule)."""
    ads = record[TAGS] == ADSORBATE_TAG
    return bool(ads.any()) and not bool(ads.all())


def stripped_record(record: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The structure part of `record` without its tag-2 atoms (numbers, positions, cell, pbc, tags, fixed); with
    attached pair labels also its energy/forces (ENERGY = PAIR_ENERGY, FORCES = PAIR_FORCES)."""
    keep = record[TAGS] != ADSORBATE_TAG
    out = {NUMBERS: record[NUMBERS][keep], POSITIONS: record[POSITIONS][keep], CELL: record[CELL],
           PBC: record[PBC], TAGS: record[TAGS][keep], FIXED: record[FIXED][keep]}  # fmt: skip
    if PAIR_ENERGY in record:
        out[ENERGY] = record[PAIR_ENERGY]
        out[FORCES] = record[PAIR_FORCES]
    return out


def record_atoms(record: dict[str, torch.Tensor]) -> Atoms:
    """An `Atoms` of a record's structure (tags and FixAtoms kept)."""
    atoms = Atoms(
        numbers=record[NUMBERS].numpy(), positions=record[POSITIONS].numpy(), cell=record[CELL].numpy(),
        pbc=record[PBC].numpy(), tags=record[TAGS].numpy(),
    )  # fmt: skip
    fixed = np.flatnonzero(record[FIXED].numpy())
    if len(fixed):
        atoms.set_constraint(FixAtoms(indices=fixed))
    return atoms


def pair_dir(source: str | os.PathLike) -> Path:
    """Where the pair cache of label cache `source` lives: a sibling folder `<source>-pairs`."""
    p = Path(source)
    return p.parent / f"{p.name}-pairs"


def label_pairs(
    source: str | os.PathLike,
    teacher: Any,
    out_dir: str | os.PathLike | None = None,
    *,
    teacher_name: str | None = None,
    chunk_size: int = 16,
    progress: bool = False,
) -> Path:
    """Label the stripped partner of every adslab record of cache `source` with `teacher` (the teacher that
    labelled `source`) into `out_dir` (default `pair_dir(source)`); resumes like any label cache."""
    from calculators.fingerprint import model_fingerprint
    from distill.labels import LabelCache, LabelSettings, describe_teacher, label_structures, same_teacher

    src = LabelCache(source)
    manifest = src.manifest
    if teacher_name is not None:
        mine = model_fingerprint(teacher, teacher_name)
        if not same_teacher(mine, manifest.get("teacher")):
            raise ValueError(
                f"{src.path} was labelled by {describe_teacher(manifest.get('teacher'))}, not by "
                f"{describe_teacher(mine)}: pairs must come from the cache's own teacher"
            )
    records = src.records()
    indices = [i for i, r in enumerate(records) if has_partner(r)]
    structures = [record_atoms(stripped_record(records[i])) for i in indices]
    out = Path(out_dir) if out_dir is not None else pair_dir(source)
    settings = LabelSettings(hessian_rows=0, features=False, chunk_size=chunk_size, seed=0)
    label_structures(structures, teacher, out, settings, teacher_name=teacher_name, progress=progress)
    atomic_write_json(
        out / PAIRS_FILE,
        {"version": PAIRS_VERSION, "source": str(src.path), "source_structures_sha256": manifest["structures_sha256"],
         "source_num_structures": manifest["num_structures"], "indices": indices},
    )  # fmt: skip
    return out


def attach_pairs(records: Sequence[dict[str, torch.Tensor]], source_manifest: dict[str, Any],
                 pairs: str | os.PathLike) -> list[dict[str, torch.Tensor]]:  # fmt: skip
    """`records` (all of one source cache, in order) with the pair cache `pairs`' energies and forces attached
    to their adslab records (new dicts; the others, and those whose partner label is non-finite, unchanged).
    ValueError when the pair cache was made from other structures, by another teacher, or does not match the
    records atom for atom."""
    from distill.labels import LabelCache, describe_teacher, same_teacher

    path = Path(pairs)
    info_path = path / PAIRS_FILE
    if not info_path.is_file():
        raise FileNotFoundError(f"{path} is not a finished pair cache (no {PAIRS_FILE}); run `distill pairs` again")
    info = read_json(info_path)
    if not isinstance(info, dict) or info.get("version") != PAIRS_VERSION:
        raise ValueError(f"{info_path}: not a version-{PAIRS_VERSION} pairs file")
    if (info.get("source_structures_sha256") != source_manifest.get("structures_sha256")
            or info.get("source_num_structures") != len(records)):  # fmt: skip
        raise ValueError(f"{path} was made from other structures than these {len(records)} records")
    cache = LabelCache(path)
    if not same_teacher(cache.manifest.get("teacher"), source_manifest.get("teacher")):
        raise ValueError(
            f"{path} was labelled by {describe_teacher(cache.manifest.get('teacher'))}, its source by "
            f"{describe_teacher(source_manifest.get('teacher'))}"
        )
    partners = cache.records()
    indices = info["indices"]
    if len(partners) != len(indices):
        raise ValueError(f"{path}: {len(partners)} pair records for {len(indices)} indices")
    out = list(records)
    for i, p in zip(indices, partners, strict=True):
        rec = records[i]
        s = stripped_record(rec)
        if not (torch.equal(s[NUMBERS], p[NUMBERS]) and torch.allclose(s[POSITIONS], p[POSITIONS])):
            raise ValueError(f"{path}: pair {i} is not record {i} without its adsorbate")
        if bool(torch.isfinite(p[ENERGY]).all()) and bool(torch.isfinite(p[FORCES]).all()):
            out[i] = {**rec, PAIR_ENERGY: p[ENERGY], PAIR_FORCES: p[FORCES]}  # never a non-finite label
    return out


def records_with_pairs(cache: str | os.PathLike) -> list[dict[str, torch.Tensor]]:
    """The verified records of label cache `cache`, with pair labels attached when `pair_dir(cache)` holds a
    finished pair cache (`label_pairs`); without one, the records as they are."""
    from distill.labels import LabelCache

    src = LabelCache(cache)
    records = src.records()
    pairs = pair_dir(src.path)
    if (pairs / PAIRS_FILE).is_file():
        return attach_pairs(records, src.manifest, pairs)
    return records


def with_partners(records: Sequence[dict[str, torch.Tensor]]) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """`records` followed by the stripped partner of each record carrying pair labels, and the (P, 2) int64
    indices [adslab, partner] into that list. Partners carry ENERGY/FORCES only (no atomic energies, features or
    Hessian rows): collate with `collate_with_partners`, which keeps those labels for `records`."""
    extra, index = [], []
    for i, r in enumerate(records):
        if PAIR_ENERGY in r:
            index.append((i, len(records) + len(extra)))
            extra.append(stripped_record(r))
    return list(records) + extra, torch.tensor(index, dtype=torch.long).reshape(-1, 2)


def collate_with_partners(
    records: Sequence[dict[str, torch.Tensor]], dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[Any, dict[str, torch.Tensor]]:
    """(AtomsBatch, labels) of `records` followed by their stripped partners (`with_partners`).

    Energies and forces cover the whole batch; `PAIR_INDEX` names the pairs. The per-structure labels the
    partners lack (atom energies, teacher node features, Hessian rows) are collated from `records` alone, so
    they cover the first `LABELLED_STRUCTURES` structures of the batch and the losses that use them stay on."""
    from distill.labels import collate, collate_labels

    everything, index = with_partners(records)
    batch, labels = collate(everything, dtype=dtype, device=device)
    if len(everything) > len(records):
        own = collate_labels(records, dtype=dtype, device=device)
        for key in (ATOM_ENERGIES, NODE_FEATURES, HESSIAN_INDEX, HESSIAN_ROWS):
            if key in own:
                labels[key] = own[key]
    labels[PAIR_INDEX] = index.to(device)
    labels[LABELLED_STRUCTURES] = torch.tensor(len(records), device=device)
    return batch, labels


__all__ = [
    "PAIRS_FILE", "attach_pairs", "collate_with_partners", "has_partner", "label_pairs", "pair_dir",
    "record_atoms", "records_with_pairs", "stripped_record", "with_partners",
]  # fmt: skip
