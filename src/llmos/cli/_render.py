"""Shared terminal rendering: one console, error printing without tracebacks, JSON output."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from llmos.errors import LlmosError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, emoji=False)  # errors quote data: ":CD:" is no emoji

# The `--json` flag of every command that lists or shows: the same records the Python API returns.
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON instead of a table (for scripts)")]


def print_json(data: Any) -> None:
    """Records (anything with `to_dict()`, dataclasses, lists of them) as indented JSON on stdout."""
    import dataclasses
    import json

    def plain(value: Any) -> Any:
        if hasattr(value, "to_dict"):
            return value.to_dict()
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        if hasattr(value, "model_dump"):
            return value.model_dump(mode="json")
        return str(value)

    typer.echo(json.dumps(data, indent=2, default=plain))


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
