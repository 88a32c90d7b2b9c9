"""Reading one local file into a DataFrame: CSV, TSV, JSONL or Parquet. pandas and pyarrow are
imported lazily because `llmos --help` must stay fast."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

from llmos.data._header import looks_like_header
from llmos.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["read_file"]

_HEADER_SAMPLE_ROWS = 50
# TSV files (GLUE, SST-2) carry bare quotes inside texts; tabs never occur in a field, so quoting
# would only mangle them.
_DIALECTS = {"csv": (",", csv.QUOTE_MINIMAL), "tsv": ("\t", csv.QUOTE_NONE)}


def read_file(path: Path, fmt: str, header: bool | None, wanted: list[str],
              field: str) -> tuple[pd.DataFrame, bool | None]:
    """The file's rows (text cells as `str`) and, for CSV/TSV, whether a header row was used."""
    if fmt in _DIALECTS:
        return _read_delimited(path, fmt, header, wanted, field)
    if fmt == "jsonl":
        return _read_jsonl(path, field), None
    return _read_parquet(path, wanted, field), None


def _read_csv(path: Path, fmt: str, field: str, **options: object) -> pd.DataFrame:
    import pandas as pd

    sep, quoting = _DIALECTS[fmt]
    try:
        # Everything as str with no NA guessing: a text "NA" or "123" stays that text.
        return pd.read_csv(path, sep=sep, quoting=quoting, dtype=str, keep_default_na=False,
                           encoding="utf-8-sig", **options)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{field}: {path} is empty.", hint=f"Point {field} at a file with rows.") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{field}: {path} is not valid {fmt.upper()}: {exc}", hint=(
            "Fix that line (a stray separator or quote inside a text?), or set data.format if the "
            "file is not " + fmt.upper() + ".")) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{field}: {path} is not UTF-8 text ({exc.reason} at byte {exc.start}).",
                        hint="Re-save the file as UTF-8, or set data.format if it is Parquet.") from exc


def _read_delimited(path: Path, fmt: str, header: bool | None, wanted: list[str],
                    field: str) -> tuple[pd.DataFrame, bool]:
    if header is None:
        sample = _read_csv(path, fmt, field, header=None, nrows=_HEADER_SAMPLE_ROWS)
        rows = sample.to_numpy(dtype=object).tolist()
        header = looks_like_header([str(c) for c in rows[0]], rows[1:], wanted) if rows else True
    frame = _read_csv(path, fmt, field, header=0 if header else None)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, header


def _read_jsonl(path: Path, field: str) -> pd.DataFrame:
    import pandas as pd

    try:
        # dtype=False: no type guessing, so "0123" stays a string and labels keep their JSON type.
        return pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{field}: {path} is not valid JSONL: {_first_bad_line(path) or exc}",
                        hint="Each line must be one JSON object, e.g. {\"text\": \"…\", \"label\": \"…\"}; "
                             "fix that line, or set data.format.") from exc


def _first_bad_line(path: Path) -> str | None:
    """pandas does not say where JSONL breaks; find the line, only on this error path."""
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    return f"line {number}: {exc.msg} (column {exc.colno})"
                if not isinstance(value, dict):
                    return f"line {number}: expected a JSON object, got {type(value).__name__}"
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    return None


def _read_parquet(path: Path, wanted: list[str], field: str) -> pd.DataFrame:
    import pandas as pd
    import pyarrow
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        if any(column not in names for column in wanted):
            # An empty frame with every column: the caller's column check lists them in its error.
            return pd.DataFrame(columns=names)
        # Read only the columns asked for: Parquet files often carry wide unused ones.
        return pd.read_parquet(path, columns=list(dict.fromkeys(wanted)), engine="pyarrow")
    except (pyarrow.ArrowException, OSError) as exc:
        raise DataError(f"{field}: {path} is not a readable Parquet file: {exc}",
                        hint="Check the file, or set data.format if it is not Parquet.") from exc
