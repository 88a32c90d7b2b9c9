"""Label values -> ids: by the declared `data.labels`, else by the sorted distinct training labels."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmos.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from llmos.data._columns import Rows

__all__ = ["map_labels"]

log = logging.getLogger(__name__)
_INT_PATTERN = r"[+-]?\d{1,18}"  # fits int64
_SHOWN = 20


@dataclass(frozen=True)
class _Values:
    text: pd.Series  # each label as a stripped string (what a name is matched against)
    ints: pd.Series | None  # each label as an int when every label of the source is one


def _values(labels: pd.Series) -> _Values:
    from pandas.api import types

    if types.is_bool_dtype(labels):
        return _Values(labels.map({True: "true", False: "false"}), None)
    if types.is_integer_dtype(labels) or (types.is_float_dtype(labels) and (labels % 1 == 0).all()):
        ints = labels.astype("int64")
        return _Values(ints.astype(str), ints)
    text = labels.astype(str).str.strip()
    ints = text.astype("int64") if text.str.fullmatch(_INT_PATTERN).all() else None
    return _Values(text, ints)


def _show(names: list[str]) -> str:
    more = f", … ({len(names)} in all)" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _first_unmapped(ids: pd.Series, raw: pd.Series) -> tuple[int, object]:
    row = ids.index[ids.isna().to_numpy()][0]
    return int(row) + 1, raw.loc[row]


def map_labels(declared: list[str] | None, train: Rows, held_out: Rows | None,
               limit_note: str = "") -> tuple[list[str], pd.Series, pd.Series | None]:
    """Label names in id order and the id Series of train and (when given) eval rows."""
    sources = [rows for rows in (train, held_out) if rows is not None]
    values = [_values(rows.labels) for rows in sources]  # type: ignore[arg-type]
    if declared is not None:
        ids = _by_declared(declared, sources, values)
    else:
        declared, ids = _by_training(sources, values, limit_note)
    return declared, ids[0], ids[1] if len(ids) > 1 else None


def _by_declared(names: list[str], sources: list[Rows], values: list[_Values]) -> list[pd.Series]:
    index = {name: i for i, name in enumerate(names)}
    if all(v.text.isin(index).all() for v in values):
        ids = [v.text.map(index) for v in values]
    elif all(v.ints is not None for v in values):
        # Integer labels are ids: positions in data.labels.
        ids = [v.ints.where((v.ints >= 0) & (v.ints < len(names))) for v in values]  # type: ignore[union-attr]
    else:
        ids = [v.text.map(index) for v in values]
    for rows, found in zip(sources, ids, strict=True):
        if found.isna().any():
            row, value = _first_unmapped(found, rows.labels)  # type: ignore[arg-type]
            raise DataError(f"{rows.source} row {row}: unknown label {value!r}. Known labels (data.labels, "
                            f"in id order): {_show(names)}.", hint=(
                                f"Add the label to data.labels or fix the row; integer labels are read as "
                                f"ids 0..{len(names) - 1} into data.labels."))
    if len(ids) > 1 and not ids[1].isin(ids[0]).all():
        unseen = sorted({names[int(i)] for i in ids[1][~ids[1].isin(ids[0])]})
        log.warning("%s: labels with no training examples: %s", sources[1].source, _show(unseen))
    return [found.astype("int64") for found in ids]


def _by_training(sources: list[Rows], values: list[_Values],
                 limit_note: str) -> tuple[list[str], list[pd.Series]]:
    train = values[0]
    if train.ints is not None:
        distinct = sorted(set(train.ints.tolist()))
        names = [str(value) for value in distinct]
        index_ints = {value: i for i, value in enumerate(distinct)}
        index_names = {name: i for i, name in enumerate(names)}
        ids = [v.ints.map(index_ints) if v.ints is not None else v.text.map(index_names) for v in values]
    else:
        names = sorted(set(train.text.tolist()))
        index = {name: i for i, name in enumerate(names)}
        ids = [v.text.map(index) for v in values]
    if len(ids) > 1 and ids[1].isna().any():
        held_out, raw = sources[1], sources[1].labels
        row, _ = _first_unmapped(ids[1], raw)  # type: ignore[arg-type]
        unseen = sorted({str(v) for v in raw[ids[1].isna()].tolist()})  # type: ignore[index]
        raise DataError(f"{held_out.source}: labels not seen in the training data: {_show(unseen)} "
                        f"(first at row {row}). Training labels: {_show(names)}.", hint=(
                            "Every eval label needs training examples: fix the eval file, or set "
                            f"data.labels to all label names in id order.{limit_note}"))
    return names, [found.astype("int64") for found in ids]
