"""The `screen` console command, one module per subcommand."""

from screening.cli.app import app

__all__ = ["app"]
