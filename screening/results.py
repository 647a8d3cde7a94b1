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

from calculators.files import CorruptFileError, atomic_write_json, exclusive_lock, read_json

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


# what each command writes into its run directory, and the top-level fields its report reads (name: JSON type)
RUN_KINDS = {
    "run": "`screen run`",
    "funnel": "`screen funnel`",
    "reaction": "`screen funnel --reaction`",
}
_SHAPES: dict[str, dict[str, type]] = {
    RESULTS_FILE: {"reactions": list, "metrics": dict, "models": dict, "dataset": dict, "reference": str,
                   "config": dict, "timing": dict},
    FUNNEL_FILE: {"candidates": int, "selection": dict, "final_ranking": list, "student_scores": dict,
                  "models": dict, "dataset": dict},
    REACTION_FUNNEL_FILE: {"reaction": dict, "stages": list, "surfaces": list, "shortlist": list, "dataset": dict,
                           "models": dict, "table": dict, "config": dict},
}  # fmt: skip


def run_kind(run_dir: str | os.PathLike) -> str | None:
    """Which command's results a run directory holds: "reaction" (`reaction_funnel.json`), "funnel"
    (`funnel.json`; a verified funnel also writes `results.json`), "run" (`results.json` alone), or None."""
    run_dir = Path(run_dir)
    if (run_dir / REACTION_FUNNEL_FILE).is_file():
        return "reaction"
    if (run_dir / FUNNEL_FILE).is_file():
        return "funnel"
    if (run_dir / RESULTS_FILE).is_file():
        return "run"
    return None


def check_run_kind(run_dir: str | os.PathLike, kind: str) -> None:
    """`ValueError` (one line) when `run_dir` holds the results of another command than `kind` (a key of
    `RUN_KINDS`): its report (summary.md, index.html) would be overwritten with a mix of both. The same command
    again is fine (it resumes from the cached energies)."""
    found = run_kind(run_dir)
    if found is not None and found != kind:
        marker = {"reaction": REACTION_FUNNEL_FILE, "funnel": FUNNEL_FILE, "run": RESULTS_FILE}[found]
        raise ValueError(
            f"{run_dir} holds the results of {RUN_KINDS[found]} ({marker}): {RUN_KINDS[kind]} would overwrite its "
            "summary.md and index.html; choose another --out"
        )


def check_shape(path: str | os.PathLike, obj: Any) -> Any:
    """`obj` (the content of run file `path`) when it has the top-level fields its report reads, else
    `CorruptFileError` naming the file and what is missing."""
    path = Path(path)
    shape = _SHAPES[path.name]
    if not isinstance(obj, dict):
        raise CorruptFileError(
            path, f"not a {path.name} of a screening run: a JSON {type(obj).__name__}, expected an object with "
            + ", ".join(shape)
        )  # fmt: skip
    missing = [k for k in shape if k not in obj]
    wrong = [f"{k} ({type(obj[k]).__name__}, expected {shape[k].__name__})" for k in shape
             if k in obj and not isinstance(obj[k], shape[k])]  # fmt: skip
    if missing or wrong:
        what = ["missing " + ", ".join(missing)] if missing else []
        what += ["wrong type: " + ", ".join(wrong)] if wrong else []
        raise CorruptFileError(path, f"not a {path.name} of a screening run ({'; '.join(what)})")
    return obj


def _read_run_file(path: Path) -> Any:
    return check_shape(path, read_json(path))


def load_results(run_dir: str | os.PathLike) -> dict[str, Any]:
    """`results.json` of a run directory (`FileNotFoundError` saying what to run first, `CorruptFileError`
    naming a broken file or one without the fields a report reads)."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a screening run directory (run `screen run` first)")
    return _read_run_file(path)


@dataclass
class RunFiles:
    """What a run directory holds: the screening results and/or a funnel summary (None when absent)."""

    results: dict[str, Any] | None
    funnel: dict[str, Any] | None
    reaction: dict[str, Any] | None = None


def read_run(run_dir: str | os.PathLike) -> RunFiles:
    """The files of a run directory; a funnel-only directory has no results (`FileNotFoundError` if none,
    `CorruptFileError` naming a file that is not JSON or lacks the fields a report reads)."""
    run_dir = Path(run_dir)
    funnel_path = run_dir / FUNNEL_FILE
    funnel = _read_run_file(funnel_path) if funnel_path.is_file() else None
    reaction_path = run_dir / REACTION_FUNNEL_FILE
    reaction = _read_run_file(reaction_path) if reaction_path.is_file() else None
    has_results = (run_dir / RESULTS_FILE).is_file()
    results = load_results(run_dir) if has_results or (funnel is None and reaction is None) else None
    return RunFiles(results, funnel, reaction)
