"""GemNet-OC checkpoints: the project's own format and fairchem's, both loaded strictly.

Project checkpoint (what `save_checkpoint` writes; loadable with `torch.load(weights_only=True)`):
    {"format_version": 1, "architecture": "gemnet_oc", "config": {...GemNetOCConfig...},
     "state_dict": {name: tensor}, "metadata": {plain JSON-like values: recipe, parent teacher, metrics, ...}}

fairchem checkpoints (1.x): {"state_dict", "config": {"model": "gemnet_oc" | {...}, "model_attributes": {...}},
"ema", "scale_dict"?, ...} with `module.` / `module.module.` prefixes, or the hydra layout
(`backbone.*`, `output_heads.<head>.out_mlp_E / out_energy / out_mlp_F / out_forces`). Scale factors must be
present (in the state_dict, in `scale_dict`, or in a separate scale file): GemNet-OC without them silently gives
wrong energies, so their absence is an error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from calculators.files import atomic_torch_save, torch_load_problem
from calculators.gemnet.config import GemNetOCConfig
from calculators.gemnet.model import GemNetOC

FORMAT_VERSION = 1
ARCHITECTURE = "gemnet_oc"
_GEMNET_NAMES = {"gemnet_oc", "gemnet_oc_backbone", "gemnetoc", "gemnet-oc"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into GemNet-OC as it stands (clear message, nothing half-loaded)."""


# ------------------------------------------------------------------------------------------ project format


