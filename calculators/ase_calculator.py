"""`ModelCalculator`: the ASE calculator over any `AtomisticModel` (students, teachers, test models), reusing
candidate graphs within a skin. `ModelCalculator.from_model_checkpoint(name_or_path)` builds one from anything
`calculators.load_model` accepts; `DistilledCalculator()` and `TeacherCalculator()` are shortcuts for the shipped
student and the default teacher."""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from calculators.batch import (
    MIN_DISTANCE_RATIO,
    AtomsBatch,
    UnphysicalStructureWarning,
    unphysical_reason,
)
from calculators.loading import DEFAULT_STUDENT_NAME, DEFAULT_TEACHER, load_model
from calculators.model_api import ATOM_ENERGIES, ENERGY, FORCES, AtomisticModel, NeighborCandidates
from calculators.neighbors import build_neighbors, candidates_valid
from calculators.parsing import checked_number
from calculators.tags import tags_for

MAX_SKIN = 5.0  # Å


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" → CUDA when available, else CPU."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' requested but torch sees no CUDA device (use device='auto' or 'cpu')")
    return dev


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """torch.float32/float64 or their names "float32"/"float64" (ValueError otherwise)."""
    asked = dtype
    if isinstance(dtype, str):
        dtype = {"float32": torch.float32, "float64": torch.float64}.get(dtype)  # type: ignore[assignment]
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be float32 or float64, got {asked!r}")
    return dtype  # type: ignore[return-value]


def place_model(model: AtomisticModel, device: torch.device, dtype: torch.dtype) -> AtomisticModel:
    """Move an nn.Module model (in place) to `device` and `dtype`; other models are used as they are.

    A model whose `supported_dtypes` lack `dtype` keeps its dtype (inputs are cast for it) with a warning.
    """
    if isinstance(model, torch.nn.Module):
        supported = getattr(model, "supported_dtypes", (dtype,))
        if dtype in supported:
            model.to(device=device, dtype=dtype)
        else:
            warnings.warn(
                f"{type(model).__name__} computes in {supported[0]} only; {dtype} inputs are cast to it",
                stacklevel=3,
            )
            model.to(device=device)
        model.eval()
    return model


def search_radius(model: AtomisticModel) -> float:
    """Radius (Å) a model's neighbour candidates must cover: its largest graph (GemNet-OC's atom-atom graph may
    exceed its main cutoff), else its cutoff."""
    return float(getattr(model, "search_radius", model.cutoff))


