"""Dask executor for embarrassingly parallel model evaluation (teacher labelling, screening).

`dask_executor(workers=N)` starts a `distributed.LocalCluster` of N worker processes (one thread and one torch
thread each); `dask_executor(scheduler="tcp://host:8786")` connects to an existing cluster (for example one made by
dask-jobqueue on SLURM, see the README); neither keeps today's in-process path (`current()` is None). While the
context is open, `current()` returns the executor, so that the code evaluating models (`screening.runner`,
`distill.labels`) sends its batches to the cluster without every caller passing it along.

Rules the callers follow: each task evaluates one batch of structures for one model; the model is loaded once per
worker (`worker_cached`, a per-process cache keyed by what identifies the model), not once per task; tasks return
their results and only the client process writes caches. A task lost with its worker is retried by Dask (up to
`distributed.scheduler.allowed-failures` times); a task that raises is not retried: `DaskExecutor.run` yields the
exception for the caller to report.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

_CURRENT: contextvars.ContextVar[DaskExecutor | None] = contextvars.ContextVar("catdistill_dask", default=None)

# per-process cache of loaded models (on a worker: one entry per model, whatever the number of tasks)
_CACHE: dict[Any, Any] = {}
_LOADS: dict[Any, int] = {}
_LOCK = threading.Lock()


def worker_cached(key: Any, factory: Callable[[], Any]) -> Any:
    """`factory()` the first time `key` is asked for in this process, the same object afterwards. Inside a Dask
    worker the first call also limits torch to one thread (workers are the unit of parallelism)."""
    with _LOCK:
        if key not in _CACHE:
            if _in_worker():
                import torch

                torch.set_num_threads(int(os.environ.get("CATDISTILL_WORKER_THREADS", "1")))
            _CACHE[key] = factory()
            _LOADS[key] = _LOADS.get(key, 0) + 1
        return _CACHE[key]


def load_counts() -> dict[str, int]:
    """How many times each cached object was built in this process (tests: once per worker)."""
    return {str(k): v for k, v in _LOADS.items()}


def _in_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


@dataclass
class DaskExecutor:
    """A connected `distributed.Client` (and the `LocalCluster` it owns, if any)."""

    client: Any
    cluster: Any | None = None
    address: str = ""
    lost: list[str] = field(default_factory=list)

    @property
    def workers(self) -> int:
        """Workers connected now."""
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    @property
    def kind(self) -> str:
        return f"dask LocalCluster ({self.address})" if self.cluster is not None else f"dask scheduler {self.address}"

    def worker_pids(self) -> dict[str, int]:
        """Worker address → process id (tests kill one)."""
        return self.client.run(os.getpid)

    def run(
        self,
        fn: Callable[..., Any],
        args: Sequence[tuple[Any, ...]],
        *,
        desc: str = "tasks",
        progress: bool = True,
    ) -> Iterator[tuple[int, Any, BaseException | None]]:
        """Submit `fn(*a)` for each `a` of `args`; yield (index, result, None) or (index, None, error) as tasks
        finish, with a progress bar over all tasks. Errors raised by `fn` are not retried; a task whose worker
        died is retried by Dask and yields `KilledWorker` only after `allowed-failures` losses."""
        from distributed import as_completed

        if not args:
            return
        futures = [self.client.submit(fn, *a, pure=False, retries=0) for a in args]
        index = {f.key: i for i, f in enumerate(futures)}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(futures), desc=desc, unit="task")
        try:
            for fut in as_completed(futures):
                i = index[fut.key]
                if fut.status == "error":
                    err = fut.exception()
                    yield i, None, err
                else:
                    yield i, fut.result(), None
                fut.release()
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            for f in futures:  # an interrupted client cancels what it no longer waits for
                if not f.done():
                    f.cancel()


def current() -> DaskExecutor | None:
    """The executor of the enclosing `dask_executor` context, or None (in-process evaluation)."""
    return _CURRENT.get()


@contextlib.contextmanager
def using(executor: DaskExecutor | None) -> Iterator[DaskExecutor | None]:
    """Make `executor` (an open `DaskExecutor`, or None for in-process) the one `current()` returns in the block."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def dask_executor(
    workers: int | None = None, scheduler: str | None = None, *, threads: int = 1
) -> Iterator[DaskExecutor | None]:
    """Executor for the block: a new LocalCluster of `workers` processes, or a client of the cluster at
    `scheduler`; None (in-process) when both are None. `ValueError` when both are given."""
    if workers is not None and scheduler is not None:
        raise ValueError("give --workers or --scheduler, not both")
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    from distributed import Client, LocalCluster

    cluster = None
    if workers is not None:
        env = {
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "CATDISTILL_WORKER_THREADS": str(threads),
        }
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env=env,
        )
        client = Client(cluster)
        address = cluster.scheduler_address
    else:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as err:
            raise ConnectionError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None
        address = str(scheduler)
    ex = DaskExecutor(client, cluster, address)
    token = _CURRENT.set(ex)
    try:
        yield ex
    finally:
        _CURRENT.reset(token)
        client.close()
        if cluster is not None:
            cluster.close()
