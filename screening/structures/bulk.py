"""Bulk prototypes of pure metals and binary intermetallics, default lattice constants, lattice relaxation.

Prototypes (A = majority/first element, B = second):

=========  =====  ==========================================================
name       comp.  structure (cell returned by :func:`make_bulk`)
=========  =====  ==========================================================
fcc        A      primitive fcc, ``a`` = cubic lattice constant (Å)
bcc        A      primitive bcc, ``a`` = cubic lattice constant (Å)
hcp        A      hexagonal, 2 atoms, ``a``, ``c`` (Å)
L12        A3B    Cu3Au type, simple cubic 4 atoms, ``a`` (Å)
B2         AB     CsCl type, simple cubic 2 atoms, ``a`` (Å)
L10        AB     CuAu type, primitive tetragonal 2 atoms, ``a`` = fcc-like cubic a, ``c`` (Å)
D019       A3B    Ni3Sn type, hexagonal 8 atoms (2x2 hcp), ``a`` = hcp a, ``c`` (Å)
A2B_hcp    A2B    hcp with a sqrt(3)xsqrt(3)R30 ordering in every basal plane, 6 atoms, ``a`` = hcp a, ``c``
=========  =====  ==========================================================

Lattice constants default to a Vegard-type mix of the elements' volumes per atom from ``ase.data``
reference states (ideal c/a for hexagonal and tetragonal cells).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from ase.data import atomic_numbers, covalent_radii, reference_states

from screening.structures.errors import StructureBuildError

IDEAL_C_OVER_A = float(np.sqrt(8.0 / 3.0))


@dataclass(frozen=True)
class Prototype:
    """A bulk prototype: stoichiometry (A count, B count) and atoms per cell."""

    name: str
    stoichiometry: tuple[int, int]  # (n_A, n_B); n_B = 0 for pure metals
    hexagonal: bool = False
    tetragonal: bool = False

    @property
    def formula_pattern(self) -> str:
        """E.g. 'A3B', 'AB', 'A'."""
        na, nb = self.stoichiometry
        out = "A" + (str(na) if na > 1 else "")
        if nb:
            out += "B" + (str(nb) if nb > 1 else "")
        return out


PROTOTYPES: dict[str, Prototype] = {
    "fcc": Prototype("fcc", (1, 0)),
    "bcc": Prototype("bcc", (1, 0)),
    "hcp": Prototype("hcp", (1, 0), hexagonal=True),
    "L12": Prototype("L12", (3, 1)),
    "B2": Prototype("B2", (1, 1)),
    "L10": Prototype("L10", (1, 1), tetragonal=True),
    "D019": Prototype("D019", (3, 1), hexagonal=True),
    "A2B_hcp": Prototype("A2B_hcp", (2, 1), hexagonal=True),
}

_ALIASES = {
    "l1_2": "L12",
    "l1₂": "L12",
    "cu3au": "L12",
    "l1_0": "L10",
    "l1₀": "L10",
    "cuau": "L10",
    "cscl": "B2",
    "d0_19": "D019",
    "d0₁₉": "D019",
    "ni3sn": "D019",
    "a2b": "A2B_hcp",
    "a2b-hcp": "A2B_hcp",
}


def canonical_prototype(name: str) -> str:
    """Canonical prototype name ('l1_2' -> 'L12'); `StructureBuildError` listing valid names if unknown."""
    key = name.strip()
    for canon in PROTOTYPES:
        if key.lower() == canon.lower():
            return canon
    if key.lower() in _ALIASES:
        return _ALIASES[key.lower()]
    raise StructureBuildError(f"unknown prototype {name!r}; valid prototypes: {sorted(PROTOTYPES)}")


def parse_composition(composition: str | dict[str, int] | tuple[str, ...] | list[str]) -> dict[str, int]:
    """Parse 'Cu3Au', {'Cu': 3, 'Au': 1} or ('Cu', 'Au') into an ordered {element: count} dict.

    A sequence of element symbols means "A, B" with counts left to the prototype (returned as 0).
    """
    if isinstance(composition, dict):
        out = {str(k): int(v) for k, v in composition.items()}
    elif isinstance(composition, list | tuple):
        out = {str(s): 0 for s in composition}
    else:
        tokens = re.findall(r"([A-Z][a-z]?)(\d*)", composition.strip())
        if not tokens or "".join(s + n for s, n in tokens) != composition.strip():
            raise StructureBuildError(f"cannot parse composition {composition!r}; write e.g. 'Pt', 'Cu3Au'")
        out = {}
        for sym, num in tokens:
            out[sym] = out.get(sym, 0) + (int(num) if num else 1)
    for sym in out:
        if sym not in atomic_numbers or sym == "X":
            raise StructureBuildError(f"unknown element {sym!r} in composition {composition!r}")
    if not 1 <= len(out) <= 2:
        raise StructureBuildError(f"composition {composition!r}: need 1 (pure) or 2 (binary) elements")
    return out


def assign_sites(composition: str | dict | tuple | list, prototype: str) -> tuple[str, str | None]:
    """Return (A, B) for `composition` on `prototype` (B is None for pure metals).

    Raises `StructureBuildError` (listing compatible prototypes) if the stoichiometry does not fit.
    """
    proto = PROTOTYPES[canonical_prototype(prototype)]
    comp = parse_composition(composition)
    na, nb = proto.stoichiometry
    symbols = list(comp)
    counts = list(comp.values())
    if nb == 0:
        if len(symbols) == 1:
            return symbols[0], None
    elif len(symbols) == 2:
        if all(c == 0 for c in counts):  # element sequence: A, B in order
            return symbols[0], symbols[1]
        g = np.gcd(counts[0], counts[1])
        ratio = (counts[0] // g, counts[1] // g)
        if ratio == (na, nb):
            return symbols[0], symbols[1]
        if ratio == (nb, na):
            return symbols[1], symbols[0]
    fits = [name for name, p in PROTOTYPES.items() if _fits(comp, p.stoichiometry)]
    raise StructureBuildError(
        f"composition {composition!r} is impossible for prototype {proto.name} ({proto.formula_pattern}); "
        f"prototypes that fit: {fits or 'none'}; valid prototypes: "
        + ", ".join(f"{n} ({p.formula_pattern})" for n, p in PROTOTYPES.items())
    )


def _fits(comp: dict[str, int], stoich: tuple[int, int]) -> bool:
    counts = list(comp.values())
    if stoich[1] == 0:
        return len(counts) == 1
    if len(counts) != 2:
        return False
    if all(c == 0 for c in counts):
        return True
    g = np.gcd(counts[0], counts[1]) or 1
    r = (counts[0] // g, counts[1] // g)
    return r in (stoich, stoich[::-1])


def composition_formula(a: str, b: str | None, prototype: str) -> str:
    """Reduced formula such as 'Cu3Au', 'Pt'."""
    proto = PROTOTYPES[canonical_prototype(prototype)]
    na, nb = proto.stoichiometry
    if b is None:
        return a
    return f"{a}{na if na > 1 else ''}{b}{nb if nb > 1 else ''}"


# Experimental volumes per atom (Å^3, room temperature, from densities) of metals whose ASE reference state is
# not fcc/bcc/hcp/sc; the covalent-radius estimate below was 20-60 % off for them (Si 7.7, Sn 15.2, Sm 43.9),
# and slabs built at those volumes fall apart when relaxed.
EXPERIMENTAL_VOLUMES = {"Ga": 19.6, "In": 26.2, "Si": 20.0, "Sn": 27.1, "Mn": 12.2, "Sm": 33.2, "Ge": 22.6, "Bi": 35.4}


def element_volume(symbol: str) -> float:
    """Volume per atom (Å^3) of an element's reference state (or `EXPERIMENTAL_VOLUMES`); close-packed estimate
    from covalent radii otherwise."""
    if symbol in EXPERIMENTAL_VOLUMES:
        return EXPERIMENTAL_VOLUMES[symbol]
    z = atomic_numbers[symbol]
    ref = reference_states[z] or {}
    sym = ref.get("symmetry")
    if sym == "fcc":
        return ref["a"] ** 3 / 4.0
    if sym == "bcc":
        return ref["a"] ** 3 / 2.0
    if sym == "hcp":
        a = ref["a"]
        c = ref.get("c/a", IDEAL_C_OVER_A) * a
        return np.sqrt(3.0) / 2.0 * a * a * c / 2.0
    if sym in ("sc",):
        return ref["a"] ** 3
    # Non-metallic or exotic reference state: close-packed spheres of the covalent radius.
    d = 2.0 * covalent_radii[z]
    return d**3 / np.sqrt(2.0)


def default_volume_per_atom(a: str, b: str | None, prototype: str) -> float:
    """Vegard-type mix (linear in volume per atom) of the elements' reference volumes (Å^3)."""
    proto = PROTOTYPES[canonical_prototype(prototype)]
    if b is None:
        return element_volume(a)
    na, nb = proto.stoichiometry
    return (na * element_volume(a) + nb * element_volume(b)) / (na + nb)


