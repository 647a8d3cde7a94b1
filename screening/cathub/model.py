"""In-memory CatalysisHub reactions: parsing of API nodes, structures, tags and energy validation.

Sign convention (as in the API): ``reactionEnergy = Σ_products c·E − Σ_reactants c·E`` with the coefficients
exactly as in the ``reactants``/``products`` JSON strings; a negative reactant coefficient (``"H2gas": -0.5``)
means the species is released. All energies are in eV.

Tags (GemNet-OC/OC20 convention) set on every structure:

* adsorbed state (``<ads>star``): atoms beyond the clean slab are the adsorbate (tag 2) when the clean slab
  is a prefix of the adsorbed state (same atomic numbers in order, no prefix atom moved by 1 Å or more);
  otherwise, per element, the *n* extra atoms (adsorbed minus clean counts) with the highest z are the
  adsorbate. Without a clean slab, no atom is tagged 2.
* slab atoms (clean or adsorbed state): tag 1 when within ``TOP_LAYER_TOL`` (1.0 Å) of the highest slab atom
  (the top surface layer), 0 below.
* gas species: all atoms tag 2 (a free molecule, the adsorbate-like part of the reaction).
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

ENERGY_TOL = 1e-3  # eV: |reactionEnergy − Σ c·E| allowed by validation
PREFIX_MAX_SHIFT = 1.0  # Å: the slab is a prefix of the adsorbed state only if no prefix atom moved more
TOP_LAYER_TOL = 1.0  # Å: slab atoms this close to the highest slab atom form the top layer
GAS_MAX_ATOMS = 10  # fewer atoms than this ⇒ gas (when the name says nothing)
GAS_MIN_VOLUME = 8000.0  # Å³: larger cells ⇒ gas (when the name says nothing)

_FACET_RE = re.compile(r"^\s*(?P<facet>[^+\-%\s]+?)\s*(?P<strain>[+\-]\s*\d+(?:\.\d+)?)\s*%\s*$")
_TERM_RE = re.compile(r"^(?P<coef>\d+(?:\.\d+)?|\.\d+)?\s*(?P<species>\S+)$")


# ----------------------------------------------------------------------------- parsing helpers
def parse_json_field(value: Any, default: Any) -> Any:
    """A JSON-string field of the API (reactants, products, sites, constraints) as Python (dicts pass)."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return json.loads(value)
    return value


def parse_stoichiometry(value: Any) -> dict[str, float]:
    """``"{\\"star\\": 1, \\"H2gas\\": -0.5}"`` → ``{"star": 1.0, "H2gas": -0.5}`` (signs kept as given)."""
    return {str(k): number(v, f"coefficient of {k}") for k, v in parse_json_field(value, {}).items()}


def species_name_from_equation(term: str) -> str:
    """Equation notation to system name: ``H2O(g)`` → ``H2Ogas``, ``*`` → ``star``, ``OH*`` → ``OHstar``."""
    term = term.strip()
    if term == "*":
        return "star"
    if term.endswith("(g)"):
        return term[:-3] + "gas"
    if term.endswith("*"):
        return term[:-1] + "star"
    return term


def parse_equation(equation: str) -> tuple[dict[str, float], dict[str, float]]:
    """Parse ``"H2O(g) - 0.5H2(g) + * -> OH*"`` into signed (reactants, products) keyed by system name.

    A ``-`` before a term gives it a negative coefficient (released species), as in the JSON strings.
    """
    if "->" not in equation:
        raise ValueError(f"equation without '->': {equation!r}")
    left, right = equation.split("->", 1)
    return _parse_side(left), _parse_side(right)


def _parse_side(side: str) -> dict[str, float]:
    out: dict[str, float] = {}
    tokens = re.split(r"\s+([+\-])\s+", " " + side.strip())
    # re.split with a capture group alternates: [first, sign, term, sign, term, ...]
    terms = [("+", tokens[0])] + list(zip(tokens[1::2], tokens[2::2], strict=True))
    for sign, term in terms:
        term = term.strip()
        if not term:
            continue
        if term.startswith("-"):
            sign, term = "-", term[1:].strip()
        m = _TERM_RE.match(term)
        if m is None:
            raise ValueError(f"cannot parse equation term {term!r}")
        coef = float(m.group("coef")) if m.group("coef") else 1.0
        name = species_name_from_equation(m.group("species"))
        out[name] = out.get(name, 0.0) + (-coef if sign == "-" else coef)
    return out


