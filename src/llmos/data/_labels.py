"""Label values -> ids: by the declared `data.labels`, else by the sorted distinct training labels."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmos.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Labelled", "map_labels"]

log = logging.getLogger(__name__)
_INT_PATTERN = r"[+-]?\d{1,18}"  # fits int64
_SHOWN = 20


@dataclass(frozen=True)
class Labelled:
    """The raw label column of one source, indexed by 0-based data row."""

    source: str
    raw: pd.Series


@dataclass(frozen=True)
class _Values:
    text: pd.Series  # each label as a stripped string (what a name is matched against)
    ints: pd.Series | None  # each label as an int, when every label of the source is one


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


def _first_unmapped(ids: pd.Series, labelled: Labelled) -> tuple[int, object]:
    row = ids.index[ids.isna().to_numpy()][0]
    return int(row) + 1, labelled.raw.loc[row]


def map_labels(declared: list[str] | None, sources: list[Labelled],
               limit_note: str = "") -> tuple[list[str], list[pd.Series]]:
    """Label names in id order, and an int id Series per source (train first, then eval if any)."""
    values = [_values(s.raw) for s in sources]
    if declared is not None:
        return declared, _by_declared(declared, sources, values)
    return _by_training(sources, values, limit_note)


def _by_declared(names: list[str], sources: list[Labelled], values: list[_Values]) -> list[pd.Series]:
    index = {name: i for i, name in enumerate(names)}
    if not all(v.text.isin(index).all() for v in values) and all(v.ints is not None for v in values):
        # Integer labels that are not names are ids: positions in data.labels.
        ids = [v.ints.where((v.ints >= 0) & (v.ints < len(names))) for v in values if v.ints is not None]
    else:
        ids = [v.text.map(index) for v in values]
    for labelled, found in zip(sources, ids, strict=True):
        if found.isna().any():
            row, value = _first_unmapped(found, labelled)
            raise DataError(f"{labelled.source} row {row}: unknown label {value!r}. Known labels "
                            f"(data.labels, in id order): {_show(names)}.", hint=(
                                "Add the label to data.labels or fix the row; integer labels are read as "
                                f"ids 0..{len(names) - 1} into data.labels."))
    if len(ids) > 1 and not ids[1].isin(ids[0]).all():
        unseen = sorted({names[int(i)] for i in ids[1][~ids[1].isin(ids[0])]})
        log.warning("%s: labels with no training examples: %s", sources[1].source, _show(unseen))
    return [found.astype("int64") for found in ids]


def _by_training(sources: list[Labelled], values: list[_Values],
                 limit_note: str) -> tuple[list[str], list[pd.Series]]:
    train = values[0]
    if train.ints is not None:
        distinct = sorted(set(train.ints.tolist()))  # numerically: 2 before 10
        names = [str(value) for value in distinct]
        by_int = {value: i for i, value in enumerate(distinct)}
        by_name = {name: i for i, name in enumerate(names)}
        ids = [v.ints.map(by_int) if v.ints is not None else v.text.map(by_name) for v in values]
    else:
        names = sorted(set(train.text.tolist()))
        by_name = {name: i for i, name in enumerate(names)}
        ids = [v.text.map(by_name) for v in values]
    if len(ids) > 1 and ids[1].isna().any():
        held_out = sources[1]
        row, _ = _first_unmapped(ids[1], held_out)
        unseen = sorted({str(v) for v in held_out.raw[ids[1].isna()].tolist()})
        raise DataError(f"{held_out.source}: labels not seen in the training data: {_show(unseen)} "
                        f"(first at row {row}). Training labels: {_show(names)}.", hint=(
                            "Every eval label needs training examples: fix the eval file, or set "
                            f"data.labels to all label names in id order.{limit_note}"))
    return names, [found.astype("int64") for found in ids]
