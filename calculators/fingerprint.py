"""The identity of a model: what label caches, checkpoints and screening energy caches record about it.

`model_fingerprint(model, name)` is a plain dict: name, class, the versions of the packages it comes from and the
sha256 of its weights. Label caches compare it to refuse mixing teachers; checkpoints store the teacher's in
their metadata; `fingerprint_id` turns it into a short string for cache file names.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

from calculators.hashing import tensors_sha256

# Fingerprints record a model's class by its import path. Label caches and checkpoints written before a class
# moved must keep matching, so moved classes report the path they had when label cache format 1 was defined.
STABLE_CLASS_PATHS = {
    "calculators.sevennet.SevenNetModel": "calculators.teachers.sevennet.SevenNetModel",
    "calculators.gemnet.model.GemNetOC": "distill.gemnet.model.GemNetOC",
}


def class_path(model: Any) -> str:
    """The recorded import path of `model`'s class (stable across moves, see STABLE_CLASS_PATHS)."""
    path = f"{type(model).__module__}.{type(model).__qualname__}"
    return STABLE_CLASS_PATHS.get(path, path)


def model_fingerprint(model: Any, name: str | None = None) -> dict[str, Any]:
    """Identity of a model: `name` (default: its `name` attribute or class name), class, versions of torch, sevenn
    and the package defining it (when installed as a distribution), and the sha256 of its weights (nn.Module)."""
    fp: dict[str, Any] = {"name": name or getattr(model, "name", type(model).__name__)}
    fp["class"] = class_path(model)
    versions = {"torch": torch.__version__}
    for package in {"sevenn", fp["class"].split(".")[0]}:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:  # e.g. a project package, not a distribution of its own
            continue
    fp["versions"] = versions
    if isinstance(model, torch.nn.Module):
        fp["weights_sha256"] = tensors_sha256(model.state_dict())
    return fp


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    """Short stable id of a fingerprint for file names: "<name>-<16 hex>"; the hex covers everything but the name
    (the same weights loaded under two names share their caches)."""
    body = {k: v for k, v in fingerprint.items() if k != "name"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(fingerprint.get("name", "model")))
    return f"{name[:30]}-{digest}"