def parse_facet(facet: str | None) -> tuple[str | None, float]:
    """Split a facet into (Miller index, biaxial strain in %): ``"111-5%"`` → ``("111", -5.0)``,
    ``"0001+3%"`` → ``("0001", 3.0)``, ``"111"`` → ``("111", 0.0)``. The sign is kept as written."""
    if facet is None:
        return None, 0.0
    m = _FACET_RE.match(facet)
    if m is None:
        return facet.strip(), 0.0
    return m.group("facet"), float(m.group("strain").replace(" ", ""))


def is_gas(name: str, atoms: Atoms | None = None) -> bool:
    """Gas species: the name ends in ``gas``; a name ending in ``star`` is never gas; any other name is gas
    when the structure has < 10 atoms or a cell volume > 8000 Å³."""
    if name.endswith("gas"):
        return True
    if name.endswith("star") or atoms is None:
        return False
    volume = atoms.cell.volume if atoms.cell.rank == 3 else 0.0
    return len(atoms) < GAS_MAX_ATOMS or volume > GAS_MIN_VOLUME


def adsorbate_label(products: dict[str, float], reactants: dict[str, float]) -> str:
    """Adsorbate(s) of a reaction: adsorbed species (``<ads>star``) among the products, joined by ``+``."""
    names = [n[:-4] for n in products if n.endswith("star") and n != "star"]
    if not names:
        names = [n[:-4] for n in reactants if n.endswith("star") and n != "star"]
    return "+".join(sorted(names))


def atoms_from_input_file(input_file: str, constraints: Any = None) -> Atoms:
    """ASE Atoms from an ``InputFile(format: "json")`` string (ASE-db JSON) plus the constraints string."""
    from ase.io import read

    atoms = read(io.StringIO(input_file), format="json")
    cons = parse_json_field(constraints, None)
    if cons:
        fixed: list[int] = []
        for c in cons:
            if isinstance(c, dict) and c.get("name") == "FixAtoms":
                fixed.extend(int(i) for i in c.get("kwargs", {}).get("indices", []))
        if fixed:
            atoms.set_constraint(FixAtoms(indices=sorted(set(fixed))))
    return atoms


def atoms_to_input_file(atoms: Atoms) -> str:
    """ASE-db JSON string (``InputFile(format: "json")`` shape) of an Atoms object."""
    from ase.io import write

    buf = io.StringIO()
    write(buf, atoms, format="json")
    return buf.getvalue()


# ----------------------------------------------------------------------------- tags
def adsorbate_indices(slab: Atoms, adslab: Atoms) -> list[int]:
    """Indices of adsorbate atoms in ``adslab`` given the clean ``slab`` (rule: module docstring)."""
    zs, za = slab.numbers, adslab.numbers
    n = len(zs)
    if len(za) > n and np.array_equal(za[:n], zs):
        moved = np.linalg.norm(adslab.positions[:n] - slab.positions, axis=1)
        if moved.max(initial=0.0) < PREFIX_MAX_SHIFT:
            return list(range(n, len(za)))
    extra = Counter(za.tolist())
    extra.subtract(Counter(zs.tolist()))
    out: list[int] = []
    z = adslab.positions[:, 2]
    for element, n in extra.items():
        if n <= 0:
            continue
        idx = np.flatnonzero(za == element)
        out.extend(int(i) for i in idx[np.argsort(-z[idx], kind="stable")][:n])
    return sorted(out)


def assign_tags(atoms: Atoms, *, gas: bool, ads_idx: list[int] | None = None) -> None:
    """Set tags in place: 2 adsorbate / gas atoms, 1 top slab layer, 0 deeper slab atoms."""
    tags = np.zeros(len(atoms), dtype=int)
    if gas:
        tags[:] = 2
    else:
        ads = np.zeros(len(atoms), dtype=bool)
        if ads_idx:
            ads[ads_idx] = True
        slab_z = atoms.positions[~ads, 2]
        if slab_z.size:
            top = atoms.positions[:, 2] > slab_z.max() - TOP_LAYER_TOL
            tags[top & ~ads] = 1
        tags[ads] = 2
    atoms.set_tags(tags)


