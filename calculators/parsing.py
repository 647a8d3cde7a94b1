"""Reading user input: comma-separated lists, recipe files (JSON/YAML) and dataclasses from dicts (strict)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Collection, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def split_list(text: str | None) -> list[str]:
    """ "Pt, Cu,,Au" → ["Pt", "Cu", "Au"] (None or "" → [])."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def read_config_file(path: str | os.PathLike | None) -> dict[str, Any]:
    """A mapping from a JSON or YAML (.yml/.yaml) file; None → {}."""
    if path is None:
        return {}
    text = Path(path).read_text()
    if Path(path).suffix in (".yml", ".yaml"):
        import yaml  # optional: only YAML recipes need it

        return yaml.safe_load(text) or {}
    return json.loads(text)


def dataclass_from_dict(
    cls: type[T], values: Mapping[str, Any], *, what: str, ignore: Collection[str] | None = ()
) -> T:
    """`cls(**values)` for a dataclass, refusing keys it does not know (`ValueError` naming them and the known
    ones) except those in `ignore`, which are dropped (`ignore=None` drops every unknown key). Values are deep
    copies, so the instance shares no mutable state with `values`."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    bad = [] if ignore is None else [k for k in unknown if k not in ignore]
    if bad:
        raise ValueError(f"unknown {what}: {bad}; known: {sorted(known)}")
    return cls(**copy.deepcopy({k: v for k, v in values.items() if k in known}))
