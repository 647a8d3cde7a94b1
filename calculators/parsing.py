"""Reading user input: comma-separated lists, recipe files (JSON/YAML) and dataclasses from dicts (strict)."""

from __future__ import annotations

import copy
import json
import math
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

        values = yaml.safe_load(text) or {}
    else:
        values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of settings (name: value), not a {type(values).__name__}")
    return values


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


def checked_number(
    value: Any,
    name: str,
    *,
    what: str,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> Any:
    """`value` as a finite int (`integer`) or float within the bounds (`low_open`/`high_open`: strict), or a
    `ValueError` naming `what` and `name` ("training settings: lr must be a finite number > 0, got 'fast'").
    Numeric strings are read as numbers (YAML reads `1e-3` without a dot as a string); booleans are refused;
    None passes when `optional`."""
    if value is None and optional:
        return None
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '≥'} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '≤'} {high:g}")
    want = ("an integer" if integer else "a finite number") + (f" {' and '.join(bounds)}" if bounds else "")
    if optional:
        want += " (or null)"
    number: float | int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value if abs(value) < 2**1000 else None  # kept exact (no float rounding above 2**53)
    elif not isinstance(value, bool):
        try:
            number = float(value.strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError, OverflowError):
            number = None
    ok = number is not None and (
        isinstance(number, int) or (math.isfinite(number) and (not integer or number.is_integer()))
    )
    if ok and low is not None:
        ok = number > low if low_open else number >= low
    if ok and high is not None:
        ok = number < high if high_open else number <= high
    if not ok:
        raise ValueError(f"{what}: {name} must be {want}, got {value!r}")
    if integer:
        return number if isinstance(number, int) else int(number)
    return float(number)


def checked_choice(value: Any, name: str, choices: Collection[str], *, what: str) -> str:
    """`value` if it is one of `choices`, else a `ValueError` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{what}: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
