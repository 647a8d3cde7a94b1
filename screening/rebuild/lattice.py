"""Each model's own lattice constants: a bulk relaxation from energies alone, cached per model and bulk.

`fit_lattice(energy_fn, bulk)` needs only a batched energy function (an `Evaluator`'s ``energies``):

* cubic prototypes (fcc, bcc, L1₂, B2): 7 volumes within ±9 % around the current one, a cubic polynomial in
  V^(-2/3) (the Birch–Murnaghan form) fitted by least squares, its minimum taken; the scan is re-centred (≤ 4
  times) while the lowest energy lies at an end;
* hexagonal and tetragonal ones (hcp, D0₁₉, A2B_hcp, L1₀): that volume fit, then c/a at fixed volume (9 ratios
  within ±10 % of the ideal one, quadratic fit; a minimum at the bound is clamped there and noted, since a larger
  change is another structure: L1₀ at c/a = 1/√2 is B2), then the volume fit again.

No exponentials and no iterative optimiser: nothing overflows, and a model without a minimum in range (e.g. a
student far outside its training elements) raises `LatticeError` instead of returning a wild constant. The result
must lie within ±25 % of the builder's default (Vegard/ASE reference) constant.

`LatticeCache` keeps one JSON file per model (``<root>/<fingerprint id>.json``, written atomically) with one entry
per bulk (``Ag3In|L12``): a, c (Å), energy per atom, method version — or the error, so that a failed bulk is not
refitted on every run.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from calculators.batch import StructureError
from calculators.files import CacheRecoveredWarning, CorruptFileError, atomic_write_json, quarantine, read_json
from screening.structures import make_bulk
from screening.structures.bulk import PROTOTYPES

LATTICE_METHOD = "eos-poly3+ca-quad-v1"
DEFAULT_LATTICE_CACHE = Path("data/cache/lattice")
VOLUME_SPAN = 0.09  # ± fraction of the volume scanned per round
CA_MAX = 0.10  # ± fraction of the ideal c/a scanned (hexagonal, tetragonal prototypes)
MAX_DEVIATION = 0.25  # |a / a_default − 1| allowed


class LatticeError(ValueError):
    """No sensible lattice constant for this model and bulk; the message says why."""


@dataclass
class LatticeFit:
    """Relaxed lattice constants (Å; c None for cubic prototypes), energy per atom (eV) and model calls."""

    a: float
    c: float | None
    energy_per_atom: float
    structures: int
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def default_lattice_cache() -> Path:
    """``$CATDISTILL_LATTICE_CACHE`` or ``data/cache/lattice`` (relative to the working directory)."""
    env = os.environ.get("CATDISTILL_LATTICE_CACHE")
    return Path(env) if env else DEFAULT_LATTICE_CACHE


def _scaled(bulk: Atoms, s_xy: float, s_z: float) -> Atoms:
    out = bulk.copy()
    cell = np.array(bulk.cell[:])
    cell[:, :2] *= s_xy
    cell[:, 2] *= s_z
    out.set_cell(cell, scale_atoms=True)
    return out


def _energies(energy_fn: Callable[[Sequence[Atoms]], Sequence[float]], structs: list[Atoms]) -> np.ndarray:
    e = np.asarray([float(x) for x in energy_fn(structs)], dtype=float)
    if not np.all(np.isfinite(e)):
        raise LatticeError("non-finite energy in the lattice scan")
    return e


def _poly_min(x: np.ndarray, y: np.ndarray, degree: int) -> float | None:
    """Position of the lowest local minimum of a least-squares polynomial fit inside [min x, max x], else None."""
    xm, xs = float(x.mean()), float(x.std()) or 1.0
    coef = np.polyfit((x - xm) / xs, y, degree)
    roots = np.roots(np.polyder(coef))
    best = None
    for r in roots[np.abs(roots.imag) < 1e-9].real:
        xr = xm + xs * r
        inside = x.min() <= xr <= x.max() and np.polyval(np.polyder(coef, 2), r) > 0
        if inside and (best is None or np.polyval(coef, r) < np.polyval(coef, (best - xm) / xs)):
            best = float(xr)
    return best


def _scan(
    energy_fn: Callable[[Sequence[Atoms]], Sequence[float]],
    make: Callable[[float], Atoms],
    span: float,
    variable: Callable[[float], float],
    degree: int,
    what: str,
    counter: list[int],
) -> float:
    """Minimise E(make(t)) over the factor t (re-centring ≤ 4 times); `variable(t)` is the fit variable."""
    centre = 1.0
    for _ in range(5):
        ts = centre * np.linspace(1 - span, 1 + span, 7)
        e = _energies(energy_fn, [make(t) for t in ts])
        counter[0] += len(ts)
        i = int(np.argmin(e))
        if 0 < i < len(ts) - 1:
            xs = np.array([variable(t) for t in ts])
            x_min = _poly_min(xs, e, degree)
            if x_min is None:
                raise LatticeError(f"{what}: the energy scan has no minimum a polynomial can locate")
            order = np.argsort(xs)  # invert the monotonic map t -> variable(t) on the grid
            return float(np.interp(x_min, xs[order], ts[order]))
        centre = float(ts[i])
        if abs(centre - 1.0) > 0.4:
            break
    raise LatticeError(f"{what}: no energy minimum within ±40 % of the start")


def _bounded_scan(
    energy_fn: Callable[[Sequence[Atoms]], Sequence[float]],
    make: Callable[[float], Atoms],
    bound: float,
    counter: list[int],
) -> tuple[float, bool]:
    """Minimise E(make(u)) for u in [1 − bound, 1 + bound] (9 points, quadratic fit around the lowest);
    returns (u, clamped) with clamped True when the minimum lies at a bound."""
    us = np.linspace(1 - bound, 1 + bound, 9)
    e = _energies(energy_fn, [make(u) for u in us])
    counter[0] += len(us)
    i = int(np.argmin(e))
    if i in (0, len(us) - 1):
        return float(us[i]), True
    lo, hi = max(0, i - 2), min(len(us), i + 3)
    u = _poly_min(us[lo:hi], e[lo:hi], 2)
    return (float(us[i]) if u is None else u), False


def fit_lattice(energy_fn: Callable[[Sequence[Atoms]], Sequence[float]], bulk: Atoms) -> LatticeFit:
    """Relax the lattice constants of `bulk` (a `make_bulk` cell, info 'prototype', 'a', 'c') with energies only.
    `LatticeError` when there is no minimum in range; `StructureError` passes through (an element the model
    lacks)."""
    name = str(bulk.info["prototype"])
    proto = PROTOTYPES[name]
    a0 = float(bulk.info["a"])
    c0 = bulk.info.get("c")
    n = len(bulk)
    counter = [0]
    v0 = bulk.get_volume()
    s_xy = s_z = 1.0

    def vol_scan(sx: float, sz: float) -> float:
        return _scan(
            energy_fn,
            lambda t: _scaled(bulk, sx * t ** (1 / 3), sz * t ** (1 / 3)),
            VOLUME_SPAN,
            lambda t: (v0 * sx * sx * sz * t) ** (-2.0 / 3.0),
            3,
            f"volume of {bulk.info.get('composition')} {name}",
            counter,
        )

    t = vol_scan(s_xy, s_z)
    s_xy, s_z = s_xy * t ** (1 / 3), s_z * t ** (1 / 3)
    if proto.hexagonal or proto.tetragonal:
        sx, sz = s_xy, s_z
        # c/a × u at fixed volume, within ±CA_MAX of the ideal ratio: a bigger change is another structure
        # (an L1₀ cell at c/a = 1/√2 is B2), so the ratio is clamped there and the entry says so
        r, clamped = _bounded_scan(
            energy_fn, lambda u: _scaled(bulk, sx * u ** (-1 / 3), sz * u ** (2 / 3)), CA_MAX, counter
        )
        s_xy, s_z = sx * r ** (-1 / 3), sz * r ** (2 / 3)
        t = vol_scan(s_xy, s_z)
        s_xy, s_z = s_xy * t ** (1 / 3), s_z * t ** (1 / 3)
    a = a0 * s_xy
    c = None if c0 is None else float(c0) * s_z
    note = None
    if proto.hexagonal or proto.tetragonal:
        ca0 = float(c0) / a0
        note = f"c/a {c / a:.4f} ({c / a / ca0 - 1:+.1%} from ideal)" + (
            f", clamped at ±{CA_MAX:.0%}: the model prefers another structure" if clamped else ""
        )
    if abs(a / a0 - 1.0) > MAX_DEVIATION:
        raise LatticeError(f"a = {a:.3f} Å is more than {MAX_DEVIATION:.0%} from the default {a0:.3f} Å")
    e = _energies(energy_fn, [_scaled(bulk, s_xy, s_z)])[0] / n
    counter[0] += 1
    return LatticeFit(float(a), c, float(e), counter[0], note)


class LatticeCache:
    """Lattice constants of one model (by fingerprint) for many bulks, in ``<root>/<fingerprint id>.json``."""

    def __init__(self, root: str | Path | None, fingerprint: str, label: str = "") -> None:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in fingerprint)[:48]
        self.path = Path(root if root is not None else default_lattice_cache()) / f"{safe}.json"
        self.data: dict[str, Any] = {"fingerprint": fingerprint, "label": label, "method": LATTICE_METHOD}
        self.data["entries"] = {}
        if self.path.is_file():
            try:
                old = read_json(self.path)
                if not (isinstance(old, dict) and isinstance(old.get("entries"), dict)):
                    raise CorruptFileError(self.path, "not a lattice-constant cache (no entries)")
            except CorruptFileError as err:
                warnings.warn(f"lattice cache {err}; moved to {quarantine(self.path)}, its lattice constants are "
                              "fitted again", CacheRecoveredWarning, stacklevel=2)  # fmt: skip
                return
            if old.get("fingerprint") == fingerprint and old.get("method") == LATTICE_METHOD:
                self.data = old

    def get(self, bulk_key: str) -> dict[str, Any] | None:
        """Cached entry (a, c, energy_per_atom, structures — or error) of a bulk, None if not cached."""
        return self.data["entries"].get(bulk_key)

    def put(self, bulk_key: str, entry: dict[str, Any]) -> None:
        """Store one bulk and write the file atomically."""
        self.data["entries"][bulk_key] = entry
        atomic_write_json(self.path, self.data, indent=1)


def model_lattice(
    energy_fn: Callable[[Sequence[Atoms]], Sequence[float]],
    cache: LatticeCache | None,
    composition: str,
    prototype: str,
) -> dict[str, Any]:
    """The model's lattice entry for (composition, prototype), from `cache` or fitted (and cached): a dict with
    a, c, energy_per_atom, structures, source ('cache' or 'fit'); or with 'error' (reason) when it failed (an
    unexpected model error is not cached: the next run tries again)."""
    key = f"{composition}|{prototype}"
    entry = cache.get(key) if cache is not None else None
    if entry is not None:
        return entry | {"source": "cache"}
    bulk = make_bulk(composition, prototype)
    try:
        entry = fit_lattice(energy_fn, bulk).to_dict()
    except StructureError as err:
        entry = {"error": f"model lacks an element: {err}"}
    except LatticeError as err:
        entry = {"error": f"lattice relaxation failed: {err}"}
    except Exception as err:  # noqa: BLE001 - a model crash on one bulk must not stop the run; not cached
        reason = f"lattice relaxation failed: {type(err).__name__}: {err}"
        return {"error": reason, "default_a": float(bulk.info["a"]), "source": "fit"}
    entry["default_a"] = float(bulk.info["a"])
    if cache is not None:
        cache.put(key, entry)
    return entry | {"source": "fit"}
