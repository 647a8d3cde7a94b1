"""Dataset sources — API cache, raw API JSON file, CatBench processed JSON, extxyz/ASE-db + CSV — and
``load_dataset``, which turns any of them into the same validated in-memory :class:`Dataset`.

Accepted file shapes (``data_file``):

* **raw API JSON** (``.json``/``.json.gz``): a list of reaction nodes, ``{"raw_reactions": [...]}``
  (CatBench's raw download), or a GraphQL response ``{"data": {"reactions": {"edges": [{"node": ...}]}}}``
  (``data`` optional). Nodes carry ``reactionSystems[].systems{energy, constraints, InputFile}``;
  metadata-only nodes are accepted too.
* **CatBench processed JSON** (``*_adsorption.json``, optionally ``.gz``): ``{tag: {"raw": {name:
  {"stoi": s, "energy_ref": E, "atoms_json": str | "ref": hash}}, "ref_ads_eng": ΔE, ...},
  "_structures": {hash: str}}``. ``stoi`` is the signed weight with ``ΔE = Σ stoi·E`` (reactants negative);
  a negative ``stoi`` becomes a reactant with coefficient ``−stoi``, a positive one a product. The tag
  becomes the reaction id. (Shape read from CatBench's public source, not from a downloaded mirror file.)
* **CSV + structures** (``.csv`` with an ``.extxyz``/``.xyz``/``.db`` of the same stem beside it, or the
  structure file with a ``.csv`` beside it). CSV columns: ``id, equation, reactants, products,
  reaction_energy`` (eV) and optional ``pub_id, facet, sites, surface_composition, chemical_composition``;
  ``reactants``/``products``/``sites`` are the API's JSON strings; ``systems`` is JSON
  ``{name: system_id}``. Every structure carries
  ``system_id`` and ``dft_energy`` (eV) in ``atoms.info`` (extxyz) or as key-value pairs (ASE db);
  FixAtoms constraints are kept by both formats. :func:`write_csv_source` writes this shape.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .cache import DatasetCache
from .client import DEFAULT_DAILY_BUDGET, OFFLINE_HINT, AuthError, CatHubClient, OfflineError
from .model import (
    Reaction,
    System,
    adsorbate_label,
    atoms_from_input_file,
    finalize_structures,
    number,
    parse_json_field,
    parse_stoichiometry,
    reaction_from_node,
    unreadable_reaction,
)
from .registry import DatasetInfo, known_datasets, resolve_dataset

log = logging.getLogger(__name__)


@dataclass
class InvalidReaction:
    """A reaction that failed validation on load, with the reason."""

    id: str
    reason: str
    reaction: Reaction | None = None


@dataclass
class Dataset:
    """Reactions of one dataset. ``reactions`` passed validation (or have no energies to check: metadata
    only); ``invalid`` failed it and are reported, not silently dropped."""

    name: str
    pub_id: str
    source: str
    reactions: list[Reaction]
    invalid: list[InvalidReaction] = field(default_factory=list)
    expected_count: int | None = None
    duplicates_dropped: int = 0

    @property
    def unchecked(self) -> list[Reaction]:
        """Reactions loaded without system energies (metadata only), hence not validated."""
        return [r for r in self.reactions if not r.has_structures]

    @property
    def counts(self) -> dict[str, Any]:
        """Counts: loaded, valid (checked), unchecked, invalid, duplicates dropped, per adsorbate."""
        n_unchecked = len(self.unchecked)
        return {
            "reactions": len(self.reactions) + len(self.invalid),
            "valid": len(self.reactions) - n_unchecked,
            "unchecked": n_unchecked,
            "invalid": len(self.invalid),
            "duplicates_dropped": self.duplicates_dropped,
            "expected": self.expected_count,
            "by_adsorbate": dict(Counter(r.adsorbate for r in self.reactions)),
        }

    def summary(self) -> str:
        """A short human summary, listing the ids of invalid reactions."""
        c = self.counts
        lines = [
            f"{self.name} ({self.pub_id}) from {self.source}: {c['reactions']} reactions"
            + (f" of {c['expected']} expected" if c["expected"] else "")
            + f"; {c['valid']} valid, {c['unchecked']} without structures, {c['invalid']} invalid"
        ]
        if self.invalid:
            lines.append("invalid: " + ", ".join(i.id for i in self.invalid))
            lines += [f"  {i.id}: {i.reason}" for i in self.invalid[:5]]
        return "\n".join(lines)


def build_dataset(
    reactions: list[Reaction],
    *,
    name: str,
    pub_id: str,
    source: str,
    expected_count: int | None = None,
) -> Dataset:
    """Drop duplicate ids (first kept), validate energies (1 meV) and collect the failures with reasons."""
    seen: set[str] = set()
    kept: list[Reaction] = []
    invalid: list[InvalidReaction] = []
    dups = 0
    for r in reactions:
        if r.id in seen:
            dups += 1
            continue
        seen.add(r.id)
        if r.problem is not None:
            invalid.append(InvalidReaction(r.id, r.problem, r))
            continue
        if r.reaction_energy is None:
            invalid.append(InvalidReaction(r.id, "no reactionEnergy", r))
            continue
        energies = [r.systems[n].energy for n in (*r.reactants, *r.products) if n in r.systems]
        if not energies or all(e is None for e in energies):
            kept.append(r)  # metadata only: nothing to check
            continue
        reason = r.validate()
        if reason is None:
            kept.append(r)
        else:
            invalid.append(InvalidReaction(r.id, reason, r))
    ds = Dataset(name, pub_id, source, kept, invalid, expected_count, dups)
    if invalid:
        log.warning(
            "%s: %d reaction(s) failed energy validation: %s",
            pub_id,
            len(invalid),
            ", ".join(i.id for i in invalid),
        )
    return ds


# ----------------------------------------------------------------------------- file sources
def _read_json(path: Path) -> Any:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt") as f:
                return json.load(f)
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, OSError) as err:
        raise ValueError(f"{path}: cannot be read ({type(err).__name__}: {err})") from None


def parse_nodes(nodes: list[dict[str, Any]], structures: dict[str, dict[str, Any]] | None = None) -> list[Reaction]:
    """`reaction_from_node` for every node; a record that cannot be read becomes a placeholder that
    `build_dataset` lists as invalid with the reason (naming the reaction and the field), and the rest load."""
    parsed: dict[str, Any] = {}
    out = []
    for k, node in enumerate(nodes):
        try:
            out.append(reaction_from_node(node, structures, parsed))
        except ValueError as err:
            rid = node.get("id") if isinstance(node, dict) and node.get("id") is not None else f"record {k}"
            out.append(unreadable_reaction(rid, f"unreadable record: {err}"))
    return out


def nodes_from_raw(obj: Any) -> list[dict[str, Any]]:
    """Reaction nodes from any raw API shape (list, ``raw_reactions``, GraphQL ``reactions.edges``)."""
    if isinstance(obj, dict) and "data" in obj and isinstance(obj["data"], dict):
        obj = obj["data"]
    if isinstance(obj, dict) and "raw_reactions" in obj:
        obj = obj["raw_reactions"]
    if isinstance(obj, dict) and "reactions" in obj:
        obj = obj["reactions"]
    if isinstance(obj, dict) and "edges" in obj:
        obj = [e["node"] for e in obj["edges"]]
    if not isinstance(obj, list) or not all(isinstance(n, dict) and "id" in n for n in obj):
        raise ValueError("not a raw CatalysisHub reaction list")
    return obj


def _is_catbench_processed(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    entries = [v for k, v in obj.items() if not k.startswith("_")]
    return bool(entries) and all(isinstance(v, dict) and "raw" in v for v in entries)


def reactions_from_catbench(obj: dict[str, Any]) -> list[Reaction]:
    """Reactions from CatBench's processed adsorption JSON (shape: module docstring)."""
    structures = obj.get("_structures") or {}
    out = []
    for tag, entry in obj.items():
        if tag.startswith("_"):
            continue
        try:
            out.append(_catbench_reaction(tag, entry, structures))
        except (ValueError, TypeError, KeyError) as err:
            detail = f"missing field {err.args[0]!r}" if isinstance(err, KeyError) else str(err)
            out.append(unreadable_reaction(tag, f"unreadable record: reaction {tag!r}: {detail}"))
    return out


