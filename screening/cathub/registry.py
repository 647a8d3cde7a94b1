"""Dataset registry: short names (alonso, saini, li) to CatalysisHub pubIds, read from datasets.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REGISTRY_FILE = Path(__file__).with_name("datasets.json")


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: its CatalysisHub pubId, the expected reaction count (None if unknown) and adsorbates."""

    name: str
    pub_id: str
    reactions: int | None = None
    adsorbates: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""


@cache
def known_datasets() -> dict[str, DatasetInfo]:
    """All registered datasets by short name."""
    raw = json.loads(REGISTRY_FILE.read_text())["datasets"]
    return {
        name: DatasetInfo(
            name=name,
            pub_id=d["pub_id"],
            reactions=d.get("reactions"),
            adsorbates=tuple(d.get("adsorbates", ())),
            description=d.get("description", ""),
        )
        for name, d in raw.items()
    }


def resolve_dataset(name_or_pub_id: str) -> DatasetInfo:
    """A short name (case-insensitive) or a registered pubId gives its entry; other pubIds pass through."""
    key = name_or_pub_id.strip()
    if not key:
        raise ValueError("empty dataset name")
    reg = known_datasets()
    if key.lower() in reg:
        return reg[key.lower()]
    for info in reg.values():
        if info.pub_id == key:
            return info
    return DatasetInfo(name=key, pub_id=key)
