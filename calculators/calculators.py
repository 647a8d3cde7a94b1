"""`DistilledCalculator` (the shipped student or any GemNet-OC checkpoint) and `TeacherCalculator`."""

from __future__ import annotations

from pathlib import Path

import torch

from calculators.ase_calculator import ModelCalculator, resolve_device, resolve_dtype
from calculators.loading import DEFAULT_TEACHER, load_gemnet, load_teacher
from calculators.model_api import AtomisticModel

DEFAULT_STUDENT = Path(__file__).resolve().parent / "weights" / "default_student.pt"


class NoDefaultStudentError(FileNotFoundError):
    """The package ships no trained default student yet."""


def load_student(
    model: str | Path | AtomisticModel | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> AtomisticModel:
    """The default student (None), a checkpoint path, a registry name, or an `AtomisticModel` as is."""
    if model is None:
        if not DEFAULT_STUDENT.is_file():
            raise NoDefaultStudentError(
                f"no default student is installed ({DEFAULT_STUDENT} is missing); the distillation issue "
                "ships it. "
                "Pass model='path/to/student.pt' (a catdistill or fairchem GemNet-OC checkpoint) or an "
                "AtomisticModel, or use TeacherCalculator() for the SevenNet-0 teacher."
            )
        return load_gemnet(DEFAULT_STUDENT, device, dtype)
    if isinstance(model, AtomisticModel):
        return model
    if Path(model).is_file():
        return load_gemnet(model, device, dtype)
    if Path(model).suffix in (".pt", ".pth", ".ckpt"):
        raise FileNotFoundError(f"checkpoint {model} does not exist")
    return load_teacher(str(model), device=device, dtype=dtype)


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
        super().__init__(load_student(model, dev, dt), device=dev, dtype=dt, skin=skin, **kwargs)


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
        model = (
            teacher
            if isinstance(teacher, AtomisticModel)
            else load_teacher(teacher, device=dev, dtype=dt, cache_dir=cache_dir)
        )
        super().__init__(model, device=dev, dtype=dt, skin=skin, **kwargs)
