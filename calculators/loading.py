"""`load_teacher(name | path)`: teacher models (SevenNet-0 offline, GemNet-OC from a fairchem checkpoint)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from calculators.gemnet.checkpoint import CheckpointError, load_model
from calculators.model_api import AtomisticModel
from calculators.registry import cached_checkpoint, registry_entry

__all__ = ["DEFAULT_TEACHER", "CheckpointError", "load_gemnet", "load_teacher"]

DEFAULT_TEACHER = "sevennet-0"


def _diagnose(path: Path) -> str | None:
    """Why `path` is not a GemNet-OC checkpoint, or None if it looks like one (project or fairchem dict)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code from a file
    except Exception as err:
        return f"{path} is not a readable torch checkpoint: {err}"
    if (
        isinstance(state, dict)
        and "model_state_dict" in state
        and "num_convolution_layer" in str(state.get("config", ""))
    ):
        return f"{path} is a SevenNet checkpoint, not GemNet-OC; use calculators.teachers.SevenNetModel({str(path)!r})"
    if not isinstance(state, dict) or not {"state_dict", "config"} <= set(state):
        return f"{path} is not a GemNet-OC checkpoint (expected a dict with config and state_dict)"
    return None


def load_gemnet(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Load a GemNet-OC checkpoint (project or fairchem) with `calculators.gemnet.load_model`, with clear errors
    (`CheckpointError` naming the problem, e.g. a checkpoint of another architecture)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return load_model(path, device=device, dtype=dtype)
    except CheckpointError as err:
        raise CheckpointError(_diagnose(path) or str(err)) from err


def load_teacher(
    name: str | Path = DEFAULT_TEACHER,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    cache_dir: str | Path | None = None,
) -> AtomisticModel:
    """A teacher by registry name ("sevennet-0", "gemnet-oc-oc20-oc22", ...) or checkpoint path.

    Never downloads: a GemNet-OC checkpoint must already be in the cache (see `download_checkpoint`).
    """
    if Path(name).suffix in (".pt", ".pth") and Path(name).is_file():
        return load_gemnet(name, device, dtype)
    key, entry = registry_entry(str(name))
    if entry["architecture"] == "sevennet":
        from calculators.sevennet import SevenNetModel

        if dtype not in SevenNetModel.supported_dtypes:
            warnings.warn(f"{key} computes in float32 only; {dtype} inputs are cast to it", stacklevel=2)
        return SevenNetModel(entry["sevenn_name"], device=device, dtype=torch.float32)
    if entry["architecture"] == "gemnet-oc":
        path = cached_checkpoint(key, cache_dir)
        if path is None:
            raise FileNotFoundError(
                f"teacher {key} is not in the cache; download it explicitly (network needed): "
                f"`python -m calculators.registry download {key}` or "
                f"calculators.teachers.download_checkpoint({key!r})"
            )
        return load_gemnet(path, device, dtype)
    raise ValueError(f"{key}: unknown architecture {entry['architecture']!r}")
