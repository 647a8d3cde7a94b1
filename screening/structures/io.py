"""Write and read generated structures with their metadata (extxyz or ASE database).

extxyz keeps atoms.info (composition, prototype, facet, strain, site, adsorbate, ...), tags (per-atom
`tags` column) and FixAtoms (`move_mask` column). An ASE db (.db) keeps info as key-value pairs, tags and
constraints natively.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from screening.structures.errors import StructureBuildError

FORMATS = ("extxyz", "db")


def _format(path: Path, fmt: str | None) -> str:
    if fmt is None:
        fmt = "db" if path.suffix == ".db" else "extxyz" if path.suffix in (".extxyz", ".xyz") else None
    if fmt not in FORMATS:
        raise StructureBuildError(f"cannot tell the format of {path}; use a .extxyz or .db file ({FORMATS})")
    return fmt


def clean_info(info: dict) -> dict:
    """Scalar, file-safe metadata: numpy scalars to Python, None/'' to 'none', non-scalars dropped."""
    out: dict = {}
    for key, value in info.items():
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or value == "":
            value = "none"
        if isinstance(value, str) and _looks_numeric(value):
            value = f"({value})"  # keep facets like '111' strings in files that would parse them as numbers
        if isinstance(value, bool | int | float | str):
            out[key] = value
    return out


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _decode(info: dict) -> dict:
    out = {}
    for key, value in info.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, str) and value.startswith("(") and value.endswith(")") and _looks_numeric(value[1:-1]):
            value = value[1:-1]
        out[key] = value
    return out


def write_structures(path: str | Path, structures: Sequence[Atoms], fmt: str | None = None) -> Path:
    """Write `structures` to `path` (.extxyz or .db, overwriting); returns the path."""
    from ase.io import write

    path = Path(path)
    fmt = _format(path, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    if fmt == "extxyz":
        images = []
        for atoms in structures:
            a = atoms.copy()
            a.calc = atoms.calc
            a.info = clean_info(atoms.info)
            a.set_tags(atoms.get_tags())  # always write the tags column
            images.append(a)
        write(path, images, format="extxyz")
    else:
        from ase.db import connect

        with connect(path) as db:
            for atoms in structures:
                kv = {
                    k: v
                    for k, v in clean_info(atoms.info).items()
                    if not (isinstance(v, float) and math.isnan(v)) and k.isidentifier()
                }
                kv = {f"m_{k}" if k in _DB_RESERVED else k: v for k, v in kv.items()}
                db.write(atoms, key_value_pairs=kv)
    return path


_DB_RESERVED = {"id", "unique_id", "ctime", "mtime", "user", "calculator", "energy", "natoms", "charge"}
_DB_RESERVED |= {"age", "mass", "formula", "fmax", "smax", "volume", "pbc", "magmom", "constraints"}


def read_structures(path: str | Path, fmt: str | None = None) -> list[Atoms]:
    """Read structures written by :func:`write_structures`, metadata back in atoms.info."""
    path = Path(path)
    fmt = _format(path, fmt)
    if fmt == "extxyz":
        from ase.io import read

        images = list(read(path, index=":", format="extxyz"))
        for atoms in images:
            atoms.info = _decode(atoms.info)
        return images
    from ase.db import connect

    out = []
    with connect(path) as db:
        for row in db.select():
            atoms = row.toatoms()
            kv = {k[2:] if k.startswith("m_") else k: v for k, v in row.key_value_pairs.items()}
            atoms.info.update(_decode(kv))
            out.append(atoms)
    return out
