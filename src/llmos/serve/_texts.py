"""Texts for the load generator: lines of a .txt file, or the first column of a .csv/.tsv file."""

from __future__ import annotations

import csv
from pathlib import Path

from llmos.errors import DataError

__all__ = ["read_texts"]

_HEADER_NAMES = {"text", "sentence", "prompt", "input"}


def read_texts(path: Path | None) -> list[str]:
    """Texts from `path`; None takes the held-out messages of the bundled support-intents data."""
    if path is None:
        from llmos.data._bundled import bundled_dataset_path

        path = bundled_dataset_path() / "test.csv"
    if not path.is_file():
        raise DataError(f"texts file '{path}' does not exist.",
                        hint="Pass --texts with a .txt file (one text per line) or a .csv/.tsv file (first column).")
    if path.suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8") as f:
            rows = [row[0] for row in csv.reader(f, delimiter="\t" if path.suffix == ".tsv" else ",") if row]
        if rows and rows[0].strip().lower() in _HEADER_NAMES:
            rows = rows[1:]
    else:
        rows = path.read_text(encoding="utf-8").splitlines()
    texts = [t.strip() for t in rows if t.strip()]
    if not texts:
        raise DataError(f"{path} holds no texts.", hint="One text per line (.txt) or in the first column (.csv/.tsv).")
    return texts
