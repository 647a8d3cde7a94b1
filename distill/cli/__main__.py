"""`python -m distill.cli` runs the `distill` app (used by torchrun: `torchrun ... -m distill.cli train ...`)."""

from distill.cli.app import app

app()
