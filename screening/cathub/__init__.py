"""CatalysisHub datasets: registry, GraphQL client, resumable cache, file sources, validated reactions.

Public API::

    from screening.cathub import load_dataset
    ds = load_dataset("alonso")                   # from the cache (offline)
    ds = load_dataset("alonso", allow_network=True)  # complete the cache from the API first (CATHUB_API_KEY)
    ds = load_dataset("alonso", data_file="x.json")  # raw API JSON, CatBench JSON, CSV + extxyz/db
    ds.reactions, ds.invalid, ds.counts
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy exports: `screen --help` imports this package and must not pay for numpy/ase.
_EXPORTS: dict[str, str] = {
    "AuthError": "client",
    "BudgetExceeded": "client",
    "CacheStatus": "cache",
    "CatHubClient": "client",
    "CatHubError": "client",
    "Dataset": "sources",
    "DatasetCache": "cache",
    "DatasetInfo": "registry",
    "InvalidReaction": "sources",
    "NotFoundError": "client",
    "OfflineError": "client",
    "RateLimited": "client",
    "Reaction": "model",
    "System": "model",
    "adsorbate_indices": "model",
    "build_dataset": "sources",
    "default_cache_root": "cache",
    "fetch_to_cache": "sources",
    "is_gas": "model",
    "known_datasets": "registry",
    "load_dataset": "sources",
    "load_file": "sources",
    "parse_equation": "model",
    "parse_facet": "model",
    "parse_stoichiometry": "model",
    "reaction_from_node": "model",
    "redact": "client",
    "resolve_dataset": "registry",
    "write_csv_source": "sources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