def lattice_from_volume(
    prototype: str, volume_per_atom: float, c_over_a: float | None = None
) -> tuple[float, float | None]:
    """Lattice constants (a, c) in Å giving `volume_per_atom` (Å^3); c is None for cubic prototypes.

    For L10 ``a`` is the fcc-like cubic constant and c/a defaults to 1; for hexagonal prototypes ``a`` is
    the hcp nearest-neighbour a and c/a defaults to the ideal sqrt(8/3).
    """
    name = canonical_prototype(prototype)
    v = float(volume_per_atom)
    if name in ("fcc", "L12"):
        return (4.0 * v) ** (1 / 3), None
    if name == "bcc":
        return (2.0 * v) ** (1 / 3), None
    if name == "B2":
        return (2.0 * v) ** (1 / 3), None
    if name == "L10":
        ca = 1.0 if c_over_a is None else c_over_a
        a = (4.0 * v / ca) ** (1 / 3)
        return a, ca * a
    ca = IDEAL_C_OVER_A if c_over_a is None else c_over_a
    # hcp: 2 atoms in sqrt(3)/2 a^2 c
    a = (4.0 * v / (np.sqrt(3.0) * ca)) ** (1 / 3)
    return a, ca * a


def _hcp_supercell(a: float, c: float, n: int, sqrt3: bool) -> Atoms:
    """hcp (placeholder Cu) with a basal n x n supercell, or sqrt3 x sqrt3 R30 if `sqrt3`."""
    from ase.build import bulk as ase_bulk
    from ase.build import make_supercell

    prim = ase_bulk("Cu", "hcp", a=a, c=c)
    p = np.array([[2, 1, 0], [-1, 1, 0], [0, 0, 1]]) if sqrt3 else np.diag([n, n, 1])
    return make_supercell(prim, p)


