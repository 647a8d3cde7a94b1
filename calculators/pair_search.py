"""All atom pairs within a radius in a batch of (periodic) structures: a brute-force search over atom pairs and
the lattice images the radius needs, in numpy on the host (a few dozen array operations per structure; each
torch operation would cost several times as much at these sizes). Quadratic in the atoms of one structure, so fast
for the tens-to-hundreds of atoms of a slab (no binning) and used by the models' own graph construction and by the
calculators' candidate lists (`calculators.neighbors`) up to `MAX_BRUTE_FORCE_DISTANCES`.

Convention: a pair (target t, source s, image n) has the vector pos_s + n @ cell − pos_t; pairs come ordered by
target, then source, then lattice image; an atom is never paired with itself (its own periodic images are),
and two distinct atoms are paired even at zero distance (the callers decide what is unphysical).
"""

from __future__ import annotations

import numpy as np
import torch

from calculators.batch import AtomsBatch

# pairs are returned up to radius·(1 + RADIUS_MARGIN): a superset that float32 distance tests at `radius` never
# see short of a pair
RADIUS_MARGIN = 1e-5
# above this many pair-image distances (Σ n² × images) the calculators use ASE's binned neighbour list instead
MAX_BRUTE_FORCE_DISTANCES = 4_000_000


