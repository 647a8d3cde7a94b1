"""`ModelCalculator`: an ASE calculator over any `AtomisticModel`, reusing candidate graphs within a skin."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from calculators.batch import AtomsBatch, validate_atoms
from calculators.model_api import ATOM_ENERGIES, ENERGY, FORCES, AtomisticModel, NeighborCandidates
from calculators.neighbors import build_neighbors, candidates_valid
from calculators.tags import tags_for


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" → CUDA when available, else CPU."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' requested but torch sees no CUDA device (use device='auto' or 'cpu')")
    return dev


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """torch.float32/float64 or their names "float32"/"float64"."""
    if isinstance(dtype, str):
        dtype = {"float32": torch.float32, "float64": torch.float64}.get(dtype)  # type: ignore[assignment]
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
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

    Results: energy, free_energy (eV, equal), forces (N, 3) eV/Å, energies (N,) per-atom eV.
    Tags: the structure's own tags when any is nonzero, else `calculators.tags.infer_tags`.
    Skin: for models with `supports_neighbors`, candidate pairs within cutoff + `skin` (Å) are reused until an
    atom moved more than skin/2 or the cell/numbers/pbc changed; `neighbor_builds` counts the rebuilds and
    `model_calls` the model evaluations. `skin=0` rebuilds every call.
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies"]

    def __init__(
        self,
        model: AtomisticModel,
        *,
        device: str | torch.device = "auto",
        dtype: torch.dtype | str = torch.float32,
        skin: float = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(model, AtomisticModel):
            raise TypeError(f"model must implement AtomisticModel (cutoff, max_atomic_number, predict), got {model!r}")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.model = place_model(model, self.device, self.dtype)
        self.skin = float(skin)
        self.neighbor_builds = 0
        self.model_calls = 0
        self._candidates: NeighborCandidates | None = None

    def _batch(self, atoms: Atoms) -> AtomsBatch:
        validate_atoms(atoms, 0, int(self.model.max_atomic_number))
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
