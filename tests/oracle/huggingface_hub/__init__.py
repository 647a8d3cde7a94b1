"""Import-time stub for ``huggingface_hub`` inside the fairchem oracle subprocess.

fairchem.core.models.model_registry imports ``hf_hub_download`` at module import
to fetch *pretrained checkpoints*; GemNet-OC construction/inference never calls it.
(The current huggingface_hub on PyPI needs httpx2 and friends, so we stub instead.)
"""

__version__ = "0.0.0+oracle-stub"


def hf_hub_download(*args, **kwargs):
    raise RuntimeError("huggingface_hub is stubbed in the fairchem oracle (no downloads)")
