"""Catalyst screening: CatalysisHub datasets, structure builder, reaction energies, metrics, reports."""
