"""Shared helpers for the CLI modules: one console, uniform failures, progress bars."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console()
err_console = Console(stderr=True)


def fail(exc: BaseException | str, code: int = 1) -> NoReturn:
    """Print an error without a traceback and exit with ``code``."""
    err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def progress(transient: bool = False) -> Progress:
    """A rich progress bar with count, elapsed and remaining time (goes to stderr)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )
