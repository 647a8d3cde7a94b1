"""What every console command shares: one-line errors (full tracebacks only with `--debug`), one-line warnings,
and option checks that run before any work (typer callbacks). Used by `screen`, `distill` and
`python -m calculators.cli`; imports nothing heavy (torch only when a CUDA device is asked for)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

DEBUG_KEY = "catdistill.debug"


class CommandGroup(TyperGroup):
    """A typer group whose unexpected errors print one line (`error: Type: message`) and exit 1, unless the app
    callback saw `--debug` (then the traceback is shown). Warnings print as `warning: message` lines. Usage
    errors, `typer.Exit` and Ctrl-C keep their own handling (Ctrl-C: one line, exit 130)."""

    def invoke(self, ctx: typer.Context) -> Any:
        old_show = warnings.showwarning

        def one_line(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
            if ctx.meta.get(DEBUG_KEY):
                return old_show(message, category, filename, lineno, file, line)
            typer.echo(f"warning: {message}", err=True)

        warnings.showwarning = one_line
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException, SystemExit):  # usage errors keep typer's handling
            raise
        except KeyboardInterrupt:
            if ctx.meta.get(DEBUG_KEY):
                raise
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as err:
            if ctx.meta.get(DEBUG_KEY):
                raise
            text = " ".join(str(err).split()) or "(no message)"
            typer.echo(f"error: {type(err).__name__}: {text}  [--debug shows the traceback]", err=True)
            raise typer.Exit(1) from None
        finally:
            warnings.showwarning = old_show


def set_debug(ctx: typer.Context, debug: bool) -> None:
    """Record `--debug` for `CommandGroup` (call from the app callback)."""
    ctx.meta[DEBUG_KEY] = bool(debug)


DebugOpt = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors.")


def make_app(name: str, help_text: str, commands: dict[str, Callable[..., Any]]) -> typer.Typer:
    """A command group `name`: one-line errors (`CommandGroup`), a `--debug` flag for full tracebacks, no shell
    completion, help when called without a command, and `commands` (command name -> function) in that order."""
    app = typer.Typer(name=name, help=help_text, no_args_is_help=True, add_completion=False, cls=CommandGroup)

    def _main(ctx: typer.Context, debug: bool = DebugOpt) -> None:
        set_debug(ctx, debug)

    _main.__doc__ = f"{help_text}\n\nErrors print one line; --debug shows full tracebacks."
    app.callback()(_main)
    for command, fn in commands.items():
        app.command(command)(fn)
    return app


# ----------------------------------------------------------------------------- option checks (typer callbacks)
def finite(
    *, low: float | None = None, high: float | None = None, low_open: bool = False, optional: bool = False
) -> Callable[[Any], Any]:
    """Callback: a finite float within [low, high] (`low_open`: strictly above low); None passes when
    `optional`. NaN and ±inf are refused (typer's `min=` lets NaN through)."""

    def check(value: Any) -> Any:
        if value is None and optional:
            return value
        v = float(value)
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '≥'} {low:g}")
        if high is not None:
            bounds.append(f"≤ {high:g}")
        want = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
        ok = math.isfinite(v) and (low is None or (v > low if low_open else v >= low)) and (high is None or v <= high)
        if not ok:
            raise typer.BadParameter(f"{value} is not {want}")
        return value

    return check


def choice(values: Sequence[str]) -> Callable[[str], str]:
    """Callback: one of `values`."""

    def check(value: str) -> str:
        if value not in values:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}")
        return value

    return check


def non_empty(value: str | None) -> str | None:
    """Callback: a string that is not empty or blank (None passes)."""
    if value is not None and not value.strip():
        raise typer.BadParameter("must not be empty")
    return value


def device(value: str | None) -> str | None:
    """Callback: cpu, auto, cuda or cuda:N, and CUDA only when torch can use it here."""
    if value is None or value in ("cpu", "auto"):
        return value
    if not (value == "cuda" or (value.startswith("cuda:") and value[5:].isdigit())):
        raise typer.BadParameter(f"{value!r} is not a device (cpu, cuda, cuda:N)")
    import torch

    if not torch.cuda.is_available():
        raise typer.BadParameter(
            f"{value}: this torch build or machine has no usable CUDA device "
            f"(torch {torch.__version__}, CUDA {'built' if torch.backends.cuda.is_built() else 'not built'}); "
            "use --device cpu"
        )
    if value.startswith("cuda:") and int(value[5:]) >= torch.cuda.device_count():
        raise typer.BadParameter(f"{value}: only {torch.cuda.device_count()} CUDA device(s) here")
    return value


def _writable_ancestor(path: Path) -> tuple[Path, bool]:
    """The nearest existing folder at or above `path`, and whether new entries can be created in it."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe, probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def output_dir(value: Path | None) -> Path | None:
    """Callback: a folder that exists or can be created, and can be written to (None passes)."""
    if value is None:
        return value
    if value.exists() and not value.is_dir():
        raise typer.BadParameter(f"{value} is a file, not a folder")
    base, ok = _writable_ancestor(value)
    if not base.is_dir():
        raise typer.BadParameter(f"{value}: {base} is a file, not a folder")
    if not ok:
        raise typer.BadParameter(f"{value}: no permission to write in {base}")
    return value


def output_file(value: Path | None) -> Path | None:
    """Callback: a file path whose folder exists or can be created and is writable, and that is not a folder."""
    if value is None:
        return value
    if value.is_dir():
        raise typer.BadParameter(f"{value} is a folder, not a file")
    if value.exists() and not os.access(value, os.W_OK):
        raise typer.BadParameter(f"{value}: no permission to overwrite it")
    base, ok = _writable_ancestor(value.parent)
    if not base.is_dir():
        raise typer.BadParameter(f"{value}: {base} is a file, not a folder")
    if not ok:
        raise typer.BadParameter(f"{value}: no permission to write in {base}")
    return value


def existing_file(value: Path | None) -> Path | None:
    """Callback: a file that exists (None passes)."""
    if value is not None and not value.is_file():
        raise typer.BadParameter(f"{value} does not exist" if not value.exists() else f"{value} is not a file")
    return value


# Dask executor options shared by `distill label`, `screen run` and `screen funnel` (calculators.distributed)
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Evaluate on a local Dask cluster of N worker processes (one torch thread each). Omitted: in-process.",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Evaluate on an existing Dask cluster at ADDRESS (tcp://host:8786, e.g. made by dask-jobqueue on "
        "SLURM; workers must see the same checkpoint files). Omitted: in-process.",
        callback=non_empty,
    ),
]


def executor_flags(workers: int | None, scheduler: str | None) -> None:
    """`typer.BadParameter` when both --workers and --scheduler are given."""
    if workers is not None and scheduler is not None:
        raise typer.BadParameter("give --workers or --scheduler, not both")


def error_text(err: BaseException) -> str:
    """The one-line message of `err`. A `KeyError` shows its message without the quotes its ``str()`` adds
    (``KeyError("unknown 'x'")`` → ``unknown 'x'``); any other message is kept whole, quotes included."""
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]
    return str(err)
