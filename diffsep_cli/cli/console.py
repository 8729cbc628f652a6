"""The terminal of every command: stdout / stderr consoles, progress bars, one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import EXIT_ERROR, EXIT_INTERRUPTED, DiffsepError

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def make_progress(console: Console, enabled: bool) -> Progress:
    """The progress display of every command: stderr, off when not wanted or not a terminal."""
    return Progress(
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    err.print(f"[bold red]error:[/] {' '.join(message.split())}", markup=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def user_errors(verbose: int = 0) -> Iterator[None]:
    """Turn mistakes a user can fix into one line and an exit code (tracebacks with -v)."""
    try:
        yield
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except (DiffsepError, ValueError, OSError) as exc:
        if verbose:
            err.print_exception()
        code = exc.exit_code if isinstance(exc, DiffsepError) else EXIT_ERROR
        fail(escape(str(exc).strip() or type(exc).__name__), code)