class ModelCalculator(Calculator):
    """ASE calculator over an `AtomisticModel`.

    Parameters (ASE `parameters`, so `todict()`, `set()` and reset-on-change work): `device` "auto" | "cpu" |
    "cuda" (auto: CUDA when available), `dtype` "float32" | "float64" (the model is moved in place; torch's
    global default is untouched), `skin` Å. Changing any of them through `set()` discards cached results and
    neighbour candidates; a new device or dtype moves the model.

    Results: energy, free_energy (eV, equal), forces (N, 3) eV/Å, energies (N,) per-atom eV.
    Tags: the structure's own tags when any is nonzero, else `calculators.tags.infer_tags`.
    Skin: for models with `supports_neighbors`, candidate pairs within cutoff + `skin` are reused until an atom
    moved more than skin/2 or the cell/numbers/pbc changed; `neighbor_builds` counts the rebuilds and
    `model_calls` the model evaluations. `skin=0` rebuilds every call.
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies"]
    default_parameters = {"device": "auto", "dtype": "float32", "skin": 0.5}

    def __init__(
        self,
        model: AtomisticModel,
        *,
        device: str | torch.device = "auto",
        dtype: torch.dtype | str = "float32",
        skin: float = 0.5,
        **kwargs,
    ) -> None:
        if not isinstance(model, AtomisticModel):
            raise TypeError(f"model must implement AtomisticModel (cutoff, max_atomic_number, predict), got {model!r}")
        self.model = model
        self.neighbor_builds = 0
        self.model_calls = 0
        self._candidates: NeighborCandidates | None = None
        self._warned: set[str] = set()  # formulas already warned about (one warning per relaxation, not per step)
        self._placed = False
        super().__init__(device=device, dtype=dtype, skin=skin, **kwargs)
        place_model(self.model, self.device, self.dtype)
        self._placed = True

    @classmethod
    def from_model_checkpoint(
        cls,
        name_or_path: str | os.PathLike | AtomisticModel,
        *,
        device: str | torch.device = "auto",
        dtype: torch.dtype | str = "float32",
        skin: float = 0.5,
        cache_dir: str | os.PathLike | None = None,
        **kwargs,
    ) -> ModelCalculator:
        """A calculator over `calculators.load_model(name_or_path)`: a registry name ("sevennet-0",
        "default-student", ...), a checkpoint path (.pt/.pth/.ckpt) or an `AtomisticModel`. Never downloads."""
        model = load_model(name_or_path, device=resolve_device(device), dtype=resolve_dtype(dtype), cache_dir=cache_dir)
        return cls(model, device=device, dtype=dtype, skin=skin, **kwargs)

    @property
    def device(self) -> torch.device:
        """The torch device of the computation (parameter `device` resolved)."""
        return resolve_device(self.parameters["device"])

    @property
    def dtype(self) -> torch.dtype:
        """The float dtype of the inputs (parameter `dtype`)."""
        return resolve_dtype(self.parameters["dtype"])

    @property
    def skin(self) -> float:
        """Neighbour-list skin, Å (parameter `skin`)."""
        return float(self.parameters["skin"])

    def set(self, **kwargs) -> dict:
        """Set parameters (ASE semantics); any change discards results and neighbour candidates, and a new
        device or dtype moves the model."""
        if "device" in kwargs:
            resolve_device(kwargs["device"])  # fail early on an unavailable device
            kwargs["device"] = str(kwargs["device"])
        if "dtype" in kwargs:
            kwargs["dtype"] = str(resolve_dtype(kwargs["dtype"])).removeprefix("torch.")
        if "skin" in kwargs:  # a few Å at most: the candidate list grows with (cutoff + skin)³
            kwargs["skin"] = checked_number(kwargs["skin"], "skin (Å)", what="calculator", low=0, high=MAX_SKIN)
        changed = super().set(**kwargs)
        if changed:
            self.reset()
        if self._placed and {"device", "dtype"} & set(changed):
            place_model(self.model, self.device, self.dtype)
        return changed

    def reset(self) -> None:
        """Clear results and neighbour candidates."""
        super().reset()
        self._candidates = None

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """ASE's `compare_atoms` (changed cell, pbc and per-atom arrays, |Δ| ≤ `tol`; `ignored_changes` skipped),
        with plain numpy comparisons instead of `np.allclose`: an optimizer step asks 3–4 times, and allclose
        cost ~0.2 ms per ask, 5 % of a student force call."""
        if self.atoms is None:
            return list(all_changes)
        old = self.atoms
        check = set(all_changes) - set(self.ignored_changes)
        changes = [p for p in ("cell", "pbc") if p in check and not _close(getattr(old, p), getattr(atoms, p), tol)]
        check -= {"cell", "pbc"}
        changes += sorted(check & (set(old.arrays) ^ set(atoms.arrays)))
        changes += [
            p for p in check & set(old.arrays) & set(atoms.arrays) if not _close(old.arrays[p], atoms.arrays[p], tol)
        ]
        return changes

    def _batch(self, atoms: Atoms) -> AtomsBatch:
        """`atoms` as a batch of one (checked by `AtomsBatch.from_atoms`: a clear `StructureError` if unusable)."""
        return AtomsBatch.from_atoms(
            atoms,
            device=self.device,
            dtype=self.dtype,
            max_atomic_number=int(self.model.max_atomic_number),
            tags=[tags_for(atoms)],
        )

    def calculate(
        self, atoms: Atoms | None = None, properties: list[str] | None = None, system_changes=all_changes
    ) -> None:
        """Evaluate the model on `atoms` (ASE calls this only when `check_state` reports changes)."""
        super().calculate(atoms, properties or ["energy"], system_changes)
        batch = self._batch(self.atoms)
        kwargs = {}
        if getattr(self.model, "supports_neighbors", False) and self.skin > 0:
            if {"numbers", "pbc", "cell"} & set(system_changes):
                self._candidates = None
            if not candidates_valid(self._candidates, batch, self.skin):
                self._candidates = build_neighbors(batch, search_radius(self.model) + self.skin)
                self.neighbor_builds += 1
            kwargs["neighbors"] = self._candidates
        self._warn_if_unphysical(batch)
        out = self.model.predict(batch, forces=True, **kwargs)
        self.model_calls += 1
        energy = float(out[ENERGY].detach().cpu().double()[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out[FORCES].detach().cpu().double().numpy(),
        }
        if ATOM_ENERGIES in out:
            self.results["energies"] = out[ATOM_ENERGIES].detach().cpu().double().numpy()
        if not np.isfinite(energy):
            raise FloatingPointError(f"model returned a non-finite energy for {self.atoms.get_chemical_formula()}")

    def _warn_if_unphysical(self, batch: AtomsBatch) -> None:
        """`UnphysicalStructureWarning` when atoms are closer than a fraction of their covalent radii (fast path:
        the reused neighbour candidates already hold every close pair); once per formula and calculator, so a
        relaxation through a close contact warns once, not at every step."""
        if self._candidates is not None and self._candidates.edge_index.numel():
            from ase.data import covalent_radii

            # in numpy on this one structure (a handful of µs-operations, not a dozen torch calls per step)
            i, j = self._candidates.edge_index.cpu().numpy()
            pos = self.atoms.positions
            vec = pos[j] - pos[i] + self._candidates.cell_offsets.cpu().numpy() @ np.asarray(self.atoms.cell[:])
            radii = covalent_radii[self.atoms.numbers]
            if not bool((np.einsum("ij,ij->i", vec, vec) < (MIN_DISTANCE_RATIO * (radii[i] + radii[j])) ** 2).any()):
                return
        elif self._candidates is not None:
            return
        reason = unphysical_reason(self.atoms)
        formula = self.atoms.get_chemical_formula()
        if reason is not None and formula not in self._warned:
            self._warned.add(formula)
            warnings.warn(
                f"{reason}; the model's numbers for it mean nothing", UnphysicalStructureWarning, stacklevel=4
            )


def _close(a, b, tol: float) -> bool:
    """ASE's `equal(a, b, atol=tol)` (same shape, |a − b| ≤ tol or equal everywhere; NaN never equal) without
    allclose's bookkeeping."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "biu" and b.dtype.kind in "biu":
        return bool(np.array_equal(a, b))
    with np.errstate(invalid="ignore"):  # equal infinities are equal (allclose's rule); NaN never is
        return bool(np.all((a == b) | (np.abs(a - b) <= tol)))


def DistilledCalculator(  # noqa: N802 - reads like the class it builds (README: atoms.calc = DistilledCalculator())
    model: str | os.PathLike | AtomisticModel | None = None, **kwargs
) -> ModelCalculator:
    """`ModelCalculator.from_model_checkpoint` with the shipped default student when `model` is None
    (`NoDefaultStudentError` if it is not installed; never random weights)."""
    return ModelCalculator.from_model_checkpoint(DEFAULT_STUDENT_NAME if model is None else model, **kwargs)


def TeacherCalculator(  # noqa: N802 - reads like the class it builds
    teacher: str | os.PathLike | AtomisticModel = DEFAULT_TEACHER, **kwargs
) -> ModelCalculator:
    """`ModelCalculator.from_model_checkpoint` with the default teacher, SevenNet-0 (offline); any registry name
    ("gemnet-oc-oc20-oc22" once downloaded), checkpoint path or `AtomisticModel` also works."""
    return ModelCalculator.from_model_checkpoint(teacher, **kwargs)
