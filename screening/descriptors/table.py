"""The reaction table: which adsorbates a reaction needs, their reference scheme and free-energy corrections, and
how their free energies combine into a limiting potential or a binding descriptor.

The shipped table is ``screening/descriptors/reactions.json`` (documented values and sources inside it). A user
table (JSON or YAML, same layout) is merged over it with `load_table(path)`: its ``adsorbates``, ``reactions``,
``gases`` and ``sources`` entries replace those of the same name. Layout:

- ``adsorbates.<X>``: ``reference`` {gas: ν} (ΔE_X = E(X*) − E(*) − Σ ν E(gas)), ``correction_eV`` (ΔZPE − TΔS at
  298 K relative to those gases, added to ΔE to give ΔG), ``source`` (a key of ``sources``), ``note``.
- ``reactions.<name>``: ``kind`` ``electrochemical`` (``direction`` reduction|oxidation, ``electrons``,
  ``equilibrium_potential_V``, ``levels``: free energies of the states in reaction order, a number in eV or an
  adsorbate name for its ΔG, one proton-electron pair per step) or ``binding`` (``target``: a number in eV or
  ``{"surface": [composition, prototype, facet]}``, the same adsorbate on that surface computed by the same model);
  ``adsorbates`` (used; those not in ``scaling`` are required), ``scaling`` {X: {from, offset_eV}} (ΔG_X =
  ΔG_from + offset where X is not computed), ``descriptor`` {terms: {X: c}, label} (the volcano's x), ``volcano``
  {lines: [[slope, intercept]], envelope: min|max} (theory lines of U_L against the descriptor), ``metric``
  (U_L | eta | abs_dG), ``better`` (higher | lower), ``stages`` (default ``role:threshold,...``), ``source``,
  ``formula`` (in words, for the report).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

METRICS = ("U_L", "eta", "abs_dG")
KINDS = ("electrochemical", "binding")


class ReactionTableError(ValueError):
    """A reaction table that cannot be used (unknown reaction, missing field, bad value)."""


@dataclass(frozen=True)
class AdsorbateSpec:
    """Reference gases ν, ΔZPE − TΔS correction (eV), its source and a note."""

    name: str
    reference: dict[str, float]
    correction: float
    source: str = ""
    note: str = ""


@dataclass(frozen=True)
class ReactionSpec:
    """One reaction of the table (see the module docstring for the fields)."""

    name: str
    title: str
    kind: str
    adsorbates: tuple[str, ...]
    descriptor: dict[str, float]
    descriptor_label: str
    metric: str
    better: str
    stages: str
    direction: str = "reduction"
    electrons: int = 1
    equilibrium_potential: float = 0.0
    levels: tuple[float | str, ...] = ()
    scaling: dict[str, tuple[str, float]] = field(default_factory=dict)
    target: float | tuple[str, str, str] | None = None
    volcano_lines: tuple[tuple[float, float], ...] = ()
    volcano_envelope: str = "min"
    source: str = ""
    formula: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def required(self) -> tuple[str, ...]:
        """Adsorbates that must be computed: an electrochemical reaction's levels not given by a scaling relation,
        a binding reaction's descriptor (its other adsorbates are reported when computed)."""
        if self.kind == "binding":
            return tuple(self.descriptor)
        return tuple(a for a in self.adsorbates if a not in self.scaling)

    @property
    def target_surface(self) -> tuple[str, str, str] | None:
        """(composition, prototype, facet) of a binding reaction's reference surface, else None."""
        return self.target if isinstance(self.target, tuple) else None

    def passes(self, value: float | None, threshold: float) -> bool:
        """Does a surface with this metric value pass a stage threshold? (None/NaN never passes.)"""
        if value is None or value != value:
            return False
        return value >= threshold if self.better == "higher" else value <= threshold

    def better_first(self, values: Mapping[str, float]) -> list[str]:
        """Ids ordered best metric first (ties by id)."""
        sign = -1.0 if self.better == "higher" else 1.0
        return sorted(values, key=lambda i: (sign * values[i], i))