def _search_cell(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Cell (B, 3, 3) used only to count lattice repetitions and wrap atoms: non-periodic zero rows replaced by
    unit normals. In numpy on a float64 copy: a few 3×3 matrices per call cost microseconds there, and a hundred
    small torch ops here."""
    if not (np.einsum("bij,bij->bi", cell, cell) < 1e-16).any():  # no zero row (every periodic cell): as is
        return cell
    out = cell.copy()
    eye = np.eye(3)
    for d in range(3):  # in order: a replaced row serves as an 'other' row for the next axes, as before
        replace = (~pbc[:, d]) & (np.linalg.norm(out[:, d], axis=-1) < 1e-8)
        if not replace.any():
            continue
        i, j = [k for k in range(3) if k != d]
        normal = _cross(out[:, i], out[:, j])
        norm = np.linalg.norm(normal, axis=-1, keepdims=True)
        unit = np.where(norm < 1e-8, eye[d], normal / np.maximum(norm, 1e-30))
        out[:, d] = np.where(replace[:, None], unit, out[:, d])
    # a structure with two or three zero non-periodic vectors: fall back to the unit matrix rows
    zero_rows = np.linalg.norm(out, axis=-1) < 1e-8
    return np.where(zero_rows[..., None], eye, out)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (B, 3) arrays (`np.cross`'s formula without its axis bookkeeping)."""
    a0, a1, a2 = a[:, 0], a[:, 1], a[:, 2]
    b0, b1, b2 = b[:, 0], b[:, 1], b[:, 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _cell_arrays(batch: AtomsBatch) -> tuple[np.ndarray, np.ndarray]:
    return batch.cell.detach().cpu().numpy().astype(np.float64), batch.pbc.cpu().numpy().astype(bool)


def _image_offsets(radius: float, inverse: np.ndarray, pbc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lattice images to search: (C, 3) float lattice coordinates and (B, C) bool allowed-per-structure, for
    the inverse (B, 3, 3) of the `_search_cell` and periodicity `pbc` (B, 3)."""
    # repetitions along each axis: radius / (spacing of the lattice planes) = radius · |reciprocal vector|, the
    # reciprocal vectors being the columns of the inverse cell; 0 along non-periodic axes
    reps = np.ceil(radius * np.sqrt(np.einsum("bkd,bkd->bd", inverse, inverse)))
    reps = np.where(pbc, reps, 0).max(axis=0).astype(np.int64) if reps.size else np.zeros(3, dtype=np.int64)
    grid = np.indices(tuple(2 * reps + 1)).reshape(3, -1).T - reps  # lexicographic, as before
    images = grid.astype(np.float32)
    allowed = ((images[None, :, :] == 0) | pbc[:, None, :]).all(axis=-1)  # (B, C)
    return images, allowed


def _wrap_shifts(batch: AtomsBatch, inverse: np.ndarray, pbc: np.ndarray) -> np.ndarray | None:
    """Integer lattice shifts n (N, 3) that bring each atom into its cell along periodic directions (`inverse`:
    of the `_search_cell`); None when every atom is inside already."""
    pos = batch.positions.detach().cpu().numpy().astype(np.float64)
    b = batch.batch.cpu().numpy()
    frac = np.einsum("nk,nkl->nl", pos, inverse[b])  # pos = frac @ cell
    shifts = np.where(pbc[b], np.floor(frac), 0.0)
    return shifts if shifts.any() else None


def find_pairs(batch: AtomsBatch, radius: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(target (P,), source (P,), image (P, 3) float lattice coordinates) of every pair closer than `radius` Å,
    and of the few between `radius` and radius·(1 + `RADIUS_MARGIN`) (a superset: callers apply their own cutoff).

    Atoms outside their cell are wrapped for the search; the returned images refer to the unwrapped positions.
    """
    found = find_pairs_within_budget(batch, radius, None)
    assert found is not None
    return found


def find_pairs_within_budget(
    batch: AtomsBatch, radius: float, max_distances: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """`find_pairs`, or None without searching when it would compute more than `max_distances` pair-image
    distances (all atom pairs of each structure times the lattice images searched: its cost and memory scale);
    the caller then uses a binned search. One image count serves both."""
    cell, pbc = _cell_arrays(batch)
    inverse = np.linalg.inv(_search_cell(cell, pbc))
    images, allowed = _image_offsets(radius, inverse, pbc)
    natoms = batch.natoms.cpu().numpy()
    if max_distances is not None and int((natoms * natoms).sum()) * images.shape[0] > max_distances:
        return None
    pos = batch.positions.detach().cpu().numpy()
    cell_t = batch.cell.detach().cpu().numpy()  # the model's dtype: distances as the model's graph computes them
    shifts = _wrap_shifts(batch, inverse, pbc)
    if shifts is not None:  # wrapped positions (pos − n @ cell), in the model's dtype as before
        struct = batch.batch.cpu().numpy()
        pos = pos - np.einsum("nk,nkl->nl", shifts.astype(pos.dtype), cell_t[struct])
    target, source, image_idx = _search_pairs(pos, cell_t, natoms, radius, images, allowed)
    image = images[image_idx].astype(pos.dtype)
    if shifts is not None:
        image = image + (shifts[target] - shifts[source]).astype(pos.dtype)
    device = batch.device
    return (
        torch.from_numpy(target).to(device),
        torch.from_numpy(source).to(device),
        torch.from_numpy(image).to(device),
    )


def _search_pairs(
    pos: np.ndarray, cell: np.ndarray, natoms: np.ndarray, radius: float, images: np.ndarray, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair search over all atom pairs of each structure and the lattice `images` (C, 3) (`_image_offsets`; the
    cell does not change when atoms are wrapped) needed for atoms inside their cells: (target, source, index of
    the image) of every pair within `radius` Å, in (target, source, image) order.

    Per structure, |pos_s + shift_c − pos_t|² = |d|² + 2 d·shift_c + |shift_c|² with d = pos_s − pos_t: one (n², 3)
    @ (3, C) product instead of an (n², 3, C) array, in float64 (rounding ~1e-12 Å²). Pairs up to
    `radius`·(1 + `RADIUS_MARGIN`) are returned, so that a caller recomputing distances in float32 with its own
    formula never misses a pair its own test puts inside `radius`."""
    pos = pos.astype(np.float64, copy=False)
    cell = cell.astype(np.float64, copy=False)
    limit = (radius * (1.0 + RADIUS_MARGIN)) ** 2
    zero_image = int(np.flatnonzero((images == 0).all(axis=-1))[0])  # the grid is symmetric: always there
    targets, sources, image_idx = [], [], []
    start = 0
    for b, n in enumerate(natoms.tolist()):
        cols = np.flatnonzero(allowed[b])
        shift = images[cols].astype(np.float64) @ cell[b]  # (C_b, 3) Cartesian image shifts
        p = pos[start : start + n]
        d = (p[None, :, :] - p[:, None, :]).reshape(-1, 3)  # [t·n + s] = pos_s − pos_t
        d2 = np.einsum("ij,ij->i", d, d)[:, None] + 2.0 * (d @ shift.T) + np.einsum("ij,ij->i", shift, shift)[None, :]
        mask = d2 <= limit
        own = np.flatnonzero(cols == zero_image)  # an atom with itself in its own cell
        if own.size:
            mask[np.arange(n) * (n + 1), own[0]] = False
        pair, col = np.nonzero(mask)
        targets.append(pair // n + start)
        sources.append(pair % n + start)
        image_idx.append(cols[col])
        start += n
    return np.concatenate(targets), np.concatenate(sources), np.concatenate(image_idx)