def _order_hcp_layers(atoms: Atoms, a_sym: str, b_sym: str, n_b_per_layer: int) -> Atoms:
    """Put B on `n_b_per_layer` atoms of each basal layer, keeping B atoms as far apart as possible."""
    from ase.geometry import get_distances

    z = np.round(atoms.positions[:, 2], 4)
    layers = sorted(set(z))
    symbols = [a_sym] * len(atoms)
    b_idx: list[int] = []
    for zl in layers:
        cand = [i for i in range(len(atoms)) if z[i] == zl]
        for _ in range(n_b_per_layer):
            if not b_idx:
                best = cand[0]
            else:
                _, d = get_distances(atoms.positions[cand], atoms.positions[b_idx], cell=atoms.cell, pbc=True)
                best = cand[int(np.argmax(np.round(d.min(axis=1), 6)))]
            b_idx.append(best)
            cand.remove(best)
    for i in b_idx:
        symbols[i] = b_sym
    atoms.set_chemical_symbols(symbols)
    return atoms


def make_bulk(
    composition: str | dict | tuple | list,
    prototype: str,
    a: float | None = None,
    c: float | None = None,
    volume_per_atom: float | None = None,
) -> Atoms:
    """Bulk cell of `composition` in `prototype` (see module table).

    a, c: lattice constants in Å (see module table for their meaning); or `volume_per_atom` in Å^3; by
    default a Vegard-type mix of the elements' reference volumes. atoms.info gets 'composition',
    'prototype', 'a', 'c'.
    """
    from ase.build import bulk as ase_bulk

    name = canonical_prototype(prototype)
    elem_a, elem_b = assign_sites(composition, name)
    proto = PROTOTYPES[name]
    ref = reference_states[atomic_numbers[elem_a]] or {}
    if a is None and volume_per_atom is None and elem_b is None and ref.get("symmetry") == name:
        a = float(ref["a"])  # pure element in its own reference structure: tabulated constants
        if name == "hcp" and c is None:
            c = a * float(ref.get("c/a", IDEAL_C_OVER_A))
    if a is None:
        v = volume_per_atom if volume_per_atom is not None else default_volume_per_atom(elem_a, elem_b, name)
        if v <= 0:
            raise StructureBuildError(f"volume_per_atom must be > 0 Å^3, got {v}")
        a, c_default = lattice_from_volume(name, v)
        if c is None:
            c = c_default
    elif c is None and (proto.hexagonal or proto.tetragonal):
        c = a * (IDEAL_C_OVER_A if proto.hexagonal else 1.0)
    if a <= 0 or (c is not None and c <= 0):
        raise StructureBuildError(f"lattice constants must be > 0 Å, got a={a}, c={c}")

    if name in ("fcc", "bcc"):
        atoms = ase_bulk(elem_a, name, a=a)
    elif name == "hcp":
        atoms = ase_bulk(elem_a, "hcp", a=a, c=c)
    elif name == "L12":
        atoms = Atoms(
            [elem_b, elem_a, elem_a, elem_a],
            scaled_positions=[[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]],
            cell=np.eye(3) * a,
            pbc=True,
        )
    elif name == "B2":
        atoms = Atoms([elem_a, elem_b], scaled_positions=[[0, 0, 0], [0.5] * 3], cell=np.eye(3) * a, pbc=True)
    elif name == "L10":
        ap = a / np.sqrt(2.0)
        atoms = Atoms([elem_a, elem_b], scaled_positions=[[0, 0, 0], [0.5] * 3], cell=np.diag([ap, ap, c]), pbc=True)
    elif name == "D019":
        atoms = _order_hcp_layers(_hcp_supercell(a, c, 2, sqrt3=False), elem_a, elem_b, 1)
    elif name == "A2B_hcp":
        atoms = _order_hcp_layers(_hcp_supercell(a, c, 1, sqrt3=True), elem_a, elem_b, 1)
    else:  # pragma: no cover - table and branches agree
        raise StructureBuildError(f"no builder for {name}")
    atoms.info.update(
        composition=composition_formula(elem_a, elem_b, name),
        prototype=name,
        a=float(a),
    )
    if c is not None:  # cubic prototypes carry no 'c'
        atoms.info["c"] = float(c)
    return atoms


