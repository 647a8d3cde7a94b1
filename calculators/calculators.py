"""`DistilledCalculator` (the shipped student or any GemNet-OC checkpoint) and `TeacherCalculator`."""

from __future__ import annotations

from pathlib import Path

import torch

from calculators.ase_calculator import ModelCalculator, resolve_device, resolve_dtype
from calculators.loading import DEFAULT_STUDENT_NAME, DEFAULT_TEACHER, load_model
from calculators.model_api import AtomisticModel


class DistilledCalculator(ModelCalculator):
    """ASE calculator over a distilled GemNet-OC student.

    `DistilledCalculator()` loads the shipped default student (`calculators/weights/default_student.pt`) and
    raises `NoDefaultStudentError` if none is installed. `model` may be a checkpoint path, a registry name
    or an `AtomisticModel` instance. `device`: "auto" | "cpu" | "cuda"; `dtype`: float32 | float64 (torch's
    global default is untouched); `skin` (Å): graph reuse, see `ModelCalculator`.
    """

    def __init__(
        self,
        model: str | Path | AtomisticModel | None = None,
        *,
        device: str | torch.device = "auto",
        dtype: torch.dtype | str = torch.float32,
        skin: float = 0.5,
        **kwargs,
    ) -> None:
        dev, dt = resolve_device(device), resolve_dtype(dtype)
        model = load_model(DEFAULT_STUDENT_NAME if model is None else model, device=dev, dtype=dt)
        super().__init__(model, device=dev, dtype=dt, skin=skin, **kwargs)


class TeacherCalculator(ModelCalculator):
    """ASE calculator over a teacher: registry name ("sevennet-0" default, offline; "gemnet-oc-oc20-oc22" once
    downloaded), a checkpoint path, or an `AtomisticModel`. Same conventions as `DistilledCalculator`."""

    def __init__(
        self,
        teacher: str | Path | AtomisticModel = DEFAULT_TEACHER,
        *,
        device: str | torch.device = "auto",
        dtype: torch.dtype | str = torch.float32,
        skin: float = 0.5,
        cache_dir: str | Path | None = None,
        **kwargs,
    ) -> None:
        dev, dt = resolve_device(device), resolve_dtype(dtype)
        model = load_model(teacher, device=dev, dtype=dt, cache_dir=cache_dir)
        super().__init__(model, device=dev, dtype=dt, skin=skin, **kwargs)
