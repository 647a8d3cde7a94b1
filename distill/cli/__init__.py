"""The `distill` console command, one module per subcommand."""

from distill.cli.app import app

__all__ = ["app"]
