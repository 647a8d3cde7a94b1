"""Errors raised by the structure builder."""

from __future__ import annotations


class StructureBuildError(ValueError):
    """Bad builder input (unknown prototype/facet/adsorbate/site, impossible composition, ...).

    Messages always list the valid options.
    """
