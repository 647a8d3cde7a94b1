"""`python -m calculators.cli`: list the model registry and download registered checkpoints."""

from calculators.cli.app import app

__all__ = ["app"]
