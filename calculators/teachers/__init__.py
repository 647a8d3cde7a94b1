"""Teacher models behind the `AtomisticModel` contract, a model registry and explicit checkpoint download."""

from calculators.loading import DEFAULT_TEACHER, CheckpointError, load_gemnet, load_teacher
from calculators.registry import (
    CheckpointUnavailable,
    cached_checkpoint,
    download_checkpoint,
    load_registry,
    registry_entry,
)


def __getattr__(name: str):
    if name == "SevenNetModel":  # lazy: importing sevenn takes a second
        from calculators.sevennet import SevenNetModel

        return SevenNetModel
    raise AttributeError(name)


__all__ = [
    "DEFAULT_TEACHER",
    "CheckpointError",
    "CheckpointUnavailable",
    "SevenNetModel",
    "cached_checkpoint",
    "download_checkpoint",
    "load_gemnet",
    "load_registry",
    "load_teacher",
    "registry_entry",
]
