"""Whether a CSV/TSV file's first row names its columns, when `data.header` is null.

A pure guess from the first rows; when it guesses wrong the missing-column error says which
`data.header` value to set, so the user is never stuck with it."""

from __future__ import annotations

__all__ = ["looks_like_header"]

_NAME_MAX_WORDS = 3
_NAME_MAX_CHARS = 40


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_name_like(cell: str) -> bool:
    # Column names are short labels; data texts are usually sentences.
    return len(cell) <= _NAME_MAX_CHARS and len(cell.split()) <= _NAME_MAX_WORDS and cell[-1] not in ".?!"


def looks_like_header(first: list[str], rest: list[list[str]], wanted: list[str]) -> bool:
    """Guess from the first row, the rows below it and the column names the spec asks for."""
    cells = [cell.strip() for cell in first]
    if wanted and all(w.isdigit() for w in wanted):
        return False  # the spec addresses columns by position: it expects no header
    if {w for w in wanted if not w.isdigit()} & set(cells):
        return True  # a column the spec names is right there
    if any(not cell or _is_number(cell) for cell in cells):
        return False  # names are never empty or numbers
    for j, cell in enumerate(cells):
        below = [row[j].strip() for row in rest if j < len(row)]
        if below and all(_is_number(value) for value in below) and not _is_number(cell):
            return True  # a word on top of a column of numbers (e.g. `label` over 0/1)
    return all(_is_name_like(cell) for cell in cells)
