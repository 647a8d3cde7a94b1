"""`python -m calculators.cli ...`."""

from calculators.cli.app import app

app()