@dataclass
class ReactionTable:
    """Adsorbates, reactions, gases and sources of a reaction table, and where it came from."""

    adsorbates: dict[str, AdsorbateSpec]
    reactions: dict[str, ReactionSpec]
    sources: dict[str, str]
    gases: dict[str, dict[str, Any]]
    origin: list[str]
    temperature: float = 298.15

    def reaction(self, name: str) -> ReactionSpec:
        """The reaction `name` (case-insensitive); `ReactionTableError` listing the known ones."""
        key = name.strip().lower()
        if key not in self.reactions:
            raise ReactionTableError(f"unknown reaction {name!r}; known: {', '.join(sorted(self.reactions))}")
        return self.reactions[key]

    def adsorbate(self, name: str) -> AdsorbateSpec:
        """The adsorbate `name`; `ReactionTableError` if the table has no entry for it."""
        if name not in self.adsorbates:
            raise ReactionTableError(f"the reaction table has no adsorbate {name!r}; known: {sorted(self.adsorbates)}")
        return self.adsorbates[name]

    def constants(self, reaction: ReactionSpec) -> list[dict[str, Any]]:
        """The constants a reaction uses, with their sources (for reports)."""
        rows = []
        for a in reaction.adsorbates:
            spec = self.adsorbate(a)
            rows.append(
                {
                    "quantity": f"ΔZPE − TΔS of {a}*",
                    "value_eV": spec.correction,
                    "reference": " ".join(f"{v:+g} {g}" for g, v in spec.reference.items()),
                    "source": self.sources.get(spec.source, spec.source),
                    "note": spec.note,
                }
            )
        for a, (frm, off) in reaction.scaling.items():
            rows.append(
                {
                    "quantity": f"scaling ΔG_{a} = ΔG_{frm} + c",
                    "value_eV": off,
                    "reference": "",
                    "source": self.sources.get(reaction.notes.get(f"scaling_source_{a}", ""), ""),
                    "note": reaction.notes.get(f"scaling_{a}", ""),
                }
            )
        if reaction.kind == "electrochemical":
            rows.append(
                {
                    "quantity": "equilibrium potential U0",
                    "value_eV": reaction.equilibrium_potential,
                    "reference": f"{reaction.electrons} e⁻",
                    "source": self.sources.get(reaction.source, reaction.source),
                    "note": reaction.formula,
                }
            )
        return rows


def _num(d: Mapping[str, Any], key: str, where: str) -> float:
    try:
        return float(d[key])
    except KeyError:
        raise ReactionTableError(f"{where}: missing {key!r}") from None
    except (TypeError, ValueError):
        raise ReactionTableError(f"{where}: {key!r} must be a number, got {d[key]!r}") from None


def _adsorbate(name: str, d: Mapping[str, Any]) -> AdsorbateSpec:
    where = f"adsorbates.{name}"
    ref = d.get("reference")
    if not isinstance(ref, Mapping) or not ref:
        raise ReactionTableError(f"{where}: 'reference' must map gas names to coefficients")
    return AdsorbateSpec(
        name,
        {str(g): float(v) for g, v in ref.items()},
        _num(d, "correction_eV", where),
        str(d.get("source", "")),
        str(d.get("note", "")),
    )


