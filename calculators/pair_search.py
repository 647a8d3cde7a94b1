"""All atom pairs within a radius in a batch of (periodic) structures, in plain torch: a brute-force search over
atom pairs and the lattice images the radius needs. Quadratic in the atoms of one structure, so fast for the
tens-to-hundreds of atoms of a slab (no Python loop, no binning) and used by the models' own graph construction and
by the calculators' candidate lists (`calculators.neighbors`) up to `MAX_BRUTE_FORCE_DISTANCES`.

Convention: a pair (target t, source s, image n) has the vector pos_s + n @ cell − pos_t; pairs come ordered by
target, then source, then lattice image; an atom is never paired with itself (its own periodic images are),
and two distinct atoms are paired even at zero distance (the callers decide what is unphysical).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from calculators.batch import AtomsBatch

# above this many pair-image distances (Σ n² × images) the calculators use ASE's binned neighbour list instead
MAX_BRUTE_FORCE_DISTANCES = 4_000_000


def _search_cell(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Cell (B, 3, 3) used only to count lattice repetitions and wrap atoms: non-periodic zero rows replaced by
    unit normals. In numpy on a float64 copy: a few 3×3 matrices per call cost microseconds there, and a hundred
    small torch ops here."""
    out = cell.copy()
    eye = np.eye(3)
    for d in range(3):  # in order: a replaced row serves as an 'other' row for the next axes, as before
        replace = (~pbc[:, d]) & (np.linalg.norm(out[:, d], axis=-1) < 1e-8)
        if not replace.any():
            continue
        i, j = [k for k in range(3) if k != d]
        normal = np.cross(out[:, i], out[:, j])
        norm = np.linalg.norm(normal, axis=-1, keepdims=True)
        unit = np.where(norm < 1e-8, eye[d], normal / np.maximum(norm, 1e-30))
        out[:, d] = np.where(replace[:, None], unit, out[:, d])
    # a structure with two or three zero non-periodic vectors: fall back to the unit matrix rows
    zero_rows = np.linalg.norm(out, axis=-1) < 1e-8
    return np.where(zero_rows[..., None], eye, out)


def _cell_arrays(batch: AtomsBatch) -> tuple[np.ndarray, np.ndarray]:
    return batch.cell.detach().cpu().double().numpy(), batch.pbc.cpu().numpy().astype(bool)


def _image_offsets(
    batch: AtomsBatch, radius: float, search: np.ndarray, pbc: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lattice images to search: (C, 3) float lattice coordinates and (B, C) bool allowed-per-structure, for
    the `_search_cell` `search` and periodicity `pbc` (B, 3)."""
    a1, a2, a3 = search[:, 0], search[:, 1], search[:, 2]
    vol = np.sum(a1 * np.cross(a2, a3), axis=-1, keepdims=True)
    crosses = [np.cross(a2, a3), np.cross(a3, a1), np.cross(a1, a2)]
    reps = []
    for d in range(3):
        rep = np.ceil(radius * np.linalg.norm(crosses[d] / vol, axis=-1))
        rep = np.where(pbc[:, d], rep, 0)
        reps.append(int(rep.max()) if rep.size else 0)
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reps], indexing="ij")
    images = np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.float32)  # lexicographic, as before
    allowed = ((images[None, :, :] == 0) | pbc[:, None, :]).all(axis=-1)  # (B, C)
    device = batch.cell.device
    return torch.from_numpy(images).to(device), torch.from_numpy(allowed).to(device)


def _wrap_shifts(batch: AtomsBatch, search: np.ndarray, pbc: np.ndarray) -> torch.Tensor | None:
    """Integer lattice shifts n (N, 3) that bring each atom into its cell along periodic directions; None when
    every atom is inside already."""
    pos = batch.positions.detach().cpu().double().numpy()
    b = batch.batch.cpu().numpy()
    frac = np.einsum("nk,nkl->nl", pos, np.linalg.inv(search)[b])  # pos = frac @ cell
    shifts = np.where(pbc[b], np.floor(frac), 0.0)
    if not shifts.any():
        return None
    return torch.from_numpy(shifts).to(device=batch.device, dtype=batch.dtype)


def find_pairs(batch: AtomsBatch, radius: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(target (P,), source (P,), image (P, 3) float lattice coordinates) of every pair closer than `radius` Å.

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
    search = _search_cell(cell, pbc)
    images, allowed = _image_offsets(batch, radius, search, pbc)
    if max_distances is not None and int((batch.natoms * batch.natoms).sum()) * int(images.shape[0]) > max_distances:
        return None
    shifts = _wrap_shifts(batch, search, pbc)
    if shifts is None:
        return _search_pairs(batch, radius, images, allowed)
    offset = torch.bmm(shifts.unsqueeze(1), batch.cell[batch.batch]).squeeze(1)
    target, source, image = _search_pairs(replace(batch, positions=batch.positions - offset), radius, images, allowed)
    return target, source, image + (shifts[target] - shifts[source]).to(image.dtype)


def _search_pairs(
    batch: AtomsBatch, radius: float, images: torch.Tensor, allowed: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pair search over all atom pairs and the lattice `images` (`_image_offsets`; the cell does not change when
    atoms are wrapped) needed for atoms inside their cells."""
    natoms = batch.natoms
    device = batch.device
    sq = natoms * natoms
    total = int(sq.sum())
    first = torch.cumsum(natoms, 0) - natoms
    pair_struct = torch.repeat_interleave(torch.arange(natoms.numel(), device=device), sq)
    local = torch.arange(total, device=device) - torch.repeat_interleave(torch.cumsum(sq, 0) - sq, sq)
    n_exp = natoms[pair_struct]
    target = torch.div(local, n_exp, rounding_mode="floor") + first[pair_struct]
    source = local % n_exp + first[pair_struct]
    offsets = _cell_image_positions(batch.cell, images)  # (B, 3, C)
    pos_t = batch.positions[target].unsqueeze(-1)  # (P, 3, 1)
    pos_s = batch.positions[source].unsqueeze(-1) + offsets[pair_struct]  # (P, 3, C)
    d2 = torch.sum((pos_t - pos_s) ** 2, dim=1)  # (P, C)
    own_image = (target == source)[:, None] & (images == 0).all(dim=-1)[None, :]  # an atom with itself
    mask = (d2 <= radius * radius) & ~own_image & allowed[pair_struct]
    pair_idx, cell_idx = torch.nonzero(mask, as_tuple=True)
    return target[pair_idx], source[pair_idx], images[cell_idx].to(batch.dtype)


def _cell_image_positions(cell: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Cartesian shifts of lattice images per structure: (B, 3, C) = cellᵀ @ imagesᵀ."""
    imgs = images.to(cell.dtype).T.unsqueeze(0).expand(cell.shape[0], -1, -1)
    return torch.bmm(cell.transpose(1, 2), imgs)
