"""Teacher-label cache on disk: energies, forces, per-atom energies, atom embeddings and sampled Hessian rows.

Layout of a cache directory:
    manifest.json       teacher fingerprint (name, class, package versions, sha256 of its weights), label
                        settings, number of structures and a hash of the structures; a cache refuses to be
                        extended with another teacher, other settings or other structures (`CacheMismatchError`).
                        "chunks": {"00000": {"sha256": ..., "structures": n}, ...} records each chunk's checksum
                        once it is written (caches written before checksums existed have none: their chunks are
                        verified by loading them).
    chunk_00000.pt ...  one file per `chunk_size` structures, written atomically (temporary file + os.replace):
                        {"indices": [int], "records": [{name: tensor}]}; loadable with torch.load(weights_only=True).
    quarantine/         chunks that failed verification, moved aside (never deleted).
    .lock               held by the `label_structures` call writing into the cache.

A killed labelling run resumes where it stopped: verified chunks are skipped, a chunk that fails verification
(checksum, truncation, wrong indices) is quarantined and labelled again. Reading (`LabelCache.records`) verifies
every chunk and refuses an incomplete cache (`IncompleteCacheError`) or a corrupt chunk (`CorruptCacheError`).
Record tensors (per structure, n atoms, s Hessian rows): numbers (n,), positions (n, 3) Å, cell (3, 3) Å,
pbc (3,), tags (n,), fixed (n,), energy () eV, forces (n, 3) eV/Å, atom_energies (n,) eV,
node_features (n, F), hessian_index (s,) flat rows 3*atom+xyz, hessian_rows (s, 3n) eV/Å² (= −∂F_r/∂x),
and optional dft_energy (), dft_forces (n, 3) when the input structures carry DFT results.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms

from calculators.batch import AtomsBatch, UnphysicalStructureWarning, fixed_mask, unphysical_reason, validate_atoms
from calculators.batched import model_place
from calculators.files import (
    CacheRecoveredWarning,
    atomic_torch_save,
    atomic_write_json,
    exclusive_lock,
    quarantine,
    read_json,
)
from calculators.fingerprint import model_fingerprint as teacher_fingerprint
from calculators.hashing import structures_sha256 as structures_hash
from calculators.hessian import hessian_rows
from calculators.keys import (
    ATOM_ENERGIES,
    CELL,
    DFT_ENERGY,
    DFT_FORCES,
    ENERGY,
    FIXED,
    FORCES,
    HESSIAN_INDEX,
    HESSIAN_ROWS,
    NODE_FEATURES,
    NUMBERS,
    PBC,
    POSITIONS,
    TAGS,
)
from calculators.tags import tags_for

MANIFEST = "manifest.json"
CACHE_VERSION = 1


class CacheMismatchError(RuntimeError):
    """The cache on disk was made by another teacher, with other settings or for other structures."""


class IncompleteCacheError(ValueError):
    """A label cache with chunks still missing (a labelling run was stopped): finish it with `distill label`."""


class CorruptCacheError(ValueError):
    """A label chunk that fails verification (checksum, truncated file, wrong content); the message names it."""


class LabellingError(RuntimeError):
    """Chunks whose labelling task failed on the Dask cluster (the others are cached)."""


class CacheRepairedWarning(CacheRecoveredWarning):
    """A corrupt label chunk was moved to quarantine and is labelled again."""


def same_teacher(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """True when two teacher fingerprints describe the same model (class, package versions, weights), whatever
    name each was loaded under ("teacher.pt" and "/abs/teacher.pt" are one teacher)."""
    if a is None or b is None:
        return a is b
    return {k: v for k, v in a.items() if k != "name"} == {k: v for k, v in b.items() if k != "name"}


def describe_teacher(fp: dict[str, Any] | None) -> str:
    """One line naming a teacher fingerprint (name and start of its weights' sha256)."""
    if fp is None:
        return "an unknown teacher"
    sha = str(fp.get("weights_sha256", "?"))[:12]
    return f"{fp.get('name', '?')} ({fp.get('class', '?')}, weights sha256 {sha}…)"


@dataclass
class LabelSettings:
    """What to label. hessian_rows: rows per structure (0: none); chunk_size: structures per chunk file."""

    hessian_rows: int = 2
    hessian_method: str = "auto"
    features: bool = True
    chunk_size: int = 16
    seed: int = 0
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_hessian_rows(atoms: Atoms, s: int, seed: int, index: int) -> np.ndarray:
    """`s` distinct flat rows (3*atom+xyz) of free atoms of structure `index`, reproducible from (seed, index)."""
    rng = np.random.default_rng([int(seed), int(index), 7])
    free = np.where(~fixed_mask(atoms))[0]
    if free.size == 0:
        free = np.arange(len(atoms))
    flat = (3 * free[:, None] + np.arange(3)[None, :]).reshape(-1)
    return np.sort(rng.choice(flat, size=min(s, flat.size), replace=False)).astype(np.int64)


def _dft_targets(atoms: Atoms) -> dict[str, torch.Tensor]:
    """DFT energy/forces from atoms.info["dft_energy"] / atoms.arrays["dft_forces"] (or a single-point calc)."""
    out: dict[str, torch.Tensor] = {}
    if DFT_ENERGY in atoms.info:
        out[DFT_ENERGY] = torch.tensor(float(atoms.info[DFT_ENERGY]), dtype=torch.float64)
    if DFT_FORCES in atoms.arrays:
        out[DFT_FORCES] = torch.as_tensor(np.asarray(atoms.arrays[DFT_FORCES]), dtype=torch.float64)
    return out


class LabelCache:
    """Read access to a label cache directory (see module docstring). `repaired` lists the chunks that the last
    `label_structures` call quarantined and labelled again (chunk, reason, where the bad file went)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.repaired: list[tuple[int, str, Path]] = []

    @property
    def manifest(self) -> dict[str, Any]:
        p = self.path / MANIFEST
        if not p.is_file():
            what = "does not exist" if not self.path.exists() else f"is not a label cache (no {MANIFEST})"
            raise FileNotFoundError(f"{self.path} {what}; make one with `distill label`")
        manifest = read_json(p)
        if not isinstance(manifest, dict) or not {"teacher", "settings", "num_structures"} <= set(manifest):
            raise CorruptCacheError(f"{p} is not a label-cache manifest")
        return manifest

    @property
    def num_chunks(self) -> int:
        """Chunks of a complete cache."""
        m = self.manifest
        return -(-m["num_structures"] // m["settings"]["chunk_size"])

    def chunk_range(self, k: int, manifest: dict[str, Any] | None = None) -> range:
        """Structure indices of chunk k."""
        m = manifest or self.manifest
        size = m["settings"]["chunk_size"]
        return range(k * size, min(m["num_structures"], (k + 1) * size))

    def _load_chunk(self, k: int, manifest: dict[str, Any]) -> dict[str, Any]:
        """Chunk k verified: its checksum when the manifest records one, else that it loads; and that it holds
        exactly the records of its structures. `CorruptCacheError` naming the file otherwise."""
        path = self.chunk_path(k)
        data = path.read_bytes()
        recorded = manifest.get("chunks", {}).get(f"{k:05d}", {}).get("sha256")
        if recorded is not None and hashlib.sha256(data).hexdigest() != recorded:
            raise CorruptCacheError(
                f"{path}: sha256 {hashlib.sha256(data).hexdigest()[:16]}… does not match the manifest's "
                f"{recorded[:16]}… (truncated or changed, {len(data)} bytes)"
            )
        try:
            chunk = torch.load(io.BytesIO(data), weights_only=True)
        except Exception as err:  # truncated zip, not a torch file, pickled objects
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise CorruptCacheError(f"{path}: cannot be loaded ({type(err).__name__}: {first[:200]})") from None
        expected = list(self.chunk_range(k, manifest))
        if (
            not isinstance(chunk, dict)
            or list(chunk.get("indices", [])) != expected
            or len(chunk.get("records", [])) != len(expected)
        ):
            raise CorruptCacheError(f"{path}: does not hold the records of structures {expected[0]}–{expected[-1]}")
        return chunk

    def check_chunk(self, k: int, manifest: dict[str, Any] | None = None) -> str | None:
        """Why chunk k fails verification, or None when it is fine."""
        try:
            self._load_chunk(k, manifest or self.manifest)
        except CorruptCacheError as err:
            return str(err)
        return None

    @property
    def provenance(self) -> dict[str, Any]:
        """What a student trained on this cache records about its labels: the teacher's fingerprint and the
        label settings (checkpoint metadata keys "teacher" and "label_settings")."""
        m = self.manifest
        return {"teacher": m["teacher"], "label_settings": m["settings"]}

    def chunk_path(self, k: int) -> Path:
        return self.path / f"chunk_{k:05d}.pt"

    def done_chunks(self) -> list[int]:
        """Chunks present on disk (not yet verified)."""
        return sorted(int(p.stem.split("_")[1]) for p in self.path.glob("chunk_*.pt"))

    def missing_chunks(self) -> list[int]:
        """Chunks a complete cache has but this one lacks."""
        present = set(self.done_chunks())
        return [k for k in range(self.num_chunks) if k not in present]

    @property
    def complete(self) -> bool:
        """Every chunk present and verified."""
        m = self.manifest
        return not self.missing_chunks() and all(self.check_chunk(k, m) is None for k in range(self.num_chunks))

    def records(self, *, allow_incomplete: bool = False) -> list[dict[str, torch.Tensor]]:
        """All cached records in structure order, every chunk verified (`CorruptCacheError` naming a bad one).
        A cache with missing chunks raises `IncompleteCacheError` (training on part of a labelling run would be
        silent) unless `allow_incomplete`, which returns the records of the chunks present."""
        m = self.manifest
        missing = self.missing_chunks()
        if missing and not allow_incomplete:
            raise IncompleteCacheError(
                f"{self.path} is incomplete: {self.num_chunks - len(missing)} of {self.num_chunks} chunks are "
                f"labelled (missing: {_ranges(missing)}); finish it by running the same `distill label` command again"
            )
        out: list[tuple[int, dict]] = []
        for k in self.done_chunks():
            if k >= self.num_chunks:
                continue
            chunk = self._load_chunk(k, m)
            out.extend(zip(chunk["indices"], chunk["records"], strict=True))
        return [r for _, r in sorted(out, key=lambda t: t[0])]

    def __len__(self) -> int:
        return len(self.records(allow_incomplete=True))


def _ranges(indices: Sequence[int]) -> str:
    """[0, 1, 2, 5] → "0-2, 5"."""
    out: list[str] = []
    for k in indices:
        if out and out[-1].split("-")[-1] == str(k - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{k}"
        else:
            out.append(str(k))
    return ", ".join(out)


def label_structures(
    structures: Sequence[Atoms],
    teacher: Any,
    cache_dir: str | os.PathLike,
    settings: LabelSettings | None = None,
    *,
    teacher_name: str | None = None,
    progress: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    executor: Any = None,
    device: str = "cpu",
    hash_decimals: int = 8,
) -> LabelCache:
    """Label `structures` with `teacher` (an `AtomisticModel`) into `cache_dir`, resuming from verified chunks;
    chunks that fail verification are quarantined and labelled again (`cache.repaired`, a
    `CacheRepairedWarning` each). Each chunk's sha256 goes into the manifest as it is written.

    Raises `CacheMismatchError` if the directory holds labels from another teacher, settings or structure set,
    and `calculators.files.LockedError` while another process labels into it.
    `on_chunk(k)` is called after chunk k is written (progress hooks, tests). `hash_decimals`: the rounding (Å)
    of the structure-set hash in the manifest (`calculators.hashing.structures_sha256`).

    `executor`: a `calculators.distributed.DaskExecutor` (default: the one of an enclosing `dask_executor`
    context): one task per chunk, the teacher loaded on each worker from `teacher_name` (a registry name or
    checkpoint path) on `device`; records come back to this process, which alone writes the cache. A chunk whose
    task fails is not retried: the others are written, then `LabellingError` names it. Without a loadable
    `teacher_name` the chunks are labelled here (a warning says so).
    """
    settings = settings or LabelSettings()
    if settings.chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {settings.chunk_size}")
    if settings.hessian_method not in ("auto", "autograd", "fd"):
        raise ValueError(f"hessian_method must be auto, autograd or fd, got {settings.hessian_method!r}")
    cache = LabelCache(cache_dir)
    cache.path.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(cache.path / ".lock", "another `distill label`"):
        return _label(
            structures, teacher, cache, settings, teacher_name, progress, on_chunk, executor, device, hash_decimals
        )


def _warn_unphysical(indices: Sequence[int], structures: Sequence[Atoms]) -> None:
    """One `UnphysicalStructureWarning` for the structures (of `indices`: those still to be labelled) whose
    atoms overlap. They are labelled all the same, so the cache keeps one record per structure; `distill train`
    leaves out the absurd labels they get. Structures that fail validation are skipped here (the labelling
    refuses them with their reason)."""
    reasons = []
    for i in indices:
        try:
            validate_atoms(structures[i], i)
            reason = unphysical_reason(structures[i])
        except Exception:  # noqa: BLE001 - an unusable structure is refused by the labelling itself
            continue
        if reason is not None:
            reasons.append(f"structure {i}: {reason}")
    if reasons:
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        warnings.warn(
            f"{len(reasons)} of {len(indices)} structures to label are unphysical, their labels mean nothing: "
            f"{reasons[0]}{more}",
            UnphysicalStructureWarning,
            stacklevel=4,
        )


def _label(
    structures,
    teacher,
    cache: LabelCache,
    settings: LabelSettings,
    teacher_name,
    progress,
    on_chunk,
    executor,
    device,
    hash_decimals: int = 8,
):
    from calculators.distributed import current

    executor = executor if executor is not None else current()
    teacher_spec = None
    if executor is not None:
        from calculators.loading import resolve_source

        try:
            src = resolve_source(teacher_name) if teacher_name else None
        except (FileNotFoundError, KeyError, ValueError):
            src = None
        if src is None:
            warnings.warn(f"teacher {teacher_name!r} cannot be loaded on Dask workers; labelled here", stacklevel=3)
            executor = None
        else:
            teacher_spec = str(src.path.resolve()) if src.entry is None else str(teacher_name)
    manifest = {
        "version": CACHE_VERSION,
        "teacher": teacher_fingerprint(teacher, teacher_name),
        "settings": settings.to_dict(),
        "num_structures": len(structures),
        "structures_sha256": structures_hash(structures, hash_decimals),
    }
    mpath = cache.path / MANIFEST
    if mpath.is_file():
        old = read_json(mpath)
        for key in ("version", "teacher", "settings", "num_structures", "structures_sha256"):
            if old.get(key) != manifest[key]:
                raise CacheMismatchError(
                    f"{cache.path} holds labels made with a different {key}: {old.get(key)!r} != {manifest[key]!r}; "
                    "use another cache directory (or delete this one) instead of mixing labels"
                )
        manifest = old
    else:
        atomic_write_json(mpath, manifest, indent=2, sort_keys=True)
    n_chunks = -(-len(structures) // settings.chunk_size)
    sums = manifest.setdefault("chunks", {})
    done = set()
    for k in cache.done_chunks():
        if k >= n_chunks:
            continue
        reason = cache.check_chunk(k, manifest)
        if reason is None:
            done.add(k)
            if f"{k:05d}" not in sums:  # a chunk from before checksums, or written just before a kill
                sums[f"{k:05d}"] = _chunk_entry(cache.chunk_path(k), len(cache.chunk_range(k, manifest)))
            continue
        moved = quarantine(cache.chunk_path(k))
        sums.pop(f"{k:05d}", None)
        cache.repaired.append((k, reason, moved))
        warnings.warn(f"{reason}; moved to {moved} and labelled again", CacheRepairedWarning, stacklevel=3)
    atomic_write_json(mpath, manifest, indent=2, sort_keys=True)
    todo = [k for k in range(n_chunks) if k not in done]
    size = settings.chunk_size
    _warn_unphysical([i for k in todo for i in range(k * size, min((k + 1) * size, len(structures)))], structures)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_chunks, initial=n_chunks - len(todo), desc="labelling chunks", unit="chunk")

    def write(k: int, records: list[dict[str, torch.Tensor]]) -> None:
        lo, hi = k * settings.chunk_size, min(len(structures), (k + 1) * settings.chunk_size)
        atomic_torch_save({"indices": list(range(lo, hi)), "records": records}, cache.chunk_path(k))
        sums[f"{k:05d}"] = _chunk_entry(cache.chunk_path(k), hi - lo)
        atomic_write_json(mpath, manifest, indent=2, sort_keys=True)
        if bar is not None:
            bar.update(1)
        if on_chunk is not None:
            on_chunk(k)

    def bounds(k: int) -> tuple[int, int]:
        return k * settings.chunk_size, min(len(structures), (k + 1) * settings.chunk_size)

    if executor is None:
        for k in todo:
            lo, hi = bounds(k)
            write(k, label_chunk(teacher, structures[lo:hi], lo, settings))
    else:  # one task per chunk; records come back here and only this process writes the cache
        remote = {"spec": teacher_spec, "name": teacher_name, "device": device, "fingerprint": manifest["teacher"]}
        args = [(remote, list(structures[bounds(k)[0] : bounds(k)[1]]), bounds(k)[0], settings) for k in todo]
        failed: list[str] = []
        for i, records, err in executor.run(_remote_chunk, args, progress=False):
            if err is not None:  # not retried: reported after the other chunks are written
                failed.append(f"chunk {todo[i]}: {type(err).__name__}: {err}")
                continue
            write(todo[i], records)
        if failed:
            if bar is not None:
                bar.close()
            raise LabellingError(
                f"{len(failed)} chunk(s) could not be labelled ({'; '.join(failed[:3])}); the other chunks are "
                "cached, the same command labels the missing ones again"
            )
    if bar is not None:
        bar.close()
    return cache


def label_chunk(teacher: Any, sub: Sequence[Atoms], lo: int, settings: LabelSettings) -> list[dict[str, torch.Tensor]]:
    """The records of structures `sub` (indices lo, lo + 1, ...) labelled by `teacher`. Pure: writes nothing
    (the in-process path and Dask workers share it)."""
    dtype = getattr(torch, settings.dtype)
    sub = list(sub)
    tags = [tags_for(a) for a in sub]
    batch = AtomsBatch.from_atoms(sub, dtype=dtype, tags=tags, device=model_place(teacher)[0])  # a GPU teacher too
    out = teacher.predict(batch, forces=True, features=settings.features)
    rows = None
    if settings.hessian_rows > 0:
        idx = [sample_hessian_rows(a, settings.hessian_rows, settings.seed, lo + i) for i, a in enumerate(sub)]
        s = min(len(r) for r in idx)
        rows = torch.as_tensor(np.stack([r[:s] for r in idx]))
        hrows = hessian_rows(teacher, batch, rows, method=settings.hessian_method)
    records = []
    for i, atoms in enumerate(sub):
        sl = slice(int(batch.natoms[:i].sum()), int(batch.natoms[: i + 1].sum()))
        n = len(atoms)
        rec = {
            NUMBERS: torch.as_tensor(atoms.numbers, dtype=torch.long),
            POSITIONS: torch.as_tensor(atoms.positions, dtype=torch.float64),
            CELL: torch.as_tensor(np.asarray(atoms.cell[:]), dtype=torch.float64),
            PBC: torch.as_tensor(np.asarray(atoms.pbc, dtype=bool)),
            TAGS: torch.as_tensor(tags[i], dtype=torch.long),
            FIXED: torch.as_tensor(fixed_mask(atoms)),
            ENERGY: out[ENERGY][i].detach().cpu(),
            FORCES: out[FORCES][sl].detach().cpu(),
            ATOM_ENERGIES: out[ATOM_ENERGIES][sl].detach().cpu(),
        }
        if settings.features:
            rec[NODE_FEATURES] = out[NODE_FEATURES][sl].detach().cpu()
        if rows is not None:
            rec[HESSIAN_INDEX] = rows[i].clone()
            rec[HESSIAN_ROWS] = hrows[i, :, : 3 * n].detach().cpu().clone()
        rec.update(_dft_targets(atoms))
        records.append(rec)
    return records


def _remote_chunk(
    remote: dict[str, Any], sub: list[Atoms], lo: int, settings: LabelSettings
) -> list[dict[str, torch.Tensor]]:
    """A Dask task: the records of one chunk, the teacher loaded once per worker and checked to be the one the
    cache's manifest names."""
    from calculators.distributed import worker_cached
    from calculators.loading import load_model

    key = ("label-teacher", remote["spec"], remote["device"])
    teacher = worker_cached(key, lambda: load_model(remote["spec"], device=remote["device"]))
    if not same_teacher(teacher_fingerprint(teacher, remote["name"]), remote["fingerprint"]):
        raise CacheMismatchError(
            f"the worker's {remote['spec']} is not {describe_teacher(remote['fingerprint'])}: workers must see the "
            "same teacher files"
        )
    return label_chunk(teacher, sub, lo, settings)


def _chunk_entry(path: Path, structures: int) -> dict[str, Any]:
    """The manifest's record of one chunk file: its sha256 and number of structures."""
    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "structures": structures}


