"""``screen fetch``: download (resumably) or load a CatalysisHub dataset and print what is cached."""

from __future__ import annotations

from typing import Annotated

import typer

from calculators.cli.common import finite, non_empty
from screening.cli.options import CacheDirOpt, DataFileOpt, fail


def fetch(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Short name (alonso, saini, li) or a pubId.", callback=non_empty)
    ],
    data_file: DataFileOpt = None,
    cache_dir: CacheDirOpt = None,
    metadata_only: Annotated[bool, typer.Option("--metadata-only", help="Fetch metadata pages only.")] = False,
    max_requests: Annotated[
        int | None, typer.Option("--max-requests", min=0, help="Stop after this many requests (this run).")
    ] = None,
    daily_budget: Annotated[
        int,
        typer.Option("--daily-budget", min=1, max=500, help="Requests allowed per UTC day (API suspends above ~500)."),
    ] = 450,
    rate: Annotated[
        float,
        typer.Option(
            "--rate",
            help="Requests per minute (at most 10, the API's limit).",
            callback=finite(low=0, high=10, low_open=True),
        ),
    ] = 10.0,
    offline: Annotated[bool, typer.Option("--offline", help="Never contact the API; report the cache.")] = False,
) -> None:
    """Fetch a CatalysisHub dataset into the on-disk cache (resumable), or load a local file; summarise it."""
    from screening.cathub import CatHubError, fetch_dataset, load_dataset

    try:
        if data_file is not None:
            typer.echo(load_dataset(dataset, data_file=data_file, check_pub_id=True).summary())
            return
        fetch_dataset(
            dataset, cache_dir=cache_dir, metadata_only=metadata_only, offline=offline, requests_per_minute=rate,
            daily_budget=daily_budget, max_requests=max_requests, progress=True, echo=typer.echo,
        )  # fmt: skip
    except CatHubError as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        fail("interrupted: everything fetched so far is cached; rerun the same command to resume", 130)
    except (OSError, ValueError) as exc:
        fail(str(exc), 1)
