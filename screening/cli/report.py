"""``screen report``: regenerate a run's figures and tables from its saved files (no model is loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from screening.cli.options import SvgOpt, fail


def report(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by `screen run` or `screen funnel`.")],
    svg: SvgOpt = False,
    dpi: Annotated[int, typer.Option("--dpi", min=1)] = 100,
) -> None:
    """Regenerate figures and tables of a run from its saved results (no model is loaded)."""
    from screening.report import write_report

    try:
        files = write_report(run_dir, formats=("png", "svg") if svg else ("png",), dpi=dpi)
    except (FileNotFoundError, ValueError) as err:  # ValueError: calculators.files.CorruptFileError
        fail(str(err))
    typer.echo(f"wrote {len(files)} files to {run_dir}")