# ----------------------------------------------------------------------------- data classes
@dataclass
class System:
    """One DFT system of a reaction (clean slab, adsorbed state or gas reference); energy in eV."""

    name: str
    ase_id: str | None = None
    energy: float | None = None
    energy_correction: float = 0.0
    atoms: Atoms | None = None
    gas: bool = False


@dataclass
class Reaction:
    """A CatalysisHub reaction. ``reactants``/``products`` hold signed coefficients as in the API;
    ``reaction_energy`` is the DFT reaction energy (eV); ``strain_percent`` is parsed from the facet."""

    id: str
    equation: str
    reactants: dict[str, float]
    products: dict[str, float]
    reaction_energy: float | None
    pub_id: str | None = None
    sites: dict[str, Any] = field(default_factory=dict)
    facet: str | None = None
    facet_raw: str | None = None
    strain_percent: float = 0.0
    surface_composition: str | None = None
    chemical_composition: str | None = None
    adsorbate: str = ""
    dft_code: str | None = None
    dft_functional: str | None = None
    systems: dict[str, System] = field(default_factory=dict)
    problem: str | None = None  # why the record could not be read (then it is listed as invalid, never screened)

    @property
    def species(self) -> list[tuple[str, float, str]]:
        """(name, coefficient, side) for every species, side ``"reactant"`` or ``"product"``."""
        return [(n, c, "reactant") for n, c in self.reactants.items()] + [
            (n, c, "product") for n, c in self.products.items()
        ]

    @property
    def has_structures(self) -> bool:
        """True when every species has its Atoms and DFT energy."""
        names = set(self.reactants) | set(self.products)
        return all(
            n in self.systems and self.systems[n].atoms is not None and self.systems[n].energy is not None
            for n in names
        )

    def atoms(self, name: str) -> Atoms | None:
        """Atoms of one species (None if structures were not loaded)."""
        s = self.systems.get(name)
        return None if s is None else s.atoms

    def energy_from_systems(self, *, with_corrections: bool = False) -> float:
        """Σ_products c·E − Σ_reactants c·E of the system energies (eV); KeyError if one is missing."""

        def e(name: str) -> float:
            s = self.systems[name]
            if s.energy is None:
                raise KeyError(name)
            return s.energy + (s.energy_correction if with_corrections else 0.0)

        return sum(c * e(n) for n, c in self.products.items()) - sum(c * e(n) for n, c in self.reactants.items())

    def validate(self, tol: float = ENERGY_TOL) -> str | None:
        """None when the DFT reaction energy matches the system energies within ``tol`` eV, else why."""
        if self.reaction_energy is None:
            return "no reactionEnergy"
        try:
            calc = self.energy_from_systems()
        except KeyError as exc:
            return f"missing system energy for {exc.args[0]!r}"
        if abs(calc - self.reaction_energy) <= tol:
            return None
        corrected = any(s.energy_correction for s in self.systems.values())
        if corrected and abs(self.energy_from_systems(with_corrections=True) - self.reaction_energy) <= tol:
            return None
        return (
            f"reactionEnergy {self.reaction_energy:.6f} eV != Σ products c·E − Σ reactants c·E "
            f"= {calc:.6f} eV (|Δ| = {abs(calc - self.reaction_energy) * 1000:.3f} meV > {tol * 1000:g} meV)"
        )


def unreadable_reaction(rid: Any, problem: str) -> Reaction:
    """A placeholder for a record that could not be read: `build_dataset` lists it as invalid with `problem`."""
    return Reaction(id=str(rid), equation="", reactants={}, products={}, reaction_energy=None, problem=problem)