def _catbench_reaction(tag: str, entry: dict[str, Any], structures: dict[str, Any]) -> Reaction:
    """One CatBench processed entry as a Reaction (shape: module docstring)."""
    reactants: dict[str, float] = {}
    products: dict[str, float] = {}
    systems: dict[str, System] = {}
    for name, sv in entry["raw"].items():
        stoi = number(sv["stoi"], f"stoi of {name}")
        if stoi < 0:
            reactants[name] = -stoi
        else:
            products[name] = stoi
        text = sv.get("atoms_json") or structures.get(sv.get("ref"))
        atoms = atoms_from_input_file(text) if text else None
        energy = sv.get("energy_ref")
        energy = None if energy is None else number(energy, f"energy_ref of {name}")
        systems[name] = System(name=name, energy=energy, atoms=atoms)
    equation = tag.split("_", 1)[1] if "_" in tag else ""
    r = Reaction(
        id=tag,
        equation=equation,
        reactants=reactants,
        products=products,
        reaction_energy=number(entry["ref_ads_eng"], "ref_ads_eng"),
        adsorbate=adsorbate_label(products, reactants),
        systems=systems,
    )
    finalize_structures(r)
    return r


_STRUCT_SUFFIXES = (".extxyz", ".xyz", ".db")


def _read_structures(path: Path) -> dict[str, tuple[Any, float | None]]:
    """system_id → (Atoms, DFT energy in eV) from an extxyz or ASE db file."""
    out: dict[str, tuple[Any, float | None]] = {}
    if path.suffix == ".db":
        from ase.db import connect

        with connect(path) as db:
            for row in db.select():
                kv = row.key_value_pairs
                energy = kv.get("dft_energy", row.get("energy"))
                out[str(kv["system_id"])] = (row.toatoms(), None if energy is None else float(energy))
        return out
    from ase.io import read

    for atoms in read(path, index=":", format="extxyz"):
        energy = atoms.info.get("dft_energy", atoms.info.get("energy"))
        if energy is None and atoms.calc is not None:
            energy = atoms.calc.results.get("energy")
        atoms.calc = None
        out[str(atoms.info["system_id"])] = (atoms, None if energy is None else float(energy))
    return out


