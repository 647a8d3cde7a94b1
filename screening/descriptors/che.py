"""Computational hydrogen electrode (Nørskov et al. 2004): free energies of adsorbates and limiting potentials.

ΔG_X = ΔE_X + (ΔZPE − TΔS)_X at U = 0 V vs RHE, pH 0 (a proton-electron pair has the free energy of ½H₂).
An electrochemical reaction is a list of free-energy levels in reaction order, one proton-electron pair per step,
step free energies ΔG_i = level_{i+1} − level_i at 0 V. A reduction step shifts by +eU, an oxidation step by −eU,
so the limiting potential (every step downhill) is

    reduction: U_L = min_i(−ΔG_i)/e, η = U0 − U_L      (ORR: min(4.92 − G_OOH, G_OOH − G_O, G_O − G_OH, G_OH))
    oxidation: U_L = max_i(ΔG_i)/e,  η = U_L − U0      (OER: max(G_OH, G_O − G_OH, G_OOH − G_O, 4.92 − G_OOH))

HER (levels 0, G_H, 0) gives U_L = −|ΔG_H|, η = |ΔG_H|. A binding reaction's descriptor is the adsorbate's
binding relative to a target (a number, or the same adsorbate on a reference surface with the same model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from screening.descriptors.table import ReactionSpec, ReactionTable


class MissingAdsorbate(KeyError):
    """A required adsorbate energy is missing for a surface."""


def free_energy(delta_e: float, correction: float) -> float:
    """ΔG = ΔE + (ΔZPE − TΔS), eV."""
    return float(delta_e) + float(correction)


def step_energies(levels: Sequence[float]) -> list[float]:
    """ΔG_i = level_{i+1} − level_i (eV) at 0 V."""
    return [float(b - a) for a, b in zip(levels[:-1], levels[1:], strict=True)]


def limiting_potential(levels: Sequence[float], direction: str) -> tuple[float, int]:
    """(U_L in V, index of the limiting step) of free-energy `levels` (eV, reaction order)."""
    steps = step_energies(levels)
    if direction == "reduction":
        i = max(range(len(steps)), key=lambda k: steps[k])
        return -steps[i], i
    if direction == "oxidation":
        i = max(range(len(steps)), key=lambda k: steps[k])
        return steps[i], i
    raise ValueError(f"direction must be reduction or oxidation, got {direction!r}")


def overpotential(u_l: float, u0: float, direction: str) -> float:
    """η (V): U0 − U_L for a reduction, U_L − U0 for an oxidation."""
    return u0 - u_l if direction == "reduction" else u_l - u0


def orr_limiting_potential(g_o: float, g_oh: float, g_ooh: float) -> float:
    """U_L (V) of the 4e⁻ ORR: min(4.92 − G_OOH, G_OOH − G_O, G_O − G_OH, G_OH)."""
    return min(4.92 - g_ooh, g_ooh - g_o, g_o - g_oh, g_oh)


@dataclass
class Activity:
    """One surface's free energies (eV) and activity under one model. `origin`: computed | scaling per adsorbate.
    U_L, eta (V) for electrochemical reactions; `descriptor` = the volcano's x (eV); `abs_dG` = |descriptor −
    target| where it is defined; `metric` = the reaction's screening metric."""

    free_energies: dict[str, float]
    origin: dict[str, str]
    descriptor: float
    metric: float
    U_L: float | None = None
    eta: float | None = None
    abs_dG: float | None = None
    steps: list[float] = field(default_factory=list)
    limiting_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def free_energies(
    delta_e: Mapping[str, float], reaction: ReactionSpec, table: ReactionTable, *, force_scaling: bool = False
) -> tuple[dict[str, float], dict[str, str]]:
    """ΔG of each adsorbate of `reaction` from ΔE (eV, the table's reference scheme) and where it came from:
    "computed" (ΔE + correction) or "scaling" (ΔG_from + offset, for a scaled adsorbate not computed, or always
    with `force_scaling`). `MissingAdsorbate` when a required adsorbate (`ReactionSpec.required`) has no finite
    ΔE; an optional one (a binding reaction's non-descriptor adsorbates) is left out."""
    g: dict[str, float] = {}
    origin: dict[str, str] = {}
    required = set(reaction.required)
    for a in reaction.adsorbates:
        if a in reaction.scaling:
            continue
        e = delta_e.get(a)
        if e is None or not math.isfinite(e):
            if a in required:
                raise MissingAdsorbate(a)
            continue  # optional (reported when computed)
        g[a], origin[a] = free_energy(e, table.adsorbate(a).correction), "computed"
    for a, (frm, off) in reaction.scaling.items():
        e = delta_e.get(a)
        if not force_scaling and e is not None and math.isfinite(e):
            g[a], origin[a] = free_energy(e, table.adsorbate(a).correction), "computed"
        else:
            g[a], origin[a] = g[frm] + off, "scaling"
    return g, origin


def activity(
    delta_e: Mapping[str, float],
    reaction: ReactionSpec,
    table: ReactionTable,
    *,
    target: float | None = None,
    force_scaling: bool = False,
) -> Activity:
    """Free energies, U_L, η and the descriptor of one surface. `target` (eV): a binding reaction's target ΔG
    (its numeric target when None). `MissingAdsorbate` when a required adsorbate is missing."""
    g, origin = free_energies(delta_e, reaction, table, force_scaling=force_scaling)
    x = sum(c * g[a] for a, c in reaction.descriptor.items())
    if reaction.kind == "binding":
        t = target if target is not None else reaction.target
        if not isinstance(t, int | float):
            raise ValueError(f"{reaction.name}: the target ΔG on the reference surface is needed")
        x -= float(t)
        return Activity(g, origin, x, abs(x), abs_dG=abs(x))
    levels = [g[lv] if isinstance(lv, str) else float(lv) for lv in reaction.levels]
    u_l, i = limiting_potential(levels, reaction.direction)
    eta = overpotential(u_l, reaction.equilibrium_potential, reaction.direction)
    abs_dg = abs(x) if reaction.metric == "abs_dG" else None
    out = Activity(g, origin, x, math.nan, u_l, eta, abs_dg, step_energies(levels), i)
    out.metric = {"U_L": u_l, "eta": eta, "abs_dG": abs_dg if abs_dg is not None else math.nan}[reaction.metric]
    return out


def volcano_curve(reaction: ReactionSpec, x: Sequence[float]) -> list[float] | None:
    """The table's theory volcano (U_L against the descriptor) at `x`, or None without lines."""
    if not reaction.volcano_lines:
        return None
    pick = min if reaction.volcano_envelope == "min" else max
    return [pick(a * xi + b for a, b in reaction.volcano_lines) for xi in x]
