"""The files of a screening run directory and their one reader/writer.

    <run>/results.json         `run_screening`: reactions, metrics, timing, models, dataset (RESULTS_FILE)
    <run>/funnel.json          `run_funnel`: selection, final ranking, recall, compute saved (FUNNEL_FILE)
    <run>/reaction_funnel.json `screening.reaction_funnel`: stages, surfaces, shortlist, confusion, compute
                               (REACTION_FUNNEL_FILE)
    <run>/energies/*.json      per-model energy caches (ENERGIES_DIR, `screening.runner.EnergyStore`)
    <run>/.lock                held by the run writing into the folder (`run_lock`)

Reports are regenerated from these files alone (`screening.report.write_report`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calculators.files import atomic_write_json, exclusive_lock, read_json

RESULTS_FILE = "results.json"
FUNNEL_FILE = "funnel.json"
REACTION_FUNNEL_FILE = "reaction_funnel.json"
ENERGIES_DIR = "energies"
LOCK_FILE = ".lock"


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_run_file(path: str | os.PathLike, obj: Any) -> None:
    """Write one run file (JSON, numpy values converted) atomically."""
    atomic_write_json(path, obj, indent=1, default=_json_default)


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold `<run>/.lock` while writing into a run directory: a second `screen run`/`screen funnel` into the
    same folder fails at once (`calculators.files.LockedError`) instead of repeating the work. Released when the
    block ends or the process dies; re-entrant within one process."""
    with exclusive_lock(Path(run_dir) / LOCK_FILE, "another screening run") as path:
        yield path


def load_results(run_dir: str | os.PathLike) -> dict[str, Any]:
    """`results.json` of a run directory (`FileNotFoundError` saying what to run first, `CorruptFileError`
    naming a broken file)."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a screening run directory (run `screen run` first)")
    return read_json(path)


@dataclass
class RunFiles:
    """What a run directory holds: the screening results and/or a funnel summary (None when absent)."""

    results: dict[str, Any] | None
    funnel: dict[str, Any] | None
    reaction: dict[str, Any] | None = None


def read_run(run_dir: str | os.PathLike) -> RunFiles:
    """The files of a run directory; a funnel-only directory has no results (`FileNotFoundError` if none)."""
    run_dir = Path(run_dir)
    funnel_path = run_dir / FUNNEL_FILE
    funnel = read_json(funnel_path) if funnel_path.is_file() else None
    reaction_path = run_dir / REACTION_FUNNEL_FILE
    reaction = read_json(reaction_path) if reaction_path.is_file() else None
    has_results = (run_dir / RESULTS_FILE).is_file()
    results = load_results(run_dir) if has_results or (funnel is None and reaction is None) else None
    return RunFiles(results, funnel, reaction)
