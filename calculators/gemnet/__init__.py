"""GemNet-OC in plain PyTorch: model, graphs, presets and checkpoint loading."""

from calculators.gemnet.checkpoint import CheckpointError, load_checkpoint, load_project_checkpoint, save_checkpoint
from calculators.gemnet.config import PRESETS, GemNetOCConfig, preset
from calculators.gemnet.model import GemNetOC, count_parameters

__all__ = [
    "CheckpointError",
    "load_checkpoint",
    "load_project_checkpoint",
    "save_checkpoint",
    "PRESETS",
    "GemNetOC",
    "GemNetOCConfig",
    "count_parameters",
    "preset",
]
