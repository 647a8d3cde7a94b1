"""``screen report``: regenerate a run's figures and tables from its saved files (no model is loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from calculators.cli.common import error_text
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
    except (FileNotFoundError, ValueError) as err:  # ValueError: calculators.files.CorruptFileError (file named)
        fail(str(err))
    except (KeyError, TypeError, AttributeError, IndexError) as err:  # fields deeper down of the wrong shape
        fail(
            f"{run_dir}: a run file lacks a field the report needs or holds one of the wrong type "
            f"({type(err).__name__}: {error_text(err)}); rerun the command that wrote it"
        )
    typer.echo(f"wrote {len(files)} files to {run_dir}")
