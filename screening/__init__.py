"""Catalyst screening on top of `calculators`: the structure builder (`structures`), CatalysisHub datasets
(`cathub`), reactions and their ΔE, model evaluators, the screening runner and funnel, metrics, run files and
reports. Never imports `distill`.

Import from the modules and subpackages: this package re-exports nothing, so the `screen` console command starts
without importing torch."""

__all__: list[str] = []