def collate(records: Sequence[dict[str, torch.Tensor]], dtype: torch.dtype = torch.float32, device="cpu"):
    """(AtomsBatch, labels dict) from cached records; labels as documented in `distill.losses`."""
    natoms = torch.tensor([len(r[NUMBERS]) for r in records])
    batch = AtomsBatch(
        positions=torch.cat([r[POSITIONS] for r in records]).to(device, dtype),
        atomic_numbers=torch.cat([r[NUMBERS] for r in records]).to(device),
        cell=torch.stack([r[CELL] for r in records]).to(device, dtype),
        pbc=torch.stack([r[PBC] for r in records]).to(device),
        batch=torch.repeat_interleave(torch.arange(len(records)), natoms).to(device),
        natoms=natoms.to(device),
        tags=torch.cat([r[TAGS] for r in records]).to(device),
        fixed=torch.cat([r[FIXED] for r in records]).to(device),
    )
    return batch, collate_labels(records, dtype, device)


def collate_labels(
    records: Sequence[dict[str, torch.Tensor]], dtype: torch.dtype = torch.float32, device="cpu"
) -> dict[str, torch.Tensor]:
    """The labels dict of `collate` alone (keys that every record has)."""
    natoms = torch.tensor([len(r[NUMBERS]) for r in records])
    labels: dict[str, torch.Tensor] = {}
    for key in (ENERGY, DFT_ENERGY):
        if all(key in r for r in records):
            labels[key] = torch.stack([r[key] for r in records]).to(device, dtype)
    for key in (FORCES, ATOM_ENERGIES, NODE_FEATURES, DFT_FORCES):
        if all(key in r for r in records):
            labels[key] = torch.cat([r[key] for r in records]).to(device, dtype)
    if all(HESSIAN_ROWS in r for r in records):
        s = min(len(r[HESSIAN_INDEX]) for r in records)
        width = 3 * int(natoms.max())
        labels[HESSIAN_INDEX] = torch.stack([r[HESSIAN_INDEX][:s] for r in records]).to(device)
        labels[HESSIAN_ROWS] = torch.stack(
            [torch.nn.functional.pad(r[HESSIAN_ROWS][:s], (0, width - r[HESSIAN_ROWS].shape[1])) for r in records]
        ).to(device, dtype)
    return labels
