"""`python -m screening.cli` runs the `screen` app."""

from screening.cli.app import app

app()
