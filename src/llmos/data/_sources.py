"""One data reference (`data.train` or `data.eval`) -> its usable rows, a name and a content digest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmos.data._columns import Rows, check_columns, extract_rows
from llmos.data._files import read_file
from llmos.data._hash import file_digest
from llmos.data._hf import read_hf
from llmos.errors import DataError

if TYPE_CHECKING:
    from llmos.spec import DataSpec

__all__ = ["Source", "check_sources", "data_format", "read_source"]

_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
               ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSIONS = {".gz", ".bz2", ".xz", ".zst", ".zip"}  # pandas decompresses these transparently


@dataclass(frozen=True)
class Source:
    rows: Rows
    name: str  # absolute path, or hf:ID/SPLIT
    digest: str


def data_format(ref: str, fmt: str, field: str) -> str:
    """`data.format`, or the one the reference implies: `hf:` prefix or file extension."""
    if ref.startswith("hf:") or fmt == "hf":
        return "hf"
    if fmt != "auto":
        return fmt
    suffixes = [s.lower() for s in Path(ref).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes.pop()
    if suffixes and suffixes[-1] in _EXTENSIONS:
        return _EXTENSIONS[suffixes[-1]]
    raise DataError(f"{field}: cannot tell the format of '{ref}' from its extension.",
                    hint="Set data.format to csv, tsv, jsonl or parquet, or name the file .csv, .tsv, "
                         ".jsonl or .parquet (hub datasets: hf:DATASET_ID).")


def check_sources(spec: DataSpec) -> None:
    """Fail fast, before any process starts, on a data file that is missing or of no known format
    (what `read_source` would find seconds later, inside the training process)."""
    for field, ref in (("data.train", spec.train), ("data.eval", spec.eval)):
        if ref is not None and data_format(ref, spec.format, field) != "hf":
            _existing_file(ref, field)


def _existing_file(ref: str, field: str) -> Path:
    path = Path(ref).expanduser().resolve()
    if not path.exists():
        raise DataError(f"{field}: file not found: {path}",
                        hint=f"Fix {field}; a relative path is read from the current folder ({Path.cwd()}).")
    if not path.is_file():
        raise DataError(f"{field}: {path} is a folder, not a file.",
                        hint=f"Point {field} at one .csv, .tsv, .jsonl or .parquet file in it.")
    return path


def _header_note(header: bool | None) -> str:
    if header is None:
        return ""
    if header:
        return (" The first row was read as column names; if it is data, set data.header=false and "
                "name columns by position ('0', '1', …).")
    return (" The file was read without a header row, so its columns are named by position; if its "
            "first row names the columns, set data.header=true.")


def read_source(ref: str, field: str, spec: DataSpec, wanted: dict[str, str], hf_split: str) -> Source:
    fmt = data_format(ref, spec.format, field)
    if fmt == "hf":
        frame, name, digest = read_hf(ref, hf_split, wanted.get("data.label_column"), field)
        note = ""
    else:
        path = _existing_file(ref, field)
        frame, header = read_file(path, fmt, spec.header, list(wanted.values()), field)
        name, digest, note = str(path), file_digest(path), _header_note(header)
    label = f"{field} ({name})"
    check_columns([str(column) for column in frame.columns], wanted, label, note)
    return Source(extract_rows(frame, wanted, label), name, digest)