def relax_lattice(
    bulk: Atoms, calc: BaseCalculator, method: str = "eos", fmax: float = 0.01, steps: int = 200
) -> Atoms:
    """Relax a bulk cell's lattice constants with any ASE calculator (e.g. the teacher).

    method='eos': isotropic scan over +-6 % volume and a Birch-Murnaghan fit (keeps c/a, cell shape);
    method='filter': FrechetCellFilter + BFGS on cell and positions until max force < `fmax` (eV/Å).
    Returns a new Atoms with info 'a', 'c' updated (same meaning as in :func:`make_bulk`).
    """
    atoms = bulk.copy()
    if method == "eos":
        from ase.eos import EquationOfState

        for _ in range(4):  # re-centre the scan until the minimum lies inside it
            cell0 = atoms.cell.copy()
            vols, energies = [], []
            for f in np.linspace(0.94, 1.06, 7):
                trial = atoms.copy()
                trial.set_cell(cell0 * f ** (1 / 3), scale_atoms=True)
                trial.calc = calc
                vols.append(trial.get_volume())
                energies.append(trial.get_potential_energy())
            i_min = int(np.argmin(energies))
            if 0 < i_min < len(vols) - 1:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    v0, _, _ = EquationOfState(vols, energies, eos="birchmurnaghan").fit()
                atoms.set_cell(cell0 * (v0 / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
                break
            atoms.set_cell(cell0 * (vols[i_min] / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
        else:
            raise StructureBuildError("EOS scan found no energy minimum (is the calculator sensible?)")
        v0 = atoms.get_volume()
        scale = (v0 / bulk.get_volume()) ** (1 / 3)
        a_new = bulk.info.get("a", float("nan")) * scale
        c_new = bulk.info.get("c", float("nan")) * scale
    elif method == "filter":
        from ase.filters import FrechetCellFilter
        from ase.optimize import BFGS

        atoms.calc = calc
        BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=steps)
        a_new, c_new = _lattice_constants(atoms)
        atoms.calc = None
    else:
        raise StructureBuildError(f"unknown relax method {method!r}; valid methods: ['eos', 'filter']")
    atoms.info["a"] = float(a_new)
    if np.isfinite(c_new):
        atoms.info["c"] = float(c_new)
    return atoms


def _lattice_constants(atoms: Atoms) -> tuple[float, float]:
    """(a, c) in the make_bulk convention, read from a (possibly relaxed) cell."""
    name = atoms.info.get("prototype", "fcc")
    lengths = atoms.cell.lengths()
    if name == "fcc":
        return float(lengths.mean() * np.sqrt(2.0)), float("nan")
    if name == "bcc":
        return float(lengths.mean() * 2.0 / np.sqrt(3.0)), float("nan")
    if name in ("L12", "B2"):
        return float(lengths.mean()), float("nan")
    if name == "L10":
        return float(lengths[:2].mean() * np.sqrt(2.0)), float(lengths[2])
    if name == "D019":
        return float(lengths[:2].mean() / 2.0), float(lengths[2])
    if name == "A2B_hcp":
        return float(lengths[:2].mean() / np.sqrt(3.0)), float(lengths[2])
    return float(lengths[:2].mean()), float(lengths[2])