def _reaction(name: str, d: Mapping[str, Any], adsorbates: Mapping[str, AdsorbateSpec]) -> ReactionSpec:
    where = f"reactions.{name}"
    kind = d.get("kind")
    if kind not in KINDS:
        raise ReactionTableError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    ads = tuple(str(a) for a in d.get("adsorbates", ()))
    if not ads:
        raise ReactionTableError(f"{where}: 'adsorbates' is empty")
    for a in ads:
        if a not in adsorbates:
            raise ReactionTableError(f"{where}: adsorbate {a!r} has no entry in 'adsorbates'")
    metric, better = d.get("metric"), d.get("better")
    if metric not in METRICS:
        raise ReactionTableError(f"{where}: metric must be one of {METRICS}, got {metric!r}")
    if better not in ("higher", "lower"):
        raise ReactionTableError(f"{where}: better must be 'higher' or 'lower', got {better!r}")
    desc = d.get("descriptor") or {}
    terms = {str(a): float(c) for a, c in (desc.get("terms") or {}).items()}
    if not terms or any(a not in ads for a in terms):
        raise ReactionTableError(f"{where}: descriptor.terms must name adsorbates of the reaction, got {terms}")
    scaling: dict[str, tuple[str, float]] = {}
    notes: dict[str, str] = {}
    for a, s in (d.get("scaling") or {}).items():
        if a not in ads or s.get("from") not in ads:
            raise ReactionTableError(f"{where}: scaling {a!r} must relate adsorbates of the reaction")
        scaling[a] = (str(s["from"]), _num(s, "offset_eV", f"{where}.scaling.{a}"))
        notes[f"scaling_{a}"] = str(s.get("note", ""))
        notes[f"scaling_source_{a}"] = str(s.get("source", ""))
    volcano = d.get("volcano") or {}
    lines = tuple((float(a), float(b)) for a, b in volcano.get("lines", ()))
    envelope = str(volcano.get("envelope", "min"))
    if envelope not in ("min", "max"):
        raise ReactionTableError(f"{where}: volcano.envelope must be min or max")
    common = dict(
        name=name, title=str(d.get("title", name)), kind=kind, adsorbates=ads, descriptor=terms,
        descriptor_label=str(desc.get("label", " + ".join(f"{c:g}·ΔG_{a}" for a, c in terms.items()))),
        metric=metric, better=better, stages=str(d.get("stages", "")), scaling=scaling, volcano_lines=lines,
        volcano_envelope=envelope, source=str(d.get("source", "")), formula=str(d.get("formula", "")), notes=notes,
    )  # fmt: skip
    if kind == "electrochemical":
        direction = d.get("direction")
        if direction not in ("reduction", "oxidation"):
            raise ReactionTableError(f"{where}: direction must be reduction or oxidation, got {direction!r}")
        levels: list[float | str] = []
        for lv in d.get("levels", ()):
            if isinstance(lv, str):
                if lv not in ads:
                    raise ReactionTableError(f"{where}: level {lv!r} is not an adsorbate of the reaction")
                levels.append(lv)
            else:
                levels.append(float(lv))
        if len(levels) < 2:
            raise ReactionTableError(f"{where}: 'levels' needs at least two states")
        if metric == "abs_dG" and len(terms) != 1:
            raise ReactionTableError(f"{where}: metric abs_dG needs a one-adsorbate descriptor")
        return ReactionSpec(
            **common, direction=direction, electrons=int(d.get("electrons", len(levels) - 1)),
            equilibrium_potential=_num(d, "equilibrium_potential_V", where), levels=tuple(levels),
        )  # fmt: skip
    target = d.get("target")
    if isinstance(target, Mapping) and "surface" in target:
        surf = target["surface"]
        if not (isinstance(surf, list | tuple) and len(surf) == 3):
            raise ReactionTableError(f"{where}: target.surface must be [composition, prototype, facet]")
        target_v: float | tuple[str, str, str] = (str(surf[0]), str(surf[1]), str(surf[2]))
    else:
        try:
            target_v = float(target)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ReactionTableError(f"{where}: target must be a number (eV) or {{'surface': [...]}}") from None
    if metric != "abs_dG":
        raise ReactionTableError(f"{where}: binding reactions use metric abs_dG")
    return ReactionSpec(**common, target=target_v)


def _read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reaction table {path} not found")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ReactionTableError(f"{path}: not a text file (a reaction table is JSON or YAML)") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ReactionTableError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ReactionTableError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ReactionTableError(f"{path}: a reaction table is a mapping with 'adsorbates' and 'reactions'")
    return data


SHIPPED_TABLE = "reactions.json"


def shipped_table_path() -> Path:
    """Path of the shipped table."""
    return Path(str(files("screening.descriptors").joinpath(SHIPPED_TABLE)))


def load_table(path: str | Path | None = None) -> ReactionTable:
    """The shipped table, with the table at `path` (JSON or YAML) merged over it when given."""
    raw = _read(shipped_table_path())
    origin = [f"shipped {SHIPPED_TABLE}"]
    if path is not None:
        user = _read(path)
        unknown = set(user) - {"version", "about", "temperature_K", "sources", "gases", "adsorbates", "reactions"}
        if unknown:
            raise ReactionTableError(f"{path}: unknown top-level keys {sorted(unknown)}")
        for key in ("sources", "gases", "adsorbates", "reactions"):
            raw[key] = {**raw.get(key, {}), **{str(k).lower() if key == "reactions" else str(k): v
                                                for k, v in (user.get(key) or {}).items()}}  # fmt: skip
        if "temperature_K" in user:
            raw["temperature_K"] = user["temperature_K"]
        origin.append(f"user table {path}")
    adsorbates = {str(n): _adsorbate(str(n), d) for n, d in raw.get("adsorbates", {}).items()}
    reactions = {str(n).lower(): _reaction(str(n).lower(), d, adsorbates) for n, d in raw["reactions"].items()}
    return ReactionTable(
        adsorbates, reactions, dict(raw.get("sources", {})), dict(raw.get("gases", {})), origin,
        float(raw.get("temperature_K", 298.15)),
    )  # fmt: skip