def checkpoint_dict(model: GemNetOC, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The plain dict that `save_checkpoint` writes."""
    meta = dict(metadata or {})
    try:
        json.dumps(meta)
    except TypeError as exc:
        raise TypeError(f"checkpoint metadata must be plain JSON-like values: {exc}") from None
    return {
        "format_version": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": meta,
    }


def save_checkpoint(model: GemNetOC, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a project checkpoint atomically (temporary file + rename)."""
    return atomic_torch_save(checkpoint_dict(model, metadata), path)


def _upgrade(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Bring an older project checkpoint up to FORMAT_VERSION (the place where future upgrades go)."""
    version = ckpt.get("format_version")
    if version == FORMAT_VERSION:
        return ckpt
    raise CheckpointError(
        f"checkpoint format version {version!r} is not supported by this release (expects {FORMAT_VERSION})"
    )


# ------------------------------------------------------------------------------------------------ loading


def read_checkpoint(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """Read a checkpoint file safely (weights_only); clear errors for missing or corrupt files."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or pickled objects that weights_only refuses
        raise CheckpointError(f"cannot read checkpoint: {torch_load_problem(path, exc)}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    problem = training_state_problem(path, ckpt)
    if problem:
        raise CheckpointError(problem)
    return ckpt


def training_state_problem(path: str | os.PathLike, ckpt: Any) -> str | None:
    """The message for a `distill train` state file (`state.pt`) given where a model checkpoint is wanted."""
    if not (isinstance(ckpt, Mapping) and {"progress", "optimizer", "ema"} <= set(ckpt)):
        return None
    step = ckpt["progress"].get("step") if isinstance(ckpt["progress"], Mapping) else None
    return (
        f"{path} is a `distill train` training state (step {step}), not a model checkpoint: use student.pt or "
        "best.pt in the same folder"
    )


def load_checkpoint(
    source: str | os.PathLike | Mapping[str, Any],
    *,
    scale_file: str | os.PathLike | None = None,
    use_ema: bool = True,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> GemNetOC:
    """Load a project or fairchem GemNet-OC checkpoint strictly; returns the model in eval mode.

    For fairchem checkpoints the EMA weights are used when present (as fairchem does for prediction) unless
    `use_ema=False`; `scale_file` supplies scale factors kept outside the checkpoint (.json or .pt).
    """
    ckpt = read_checkpoint(source)
    if "format_version" in ckpt:
        model, _ = _load_project(ckpt)
    else:
        model = _load_fairchem(ckpt, scale_file=scale_file, use_ema=use_ema)
    return model.to(device=device, dtype=dtype).eval()


def load_project_checkpoint(source) -> tuple[GemNetOC, dict[str, Any]]:
    """Load a project checkpoint; returns (model, metadata)."""
    ckpt = read_checkpoint(source)
    if "format_version" not in ckpt:
        raise CheckpointError("not a project checkpoint (no format_version); use load_checkpoint for fairchem files")
    return _load_project(ckpt)


def _load_project(ckpt: dict[str, Any]) -> tuple[GemNetOC, dict[str, Any]]:
    ckpt = _upgrade(ckpt)
    arch = ckpt.get("architecture")
    if arch != ARCHITECTURE:
        raise CheckpointError(f"checkpoint architecture is {arch!r}, not {ARCHITECTURE!r}")
    for key in ("config", "state_dict"):
        if not isinstance(ckpt.get(key), Mapping):
            raise CheckpointError(f"project checkpoint lacks a '{key}' dict")
    config = GemNetOCConfig.from_dict(_upgrade_config(dict(ckpt["config"])))
    model = GemNetOC(config)
    load_state_dict_strict(model, ckpt["state_dict"])
    return model, dict(ckpt.get("metadata") or {})


def _upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """Config keys of earlier development versions: `neighbor_tie_break` ("stable" is now the only behaviour)."""
    tie_break = config.pop("neighbor_tie_break", "stable")
    if tie_break != "stable":
        raise CheckpointError(f"neighbor_tie_break={tie_break!r} is no longer supported (ties are broken stably)")
    return config


def fairchem_config(ckpt: Mapping[str, Any]) -> GemNetOCConfig:
    """GemNet-OC hyperparameters from a fairchem checkpoint's `config` (old, dict and hydra styles)."""
    cfg = ckpt.get("config")
    if not isinstance(cfg, Mapping):
        raise CheckpointError("fairchem checkpoint has no 'config' dict: cannot tell its hyperparameters")
    model_cfg = cfg.get("model")
    attrs: dict[str, Any]
    if isinstance(model_cfg, str):
        name = model_cfg
        attrs = dict(cfg.get("model_attributes") or {})
    elif isinstance(model_cfg, Mapping):
        name = str(model_cfg.get("name", model_cfg.get("model", "")))
        if name == "hydra":
            backbone = dict(model_cfg.get("backbone") or {})
            name = str(backbone.pop("model", backbone.pop("name", "")))
            attrs = backbone
            heads = model_cfg.get("heads") or {}
            for head in heads.values() if isinstance(heads, Mapping) else []:
                if isinstance(head, Mapping) and "num_global_out_layers" in head:
                    attrs.setdefault("num_global_out_layers", head["num_global_out_layers"])
        else:
            attrs = {k: v for k, v in model_cfg.items() if k not in ("name", "model")}
            attrs.update(cfg.get("model_attributes") or {})
    else:
        raise CheckpointError("fairchem checkpoint config has no 'model' entry")
    if name.lower() not in _GEMNET_NAMES:
        raise CheckpointError(f"checkpoint holds a {name!r} model, not GemNet-OC")
    try:
        return GemNetOCConfig.from_dict(attrs)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint hyperparameters do not describe a GemNet-OC: {exc}") from None


_HEAD_KEY = re.compile(r"^output_heads\.[^.]+\.(out_mlp_E|out_energy|out_mlp_F|out_forces)\.(.*)$")


def normalize_fairchem_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP prefixes and map the 1.x hydra layout onto plain GemNet-OC names."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        k = key
        while k.startswith("module."):
            k = k[len("module.") :]
        if k.startswith("backbone."):
            k = k[len("backbone.") :]
        else:
            match = _HEAD_KEY.match(k)
            if match:
                k = f"{match.group(1)}.{match.group(2)}"
        if k in out and not torch.equal(out[k], value):
            raise CheckpointError(f"checkpoint has two different tensors for {k}")
        out[k] = value
    return out


def _scale_keys(model: GemNetOC) -> list[str]:
    return [k for k in model.state_dict() if k.endswith("scale_factor")]


def _scale_values(raw: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for name, value in raw.items():
        if name == "comment":
            continue
        k = normalize_fairchem_keys({name: torch.zeros(())}).popitem()[0]
        if not k.endswith(".scale_factor"):
            k = f"{k}.scale_factor"
        out[k] = torch.as_tensor(value, dtype=torch.float32).reshape(())
    return out


def read_scale_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Scale factors from a fairchem scale file (.json or .pt mapping module names to values)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scale file not found: {path}")
    if path.suffix == ".json":
        raw = json.loads(path.read_text())
    elif path.suffix == ".pt":
        raw = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise CheckpointError(f"unsupported scale file type {path.suffix!r} (use .json or .pt)")
    if not isinstance(raw, Mapping) or not raw:
        raise CheckpointError(f"scale file {path} holds no scale factors")
    return _scale_values(raw)


def _load_fairchem(ckpt: Mapping[str, Any], *, scale_file=None, use_ema: bool = True) -> GemNetOC:
    if "state_dict" not in ckpt or not isinstance(ckpt["state_dict"], Mapping):
        raise CheckpointError("fairchem checkpoint has no 'state_dict'")
    config = fairchem_config(ckpt)
    model = GemNetOC(config)
    state = normalize_fairchem_keys(ckpt["state_dict"])
    scales = {}
    if isinstance(ckpt.get("scale_dict"), Mapping):
        scales.update(_scale_values(ckpt["scale_dict"]))
    if scale_file is not None:
        scales.update(read_scale_file(scale_file))
    for k, v in scales.items():
        if k in state and not torch.allclose(state[k].float(), v):
            raise CheckpointError(f"scale factor {k} differs between the state_dict and the scale file/dict")
        state.setdefault(k, v)
    needed = _scale_keys(model)
    missing_scales = [k for k in needed if k not in state]
    if missing_scales:
        raise CheckpointError(
            f"{len(missing_scales)} of {len(needed)} GemNet-OC scale factors are missing "
            f"(e.g. {missing_scales[:3]}); pass the model's scale file (scale_file=...). Running without them "
            "would give wrong energies."
        )
    unfitted = [k for k in needed if float(state[k]) == 0.0]
    if unfitted:
        raise CheckpointError(
            f"{len(unfitted)} scale factors are 0 (never fitted), e.g. {unfitted[:3]}: this checkpoint is not a "
            "trained GemNet-OC, or its scale factors live in a separate scale file"
        )
    if use_ema and isinstance(ckpt.get("ema"), Mapping) and ckpt["ema"].get("shadow_params") is not None:
        state = _apply_ema(model, state, ckpt["ema"]["shadow_params"])
    load_state_dict_strict(model, state)
    return model


def _apply_ema(model: GemNetOC, state: dict[str, torch.Tensor], shadow: list) -> dict[str, torch.Tensor]:
    """Replace trainable weights by fairchem's EMA shadow parameters (same order as model.parameters())."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if len(shadow) != len(names):
        raise CheckpointError(
            f"EMA holds {len(shadow)} tensors but the model has {len(names)} trainable parameters; "
            "load with use_ema=False"
        )
    state = dict(state)
    params = dict(model.named_parameters())
    for name, tensor in zip(names, shadow, strict=True):
        if tuple(tensor.shape) != tuple(params[name].shape):
            raise CheckpointError(f"EMA tensor for {name} has shape {tuple(tensor.shape)}; load with use_ema=False")
        # a shared module appears under several state_dict keys: update every alias
        for key in _aliases(model, name):
            state[key] = tensor
    return state


def _aliases(model: GemNetOC, name: str) -> list[str]:
    target = dict(model.named_parameters())[name]
    return [k for k, v in model.state_dict(keep_vars=True).items() if v is target]


def load_state_dict_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Every key matched and every shape equal, or a `CheckpointError` listing what differs."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:5]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:5]})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {wrong[:3]})")
        raise CheckpointError("checkpoint does not match the GemNet-OC architecture: " + "; ".join(parts))
    model.load_state_dict(dict(state), strict=True)
