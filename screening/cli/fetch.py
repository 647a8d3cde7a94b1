"""``screen fetch``: download (resumably) or load a CatalysisHub dataset and print what is cached."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def fetch(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Short name (alonso, saini, li) or a pubId.")],
    data_file: Annotated[
        Path | None, typer.Option("--data-file", help="Load a local file (raw API JSON, CatBench, CSV).")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Cache root (default data/cache/cathub, $CATHUB_CACHE_DIR)."),
    ] = None,
    metadata_only: Annotated[bool, typer.Option("--metadata-only", help="Fetch metadata pages only.")] = False,
    max_requests: Annotated[
        int | None, typer.Option("--max-requests", help="Stop after this many requests (this run).")
    ] = None,
    daily_budget: Annotated[
        int, typer.Option("--daily-budget", help="Requests allowed per UTC day (API suspends above ~500).")
    ] = 450,
    rate: Annotated[float, typer.Option("--rate", help="Requests per minute.")] = 10.0,
    offline: Annotated[bool, typer.Option("--offline", help="Never contact the API; report the cache.")] = False,
) -> None:
    """Fetch a CatalysisHub dataset into the on-disk cache (resumable), or load a local file; summarise it."""
    from tqdm import tqdm

    from screening.cathub.cache import DatasetCache
    from screening.cathub.client import CatHubClient, CatHubError
    from screening.cathub.registry import resolve_dataset
    from screening.cathub.sources import fetch_to_cache, load_dataset

    info = resolve_dataset(dataset)
    try:
        if data_file is not None:
            ds = load_dataset(dataset, data_file=data_file)
            typer.echo(ds.summary())
            return
        cache = DatasetCache(info.pub_id, cache_dir)
        before = cache.status()
        typer.echo(f"cached before: {before.describe()}")
        complete = before.metadata_complete and (metadata_only or before.systems_cached == before.systems_needed)
        if complete:
            typer.echo("cache complete: nothing to fetch")
        if not offline and not complete:
            client = CatHubClient(
                requests_per_minute=rate,
                daily_budget=daily_budget,
                max_requests=max_requests,
                budget_file=cache.budget_file,
            )
            if not client.has_key:
                status = cache.status()
                hint = "" if status.reactions == 0 else " (the cache above is usable offline)"
                typer.echo(
                    f"error: no CatalysisHub API key: set CATHUB_API_KEY; offline: use --data-file or the cache{hint}",
                    err=True,
                )
                raise typer.Exit(2)
            total = before.total_count or info.reactions
            with tqdm(desc="metadata", unit="rxn", total=total, initial=before.reactions) as bar_meta:

                def on_page(n: int, total: int) -> None:
                    bar_meta.total = total
                    bar_meta.n = n
                    bar_meta.refresh()

                cache.fetch_metadata(client, on_page=on_page)
            if not metadata_only:
                status = cache.status()
                with tqdm(
                    desc="structures", unit="sys", total=status.systems_needed, initial=status.systems_cached
                ) as bar_sys:
                    fetch_to_cache(cache, client, metadata_only=False, on_system=lambda _id: bar_sys.update(1))
            typer.echo(f"requests this run: {client.requests_made}")
        status = cache.status()
        typer.echo(f"cached now: {status.describe()}")
        if status.reactions:
            ds = load_dataset(info.pub_id, cache_dir=cache_dir, metadata_only=metadata_only)
            typer.echo(ds.summary())
    except CatHubError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: everything fetched so far is cached; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
