"""The files of a screening run directory and their one reader/writer.

    <run>/results.json         `run_screening`: reactions, metrics, timing, models, dataset (RESULTS_FILE)
    <run>/funnel.json          `run_funnel`: selection, final ranking, recall, compute saved (FUNNEL_FILE)
    <run>/reaction_funnel.json `screening.reaction_funnel`: stages, surfaces, shortlist, confusion, compute
                               (REACTION_FUNNEL_FILE)
    <run>/energies/*.json      per-model energy caches (ENERGIES_DIR, `screening.runner.EnergyStore`)

Reports are regenerated from these files alone (`screening.report.write_report`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calculators.files import atomic_write_json

RESULTS_FILE = "results.json"
FUNNEL_FILE = "funnel.json"
REACTION_FUNNEL_FILE = "reaction_funnel.json"
ENERGIES_DIR = "energies"


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_run_file(path: str | os.PathLike, obj: Any) -> None:
    """Write one run file (JSON, numpy values converted) atomically."""
    atomic_write_json(path, obj, indent=1, default=_json_default)


def load_results(run_dir: str | os.PathLike) -> dict[str, Any]:
    """`results.json` of a run directory (`FileNotFoundError` saying what to run first)."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a screening run directory (run `screen run` first)")
    return json.loads(path.read_text())


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
    funnel = json.loads(funnel_path.read_text()) if funnel_path.is_file() else None
    reaction_path = run_dir / REACTION_FUNNEL_FILE
    reaction = json.loads(reaction_path.read_text()) if reaction_path.is_file() else None
    has_results = (run_dir / RESULTS_FILE).is_file()
    results = load_results(run_dir) if has_results or (funnel is None and reaction is None) else None
    return RunFiles(results, funnel, reaction)