def reactions_from_csv(csv_path: Path, structures_path: Path | None) -> list[Reaction]:
    """Reactions from a CSV of energies plus an extxyz/ASE-db of structures (shape: module docstring)."""
    structures = _read_structures(structures_path) if structures_path else {}
    out = []
    with open(csv_path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                out.append(_csv_reaction(row, structures))
            except (ValueError, TypeError, KeyError) as err:
                detail = f"missing column {err.args[0]!r}" if isinstance(err, KeyError) else str(err)
                rid = row.get("id") or f"line {line}"
                out.append(unreadable_reaction(rid, f"unreadable record ({csv_path}, line {line}): {detail}"))
    return out


def _csv_reaction(row: dict[str, Any], structures: dict[str, tuple[Any, float | None]]) -> Reaction:
    """One CSV row (shape: module docstring) as a Reaction with its structures."""
    node = {
        "id": row["id"],
        "Equation": row.get("equation", ""),
        "reactants": row["reactants"],
        "products": row["products"],
        "reactionEnergy": row["reaction_energy"] if row.get("reaction_energy") else None,
        "pubId": row.get("pub_id") or None,
        "facet": row.get("facet") or None,
        "sites": row.get("sites") or None,
        "surfaceComposition": row.get("surface_composition") or None,
        "chemicalComposition": row.get("chemical_composition") or None,
    }
    r = reaction_from_node(node)
    for name, sid in parse_json_field(row.get("systems"), {}).items():
        atoms, energy = structures.get(str(sid), (None, None))
        r.systems[name] = System(
            name=name, ase_id=str(sid), energy=energy, atoms=None if atoms is None else atoms.copy()
        )
    finalize_structures(r)
    return r


def write_csv_source(reactions: list[Reaction], csv_path: str | Path, structures_path: str | Path) -> None:
    """Write reactions as CSV + extxyz/ASE-db (each distinct system once), readable by :func:`load_file`."""
    from ase.io import write

    csv_path, structures_path = Path(csv_path), Path(structures_path)
    frames: dict[str, Any] = {}
    cols = ["id", "pub_id", "equation", "reactants", "products", "reaction_energy", "facet", "sites"]
    cols += ["surface_composition", "chemical_composition", "systems"]
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in reactions:
            ids = {}
            for name, s in r.systems.items():
                sid = s.ase_id or f"{r.id}:{name}"
                ids[name] = sid
                if s.atoms is not None and sid not in frames:
                    a = s.atoms.copy()
                    a.info = {"system_id": sid, "dft_energy": s.energy, "name": name}
                    frames[sid] = a
            w.writerow(
                {
                    "id": r.id,
                    "pub_id": r.pub_id or "",
                    "equation": r.equation,
                    "reactants": json.dumps(r.reactants),
                    "products": json.dumps(r.products),
                    "reaction_energy": repr(r.reaction_energy) if r.reaction_energy is not None else "",
                    "facet": r.facet_raw or r.facet or "",
                    "sites": json.dumps(r.sites),
                    "surface_composition": r.surface_composition or "",
                    "chemical_composition": r.chemical_composition or "",
                    "systems": json.dumps(ids),
                }
            )
    if structures_path.suffix == ".db":
        from ase.db import connect

        with connect(structures_path, append=False) as db:
            for sid, a in frames.items():
                db.write(a, system_id=sid, dft_energy=a.info["dft_energy"], name=a.info["name"])
    else:
        write(structures_path, list(frames.values()), format="extxyz")


def _companion(path: Path, suffixes: tuple[str, ...]) -> Path | None:
    for suf in suffixes:
        p = path.with_suffix(suf)
        if p.exists():
            return p
    return None


def load_file(path: str | Path) -> tuple[list[Reaction], str]:
    """Reactions from a local file in any accepted shape, with a description of the source. A file that cannot
    be read raises `ValueError` naming it; a record that cannot be read is listed as invalid (naming the
    reaction and the field) while the others load."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        return _load_file(path)
    except (ValueError, KeyError, TypeError, IndexError, OSError, EOFError) as err:
        if str(path) in str(err) or isinstance(err, FileNotFoundError):
            raise
        detail = f"missing field {err.args[0]!r}" if isinstance(err, KeyError) else f"{type(err).__name__}: {err}"
        raise ValueError(f"{path}: cannot be read as a dataset ({detail})") from None


def _load_file(path: Path) -> tuple[list[Reaction], str]:
    if path.suffix == ".csv":
        return reactions_from_csv(path, _companion(path, _STRUCT_SUFFIXES)), f"CSV {path}"
    if path.suffix in _STRUCT_SUFFIXES:
        csv_path = _companion(path, (".csv",))
        if csv_path is None:
            raise ValueError(f"{path}: structures need a CSV of reactions beside them ({path.with_suffix('.csv')})")
        return reactions_from_csv(csv_path, path), f"CSV {csv_path} + structures {path}"
    obj = _read_json(path)
    if _is_catbench_processed(obj):
        return reactions_from_catbench(obj), f"CatBench processed JSON {path}"
    try:
        nodes = nodes_from_raw(obj)
    except ValueError:
        raise ValueError(
            f"{path}: not a recognised CatalysisHub file (raw API nodes, CatBench processed JSON, or CSV)"
        ) from None
    return parse_nodes(nodes), f"raw API JSON {path}"


# ----------------------------------------------------------------------------- the loader
class DatasetMismatchError(ValueError):
    """A data file whose reactions belong to another CatalysisHub publication than the dataset named for it."""


def check_file_pub_id(reactions: list[Reaction], info: DatasetInfo, path: str | Path) -> None:
    """`DatasetMismatchError` (one line) when any record of `path` carries a pubId other than `info`'s; records
    without a pubId (CatBench, CSV without the column) are not checked."""
    found = Counter(r.pub_id for r in reactions if r.pub_id)
    other = {p: n for p, n in found.items() if p != info.pub_id}
    if not other:
        return
    pub, n = max(other.items(), key=lambda kv: (kv[1], kv[0]))
    names = [d.name for d in known_datasets().values() if d.pub_id == pub]
    use = names[0] if names else pub
    named = info.name if info.name == info.pub_id else f"{info.name} ({info.pub_id})"
    raise DatasetMismatchError(
        f"{path} holds reactions of pubId {pub} ({n} of {len(reactions)}), not of {named}: use --dataset {use} "
        "for this file, or the file of that dataset"
    )


def fetch_to_cache(
    cache: DatasetCache,
    client: CatHubClient,
    *,
    metadata_only: bool = False,
    on_page: Callable[[int, int], None] | None = None,
    on_system: Callable[[str], None] | None = None,
) -> None:
    """Run (or resume) the two-phase download into ``cache``."""
    cache.fetch_metadata(client, on_page=on_page)
    if not metadata_only:
        cache.fetch_structures(client, on_system=on_system)


def fetch_dataset(
    name_or_pub_id: str,
    *,
    cache_dir: str | Path | None = None,
    metadata_only: bool = False,
    offline: bool = False,
    requests_per_minute: float = 10.0,
    daily_budget: int = DEFAULT_DAILY_BUDGET,
    max_requests: int | None = None,
    progress: bool = False,
    echo: Callable[[str], None] = print,
) -> Dataset | None:
    """Run or resume the two-phase download of a dataset into its cache and load what is cached.

    Nothing is fetched when the cache is complete or `offline`. `echo` receives the status lines (cache before
    and after, requests made, dataset summary); `progress` shows tqdm bars. Returns the cached dataset, or None
    when nothing is cached. Raises `AuthError` without an API key (the cache stays usable offline), and the other
    `CatHubError`s (budget spent, rate limited, ...) with the cache kept for the next run.
    """
    info = resolve_dataset(name_or_pub_id)
    cache = DatasetCache(info.pub_id, cache_dir)
    before = cache.status()
    echo(f"cached before: {before.describe()}")
    complete = before.metadata_complete and (metadata_only or before.systems_cached == before.systems_needed)
    if complete:
        echo("cache complete: nothing to fetch")
    if not offline and not complete:
        client = CatHubClient(
            requests_per_minute=requests_per_minute,
            daily_budget=daily_budget,
            max_requests=max_requests,
            budget_file=cache.budget_file,
        )
        if not client.has_key:
            hint = "" if before.reactions == 0 else " (the cache above is usable offline)"
            raise AuthError(f"no CatalysisHub API key: set CATHUB_API_KEY; {OFFLINE_HINT}{hint}")
        total = before.total_count or info.reactions
        with tqdm(desc="metadata", unit="rxn", total=total, initial=before.reactions, disable=not progress) as bar:

            def on_page(n: int, total: int) -> None:
                bar.total = total
                bar.n = n
                bar.refresh()

            cache.fetch_metadata(client, on_page=on_page)
        if not metadata_only:
            status = cache.status()
            with tqdm(
                desc="structures", unit="sys", total=status.systems_needed, initial=status.systems_cached,
                disable=not progress,
            ) as bar:  # fmt: skip
                cache.fetch_structures(client, on_system=lambda _id: bar.update(1))
        echo(f"requests this run: {client.requests_made}")
    status = cache.status()
    echo(f"cached now: {status.describe()}")
    if not status.reactions:
        return None
    dataset = load_dataset(info.pub_id, cache_dir=cache_dir, metadata_only=metadata_only)
    echo(dataset.summary())
    return dataset


def load_dataset(
    name_or_pub_id: str,
    *,
    cache_dir: str | Path | None = None,
    data_file: str | Path | None = None,
    allow_network: bool = False,
    metadata_only: bool = False,
    client: CatHubClient | None = None,
    check_pub_id: bool | None = None,
) -> Dataset:
    """Load a dataset by short name (alonso, saini, li) or pubId.

    Source order: ``data_file`` if given; else the cache under ``cache_dir`` (default ``data/cache/cathub``),
    first completing it from the API when ``allow_network`` (needs ``CATHUB_API_KEY``). Energies are validated
    (1 meV); failures land in ``Dataset.invalid``. A ``data_file`` whose records carry another pubId than the
    dataset's raises `DatasetMismatchError` (`check_file_pub_id`): always with ``check_pub_id=True`` (the CLI,
    where ``--dataset`` names the pubId), for the registered datasets (alonso, saini, li) with ``None``
    (elsewhere the name may be a mere label), never with ``False``.
    """
    info = resolve_dataset(name_or_pub_id)
    if data_file is not None:
        reactions, source = load_file(data_file)
        registered = any(d.pub_id == info.pub_id for d in known_datasets().values())
        if check_pub_id or (check_pub_id is None and registered):
            check_file_pub_id(reactions, info, data_file)
        return build_dataset(
            reactions, name=info.name, pub_id=info.pub_id, source=source, expected_count=info.reactions
        )
    cache = DatasetCache(info.pub_id, cache_dir)
    if allow_network:
        client = client or CatHubClient(budget_file=cache.budget_file)
        fetch_to_cache(cache, client, metadata_only=metadata_only)
    elif not cache.has_metadata():
        raise OfflineError(
            f"nothing cached for {info.pub_id} under {cache.path}; run `screen fetch --dataset {info.name}` "
            f"with CATHUB_API_KEY set, or {OFFLINE_HINT}"
        )
    status = cache.status()
    structures = {} if metadata_only else cache.systems()
    reactions = parse_nodes(cache.nodes(), structures)
    return build_dataset(
        reactions,
        name=info.name,
        pub_id=info.pub_id,
        source=f"cache {cache.path} ({status.describe()})",
        expected_count=status.total_count or info.reactions,
    )


__all__ = [
    "Dataset",
    "DatasetMismatchError",
    "InvalidReaction",
    "build_dataset",
    "check_file_pub_id",
    "fetch_dataset",
    "fetch_to_cache",
    "load_dataset",
    "load_file",
    "nodes_from_raw",
    "parse_nodes",
    "parse_stoichiometry",
    "reactions_from_catbench",
    "reactions_from_csv",
    "write_csv_source",
]
