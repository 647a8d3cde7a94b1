"""CatalysisHub site names (as AlonsoStrain2023, SainiElectronic2022, LiScreening2021 write them) matched to the
sites `find_sites` finds on a built slab.

A name is ``<kind><letters>[_<variant>][-d]``:

* kind: ``ontop``, ``bridge``, ``shortbridge``, ``longbridge``, ``fcc``, ``hcp``, ``threefold``, ``hollow``;
* letters: the chemistry of the site atoms, A = first element of ``surfaceComposition`` (the majority element of
  A3B/A2B), B = the second; sorted (``fccAAB``). A single letter on a bridge means both atoms (``longbridgeA`` =
  the A–A long bridge); no letters on a binary slab means any chemistry, provided only one exists
  (``shortbridge`` on B2(110) is the A–B short bridge);
* variant: ``_1``, ``_2``, ... the n-th of several distinct environments sharing the name, in `find_sites`'
  order (``_1`` = the one `find_sites` names without suffix); ``_A``/``_B``: the environment whose atom directly
  below the site (2nd layer for hcp and bridge/ontop-like sites, 3rd layer for fcc) is element A/B;
* ``-d``: CatalysisHub's "displaced" mark — in DFT the adsorbate left the named (starting) site for a position
  that is no high-symmetry site. The structure is built at the named site and the match carries a note.

Kind fallbacks, each reported in the match's note: ``hollow`` on a slab without fourfold hollows is the threefold
site (AlonsoStrain2023 calls the bcc(110) threefold site ``hollow``); ``bridge`` on a slab whose bridges split into
short and long ones is the short bridge.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from screening.structures.errors import StructureBuildError
from screening.structures.sites import AdsorptionSite, _element_roles, _layers_from_top, find_sites

_NAME_RE = re.compile(
    r"^(?P<kind>longbridge|shortbridge|threefold|bridge|hollow|ontop|fcc|hcp)"
    r"(?P<letters>[AB]*)(?:_(?P<variant>\d+|[AB]))?(?P<displaced>-d)?$"
)
_N_LETTERS = {"ontop": 1, "bridge": 2, "shortbridge": 2, "longbridge": 2, "fcc": 3, "hcp": 3, "threefold": 3}
_N_LETTERS["hollow"] = 4
_FALLBACK = {"hollow": "threefold", "bridge": "shortbridge"}


@dataclass(frozen=True)
class SiteName:
    """A parsed CatalysisHub site name. letters: sorted A/B string ('' = any chemistry)."""

    raw: str
    kind: str
    letters: str
    variant: str | None
    displaced: bool


@dataclass
class SiteMatch:
    """The built slab's site for a CatalysisHub name, and what was assumed to find it (None: exact)."""

    name: SiteName
    site: AdsorptionSite
    note: str | None = None


def parse_site_name(name: str) -> SiteName:
    """Parse a CatalysisHub site name; `StructureBuildError` when it is not of the documented form."""
    m = _NAME_RE.match(str(name).strip())
    if m is None:
        raise StructureBuildError(f"{name!r} is not <kind><letters>[_variant][-d] (e.g. ontopA, fccAAB, hcpAAB-d)")
    kind, letters = m.group("kind"), m.group("letters")
    want = _N_LETTERS[kind]
    if letters and len(letters) != want:
        if len(set(letters)) == 1 and len(letters) < want:
            letters = letters[0] * want  # longbridgeA = longbridgeAA
        elif not (kind == "hollow" and len(letters) == 3):  # hollow written as threefold (bcc(110))
            raise StructureBuildError(f"site name {name!r}: {kind} needs {want} site letters, got {letters!r}")
    return SiteName(str(name), kind, "".join(sorted(letters)), m.group("variant"), bool(m.group("displaced")))


def _letters(site: AdsorptionSite, roles: dict[str, str]) -> str:
    return "".join(sorted(roles.get(s, "X") for s in site.symbols))


