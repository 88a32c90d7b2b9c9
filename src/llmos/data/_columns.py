"""Picking the configured columns out of a frame: text, second text and label, with the rows kept."""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from llmos.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from llmos.spec import DataSpec

__all__ = ["Rows", "check_columns", "extract_rows", "wanted_columns"]

log = logging.getLogger(__name__)
_SHOWN_COLUMNS = 30


@dataclass(frozen=True)
class Rows:
    """The usable rows of one source. Each Series is indexed by the 0-based data row in the source,
    so errors can name the row a user can find (row 1 = the first data row, after any header)."""

    source: str
    texts: pd.Series
    pairs: pd.Series | None
    labels: pd.Series | None  # raw label values as read (str, int, ...)

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, positions: np.ndarray | slice) -> Rows:
        def pick(series: pd.Series | None) -> pd.Series | None:
            return None if series is None else series.iloc[positions]

        return replace(self, texts=self.texts.iloc[positions], pairs=pick(self.pairs),
                       labels=pick(self.labels))


def wanted_columns(spec: DataSpec, task: str) -> dict[str, str]:
    """Spec field -> column name, for the columns this task reads."""
    wanted = {"data.text_column": spec.text_column}
    if spec.text_pair_column:
        wanted["data.text_pair_column"] = spec.text_pair_column
    if task == "classification" and spec.label_column:
        wanted["data.label_column"] = spec.label_column
    return wanted


def check_columns(columns: list[str], wanted: dict[str, str], source: str, note: str = "") -> None:
    """A DataError for the first configured column that the source lacks, with the closest name."""
    for field, column in wanted.items():
        if column in columns:
            continue
        shown = ", ".join(repr(c) for c in columns[:_SHOWN_COLUMNS])
        more = f" and {len(columns) - _SHOWN_COLUMNS} more" if len(columns) > _SHOWN_COLUMNS else ""
        close = difflib.get_close_matches(column, columns, n=1, cutoff=0.5)
        guess = f"Did you mean '{close[0]}'? " if close else ""
        raise DataError(f"{source}: no column '{column}' ({field}). Its columns: {shown}{more}.",
                        hint=f"{guess}Set {field} to one of its columns.{note}")


def _as_text(column: pd.Series) -> pd.Series:
    # Missing cells (JSON null, Parquet null) read as empty texts, numbers as their digits.
    return column.where(column.notna(), "").astype(str)


def extract_rows(frame: pd.DataFrame, wanted: dict[str, str], source: str) -> Rows:
    """The configured columns of `frame`; rows with an empty text or second text are dropped (with a
    warning: a blank cell is a common export artefact and carries nothing to learn from), a row with
    no label is an error (silently dropping it would hide a broken file)."""
    frame = frame.reset_index(drop=True)  # a Parquet file may restore a stored index; rows count from 0
    texts = _as_text(frame[wanted["data.text_column"]])
    pair_column = wanted.get("data.text_pair_column")
    pairs = _as_text(frame[pair_column]) if pair_column else None
    label_column = wanted.get("data.label_column")
    labels = frame[label_column] if label_column else None
    keep = texts.str.strip().ne("")
    if pairs is not None:
        keep &= pairs.str.strip().ne("")
    rows = Rows(source, texts, pairs, labels)
    if not keep.all():
        dropped = keep.index[~keep]
        log.warning("%s: dropped %d of %d rows with an empty text (rows %s)", source, len(dropped),
                    len(keep), ", ".join(str(i + 1) for i in dropped[:10]) + (", …" if len(dropped) > 10 else ""))
        rows = rows.take(keep.to_numpy().nonzero()[0])
    if rows.labels is not None:
        _check_no_missing(rows.labels, label_column or "", source)
    return rows


def _check_no_missing(labels: pd.Series, column: str, source: str) -> None:
    missing = labels.isna() | labels.astype(str).str.strip().eq("")
    if missing.any():
        first = int(missing.index[missing.to_numpy()][0]) + 1
        raise DataError(f"{source} row {first}: no label in column '{column}' "
                        f"({int(missing.sum())} rows lack one).",
                        hint="Give every row a label, remove the unlabelled rows, or check data.label_column.")