def finalize_structures(reaction: Reaction) -> None:
    """Classify gas systems and set tags on every loaded structure of a reaction (in place)."""
    for s in reaction.systems.values():
        s.gas = is_gas(s.name, s.atoms)
    slab = reaction.systems.get("star")
    for s in reaction.systems.values():
        if s.atoms is None:
            continue
        if s.gas:
            assign_tags(s.atoms, gas=True)
        elif s.name != "star" and slab is not None and slab.atoms is not None:
            assign_tags(s.atoms, gas=False, ads_idx=adsorbate_indices(slab.atoms, s.atoms))
        else:
            assign_tags(s.atoms, gas=False)


def number(value: Any, what: str) -> float:
    """`float(value)`; `ValueError` saying which field holds what when it is not a finite number."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not np.isfinite(out):
        raise ValueError(f"{what} {value!r} is not a finite number")
    return out


def reaction_from_node(
    node: dict[str, Any],
    structures: dict[str, dict[str, Any]] | None = None,
    parsed: dict[str, Atoms] | None = None,
) -> Reaction:
    """A Reaction from one API reaction node (metadata-only or structure-bearing).

    ``structures`` maps aseId → a system node ``{energy, constraints, InputFile}`` fetched separately
    (the two-phase download); systems embedded in the node (``reactionSystems[].systems``) take precedence.
    ``parsed`` (aseId → Atoms) memoises parsing of shared systems; each reaction gets its own copy.
    A malformed field raises `ValueError` naming the reaction id and the field.
    """
    rid = node.get("id") if isinstance(node, dict) else None
    if rid is None:
        raise ValueError(f"reaction record without an id: {str(node)[:120]}")
    try:
        return _reaction_from_node(node, structures, parsed)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        detail = f"missing field {err.args[0]!r}" if isinstance(err, KeyError) else str(err)
        raise ValueError(f"reaction {str(rid)!r}: {detail}") from None


def _reaction_from_node(
    node: dict[str, Any],
    structures: dict[str, dict[str, Any]] | None,
    parsed: dict[str, Atoms] | None,
) -> Reaction:
    try:
        reactants = parse_stoichiometry(node.get("reactants"))
        products = parse_stoichiometry(node.get("products"))
    except json.JSONDecodeError as err:
        raise ValueError(f"reactants/products are not valid JSON ({err.msg})") from None
    facet, strain = parse_facet(node.get("facet"))
    energy = node.get("reactionEnergy")
    rxn = Reaction(
        id=str(node["id"]),
        equation=node.get("Equation") or "",
        reactants=reactants,
        products=products,
        reaction_energy=None if energy is None else number(energy, "reactionEnergy"),
        pub_id=node.get("pubId"),
        sites=parse_json_field(node.get("sites"), {}),
        facet=facet,
        facet_raw=node.get("facet"),
        strain_percent=strain,
        surface_composition=node.get("surfaceComposition"),
        chemical_composition=node.get("chemicalComposition"),
        adsorbate=adsorbate_label(products, reactants),
        dft_code=node.get("dftCode"),
        dft_functional=node.get("dftFunctional"),
    )
    for rs in node.get("reactionSystems") or []:
        name = rs["name"]
        ase_id = rs.get("aseId")
        sysnode = rs.get("systems")
        if isinstance(sysnode, list):  # tolerate a list-valued field
            sysnode = sysnode[0] if sysnode else None
        if not sysnode and structures is not None and ase_id in structures:
            sysnode = structures[ase_id]
        correction = number(rs.get("energyCorrection") or 0.0, f"energyCorrection of {name}")
        system = System(name=name, ase_id=ase_id, energy_correction=correction)
        if sysnode:
            if sysnode.get("energy") is not None:
                system.energy = number(sysnode["energy"], f"energy of system {name} ({ase_id})")
            if sysnode.get("InputFile"):
                if parsed is not None and ase_id and ase_id in parsed:
                    system.atoms = parsed[ase_id].copy()
                else:
                    atoms = atoms_from_input_file(sysnode["InputFile"], sysnode.get("constraints"))
                    if parsed is not None and ase_id:
                        parsed[ase_id] = atoms.copy()
                    system.atoms = atoms
        rxn.systems[name] = system
    finalize_structures(rxn)
    return rxn