def _below_element(slab: Atoms, site: AdsorptionSite, roles: dict[str, str]) -> str | None:
    """Role (A/B) of the atom directly below the site (2nd layer; 3rd for fcc hollows), None if none."""
    layer = _layers_from_top(slab)
    depth = 2 if site.kind == "fcc" else 1
    idx = np.flatnonzero(layer == depth)
    if not len(idx):
        return None
    cell2 = np.asarray(slab.cell[:2, :2])
    d = slab.positions[idx, :2] - site.position[:2]
    f = d @ np.linalg.inv(cell2)
    f -= np.round(f)
    dist = np.linalg.norm(f @ cell2, axis=1)
    nn = int(np.argmin(dist))
    if dist[nn] > 0.5:
        return None
    return roles.get(slab[idx[nn]].symbol)


def match_site(slab: Atoms, name: str | SiteName, sites: list[AdsorptionSite] | None = None) -> SiteMatch:
    """The site of `slab` that CatalysisHub's `name` denotes (rules: module docstring). `StructureBuildError`
    saying which sites the slab has when it has none of that name."""
    sn = name if isinstance(name, SiteName) else parse_site_name(name)
    sites = find_sites(slab) if sites is None else sites
    roles = _element_roles(slab)
    notes: list[str] = []
    if len(roles) == 1 and sn.letters and set(sn.letters) != {"A"}:
        raise StructureBuildError(f"site {sn.raw!r} names element B but the slab is a pure metal")
    kind = sn.kind
    cands = [s for s in sites if s.kind == kind]
    if not cands and kind in _FALLBACK:
        kind = _FALLBACK[kind]
        cands = [s for s in sites if s.kind == kind]
        if cands:
            notes.append(f"{sn.kind} read as {kind} (this slab has no {sn.kind} site)")
    want = sn.letters
    if want and len(want) != _N_LETTERS[kind]:  # a fallback kind with another number of site atoms
        want = want[0] * _N_LETTERS[kind] if len(set(want)) == 1 else "?"
    if len(roles) > 1 and want:
        cands = [s for s in cands if _letters(s, roles) == want]
    elif len(roles) > 1 and cands:
        chem = sorted({_letters(s, roles) for s in cands})
        if len(chem) > 1:
            raise StructureBuildError(
                f"site {sn.raw!r} gives no chemistry and this slab has several: {[kind + c for c in chem]}"
            )
    if not cands:
        raise StructureBuildError(f"no site {sn.raw!r} on the built slab; it has {[s.name for s in sites]}")
    if sn.variant is None:
        site = cands[0]
        if len(cands) > 1:
            notes.append(f"{len(cands)} distinct {cands[0].base_name} environments; the first ({site.name}) used")
    elif sn.variant.isdigit():
        k = int(sn.variant)
        if not 1 <= k <= len(cands):
            raise StructureBuildError(
                f"site {sn.raw!r}: the built slab has {len(cands)} distinct {cands[0].base_name} environment(s)"
            )
        site = cands[k - 1]
        if len(cands) > 1:
            notes.append(f"variant _{k} taken as the {k}-th environment in find_sites order ({site.name})")
    else:
        below = [s for s in cands if _below_element(slab, s, roles) == sn.variant]
        if not below:
            raise StructureBuildError(
                f"site {sn.raw!r}: no {cands[0].base_name} site of the built slab has an {sn.variant} atom below"
            )
        site = below[0]
    if sn.displaced:
        notes.append("'-d': in DFT the adsorbate left this site; built at the named site")
    return SiteMatch(sn, site, "; ".join(notes) or None)


def composition_counts(slab: Atoms) -> dict[str, int]:
    """Element counts of the slab (tag ≠ 2), for checks against CatalysisHub's chemicalComposition."""
    return dict(Counter(s for s, t in zip(slab.get_chemical_symbols(), slab.get_tags(), strict=True) if t != 2))
