"""`load_model(name_or_path)`: the one way from a registry name or a checkpoint file to an `AtomisticModel`.

Accepted, in this order:
- an `AtomisticModel` instance: returned as it is;
- an existing file, or a name ending in .pt / .pth / .ckpt: a GemNet-OC checkpoint (the project's format or
  fairchem's), `FileNotFoundError` when the file is missing;
- a name or alias of `calculators/registry.json`: "sevennet-0" (offline, weights in the sevenn wheel),
  "default-student" (the shipped student), "gemnet-oc-oc20-oc22" once downloaded (never downloads here).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from calculators.files import torch_load_problem
from calculators.gemnet.checkpoint import CheckpointError, load_checkpoint, training_state_problem
from calculators.model_api import AtomisticModel
from calculators.registry import PACKAGE_DIR, cached_checkpoint, registry_entry
from calculators.sevennet import SevenNetModel

DEFAULT_TEACHER = "sevennet-0"
DEFAULT_STUDENT_NAME = "default-student"
DEFAULT_STUDENT = PACKAGE_DIR / registry_entry(DEFAULT_STUDENT_NAME)[1]["shipped"]
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


class NoDefaultStudentError(FileNotFoundError):
    """The shipped default student (`calculators/weights/default_student.pt`) is not installed."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from. name: registry name, or the file name of a plain checkpoint; path: the
    checkpoint file (None when the weights ship inside a package, as SevenNet-0's do); entry: the registry entry
    (None for a plain checkpoint)."""

    name: str
    path: Path | None
    entry: dict[str, Any] | None = None

    @property
    def architecture(self) -> str:
        """ "gemnet-oc" or "sevennet"."""
        return self.entry["architecture"] if self.entry else "gemnet-oc"


def _no_default_student() -> NoDefaultStudentError:
    return NoDefaultStudentError(
        f"no default student is installed ({DEFAULT_STUDENT} is missing). Reinstall catdistill to get the shipped "
        "one, or make your own with `distill generate`, `distill label` and `distill train` (README, "
        "Distillation) and pass its checkpoint: model='runs/student/student.pt'. TeacherCalculator() uses the "
        "SevenNet-0 teacher instead."
    )


def resolve_source(name_or_path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> ModelSource:
    """The `ModelSource` of a registry name or checkpoint path, without loading anything (errors as `load_model`)."""
    path = Path(name_or_path)
    if path.is_file():
        return ModelSource(path.name, path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    if path.suffix in CHECKPOINT_SUFFIXES:
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    key, entry = registry_entry(str(name_or_path))
    if key == DEFAULT_STUDENT_NAME:
        if not DEFAULT_STUDENT.is_file():
            raise _no_default_student()
        return ModelSource(key, DEFAULT_STUDENT, entry)
    if entry["architecture"] == "sevennet":
        return ModelSource(key, None, entry)
    if entry["architecture"] == "gemnet-oc":
        cached = cached_checkpoint(key, cache_dir)
        if cached is None:
            raise FileNotFoundError(
                f"{key} is not in the cache; download it explicitly (network needed): "
                f"`python -m calculators.cli download {key}` or calculators.download_checkpoint({key!r})"
            )
        return ModelSource(key, cached, entry)
    raise ValueError(f"{key}: unknown architecture {entry['architecture']!r}")


def load_model(
    name_or_path: str | os.PathLike | AtomisticModel,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    cache_dir: str | os.PathLike | None = None,
) -> AtomisticModel:
    """The model named by `name_or_path` (see the module docstring) on `device`, in eval mode.

    GemNet-OC models are cast to `dtype`; SevenNet-0 computes in float32 only (a warning when another dtype is
    asked for). Errors: `CheckpointError` for a checkpoint that is not GemNet-OC (naming what it is),
    `FileNotFoundError` for missing files and uncached downloads, `NoDefaultStudentError`, `KeyError` for an
    unknown name.
    """
    if isinstance(name_or_path, AtomisticModel):
        return name_or_path
    source = resolve_source(name_or_path, cache_dir=cache_dir)
    if source.architecture == "sevennet":
        if dtype not in SevenNetModel.supported_dtypes:
            warnings.warn(f"{source.name} computes in float32 only; {dtype} inputs are cast to it", stacklevel=2)
        return SevenNetModel(source.entry["sevenn_name"], device=device, dtype=torch.float32)
    return _load_gemnet(source.path, device, dtype)


def _diagnose(path: Path) -> str | None:
    """Why `path` is not a GemNet-OC checkpoint, or None if it looks like one (project or fairchem dict)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code from a file
    except Exception as err:  # noqa: BLE001 - any failure: say which in one line
        return torch_load_problem(path, err)
    if (
        isinstance(state, dict)
        and "model_state_dict" in state
        and "num_convolution_layer" in str(state.get("config", ""))
    ):
        return f"{path} is a SevenNet checkpoint, not GemNet-OC; use calculators.SevenNetModel({str(path)!r})"
    problem = training_state_problem(path, state)
    if problem:
        return problem
    if not isinstance(state, dict) or not {"state_dict", "config"} <= set(state):
        return f"{path} is not a GemNet-OC checkpoint (expected a dict with config and state_dict)"
    return None


def _load_gemnet(path: Path, device: str | torch.device, dtype: torch.dtype):
    try:
        return load_checkpoint(path, device=device, dtype=dtype)
    except CheckpointError as err:
        raise CheckpointError(_diagnose(path) or str(err)) from err
