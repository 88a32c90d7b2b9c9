"""Shared terminal rendering: one console, error printing without tracebacks."""

from __future__ import annotations

import os
import sys

from rich.console import Console

from llmos.errors import LlmosError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def debug() -> bool:
    return os.environ.get("LLMOS_DEBUG", "") not in ("", "0", "false")


def report(exc: LlmosError) -> int:
    """For the `python -m` entrypoints, whose stderr is a log file: print a user error as plain
    text and return its exit code (re-raise it with LLMOS_DEBUG=1)."""
    if debug():
        raise exc
    print(f"error: {exc.message}" + (f"\nfix: {exc.hint}" if exc.hint else ""), file=sys.stderr)
    return exc.exit_code


def fail(exc: LlmosError) -> None:
    """Print a user error as one paragraph plus the fix, then exit with its code."""
    from rich.markup import escape

    # Messages quote paths, values and pip extras (`llmos[hf]`): never read them as markup.
    err_console.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    if exc.hint:
        err_console.print(f"[yellow]fix:[/] {escape(exc.hint)}", soft_wrap=True)
    err_console.print("[dim](set LLMOS_DEBUG=1 for the traceback)[/]")
    sys.exit(exc.exit_code)
