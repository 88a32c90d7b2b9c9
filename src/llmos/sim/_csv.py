"""Reading CSV files whose every bad cell is reported with its row number and column."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Row", "read_rows"]

_MAX_PROBLEMS = 10  # enough to fix a file in one go without flooding the terminal


class Row:
    """One data row; `line` is its line number in the file (the header is line 1)."""

    __slots__ = ("_before", "_problems", "cells", "line")

    def __init__(self, line: int, cells: dict[str, str], problems: list[str]) -> None:
        self.line = line
        self.cells = cells
        self._problems = problems
        self._before = len(problems)

    @property
    def ok(self) -> bool:
        """No problem was found in this row so far."""
        return len(self._problems) == self._before

    def has(self, column: str) -> bool:
        return (self.cells.get(column) or "").strip() != ""

    def text(self, column: str, default: str | None = None) -> str:
        value = (self.cells.get(column) or "").strip()
        if not value:
            if default is not None:
                return default
            self.problem(column, "is empty")
        return value

    def number(self, column: str, default: float | None = None, minimum: float | None = 0.0) -> float:
        raw = (self.cells.get(column) or "").strip()
        if not raw and default is not None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problem(column, f"expected a number, got {raw!r}")
            return 0.0
        if value != value or value in (float("inf"), float("-inf")):
            self.problem(column, f"expected a finite number, got {raw!r}")
            return 0.0
        if minimum is not None and value < minimum:
            self.problem(column, f"must be >= {minimum:g}, got {raw}")
        return value

    def integer(self, column: str, default: int | None = None, minimum: int = 0) -> int:
        value = self.number(column, None if default is None else float(default), float(minimum))
        if value != int(value):
            self.problem(column, f"expected a whole number, got {self.cells.get(column)!r}")
        return int(value)

    def flag(self, column: str, default: bool) -> bool:
        raw = (self.cells.get(column) or "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "y", "t"):
            return True
        if raw in ("0", "false", "no", "n", "f"):
            return False
        self.problem(column, f"expected true/false, got {raw!r}")
        return default

    def problem(self, column: str, message: str) -> None:
        self._problems.append(f"row {self.line}, column {column}: {message}")


def read_rows(path: Path, required: tuple[str, ...], what: str, error: type[Exception]) -> Iterator[Row]:
    """Yield rows of `path`; raise `error` (an LlmosError) for a missing file or column, or bad cells.

    Cell problems are collected and raised together after the last row (or after ten of them).
    """
    if not path.is_file():
        raise error(f"{what} file {str(path)!r} does not exist.", hint=f"Pass the path of a {what} CSV file.")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise error(f"{what} file {str(path)!r} lacks the column(s) {', '.join(missing)}.",
                        hint=f"The header must contain: {','.join(required)}")
        reader.fieldnames = header
        problems: list[str] = []
        for n, cells in enumerate(reader, start=2):
            yield Row(n, cells, problems)
            if len(problems) >= _MAX_PROBLEMS:
                break
        if problems:
            lines = "\n".join(f"  {p}" for p in problems)
            raise error(f"{what} file {str(path)!r} has bad rows:\n{lines}",
                        hint="Fix these rows (line numbers count the header as row 1) and run again.")
