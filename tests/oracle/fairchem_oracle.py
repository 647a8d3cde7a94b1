"""Helpers for tests that compare against fairchem-core's GemNet-OC.

fairchem (and torch_geometric) are installed with ``pip install --no-deps
--target`` into a private, git-ignored directory and only ever imported in a
subprocess (``run_fairchem.py``), so the test process is never polluted.

Import in a test with::

    sys.path.insert(0, str(Path(__file__).parent / "oracle"))
    import fairchem_oracle
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# Override with CATDISTILL_FAIRCHEM_SITE (e.g. a CI cache directory).
DEFAULT_TARGET = Path(os.environ.get("CATDISTILL_FAIRCHEM_SITE", REPO / "data" / "cache" / "fairchem-oracle" / "site"))

# Exact pins.  Everything else fairchem's GemNet-OC path imports is either already
# a project dependency (numpy, scipy, ase, sympy, pyyaml, tqdm, requests, pydantic,
# matplotlib, and torch_geometric's aiohttp/fsspec/jinja2/psutil/pyparsing/xxhash)
# or replaced by a module in tests/oracle:
#   torch_scatter, torch_sparse  -> pure-torch stand-ins (used by GemNet-OC)
#   huggingface_hub, lmdb        -> import-time stubs (never used by GemNet-OC)
PINS = ("fairchem-core==1.10.0", "torch-geometric==2.8.1")
# Modules (besides the pins) that must import in the oracle subprocess.
REQUIRED_PRESENT = (
    "numpy",
    "scipy",
    "ase",
    "sympy",
    "yaml",
    "tqdm",
    "requests",
    "pydantic",
    "matplotlib",
    "aiohttp",
    "fsspec",
    "jinja2",
    "psutil",
    "pyparsing",
    "xxhash",
)
_STAMP = ".oracle-installed"


class OracleInstallError(RuntimeError):
    """fairchem could not be installed into the private target directory."""


def _stamp_text() -> str:
    return "\n".join(PINS) + "\n"


def install(target: Path | str | None = None, *, timeout: float = 600.0) -> Path:
    """Install the pinned fairchem + torch_geometric into ``target`` (idempotent).

    Returns the target path.  Raises :class:`OracleInstallError` with pip's output
    when the installation is impossible (no index, no wheel, ...).
    """
    target = Path(target) if target is not None else DEFAULT_TARGET
    stamp = target / _STAMP
    if stamp.is_file() and stamp.read_text() == _stamp_text():
        return target
    target.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",  # never let pip touch torch/numpy
        "--no-compile",
        "--disable-pip-version-check",
        "--upgrade",
        "--target",
        str(target),
        *PINS,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OracleInstallError(f"pip install of {PINS} failed: {exc!r}") from exc
    if proc.returncode != 0:
        raise OracleInstallError(
            f"pip install of {PINS} into {target} failed (rc={proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    missing = []
    for mod in REQUIRED_PRESENT:
        chk = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True, text=True)
        if chk.returncode != 0:
            missing.append(mod)
    if missing:
        raise OracleInstallError(f"fairchem oracle needs these modules in the project environment: {missing}")
    stamp.write_text(_stamp_text())
    return target


def ensure_fairchem(target: Path | str | None = None) -> Path:
    """Install (or reuse) fairchem; on failure ``pytest.skip`` with a LOUD reason."""
    try:
        return install(target)
    except OracleInstallError as exc:
        import warnings

        import pytest

        msg = f"FAIRCHEM ORACLE UNAVAILABLE -- parity test NOT run: {exc}"
        warnings.warn(msg, stacklevel=2)
        print(msg, file=sys.stderr)
        pytest.skip(msg)


def atoms_to_structure(atoms) -> dict:
    """ASE Atoms -> the plain dict run_fairchem.py expects."""
    import numpy as np
    import torch

    tags = atoms.get_tags() if atoms.has("tags") else np.zeros(len(atoms), dtype=int)
    return {
        "positions": torch.as_tensor(np.asarray(atoms.get_positions()), dtype=torch.float64),
        "numbers": torch.as_tensor(np.asarray(atoms.get_atomic_numbers()), dtype=torch.long),
        "cell": torch.as_tensor(np.asarray(atoms.get_cell()[:]), dtype=torch.float64),
        "pbc": torch.as_tensor(np.asarray(atoms.get_pbc()), dtype=torch.bool),
        "tags": torch.as_tensor(np.asarray(tags), dtype=torch.long),
    }


def run_fairchem(
    model_kwargs: dict,
    state_dict: dict | None,
    atoms_list,
    *,
    dtype: str = "float64",
    batch: bool = True,
    init_seed: int | None = None,
    return_state_dict: bool | None = None,
    return_keys: bool = False,
    allow_unfitted_scales: bool = False,
    return_graphs: bool = False,
    target: Path | str | None = None,
    timeout: float = 900.0,
) -> dict:
    """Run fairchem's GemNet-OC in a subprocess and return its outputs.

    ``state_dict=None`` + ``init_seed`` -> seeded random init (scale factors random
    in [0.5, 2)); the returned dict then contains ``state_dict`` (fairchem layout).
    ``atoms_list`` may hold ASE Atoms or already-converted structure dicts.
    """
    import torch

    site = ensure_fairchem(target)
    structures = [a if isinstance(a, dict) else atoms_to_structure(a) for a in atoms_list]
    payload = {
        "model_kwargs": dict(model_kwargs),
        "state_dict": None if state_dict is None else dict(state_dict),
        "structures": structures,
        "dtype": dtype,
        "batch": batch,
        "init_seed": init_seed,
        "return_keys": return_keys,
        "allow_unfitted_scales": allow_unfitted_scales,
        "return_graphs": return_graphs,
    }
    if return_state_dict is not None:
        payload["return_state_dict"] = return_state_dict
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(HERE)])
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    with tempfile.TemporaryDirectory(prefix="fairchem-oracle-") as tmp:
        in_pt, out_pt = Path(tmp) / "in.pt", Path(tmp) / "out.pt"
        torch.save(payload, in_pt)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(HERE / "run_fairchem.py"), str(in_pt), str(out_pt)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=str(REPO),
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out_pt.is_file():
            raise RuntimeError(
                f"fairchem oracle subprocess failed (rc={proc.returncode}):\n"
                f"{proc.stderr[-8000:]}\n{proc.stdout[-2000:]}"
            )
        result = torch.load(out_pt, weights_only=False)
    result.setdefault("timings", {})["subprocess_wall_s"] = wall
    return result
