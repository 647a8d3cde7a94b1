"""Reaction-aware screening: reactions as data (`reactions.json`), computational-hydrogen-electrode free energies,
limiting potentials and binding descriptors (`che`), surfaces with per-model site choice (`surfaces`), and funnel
stages with their confusion matrix (`classify`). Pure computation: models are run by `screening.reaction_funnel`."""

from screening.descriptors.che import (
    Activity,
    MissingAdsorbate,
    activity,
    free_energies,
    limiting_potential,
    orr_limiting_potential,
    overpotential,
    volcano_curve,
)
from screening.descriptors.classify import Confusion, Stage, confusion, parse_stages, recall_of, stricter_stages
from screening.descriptors.table import (
    AdsorbateSpec,
    ReactionSpec,
    ReactionTable,
    ReactionTableError,
    load_table,
    shipped_table_path,
)

__all__ = [
    "Activity",
    "AdsorbateSpec",
    "Confusion",
    "MissingAdsorbate",
    "ReactionSpec",
    "ReactionTable",
    "ReactionTableError",
    "Stage",
    "activity",
    "confusion",
    "free_energies",
    "limiting_potential",
    "load_table",
    "orr_limiting_potential",
    "overpotential",
    "parse_stages",
    "stricter_stages",
    "recall_of",
    "shipped_table_path",
    "volcano_curve",
]
