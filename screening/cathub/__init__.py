"""CatalysisHub datasets: registry, GraphQL client, resumable cache, file sources, validated reactions.

Public API::

    from screening.cathub import load_dataset
    ds = load_dataset("alonso")                   # from the cache (offline)
    ds = load_dataset("alonso", allow_network=True)  # complete the cache from the API first (CATHUB_API_KEY)
    ds = load_dataset("alonso", data_file="x.json")  # raw API JSON, CatBench JSON, CSV + extxyz/db
    ds.reactions, ds.invalid, ds.counts
"""

from screening.cathub.cache import CacheStatus, DatasetCache, default_cache_root
from screening.cathub.client import (
    AuthError,
    BudgetExceeded,
    CatHubClient,
    CatHubError,
    NotFoundError,
    OfflineError,
    RateLimited,
    redact,
)
from screening.cathub.model import (
    Reaction,
    System,
    adsorbate_indices,
    is_gas,
    parse_equation,
    parse_facet,
    parse_stoichiometry,
    reaction_from_node,
)
from screening.cathub.registry import DatasetInfo, known_datasets, resolve_dataset
from screening.cathub.sources import (
    Dataset,
    DatasetMismatchError,
    InvalidReaction,
    build_dataset,
    fetch_dataset,
    fetch_to_cache,
    load_dataset,
    load_file,
    write_csv_source,
)

__all__ = [
    "AuthError",
    "BudgetExceeded",
    "CacheStatus",
    "CatHubClient",
    "CatHubError",
    "Dataset",
    "DatasetCache",
    "DatasetMismatchError",
    "DatasetInfo",
    "InvalidReaction",
    "NotFoundError",
    "OfflineError",
    "RateLimited",
    "Reaction",
    "System",
    "adsorbate_indices",
    "build_dataset",
    "fetch_dataset",
    "default_cache_root",
    "fetch_to_cache",
    "is_gas",
    "known_datasets",
    "load_dataset",
    "load_file",
    "parse_equation",
    "parse_facet",
    "parse_stoichiometry",
    "reaction_from_node",
    "redact",
    "resolve_dataset",
    "write_csv_source",
]
